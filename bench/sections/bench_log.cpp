// pagewire bench log — pagewire::Log (issue 14): append throughput of 100 B
// records in batches of 1, 16 and 256 through the mapping and through
// pwrite, with durability none / interval / every; reads hot and cold; the
// cross-process tail latency of 40 B records at 1 M records/s with the
// reader busy-polling (Chronicle Queue's published test); recovery time of a
// whole segment after an unclean stop.
#include <fmt/core.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/log.hpp>
#include <pagewire/page_cache.hpp>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace pagewire::bench {
namespace {

constexpr std::size_t kRecordBytes = 100;  // the Kafka 2014 benchmark's record
constexpr std::size_t kTailRecordBytes = 40;
constexpr std::int64_t kTailIntervalNs = 1000;  // 1 M records/s

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

struct AppendCase {
    AppendPath path;
    Durability durability;
    std::size_t batch;
    std::uint64_t records;
};

std::string label(const AppendCase& c) {
    return fmt::format("append {} {} batch {}", c.path == AppendPath::Mmap ? "mmap" : "pwrite",
                       c.durability == Durability::None       ? "none"
                       : c.durability == Durability::Interval ? "interval"
                                                              : "every",
                       c.batch);
}

// Fills a fresh log; returns seconds of the appends alone.
double append_run(const std::string& dir, const AppendCase& c, std::uint64_t segment_bytes) {
    std::filesystem::remove_all(dir);
    LogOptions o;
    o.segment_bytes = segment_bytes;
    o.path = c.path;
    o.durability = c.durability;
    o.flush_interval = std::chrono::milliseconds(1000);
    Log log = Log::open(dir, o);
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
        std::size_t cursor = 0;
        BatchView b;
        while (slice.next_batch(&cursor, &b)) {
            std::size_t rc = 0;
            RecordView r;
            while (b.next_record(&rc, &r)) {
                sum += r.value ? r.value->size() : 0;
                ++n;
            }
        }
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

// Writer in this process, busy-polling reader in a child; the child sends
// its sorted percentiles back through a pipe.
Latency tail_latency(const std::string& dir, std::uint64_t records) {
    std::filesystem::remove_all(dir);
    LogOptions o;
    o.segment_bytes = 256ULL << 20;
    Log log = Log::open(dir, o);
    int fds[2];
    if (::pipe(fds) != 0) throw_error("pipe", "bench log");
    pid_t pid = ::fork();
    if (pid < 0) throw_error("fork", "bench log");
    if (pid == 0) {
        ::close(fds[0]);
        Latency l;
        try {
            LogOptions r;
            r.read_only = true;
            Log reader = Log::open(dir, r);
            std::vector<std::int64_t> lat;
            lat.reserve(records);
            std::int64_t next = 0;
            char ready = 1;
            if (::write(fds[1], &ready, 1) != 1) _exit(3);
            while (next < static_cast<std::int64_t>(records)) {
                reader.wait_for(next, std::chrono::seconds(30), std::chrono::seconds(30));
                LogSlice slice = reader.read(next, 1 << 16);
                std::int64_t t = now_ns();
                std::size_t cursor = 0;
                BatchView b;
                while (slice.next_batch(&cursor, &b)) {
                    std::size_t rc = 0;
                    RecordView rec;
                    while (b.next_record(&rc, &rec)) {
                        std::int64_t sent = 0;
                        std::memcpy(&sent, rec.value->data(), sizeof sent);
                        lat.push_back(t - sent);
                    }
                }
                next = slice.next_offset;
            }
            std::sort(lat.begin(), lat.end());
            auto at = [&](double q) {
                return lat[std::min(lat.size() - 1, std::size_t(q * lat.size()))] / 1000.0;
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
    std::string value(kTailRecordBytes, 't');
    std::int64_t next_send = now_ns();
    for (std::uint64_t i = 0; i < records; ++i) {
        while (now_ns() < next_send) {
        }
        std::int64_t t = now_ns();
        std::memcpy(value.data(), &t, sizeof t);
        Record r{std::nullopt, value, {}};
        log.append(std::span(&r, 1), 1);
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
    double best256 = 0;
    for (const AppendCase& c : cases) {
        ctx.progress(label(c));
        std::vector<double> s;
        for (int r = 0; r < rounds; ++r) s.push_back(append_run(dir, c, segment));
        Json j = row(label(c), c.records, summarize(s).median, kRecordBytes);
        if (c.batch == 256 && c.durability == Durability::None)
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
    Latency l = tail_latency(dir, quick ? 200'000 : 2'000'000);
    result.rows.push_back(Json{{"case", "tail 40 B at 1 M/s, busy-poll, other process"},
                               {"records", l.count},
                               {"p50_us", l.p50},
                               {"p99_us", l.p99},
                               {"p999_us", l.p999}});

    // Recovery: one big segment, then the clean-shutdown mark removed, so
    // open scans and checks every batch (pages in the page cache).
    ctx.progress("recovery");
    std::uint64_t rec_bytes = quick ? 256ULL << 20 : 1ULL << 30;
    std::uint64_t rec_records = rec_bytes / (kRecordBytes + 8) / 256 * 256;
    append_run(dir, {AppendPath::Mmap, Durability::None, 256, rec_records}, rec_bytes + (64 << 20));
    std::uint64_t seg_bytes = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".log") seg_bytes += e.file_size();
    std::filesystem::remove(dir + "/.clean-shutdown");
    auto start = Clock::now();
    std::int64_t end = 0;
    {
        Log log = Log::open(dir);
        end = log.end_offset();
        if (log.clean_open()) result.failure = "bench log: recovery did not run";
    }
    double rec = seconds_since(start);
    result.rows.push_back(Json{
        {"case", fmt::format("recovery of a {} segment (unclean open)", format_bytes(seg_bytes))},
        {"records", end},
        {"seconds", rec},
        {"mb_per_s", static_cast<double>(seg_bytes) / rec / 1e6}});
    std::filesystem::remove_all(dir);

    double rec_per_gib = rec * static_cast<double>(1ULL << 30) / static_cast<double>(seg_bytes);
    result.summary["append_256_none_best_mrecords_per_s"] = best256;
    result.summary["append_target_met"] = best256 >= 5.0;
    result.summary["tail_p99_us"] = l.p99;
    result.summary["tail_target_met"] = l.p99 <= 1.0;
    result.summary["recovery_seconds_per_gib"] = rec_per_gib;
    result.summary["recovery_target_met"] = rec_per_gib <= 1.0;
    result.notes.push_back(fmt::format(
        "targets: append batch 256 none >= 5 M/s: {:.2f} ({}); tail p99 <= 1 us: {:.2f} ({}); "
        "recovery <= 1 s/GiB: {:.2f} s ({})",
        best256, best256 >= 5.0 ? "met" : "missed", l.p99, l.p99 <= 1.0 ? "met" : "missed",
        rec_per_gib, rec_per_gib <= 1.0 ? "met" : "missed"));
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
