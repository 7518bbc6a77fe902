// pagewire::Log with real files and real processes: the RecordBatch v2 bytes
// against an encoder written here from Kafka's spec, crash recovery after
// kill -9, hand-made torn tails, roll and retention under a reader in another
// process, a full disk, the writer lock, and the cross-process tail.
// GCC 12 at -O3 reports a false -Wrestrict (GCC bug 105329, fixed in 13) inside
// libstdc++'s char_traits.h for this file's string building; silenced for g++ 12
// only, before any include.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <pagewire/file.hpp>
#include <pagewire/log.hpp>
#include <pagewire/page_cache.hpp>
#include <random>
#include <thread>

#include "../test_util.hpp"

namespace {

using pagewire::BatchView;
using pagewire::Durability;
using pagewire::Log;
using pagewire::LogOptions;
using pagewire::LogSlice;
using pagewire::Record;
using pagewire::RecordHeader;
using pagewire::RecordView;

// ---- an independent RecordBatch v2 codec (Kafka's DefaultRecordBatch) ----

std::uint32_t crc32c_bitwise(const std::string& s) {
    std::uint32_t crc = 0xFFFFFFFF;
    for (unsigned char c : s) {
        crc ^= c;
        for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
    }
    return ~crc;
}

void be(std::string& out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void zigzag(std::string& out, std::int64_t v) {
    std::uint64_t z = (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
    do {
        unsigned char b = z & 0x7F;
        z >>= 7;
        out.push_back(static_cast<char>(b | (z ? 0x80 : 0)));
    } while (z);
}
void field(std::string& out, const std::optional<std::string>& b) {
    if (!b) return zigzag(out, -1);
    zigzag(out, static_cast<std::int64_t>(b->size()));
    out += *b;
}

struct TestRecord {
    std::optional<std::string> key, value;
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;
};

std::string encode_reference(std::int64_t base, std::int64_t ts,
                             const std::vector<TestRecord>& rs) {
    std::string records;
    for (std::size_t i = 0; i < rs.size(); ++i) {
        std::string body;
        body.push_back(0);
        zigzag(body, 0);
        zigzag(body, static_cast<std::int64_t>(i));
        field(body, rs[i].key);
        field(body, rs[i].value);
        zigzag(body, static_cast<std::int64_t>(rs[i].headers.size()));
        for (const auto& [k, v] : rs[i].headers) {
            field(body, k);
            field(body, v);
        }
        zigzag(records, static_cast<std::int64_t>(body.size()));
        records += body;
    }
    std::string tail;  // attributes .. end: what the CRC covers
    be(tail, 0, 2);
    be(tail, rs.size() - 1, 4);
    be(tail, static_cast<std::uint64_t>(ts), 8);
    be(tail, static_cast<std::uint64_t>(ts), 8);
    be(tail, static_cast<std::uint64_t>(-1), 8);
    be(tail, 0xFFFF, 2);
    be(tail, 0xFFFFFFFF, 4);
    be(tail, rs.size(), 4);
    tail += records;
    std::string out;
    be(out, static_cast<std::uint64_t>(base), 8);
    be(out, 4 + 1 + 4 + tail.size(), 4);
    be(out, 0, 4);
    out.push_back(2);
    be(out, crc32c_bitwise(tail), 4);
    return out + tail;
}

// Independent decode of the records of one uncompressed batch.
std::vector<TestRecord> decode_reference(const std::string& b) {
    std::size_t p = 61;
    auto varint = [&] {
        std::uint64_t z = 0;
        for (int s = 0;; s += 7) {
            auto c = static_cast<unsigned char>(b.at(p++));
            z |= std::uint64_t{c & 0x7FU} << s;
            if (!(c & 0x80)) break;
        }
        return static_cast<std::int64_t>(z >> 1) ^ -static_cast<std::int64_t>(z & 1);
    };
    auto bytes = [&]() -> std::optional<std::string> {
        auto n = varint();
        if (n < 0) return std::nullopt;
        std::string s = b.substr(p, static_cast<std::size_t>(n));
        p += static_cast<std::size_t>(n);
        return s;
    };
    std::vector<TestRecord> out;
    while (p < b.size()) {
        varint();
        ++p;
        varint();
        varint();
        TestRecord r;
        r.key = bytes();
        r.value = bytes();
        for (auto n = varint(); n > 0; --n) {
            std::string k = *bytes();
            r.headers.emplace_back(k, bytes());
        }
        out.push_back(std::move(r));
    }
    return out;
}

std::string as_string(std::span<const std::byte> s) {
    return {reinterpret_cast<const char*>(s.data()), s.size()};
}

// Holds the views a Record needs for a TestRecord.
struct Staged {
    std::vector<std::vector<RecordHeader>> headers;
    std::vector<Record> records;
    explicit Staged(const std::vector<TestRecord>& rs) {
        for (const auto& r : rs) {
            auto& hs = headers.emplace_back();
            for (const auto& [k, v] : r.headers)
                hs.push_back({k, v ? std::optional<std::string_view>(*v) : std::nullopt});
        }
        for (std::size_t i = 0; i < rs.size(); ++i) {
            Record rec;
            if (rs[i].key) rec.key = *rs[i].key;
            if (rs[i].value) rec.value = *rs[i].value;
            rec.headers = headers[i];
            records.push_back(rec);
        }
    }
};

LogOptions small(std::uint64_t segment_bytes = 64 * 1024) {
    LogOptions o;
    o.segment_bytes = segment_bytes;
    o.index_interval_bytes = 512;
    return o;
}

Record value_record(const std::string& v) {
    return Record{std::nullopt, v, {}};
}

// Every record of the log from its start, as values, checking offsets are contiguous.
std::vector<std::string> read_all(const Log& log) {
    std::vector<std::string> values;
    std::int64_t next = log.start_offset();
    while (next < log.end_offset()) {
        auto slice = log.read(next, 1 << 16);
        EXPECT_FALSE(slice.empty());
        std::size_t cursor = 0;
        BatchView b;
        while (slice.next_batch(&cursor, &b)) {
            EXPECT_EQ(b.validate(), "");
            std::size_t rc = 0;
            RecordView r;
            while (b.next_record(&rc, &r)) {
                if (r.offset < next) continue;
                EXPECT_EQ(r.offset, next);
                next = r.offset + 1;
                values.emplace_back(r.value.value_or("<null>"));
            }
        }
    }
    return values;
}

TEST(Crc32c, MatchesBitwiseReference) {
    EXPECT_EQ(pagewire::crc32c("123456789", 9), 0xE3069283u);  // the standard check value
    // Past 767 and 24575 bytes the hardware path runs three interleaved
    // streams and combines them: lengths around both steps and well past.
    for (std::size_t n : {0, 1, 7, 8, 9, 63, 64, 65, 767, 768, 769, 1000, 4097, 24575, 24576, 24577,
                          28000, 100003, 1 << 20}) {
        std::string s = testutil::random_bytes(n, static_cast<std::uint32_t>(n));
        EXPECT_EQ(pagewire::crc32c(s.data(), s.size()), crc32c_bitwise(s)) << n;
        // Continuing a CRC gives the CRC of the whole.
        std::uint32_t part = pagewire::crc32c(s.data(), n / 3);
        EXPECT_EQ(pagewire::crc32c(s.data() + n / 3, n - n / 3, part), crc32c_bitwise(s)) << n;
    }
}

TEST(RecordBatch, ByteExactAgainstReferenceEncoder) {
    std::mt19937 rng(7);
    for (int round = 0; round < 60; ++round) {
        std::vector<TestRecord> rs(1 + rng() % 20);
        for (auto& r : rs) {
            if (rng() % 4 != 0)
                r.key = testutil::random_bytes(rng() % 3 == 0 ? 0 : rng() % 40, rng());
            std::size_t vsize = rng() % 5 == 0 ? 0 : (round == 7 ? (1u << 20) : 1 + rng() % 3000);
            if (rng() % 6 != 0) r.value = testutil::random_bytes(vsize, rng());
            for (auto n = rng() % 3; n > 0; --n)
                r.headers.emplace_back("h" + std::to_string(n),
                                       rng() % 3 ? std::optional<std::string>("v") : std::nullopt);
        }
        Staged staged(rs);
        std::int64_t ts = 1700000000000 + round;
        std::string want = encode_reference(1000 + round, ts, rs);
        ASSERT_EQ(pagewire::encoded_batch_size(staged.records), want.size());
        std::vector<std::byte> got(want.size());
        pagewire::encode_batch(got, 1000 + round, ts, staged.records);
        ASSERT_EQ(as_string(got), want) << "round " << round;
        BatchView view(got);
        EXPECT_EQ(view.validate(), "");
        EXPECT_EQ(view.record_count(), static_cast<std::int32_t>(rs.size()));
        std::size_t c = 0;
        RecordView r;
        for (const auto& expect : rs) {
            ASSERT_TRUE(view.next_record(&c, &r));
            EXPECT_EQ(r.key.has_value(), expect.key.has_value());
            EXPECT_EQ(r.value.has_value(), expect.value.has_value());
            if (expect.value) {
                EXPECT_EQ(*r.value, *expect.value);
            }
            EXPECT_EQ(r.header_count, expect.headers.size());
            EXPECT_EQ(r.timestamp, ts);
        }
        EXPECT_FALSE(view.next_record(&c, &r));
    }
}

TEST(Log, RoundTripThroughFilesAndReopen) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    std::mt19937 rng(3);
    std::vector<std::vector<TestRecord>> batches;
    {
        Log log = Log::open(path, small(256 * 1024));
        for (int i = 0; i < 40; ++i) {
            std::vector<TestRecord> rs(1 + rng() % 8);
            for (auto& r : rs) {
                // Null, empty and random keys; values null, empty, 1 B .. 1 MiB.
                if (auto k = rng() % 4; k != 0)
                    r.key = k == 1 ? std::string() : "k" + std::to_string(i);
                std::size_t vsize = i == 5 ? (1u << 20) : i == 6 ? 1 : rng() % 5000;
                if (rng() % 8 != 0) r.value = testutil::random_bytes(vsize, rng());
                for (auto n = rng() % 3; n > 0; --n)
                    r.headers.emplace_back(
                        "h" + std::to_string(n),
                        rng() % 3
                            ? std::optional<std::string>(testutil::random_bytes(rng() % 20, rng()))
                            : std::nullopt);
            }
            Staged st(rs);
            auto res = log.append(st.records, 1000 + i);
            EXPECT_EQ(res.last_offset - res.base_offset + 1, static_cast<std::int64_t>(rs.size()));
            batches.push_back(rs);
        }
        EXPECT_GT(log.segments().size(), 1u);
    }
    Log log = Log::open(path, small(256 * 1024));
    EXPECT_TRUE(log.clean_open());
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < batches.size(); ++i) {
        auto slice = log.read(offset, 1);  // one batch at a time
        ASSERT_EQ(slice.first_offset, offset);
        std::string bytes = as_string(slice.bytes);
        // The same bytes through the file descriptor the slice names (sendfile's view).
        EXPECT_EQ(testutil::pread_file("/proc/self/fd/" + std::to_string(slice.fd), slice.position,
                                       bytes.size()),
                  bytes);
        EXPECT_EQ(bytes, encode_reference(offset, 1000 + static_cast<std::int64_t>(i), batches[i]));
        auto decoded = decode_reference(bytes);
        ASSERT_EQ(decoded.size(), batches[i].size());
        for (std::size_t k = 0; k < decoded.size(); ++k) {
            EXPECT_EQ(decoded[k].key, batches[i][k].key);
            EXPECT_EQ(decoded[k].value, batches[i][k].value);
            EXPECT_EQ(decoded[k].headers, batches[i][k].headers);
        }
        offset = slice.next_offset;
    }
    EXPECT_EQ(offset, log.end_offset());
    EXPECT_TRUE(log.read(offset).empty());
    auto err = testutil::catch_as<pagewire::Error>([&] { (void)log.read(offset + 1); });
    ASSERT_TRUE(err);
    EXPECT_EQ(err->error_number(), ERANGE);
    // By time: batch i has timestamp 1000 + i.
    EXPECT_EQ(log.offset_for_time(0), 0);
    EXPECT_EQ(
        log.offset_for_time(1010), log.read(0).first_offset + [&] {
            std::int64_t n = 0;
            for (int i = 0; i < 10; ++i) n += static_cast<std::int64_t>(batches[i].size());
            return n;
        }());
    EXPECT_EQ(log.offset_for_time(99999), log.end_offset());
    EXPECT_TRUE(pagewire::verify_log(path).empty());
}

TEST(Log, AppendBatchStoresProducerBytesVerbatim) {
    testutil::TempDir dir;
    Log log = Log::open(dir.file("log"), small());
    log.append(std::vector<Record>{value_record("first")});
    std::string producer = encode_reference(
        777, 5, {{std::string("k"), std::string("v"), {}}, {std::nullopt, std::string("w"), {}}});
    auto r = log.append_batch(std::as_bytes(std::span(producer)));
    EXPECT_EQ(r.base_offset, 1);
    EXPECT_EQ(r.last_offset, 2);
    std::string stored = as_string(log.read(1).bytes);
    EXPECT_EQ(stored.substr(8), producer.substr(8));  // all but baseOffset
    EXPECT_EQ(stored, encode_reference(1, 5,
                                       {{std::string("k"), std::string("v"), {}},
                                        {std::nullopt, std::string("w"), {}}}));
    producer[70] ^= 1;
    auto err = testutil::catch_as<pagewire::Error>(
        [&] { log.append_batch(std::as_bytes(std::span(producer))); });
    ASSERT_TRUE(err);
    EXPECT_EQ(err->error_number(), EBADMSG);
    EXPECT_EQ(log.end_offset(), 3);
}

// Writes a child that appends numbered one-record batches and reports each
// returned offset through a pipe; kills it at a random moment.
void crash_rounds(Durability durability, int rounds, std::uint64_t segment_bytes,
                  bool pretouch = false) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    std::mt19937 rng(11);
    std::int64_t reported_max = -1;
    for (int round = 0; round < rounds; ++round) {
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::close(fds[0]);
            try {
                LogOptions o = small(segment_bytes);
                o.durability = durability;
                o.pretouch = pretouch;
                Log log = Log::open(path, o);
                for (std::int64_t i = log.end_offset();; ++i) {
                    std::string v = "value-" + std::to_string(i);
                    auto r = log.append(std::vector<Record>{value_record(v)});
                    if (::write(fds[1], &r.base_offset, sizeof r.base_offset) !=
                        sizeof r.base_offset)
                        _exit(3);
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child: %s\n", e.what());
                _exit(2);
            }
        }
        ::close(fds[1]);
        // Killed at a random moment once it is appending (its first offset
        // is in the pipe), so every round adds records.
        std::int64_t off = 0;
        if (::read(fds[0], &off, sizeof off) == sizeof off)
            reported_max = std::max(reported_max, off);
        std::this_thread::sleep_for(
            std::chrono::microseconds(rng() % (durability == Durability::Every ? 10000 : 3000)));
        ::kill(pid, SIGKILL);
        while (::read(fds[0], &off, sizeof off) == sizeof off)
            reported_max = std::max(reported_max, off);
        ::close(fds[0]);
        int status = testutil::wait_for(pid);
        ASSERT_TRUE(WIFSIGNALED(status)) << testutil::describe_status(status);
    }
    LogOptions o = small(segment_bytes);
    Log log = Log::open(path, o);
    EXPECT_FALSE(log.clean_open());
    std::vector<std::string> values = read_all(log);
    EXPECT_GE(values.size(), static_cast<std::size_t>(rounds));  // every child appended
    if (durability == Durability::Every) {
        ASSERT_GE(log.end_offset(), reported_max + 1);
    }
    for (std::size_t i = 0; i < values.size(); ++i)
        ASSERT_EQ(values[i], "value-" + std::to_string(i)) << "offset " << i;
    for (const auto& d : pagewire::verify_log(path))
        ADD_FAILURE() << d.path << " at " << d.position << ": " << d.reason;
}

