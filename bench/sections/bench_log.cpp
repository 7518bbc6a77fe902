// pagewire bench log — pagewire::Log (issue 14): append throughput of 100 B
// records in batches of 1, 16 and 256 through the mapping and through
// pwrite, with durability none / interval / every; reads hot and cold; the
// cross-process tail latency of 40 B records at 1 M records/s with the
// reader busy-polling (Chronicle Queue's published test); recovery time of a
// whole segment after an unclean stop, hot and cold; append latency across
// rolls with and without pre-touch.
#include <fmt/core.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <new>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/log.hpp>
#include <pagewire/page_cache.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace pagewire::bench {
namespace {

constexpr std::size_t kRecordBytes = 100;  // the Kafka 2014 benchmark's record
constexpr std::size_t kTailRecordBytes = 40;
constexpr std::int64_t kTailIntervalNs = 1000;  // 1 M records/s

// The targets (same machine).
constexpr double kTargetAppendMrecordsPerS = 5.0;  // batches of 256, durability none
constexpr double kTargetTailP99Us = 1.0;           // busy-polling reader, 1 M records/s
constexpr double kTargetRecoverySecondsPerGiB = 1.0;

// Roll latency: batches of 16 records paced at this rate into small
// segments, so a run crosses many rolls.
constexpr std::size_t kRollBatch = 16;
constexpr std::int64_t kRollIntervalNs = 10'000;  // 100 k batches/s = 1.6 M records/s

// A spinning reader's pause, as the log's wait_for does between looks.
inline void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

struct AppendCase {
    AppendPath path;
    Durability durability;
    std::size_t batch;
    std::uint64_t records;
    bool pretouch = false;
    std::uint64_t segment_bytes = 0;  // 0: the section's size
};

std::string label(const AppendCase& c) {
    return fmt::format("append {} {} batch {}", c.path == AppendPath::Mmap ? "mmap" : "pwrite",
                       c.durability == Durability::None       ? "none"
                       : c.durability == Durability::Interval ? "interval"
                                                              : "every",
                       c.batch) +
           (c.segment_bytes == 0 ? std::string()
                                 : fmt::format(", {} segments, {}", format_bytes(c.segment_bytes),
                                               c.pretouch ? "pre-touch" : "no pre-touch"));
}

// With pre-touch, the warmer's first spare segment is made before a clock
// starts, as in a writer that has been up for a while (at most 2 s).
void wait_for_spare(const std::string& dir) {
    for (int i = 0; i < 2000 && !std::filesystem::exists(dir + "/.next.log"); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// Fills a fresh log; returns seconds of the appends alone.
double append_run(const std::string& dir, const AppendCase& c, std::uint64_t segment_bytes) {
    std::filesystem::remove_all(dir);
    LogOptions o;
    o.segment_bytes = c.segment_bytes != 0 ? c.segment_bytes : segment_bytes;
    o.pretouch = c.pretouch;
    o.path = c.path;
    o.durability = c.durability;
    o.flush_interval = std::chrono::milliseconds(1000);
    Log log = Log::open(dir, o);
    if (c.pretouch) wait_for_spare(dir);
    std::string value(kRecordBytes, 'v');
    std::vector<Record> batch(c.batch, Record{std::nullopt, value, {}});
    auto start = Clock::now();
    for (std::uint64_t done = 0; done < c.records; done += c.batch) log.append(batch, 1);
    double s = seconds_since(start);
    log.close();
    return s;
}

// Reads every record of the log (decoding each); returns seconds.
double read_all(const std::string& dir, std::uint64_t* records) {
    LogOptions o;
    o.read_only = true;
    Log log = Log::open(dir, o);
    auto start = Clock::now();
    std::uint64_t n = 0, sum = 0;
    for (std::int64_t next = log.start_offset(); next < log.end_offset();) {
        LogSlice slice = log.read(next, 1 << 20);
        slice.for_each_record([&](const RecordView& r) {
            sum += r.value ? r.value->size() : 0;
            ++n;
        });
        next = slice.next_offset;
    }
    double s = seconds_since(start);
    // The sum keeps the decode from being optimised away.
    if (sum != n * kRecordBytes) throw_error("bench log", dir, EBADMSG, "records lost or resized");
    *records = n;
    return s;
}

struct Latency {
    double p50 = 0, p99 = 0, p999 = 0;
    std::uint64_t count = 0;
};

// A paced writer in this process and a busy-polling reader in a child, over
// some transport: read_all(record) in the child calls record(latency_ns)
// for each of `records` records; write(i, stamp) in this process sends
// record i stamped with the clock. The child sends its percentiles back
// through a pipe. Both sides' latency buffers are faulted in before the
// clock starts (a first touch costs a page fault, here several us).
template <class ReadAll, class Write>
Latency paced_tail(std::uint64_t records, ReadAll read_all, Write write) {
    int fds[2];
    if (::pipe(fds) != 0) throw_error("pipe", "bench log");
    pid_t pid = ::fork();
    if (pid < 0) throw_error("fork", "bench log");
    if (pid == 0) {
        ::close(fds[0]);
        Latency l;
        try {
            std::vector<std::int64_t> lat(records, 0);
            std::size_t n = 0;
            char ready = 1;
            if (::write(fds[1], &ready, 1) != 1) _exit(3);
            read_all([&](std::int64_t latency) {
                if (n < lat.size()) lat[n++] = latency;
            });
            lat.resize(n);
            std::sort(lat.begin(), lat.end());
            auto at = [&](double q) {
                return lat.empty()
                           ? 0.0
                           : lat[std::min(lat.size() - 1, std::size_t(q * lat.size()))] / 1000.0;
            };
            l = {at(0.5), at(0.99), at(0.999), lat.size()};
        } catch (...) {
            _exit(2);
        }
        _exit(::write(fds[1], &l, sizeof l) == sizeof l ? 0 : 3);
    }
    ::close(fds[1]);
    char ready = 0;
    if (::read(fds[0], &ready, 1) != 1)
        throw_error("bench log", "tail reader", EIO, "the reader died");
    std::int64_t next_send = now_ns();
    for (std::uint64_t i = 0; i < records; ++i) {
        while (now_ns() < next_send) {
        }
        write(i, now_ns());
        next_send += kTailIntervalNs;
    }
    Latency l;
    ssize_t n = ::read(fds[0], &l, sizeof l);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (n != sizeof l) throw_error("bench log", "tail reader", EIO, "the reader failed");
    return l;
}

// The log: the reader follows with wait_for (busy-polling) and read_next.
Latency tail_latency(const std::string& dir, std::uint64_t records) {
    std::filesystem::remove_all(dir);
    LogOptions o;
    o.segment_bytes = 256ULL << 20;
    Log log = Log::open(dir, o);
    std::string value(kTailRecordBytes, 't');
    return paced_tail(
        records,
        [&](auto record) {
            LogOptions r;
            r.read_only = true;
            Log reader = Log::open(dir, r);
            LogSlice slice;  // a cursor at offset 0
            for (std::int64_t next = 0; next < static_cast<std::int64_t>(records);) {
                reader.wait_for(next, std::chrono::seconds(30), std::chrono::seconds(30));
                slice = reader.read_next(slice, 1 << 16);
                const std::int64_t t = now_ns();
                slice.for_each_record([&](const RecordView& rec) {
                    std::int64_t sent = 0;
                    std::memcpy(&sent, rec.value->data(), sizeof sent);
                    record(t - sent);
                });
                next = slice.next_offset;
            }
        },
        [&](std::uint64_t, std::int64_t stamp) {
            std::memcpy(value.data(), &stamp, sizeof stamp);
            Record r{std::nullopt, value, {}};
            log.append(std::span(&r, 1), 1);
        });
}

// The floor, measured in the same run: the same writer and reader over a
// bare shared-memory ring (a 64 B slot per record, one published counter,
// nothing else), what any cross-process queue can reach on this machine.
// On a virtual machine the vCPUs themselves stop now and then (timer ticks,
// the host): that shows here as it does in the log's figures.
Latency floor_latency(std::uint64_t records) {
    constexpr std::uint64_t kSlots = 1 << 16;
    struct alignas(64) Slot {
        std::int64_t stamp;
        char payload[kTailRecordBytes - sizeof(std::int64_t)];
    };
    struct Ring {
        alignas(64) std::atomic<std::uint64_t> published{0};
        alignas(64) std::atomic<std::uint64_t> consumed{0};
        Slot slots[kSlots];
    };
    void* p =
        ::mmap(nullptr, sizeof(Ring), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw_error("mmap", "bench log floor");
    std::memset(p, 0, sizeof(Ring));  // faulted in before fork: both sides see the pages
    auto* ring = new (p) Ring;
    Latency l = paced_tail(
        records,
        [&](auto record) {
            for (std::uint64_t next = 0; next < records;) {
                const std::uint64_t end = ring->published.load(std::memory_order_acquire);
                if (end == next) {
                    relax();
                    continue;
                }
                const std::int64_t t = now_ns();
                for (; next < end; ++next) record(t - ring->slots[next % kSlots].stamp);
                ring->consumed.store(next, std::memory_order_release);
            }
        },
        [&](std::uint64_t i, std::int64_t stamp) {
            while (i - ring->consumed.load(std::memory_order_acquire) >= kSlots) relax();
            Slot& slot = ring->slots[i % kSlots];
            slot.stamp = stamp;
            std::memset(slot.payload, 't', sizeof slot.payload);
            ring->published.store(i + 1, std::memory_order_release);
        });
    ::munmap(p, sizeof(Ring));
    return l;
}

// Per-append latency of a writer crossing rolls, paced (the writer of a
// live system is not saturated, which leaves the warmer time to work).
struct RollLatency {
    Latency l;
    double max_us = 0;
    double roll_us = 0;  // median latency of the appends that rolled
    std::uint64_t rolls = 0;
};

RollLatency roll_latency(const std::string& dir, bool pretouch, std::uint64_t segment_bytes,
                         std::uint64_t batches) {
    std::filesystem::remove_all(dir);
    LogOptions o;
    o.segment_bytes = segment_bytes;
    o.pretouch = pretouch;
    Log log = Log::open(dir, o);
    if (pretouch) wait_for_spare(dir);
    std::string value(kRecordBytes, 'r');
    std::vector<Record> batch(kRollBatch, Record{std::nullopt, value, {}});
    std::vector<std::int64_t> lat, roll;
    lat.reserve(batches);
    std::int64_t next_send = now_ns();
    for (std::uint64_t i = 0; i < batches; ++i) {
        while (now_ns() < next_send) {
        }
        std::int64_t t = now_ns();
        AppendResult a = log.append(batch, 1);
        lat.push_back(now_ns() - t);
        if (a.position == 0 && i != 0) roll.push_back(lat.back());
        // A writer that fell behind (a stall) does not catch up in a burst.
        next_send = std::max(next_send + kRollIntervalNs, now_ns());
    }
    RollLatency r;
    r.rolls = log.segments().size() - 1;
    log.close();
    std::sort(lat.begin(), lat.end());
    auto at = [&](double q) {
        return lat[std::min(lat.size() - 1, std::size_t(q * lat.size()))] / 1000.0;
    };
    r.l = {at(0.5), at(0.99), at(0.999), lat.size()};
    r.max_us = lat.back() / 1000.0;
    if (!roll.empty()) {
        std::sort(roll.begin(), roll.end());
        r.roll_us = roll[roll.size() / 2] / 1000.0;
    }
    return r;
}

// Seconds of an unclean open of the log in dir (the clean-shutdown mark
// removed, so every batch after the recovery point is scanned and checked);
// the log's end offset in *end. With cold, the log's pages are first
// written back and dropped from the page cache (POSIX_FADV_DONTNEED on its
// files only: other jobs share the machine, so no drop_caches).
double recovery_run(const std::string& dir, bool cold, std::int64_t* end, std::string* failure) {
    std::filesystem::remove(dir + "/.clean-shutdown");
    if (cold)
        for (const auto& e : std::filesystem::directory_iterator(dir))
            if (e.is_regular_file()) evict(File::open(e.path()), true);
    auto start = Clock::now();
    Log log = Log::open(dir);
    double s = seconds_since(start);
    *end = log.end_offset();
    if (log.clean_open()) *failure = "bench log: recovery did not run";
    return s;
}

Json row(const std::string& name, std::uint64_t records, double seconds, std::size_t record_bytes) {
    return Json{{"case", name},
                {"records", records},
                {"seconds", seconds},
                {"mrecords_per_s", records / seconds / 1e6},
                {"mb_per_s", static_cast<double>(records * record_bytes) / seconds / 1e6}};
}

SectionResult run_log(Context& ctx) {
    const bool quick = ctx.options.quick;
    const int rounds = ctx.options.repetitions > 0 ? ctx.options.repetitions : (quick ? 1 : 3);
    std::string dir = ctx.scratch.path() + "/bench-log";
    SectionResult result;
    result.title = "pagewire::Log: append, read, tail, recovery";
    result.columns = {{"case", "case", -1, ""},     {"mrecords_per_s", "M records/s", 2, ""},
                      {"mb_per_s", "MB/s", 0, ""},  {"p50_us", "p50 µs", 2, ""},
                      {"p99_us", "p99 µs", 2, ""},  {"p999_us", "p99.9 µs", 2, ""},
                      {"max_us", "max µs", 0, ""},  {"roll_us", "roll µs", 0, ""},
                      {"seconds", "seconds", 3, ""}};
    const std::uint64_t n = quick ? 1'000'000 : 4'000'000;
    const std::uint64_t segment = quick ? 128ULL << 20 : 512ULL << 20;
    std::vector<AppendCase> cases;
    for (AppendPath p : {AppendPath::Mmap, AppendPath::Pwrite})
        for (std::size_t b : {1, 16, 256}) {
            cases.push_back({p, Durability::None, b, b == 1 ? n / 4 : n});
            cases.push_back({p, Durability::Interval, b, b == 1 ? n / 4 : n});
            cases.push_back({p, Durability::Every, b, b * (quick ? 50 : 200)});
        }
    // Does pre-touch change the mmap-vs-pwrite finding? Segments small
    // enough that most of the run goes into segments the warmer prepared.
    for (AppendPath p : {AppendPath::Mmap, AppendPath::Pwrite})
        for (bool pretouch : {false, true})
            cases.push_back({p, Durability::None, 256, n, pretouch, 32ULL << 20});
    double best256 = 0;
    for (const AppendCase& c : cases) {
        ctx.progress(label(c));
        std::vector<double> s;
        for (int r = 0; r < rounds; ++r) s.push_back(append_run(dir, c, segment));
        Json j = row(label(c), c.records, summarize(s).median, kRecordBytes);
        if (c.batch == 256 && c.durability == Durability::None && c.segment_bytes == 0)
            best256 = std::max(best256, j["mrecords_per_s"].get<double>());
        result.rows.push_back(std::move(j));
    }

    // Reads of the last log written by an append case with durability none.
    append_run(dir, {AppendPath::Mmap, Durability::None, 256, n}, segment);
    std::uint64_t got = 0;
    ctx.progress("read hot");
    double hot = read_all(dir, &got);
    result.rows.push_back(row("read hot (decode every record)", got, hot, kRecordBytes));
    ctx.progress("read cold");
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".log") evict(File::open(e.path()), true);
    double cold = read_all(dir, &got);
    result.rows.push_back(row("read cold (page cache dropped)", got, cold, kRecordBytes));

    ctx.progress("tail latency");
    const std::uint64_t tail_records = quick ? 500'000 : 2'000'000;
    Latency l = tail_latency(dir, tail_records);
    result.rows.push_back(Json{{"case", "tail 40 B at 1 M/s, busy-poll, other process"},
                               {"records", l.count},
                               {"p50_us", l.p50},
                               {"p99_us", l.p99},
                               {"p999_us", l.p999}});
    ctx.progress("tail floor");
    Latency f = floor_latency(tail_records);
    result.rows.push_back(Json{{"case", "floor: bare shared-memory ring, same writer and reader"},
                               {"records", f.count},
                               {"p50_us", f.p50},
                               {"p99_us", f.p99},
                               {"p999_us", f.p999}});

    // Pre-touch: append latency across rolls with and without the warmer.
    const std::uint64_t roll_segment = quick ? 16ULL << 20 : 64ULL << 20;
    const std::uint64_t roll_batches = quick ? 100'000 : 400'000;
    RollLatency rolls[2];
    for (int pretouch = 0; pretouch < 2; ++pretouch) {
        ctx.progress(pretouch ? "roll latency, pre-touch" : "roll latency, no pre-touch");
        std::vector<RollLatency> runs;
        for (int r = 0; r < rounds; ++r)
            runs.push_back(roll_latency(dir, pretouch != 0, roll_segment, roll_batches));
        // The run with the median p99.9 (max is too noisy to take alone).
        std::sort(runs.begin(), runs.end(),
                  [](const RollLatency& a, const RollLatency& b) { return a.l.p999 < b.l.p999; });
        RollLatency& m = runs[runs.size() / 2];
        rolls[pretouch] = m;
        result.rows.push_back(Json{
            {"case", fmt::format("append batch {} at {} k/s across {} rolls of {}, {}", kRollBatch,
                                 1'000'000 / kRollIntervalNs, m.rolls, format_bytes(roll_segment),
                                 pretouch ? "pre-touch" : "no pre-touch")},
            {"records", m.l.count * kRollBatch},
            {"p50_us", m.l.p50},
            {"p99_us", m.l.p99},
            {"p999_us", m.l.p999},
            {"max_us", m.max_us},
            {"roll_us", m.roll_us}});
    }

    // Recovery: one big segment, then the clean-shutdown mark removed, so
    // open scans and checks every batch: hot (pages cached, as after the
    // writer's crash) and cold (pages dropped, as after a reboot).
    ctx.progress("recovery");
    std::uint64_t rec_bytes = quick ? 256ULL << 20 : 1ULL << 30;
    std::uint64_t rec_records = rec_bytes / (kRecordBytes + 8) / 256 * 256;
    append_run(dir, {AppendPath::Mmap, Durability::None, 256, rec_records}, rec_bytes + (64 << 20));
    std::uint64_t seg_bytes = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".log") seg_bytes += e.file_size();
    double rec_per_gib[2] = {0, 0};
    for (int cold = 0; cold < 2; ++cold) {
        ctx.progress(cold ? "recovery cold" : "recovery hot");
        std::vector<double> s;
        std::int64_t end = 0;
        for (int r = 0; r < rounds; ++r)
            s.push_back(recovery_run(dir, cold != 0, &end, &result.failure));
        double rec = summarize(s).median;
        rec_per_gib[cold] = rec * static_cast<double>(1ULL << 30) / static_cast<double>(seg_bytes);
        result.rows.push_back(Json{
            {"case",
             fmt::format("recovery of a {} segment (unclean open), {}", format_bytes(seg_bytes),
                         cold ? "cold (evicted)" : "hot (page cache)")},
            {"records", end},
            {"seconds", rec},
            {"mb_per_s", static_cast<double>(seg_bytes) / rec / 1e6}});
    }
    std::filesystem::remove_all(dir);

    // ---- targets ---------------------------------------------------------------
    auto verdict = [](bool met) { return met ? "met" : "MISSED"; };
    const bool append_met = best256 >= kTargetAppendMrecordsPerS;
    const bool tail_met = l.p99 <= kTargetTailP99Us;
    const bool recovery_met = rec_per_gib[0] <= kTargetRecoverySecondsPerGiB;
    result.notes.push_back(fmt::format(
        "target append, batches of 256, durability none (best of mmap, pwrite) = {:.2f} M "
        "records/s (>= {:.0f} M): {}",
        best256, kTargetAppendMrecordsPerS, verdict(append_met)));
    result.notes.push_back(fmt::format(
        "target cross-process tail p99, busy-poll, 1 M records/s = {:.2f} us (<= {:.1f} us): {}; "
        "this machine's floor (a bare shared-memory ring, same run): p50 {:.2f} us, p99 {:.2f} us",
        l.p99, kTargetTailP99Us, verdict(tail_met), f.p50, f.p99));
    result.notes.push_back(fmt::format(
        "target recovery of 1 GiB (scaled from {}) hot = {:.3f} s (<= {:.1f} s): {}; cold = {:.3f} "
        "s ({})",
        format_bytes(seg_bytes), rec_per_gib[0], kTargetRecoverySecondsPerGiB,
        verdict(recovery_met), rec_per_gib[1],
        rec_per_gib[1] <= kTargetRecoverySecondsPerGiB ? "within 1 s too" : "over 1 s"));
    result.notes.push_back(fmt::format(
        "pre-touch (without -> with): the append that rolls {:.0f} -> {:.0f} us (median); all "
        "appends p99.9 {:.2f} -> {:.2f} us, max {:.0f} -> {:.0f} us",
        rolls[0].roll_us, rolls[1].roll_us, rolls[0].l.p999, rolls[1].l.p999, rolls[0].max_us,
        rolls[1].max_us));
    result.summary["targets"] = {{"append_256_none_mrecords_per_s_min", kTargetAppendMrecordsPerS},
                                 {"tail_p99_us_max", kTargetTailP99Us},
                                 {"recovery_seconds_per_gib_max", kTargetRecoverySecondsPerGiB}};
    result.summary["verdicts"] = {{"append", {{"mrecords_per_s", best256}, {"met", append_met}}},
                                  {"tail",
                                   {{"p50_us", l.p50},
                                    {"p99_us", l.p99},
                                    {"floor_p50_us", f.p50},
                                    {"floor_p99_us", f.p99},
                                    {"met", tail_met}}},
                                  {"recovery",
                                   {{"hot_seconds_per_gib", rec_per_gib[0]},
                                    {"cold_seconds_per_gib", rec_per_gib[1]},
                                    {"met", recovery_met}}}};
    result.summary["pretouch"] = {{"without",
                                   {{"roll_us", rolls[0].roll_us},
                                    {"p999_us", rolls[0].l.p999},
                                    {"max_us", rolls[0].max_us}}},
                                  {"with",
                                   {{"roll_us", rolls[1].roll_us},
                                    {"p999_us", rolls[1].l.p999},
                                    {"max_us", rolls[1].max_us}}}};
    result.notes.push_back(
        fmt::format("CRC-32C: {}", crc32c_hardware() ? "SSE4.2 crc32 instruction" : "table"));
    return result;
}

}  // namespace

Section log_section() {
    return {"log",
            "pagewire::Log: append mmap vs pwrite, durability, reads, cross-process tail, recovery",
            run_log};
}

}  // namespace pagewire::bench