TEST(LogCrash, KillDuringAppendEvery) {
    crash_rounds(Durability::Every, testutil::kAsan ? 60 : 200, 32 * 1024);
}
TEST(LogCrash, KillDuringAppendNone) {
    crash_rounds(Durability::None, testutil::kAsan ? 60 : 200, 1 << 20);
}
// Pre-touch trims replaced segments and moves the recovery point in the
// background: kills land between a roll and its trim too.
TEST(LogCrash, KillDuringAppendEveryPretouch) {
    crash_rounds(Durability::Every, testutil::kAsan ? 30 : 100, 2 * 1024, true);
}

// Three sound batches, then the damage `spoil` makes to the file; returns
// the position where recovery must cut.
void torn_tail(
    const std::function<std::uint64_t(const std::string& file, std::uint64_t end)>& spoil,
    bool damaged = true) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    std::uint64_t good_end = 0;
    {
        Log log = Log::open(path, small());
        for (int i = 0; i < 3; ++i)
            log.append(std::vector<Record>{value_record("v" + std::to_string(i))});
        good_end = log.segments().back().bytes;
    }
    std::string file = path + "/00000000000000000000.log";
    std::uint64_t cut = spoil(file, good_end);
    ::unlink((path + "/.clean-shutdown").c_str());  // as after a crash
    auto damage = pagewire::verify_log(path);
    // Zeros past the last batch are preallocated space, not damage.
    if (damaged) {
        ASSERT_FALSE(damage.empty());
        EXPECT_EQ(damage[0].position, cut);
    }
    Log log = Log::open(path, small());
    EXPECT_FALSE(log.clean_open());
    EXPECT_EQ(log.segments().back().bytes, cut);
    log.close();
    EXPECT_EQ(testutil::file_size(file), cut);
    EXPECT_TRUE(pagewire::verify_log(path).empty());
}

std::uint64_t last_batch_start(const std::string& file) {
    Log log = Log::open(file.substr(0, file.rfind('/')), [] {
        LogOptions o = small();
        o.read_only = true;
        return o;
    }());
    return log.read(log.end_offset() - 1).position;
}

TEST(LogRecovery, TruncatedMidBatch) {
    torn_tail([](const std::string& file, std::uint64_t end) {
        std::uint64_t start = last_batch_start(file);
        EXPECT_EQ(::truncate(file.c_str(), static_cast<off_t>(end - 5)), 0);
        return start;
    });
}

TEST(LogRecovery, FlippedByteInLastBatch) {
    torn_tail([](const std::string& file, std::uint64_t end) {
        std::uint64_t start = last_batch_start(file);
        std::string bytes = testutil::read_file(file);
        bytes[end - 2] ^= 0x40;
        testutil::write_file(file, bytes);
        return start;
    });
}

TEST(LogRecovery, ZeroFilledPreallocatedTail) {
    torn_tail(
        [](const std::string& file, std::uint64_t end) {
            EXPECT_EQ(::truncate(file.c_str(), static_cast<off_t>(end + 100000)), 0);
            return end;
        },
        false);
}

TEST(LogRecovery, GarbageAfterLastBatch) {
    torn_tail([](const std::string& file, std::uint64_t end) {
        std::string bytes = testutil::read_file(file) + std::string(200, 'x');
        testutil::write_file(file, bytes);
        return end;
    });
}

// A writer killed between a roll and the trim of the replaced segment (a
// pre-touching writer trims in the background, later): the sealed segment
// still has its zero tail and the recovery point is behind it. Nothing is
// damage: every segment stays, the tail is cut.
TEST(LogRecovery, UntrimmedSealedSegmentKeepsWhatFollows) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    std::vector<std::string> want;
    std::vector<pagewire::LogSegmentInfo> segs;
    {
        Log log = Log::open(path, small(16 * 1024));
        for (int i = 0; i < 600; ++i) {
            want.push_back("value-" + std::to_string(i));
            log.append(std::vector<Record>{value_record(want.back())});
        }
        segs = log.segments();
    }
    ASSERT_GE(segs.size(), 3u);
    ASSERT_EQ(::truncate(segs[0].path.c_str(), static_cast<off_t>(segs[0].bytes + 8000)), 0);
    testutil::write_file(path + "/recovery-point", "0\n");
    ::unlink((path + "/.clean-shutdown").c_str());
    Log log = Log::open(path, small(16 * 1024));
    EXPECT_FALSE(log.clean_open());
    EXPECT_EQ(log.segments().size(), segs.size());
    EXPECT_EQ(read_all(log), want);
    EXPECT_EQ(testutil::file_size(segs[0].path), segs[0].bytes);
    EXPECT_TRUE(pagewire::verify_log(path).empty());
}

TEST(LogLock, SecondWriterRefusedKilledWriterReleases) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    Log::open(path, small()).close();
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        Log log = Log::open(path, small());
        char c = 1;
        (void)!::write(fds[1], &c, 1);
        ::pause();
        _exit(0);
    }
    char c = 0;
    ASSERT_EQ(::read(fds[0], &c, 1), 1);
    auto err = testutil::catch_as<pagewire::Error>([&] { Log::open(path, small()); });
    ASSERT_TRUE(err);
    EXPECT_EQ(err->error_number(), EWOULDBLOCK);
    EXPECT_TRUE(testutil::contains(err->what(), "another writer"));
    ::kill(pid, SIGKILL);
    testutil::wait_for(pid);
    ::close(fds[0]);
    ::close(fds[1]);
    Log log = Log::open(path, small());
    EXPECT_FALSE(log.clean_open());
}

TEST(Log, ReadOnlyLogRefusesWrites) {
    testutil::TempDir dir;
    Log::open(dir.file("log"), small()).close();
    LogOptions o = small();
    o.read_only = true;
    Log log = Log::open(dir.file("log"), o);
    auto err = testutil::catch_as<pagewire::Error>(
        [&] { log.append(std::vector<Record>{value_record("x")}); });
    ASSERT_TRUE(err);
    EXPECT_EQ(err->error_number(), EROFS);
}

TEST(Log, ForeignDirectoryRefused) {
    testutil::TempDir dir;
    testutil::write_file(dir.file("notes.txt"), "hello");
    auto err = testutil::catch_as<pagewire::Error>([&] { Log::open(dir.path(), small()); });
    ASSERT_TRUE(err);
    EXPECT_EQ(err->error_number(), EBADMSG);
}

// A reader process follows the log by tail while the writer rolls and
// retention deletes segments under it.
TEST(LogTail, RollAndRetentionUnderReaderProcess) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    LogOptions o = small(16 * 1024);
    o.retention_bytes = 64 * 1024;
    Log log = Log::open(path, o);
    constexpr int kCount = 3000;
    int status = 0;
    pid_t pid = ::fork();
    if (pid == 0) {
        int rc = 0;
        try {
            LogOptions r = o;
            r.read_only = true;
            Log reader = Log::open(path, r);
            std::int64_t next = 0;
            LogSlice slice;  // a cursor at offset 0: read_next reads from there
            while (next < kCount) {
                if (!reader.wait_for(next, std::chrono::seconds(10))) _exit(4);
                // The tailer's cursor: across rolls and deleted segments.
                slice = reader.read_next(slice);
                slice.for_each_record([&](const RecordView& rec) {
                    if (rec.offset < next) return;
                    if (rec.offset != next || *rec.value != std::string(100, char('a' + next % 26)))
                        _exit(5);
                    ++next;
                });
                // Slow enough that retention overtakes it now and then: reads of
                // a deleted segment it still holds must go on working.
                if (next % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        } catch (const pagewire::Error& e) {
            // Retention may delete what the reader has not yet reached.
            rc = e.error_number() == ERANGE ? 0 : 6;
            if (rc) std::fprintf(stderr, "reader: %s\n", e.what());
        }
        _exit(rc);
    }
    for (int i = 0; i < kCount; ++i) {
        log.append(std::vector<Record>{value_record(std::string(100, char('a' + i % 26)))});
        if (i % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    status = testutil::wait_for(pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
    EXPECT_GT(log.start_offset(), 0);  // retention deleted segments
    std::uint64_t total = 0;
    for (const auto& s : log.segments()) total += s.bytes;
    EXPECT_LE(total, o.retention_bytes + o.segment_bytes);
}

// read_next continues a slice exactly as read(prev.next_offset) would, within
// a segment, across rolls and at the end; below the start it says ERANGE.
TEST(Log, ReadNextContinuesAsReadWould) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    LogOptions o = small(16 * 1024);
    Log log = Log::open(path, o);
    std::mt19937 rng(7);
    for (int i = 0; i < 600;) {
        std::vector<std::string> values;  // the records' views point into these
        const int n = 1 + static_cast<int>(rng() % 8);
        for (int k = 0; k < n; ++k, ++i) values.emplace_back(1 + rng() % 300, char('a' + i % 26));
        std::vector<Record> batch;
        for (const std::string& v : values) batch.push_back(value_record(v));
        log.append(batch);
    }
    ASSERT_GE(log.segments().size(), 5u);
    for (std::size_t max_bytes : {std::size_t(1), std::size_t(700), std::size_t(1) << 20}) {
        LogSlice prev = log.read(0, max_bytes);
        std::size_t slices = 1;
        while (prev.next_offset < log.end_offset()) {
            LogSlice next = log.read_next(prev, max_bytes);
            LogSlice want = log.read(prev.next_offset, max_bytes);
            ASSERT_FALSE(next.empty()) << "after offset " << prev.next_offset;
            EXPECT_EQ(next.first_offset, want.first_offset);
            EXPECT_EQ(next.next_offset, want.next_offset);
            EXPECT_EQ(next.position, want.position);
            EXPECT_EQ(next.bytes.size(), want.bytes.size());
            EXPECT_EQ(next.first_offset, prev.next_offset);
            prev = std::move(next);
            ++slices;
        }
        EXPECT_GT(slices, max_bytes == 1 ? 100u : 5u);
        // At the end: empty, and it continues once more arrives.
        LogSlice at_end = log.read_next(prev, max_bytes);
        EXPECT_TRUE(at_end.empty());
        EXPECT_EQ(at_end.next_offset, log.end_offset());
        auto r = log.append(std::vector<Record>{value_record("more")});
        LogSlice more = log.read_next(at_end, max_bytes);
        ASSERT_FALSE(more.empty());
        EXPECT_EQ(more.first_offset, r.base_offset);
        EXPECT_EQ(more.next_offset, r.last_offset + 1);
    }
    // Retention passes a slice kept from the start: the next read is out of range.
    LogSlice first = log.read(0, 1);
    LogOptions keep = o;
    keep.retention_bytes = 32 * 1024;
    log.close();
    Log trimmed = Log::open(path, keep);
    ASSERT_GT(trimmed.retain(), 0u);
    try {
        (void)trimmed.read_next(first);
        ADD_FAILURE() << "read_next below the start did not throw";
    } catch (const pagewire::Error& e) {
        EXPECT_EQ(e.error_number(), ERANGE) << e.what();
    }
}

// A reader that opens and looks up while writers come and go and roll: each
// close and each roll trims the active segment's files (its indexes, many
// pages long, included) under the reader's mappings, which must never be a
// SIGBUS in the reader.
TEST(LogTail, ReaderOpensAndLooksUpWhileWritersTrim) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    LogOptions o = small(64 * 1024);
    o.index_interval_bytes = 16;     // a 32 KiB index per segment
    o.retention_bytes = 512 * 1024;  // a few segments at a time
    Log(Log::open(path, o)).append(std::vector<Record>{value_record(std::string(100, 'x'))});
    pid_t pid = ::fork();
    if (pid == 0) {
        int rc = 0;
        try {
            LogOptions r = o;
            r.read_only = true;
            auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
            while (std::chrono::steady_clock::now() < until) {
                Log reader = Log::open(path, r);
                for (int i = 0; i < 5; ++i) {
                    std::int64_t end = reader.end_offset();
                    auto slice = reader.read(end > 0 ? end - 1 : 0);
                    std::size_t cursor = 0;
                    BatchView b;
                    if (!slice.next_batch(&cursor, &b)) rc = 5;
                    (void)reader.offset_for_time(0);
                    (void)reader.segments();
                }
            }
        } catch (const pagewire::Error& e) {
            // Retention may delete the segment a read was about to reach.
            if (e.error_number() != ERANGE) {
                std::fprintf(stderr, "reader: %s (errno %d)\n", e.what(), e.error_number());
                rc = 6;
            }
        }
        _exit(rc);
    }
    std::int64_t end = 0;
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
    while (std::chrono::steady_clock::now() < until) {
        Log log = Log::open(path, o);
        for (int i = 0; i < 50; ++i)
            log.append(std::vector<Record>{value_record(std::string(100, 'x'))});
        end = log.end_offset();
    }
    int status = testutil::wait_for(pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
    EXPECT_GT(end, 2000);  // it rolled, many times
}

TEST(LogTail, BlockedReaderWokenAcrossProcesses) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    Log log = Log::open(path, small());
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        LogOptions r = small();
        r.read_only = true;
        Log reader = Log::open(path, r);
        char c = 1;
        (void)!::write(fds[1], &c, 1);
        auto t0 = std::chrono::steady_clock::now();
        bool got = reader.wait_for(0, std::chrono::seconds(20));
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - t0);
        _exit(got && ms.count() >= 150 ? 0 : 7);
    }
    char c = 0;
    ASSERT_EQ(::read(fds[0], &c, 1), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    log.append(std::vector<Record>{value_record("wake")});
    int status = testutil::wait_for(pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
    ::close(fds[0]);
    ::close(fds[1]);
    // A timeout with nothing new returns false in about the time asked.
    EXPECT_FALSE(log.wait_for(log.end_offset(), std::chrono::milliseconds(30)));
}

TEST(LogDisk, FullDiskAppendFailsCleanlyAndReopens) {
    testutil::SmallTmpfs dir("1m");
    if (!dir.mounted()) GTEST_SKIP() << "needs a small tmpfs: " << dir.why();
    // Without and with pre-touch: the warmer's spare fails on the full disk
    // too, and the roll that needed it reports ENOSPC to the appender.
    for (bool pretouch : {false, true}) {
        SCOPED_TRACE(pretouch ? "pre-touch" : "no pre-touch");
        std::string path = dir.file(pretouch ? "log-pretouch" : "log");
        LogOptions o = small(192 * 1024);
        o.pretouch = pretouch;
        std::int64_t written = 0;
        int err = 0;
        {
            Log log = Log::open(path, o);
            try {
                for (;; ++written)
                    log.append(std::vector<Record>{value_record(std::string(1000, 'z'))});
            } catch (const pagewire::Error& e) {
                err = e.error_number();
            }
            EXPECT_EQ(log.end_offset(), written);
        }
        EXPECT_EQ(err, ENOSPC);
        EXPECT_GT(written, 100);
        Log log = Log::open(path, small(192 * 1024));
        EXPECT_EQ(log.end_offset(), written);
        EXPECT_EQ(read_all(log).size(), static_cast<std::size_t>(written));
        EXPECT_TRUE(pagewire::verify_log(path).empty());
        log.close();
        std::filesystem::remove_all(path);  // room for the next round
    }
}

TEST(Log, PwriteAndMmapPathsWriteTheSameBytes) {
    testutil::TempDir dir;
    std::string out[2];
    for (int i = 0; i < 2; ++i) {
        LogOptions o = small();
        o.path = i == 0 ? pagewire::AppendPath::Mmap : pagewire::AppendPath::Pwrite;
        std::string path = dir.file("log" + std::to_string(i));
        {
            Log log = Log::open(path, o);
            for (int k = 0; k < 500; ++k)
                log.append(std::vector<Record>{value_record(std::to_string(k))}, 42);
        }
        for (const auto& s : Log::open(path, o).segments()) out[i] += testutil::read_file(s.path);
    }
    EXPECT_EQ(out[0], out[1]);
}

}  // namespace

namespace {

bool spare_exists(const std::string& path) {
    return ::access((path + "/.next.log").c_str(), F_OK) == 0;
}

// Waits (up to 5 s) for the warmer to have a spare segment ready.
bool wait_for_spare(const std::string& path) {
    for (int i = 0; i < 500 && !spare_exists(path); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return spare_exists(path);
}

TEST(LogPretouch, RollsIntoTheSpareAndLeavesNothingBehind) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    LogOptions o = small(32 * 1024);
    o.pretouch = true;
    std::vector<std::string> want;
    {
        Log log = Log::open(path, o);
        ASSERT_TRUE(wait_for_spare(path));
        // A reader and verify see the spare as part of the log, not as a foreign file.
        LogOptions r = o;
        r.read_only = true;
        EXPECT_EQ(Log::open(path, r).end_offset(), 0);
        for (int i = 0; i < 2000; ++i) {
            want.push_back("value-" + std::to_string(i));
            log.append(std::vector<Record>{value_record(want.back())});
            // Now and then the warmer gets time to have a spare ready.
            if (i % 400 == 0) {
                ASSERT_TRUE(wait_for_spare(path));
            }
        }
        EXPECT_GE(log.segments().size(), 4u);
        EXPECT_TRUE(pagewire::verify_log(path).empty());
        EXPECT_EQ(read_all(log), want);
    }
    EXPECT_FALSE(spare_exists(path));  // close removes the unused spare
    Log log = Log::open(path, small(32 * 1024));
    EXPECT_TRUE(log.clean_open());
    EXPECT_EQ(read_all(log), want);
    EXPECT_TRUE(pagewire::verify_log(path).empty());
}

// With pre-touch, the first segment of a new log is faulted in ahead of the
// writer too, not only the spares made for later rolls; without, nothing
// brings its preallocated pages into the page cache.
TEST(LogPretouch, ActiveSegmentIsFaultedInAhead) {
    testutil::TempDir dir;
    for (bool pretouch : {false, true}) {
        std::string path = dir.file(pretouch ? "warm" : "cold");
        LogOptions o = small(4 << 20);
        o.pretouch = pretouch;
        Log log = Log::open(path, o);
        const std::string segment = log.segments().front().path;
        pagewire::CacheStat c{};
        for (int i = 0; i < (pretouch ? 500 : 10); ++i) {
            c = pagewire::cache_stat(pagewire::File::open(segment));
            if (c.pages > 0 && c.cached == c.pages) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ASSERT_GT(c.pages, 0u);
        if (pretouch)
            EXPECT_EQ(c.cached, c.pages);
        else
            EXPECT_EQ(c.cached, 0u);
        log.append(std::vector<Record>{value_record("after")});
        EXPECT_EQ(read_all(log), std::vector<std::string>{"after"});
    }
}

TEST(LogPretouch, SpareOfAKilledWriterIsDiscarded) {
    testutil::TempDir dir;
    std::string path = dir.file("log");
    LogOptions o = small(32 * 1024);
    o.pretouch = true;
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        Log log = Log::open(path, o);
        for (int i = 0; i < 500; ++i) log.append(std::vector<Record>{value_record("x")});
        if (!wait_for_spare(path)) _exit(3);
        ::kill(::getpid(), SIGKILL);
    }
    int status = testutil::wait_for(pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << testutil::describe_status(status);
    ASSERT_TRUE(spare_exists(path));
    EXPECT_TRUE(pagewire::verify_log(path).empty());
    Log log = Log::open(path, small(32 * 1024));
    EXPECT_FALSE(log.clean_open());
    EXPECT_FALSE(spare_exists(path));
    EXPECT_EQ(log.end_offset(), 500);
    EXPECT_EQ(read_all(log).size(), 500u);
}

}  // namespace
