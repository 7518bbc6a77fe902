// pagewire log create|append|read|tail|stat|verify|dump|retain DIR — a
// pagewire::Log (Kafka's segment format) from the shell. Readers (read, tail,
// stat, dump) open the log read-only, so they work while a writer appends.
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/log.hpp>
#include <pagewire/page_cache.hpp>
#include <pagewire/units.hpp>
#include <string>
#include <vector>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

struct LogArgs {
    std::string op;
    std::string dir;
    std::optional<std::string> key;
    std::uint64_t batch = 64;
    std::optional<std::uint64_t> count;
    std::string size = "100";
    std::string durability = "none";
    std::string segment_bytes = "1G";
    std::optional<std::string> retention_bytes;
    std::optional<std::uint64_t> retention_ms;
    std::optional<std::int64_t> from;
    std::optional<std::int64_t> from_time;
    bool json = false;
    bool records = false;
    bool busy_poll = false;
};

// Every failure as one line, "log <op> DIR: <reason>".
[[noreturn]] void fail(const LogArgs& a, const Error& e) {
    std::string prefix = e.operation() + " " + e.path() + ": ";
    std::string line = e.what();
    std::string reason =
        e.path() == a.dir && line.rfind(prefix, 0) == 0 ? line.substr(prefix.size()) : line;
    throw Error("log " + a.op, a.dir, e.error_number(), reason);
}

std::uint64_t size_of(const LogArgs& a, const std::string& text, const char* what) {
    auto v = parse_size(text);
    if (!v)
        throw Error("log " + a.op, a.dir, EINVAL,
                    std::string(what) + " '" + text + "' is not a size");
    return *v;
}

LogOptions options_of(const LogArgs& a, bool read_only) {
    LogOptions o;
    o.read_only = read_only;
    o.create = a.op == "create";
    o.segment_bytes = size_of(a, a.segment_bytes, "--segment-bytes");
    if (a.retention_bytes) o.retention_bytes = size_of(a, *a.retention_bytes, "--retention-bytes");
    if (a.retention_ms) o.retention_age = std::chrono::milliseconds(*a.retention_ms);
    if (a.durability == "none")
        o.durability = Durability::None;
    else if (a.durability == "interval")
        o.durability = Durability::Interval;
    else if (a.durability == "every")
        o.durability = Durability::Every;
    else
        throw Error("log " + a.op, a.dir, EINVAL,
                    "--durability '" + a.durability + "' is not none, interval or every");
    return o;
}

void put(const std::string& s) {
    if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size()) throw_error("write", "stdout");
}

std::string text(const std::optional<std::string_view>& b) {
    return b ? std::string(*b) : "null";
}
nlohmann::json json_of(const std::optional<std::string_view>& b) {
    return b ? nlohmann::json(std::string(*b)) : nlohmann::json(nullptr);
}

void print_record(const LogArgs& a, const RecordView& r) {
    if (a.json) {
        nlohmann::json j{{"offset", r.offset},
                         {"timestamp", r.timestamp},
                         {"key", json_of(r.key)},
                         {"value", json_of(r.value)},
                         {"headers", r.header_count}};
        put(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    } else {
        put(fmt::format("{}\t{}\t{}\t{}\n", r.offset, r.timestamp, text(r.key), text(r.value)));
    }
}

// Prints the records of `slice` from `next` on, at most *left of them; returns the next offset.
std::int64_t print_slice(const LogArgs& a, const LogSlice& slice, std::int64_t next,
                         std::uint64_t* left) {
    std::size_t cursor = 0;
    BatchView b;
    while (*left > 0 && slice.next_batch(&cursor, &b)) {
        std::size_t rc = 0;
        RecordView r;
        while (*left > 0 && b.next_record(&rc, &r)) {
            if (r.offset < next) continue;
            print_record(a, r);
            next = r.offset + 1;
            --*left;
        }
        if (*left > 0) next = b.last_offset() + 1;
    }
    return next;
}

void run_create(const LogArgs& a) {
    if (::access(a.dir.c_str(), F_OK) == 0)
        throw Error("log create", a.dir, EEXIST, "already exists");
    Log log = Log::open(a.dir, options_of(a, false));
    log.close();
    status(fmt::format("created log {}\n", a.dir));
}

void run_append(const LogArgs& a) {
    Log log = Log::open(a.dir, options_of(a, false));
    std::size_t batch = a.batch == 0 ? 1 : a.batch;
    std::vector<std::string> values;
    std::vector<Record> records;
    std::optional<std::string_view> key;
    if (a.key) key = *a.key;
    std::int64_t first = -1, last = -1;
    std::uint64_t total = 0;
    auto flush = [&] {
        if (values.empty()) return;
        records.clear();
        for (const auto& v : values) records.push_back(Record{key, v, {}});
        auto r = log.append(records);
        if (first < 0) first = r.base_offset;
        last = r.last_offset;
        total += values.size();
        values.clear();
    };
    if (a.count) {
        std::uint64_t size = size_of(a, a.size, "--size");
        for (std::uint64_t i = 0; i < *a.count; ++i) {
            std::string v(size, 'x');
            std::string n = std::to_string(i);
            v.replace(0, std::min(n.size(), v.size()), n.substr(0, v.size()));
            values.push_back(std::move(v));
            if (values.size() == batch) flush();
        }
    } else {
        std::string line;
        while (std::getline(std::cin, line)) {
            values.push_back(line);
            if (values.size() == batch) flush();
        }
        if (std::cin.bad()) throw_error("read", "stdin", EIO);
    }
    flush();
    log.close();
    if (total == 0)
        status("appended 0 records\n");
    else
        status(fmt::format("appended {}, offsets {}..{}\n", counted(total, "record"), first, last));
}

void run_read(const LogArgs& a, bool follow) {
    Log log = Log::open(a.dir, options_of(a, true));
    std::int64_t next = a.from        ? *a.from
                        : a.from_time ? log.offset_for_time(*a.from_time)
                        : follow      ? log.end_offset()
                                      : log.start_offset();
    std::uint64_t left = a.count ? *a.count : UINT64_MAX;
    if (next > log.end_offset() || next < log.start_offset())
        (void)log.read(next);  // the out-of-range error, worded by the library
    LogSlice prev;
    while (left > 0) {
        if (next >= log.end_offset()) {
            if (!follow) break;
            std::fflush(stdout);
            log.wait_for(next, std::chrono::hours(24),
                         a.busy_poll ? std::chrono::hours(24) : std::chrono::microseconds(50));
            continue;
        }
        // A slice printed whole continues with read_next (no index lookup).
        LogSlice slice = next == prev.next_offset && prev.keep_alive ? log.read_next(prev, 1 << 20)
                                                                     : log.read(next, 1 << 20);
        next = print_slice(a, slice, next, &left);
        prev = std::move(slice);
    }
    if (std::fflush(stdout) != 0) throw_error("write", "stdout");
}

void run_stat(const LogArgs& a) {
    Log log = Log::open(a.dir, options_of(a, true));
    auto segs = log.segments();
    nlohmann::json js = nlohmann::json::array();
    std::string table = fmt::format("{:>20} {:>20} {:>12} {:>12} {:>8} {:>16}\n", "base", "next",
                                    "bytes", "file bytes", "index", "cached pages");
    for (const auto& s : segs) {
        CacheStat c = cache_stat(File::open(s.path));
        js.push_back({{"base_offset", s.base_offset},
                      {"next_offset", s.next_offset},
                      {"bytes", s.bytes},
                      {"file_bytes", s.file_bytes},
                      {"index_entries", s.index_entries},
                      {"max_timestamp", s.max_timestamp},
                      {"path", s.path},
                      {"cached_pages", c.cached},
                      {"pages", c.pages}});
        table += fmt::format("{:>20} {:>20} {:>12} {:>12} {:>8} {:>16}\n", s.base_offset,
                             s.next_offset, s.bytes, s.file_bytes, s.index_entries,
                             fmt::format("{}/{}", c.cached, c.pages));
    }
    if (a.json) {
        nlohmann::json j{{"dir", a.dir},
                         {"start_offset", log.start_offset()},
                         {"end_offset", log.end_offset()},
                         {"recovery_point", log.recovery_point()},
                         {"segments", js}};
        put(j.dump(2) + "\n");
    } else {
        // Offsets as `append` says them: the first and the last record's, inclusive.
        const std::uint64_t records = log.end_offset() - log.start_offset();
        const std::string range =
            records == 0 ? std::string("none")
                         : fmt::format("{}..{}", log.start_offset(), log.end_offset() - 1);
        put(fmt::format("log {}: offsets {} ({}), next offset {}, recovery point {}, {}\n", a.dir,
                        range, counted(records, "record"), log.end_offset(), log.recovery_point(),
                        counted(segs.size(), "segment")));
        put(table);
    }
}

void run_verify(const LogArgs& a) {
    auto damage = verify_log(a.dir);
    for (const auto& d : damage)
        put(fmt::format("{}: byte {}: {}\n", d.path, d.position, d.reason));
    if (!damage.empty()) {
        std::fflush(stdout);
        throw Error("log verify", a.dir, EBADMSG,
                    fmt::format("damaged: {} byte {}: {}", damage[0].path, damage[0].position,
                                damage[0].reason));
    }
    put(fmt::format("{}: sound\n", a.dir));
}

// Like Kafka's kafka-dump-log --files ... [--print-data-log].
void run_dump(const LogArgs& a) {
    Log log = Log::open(a.dir, options_of(a, true));
    for (const auto& s : log.segments()) {
        put(fmt::format("Dumping {}\n", s.path));
        std::int64_t next = std::max(s.base_offset, log.start_offset());
        while (next < s.next_offset && next < log.end_offset()) {
            LogSlice slice = log.read(next, 1 << 20);
            std::size_t cursor = 0;
            BatchView b;
            while (slice.next_batch(&cursor, &b)) {
                std::string why = b.validate();
                put(fmt::format(
                    "baseOffset: {} lastOffset: {} count: {} baseSequence: {} "
                    "producerId: {} producerEpoch: {} partitionLeaderEpoch: 0 "
                    "position: {} CreateTime: {} size: {} magic: {} compresscodec: {} "
                    "crc: {} isvalid: {}\n",
                    b.base_offset(), b.last_offset(), b.record_count(), b.base_sequence(),
                    b.producer_id(), b.producer_epoch(), slice.position + cursor - b.size(),
                    b.max_timestamp(), b.size(), b.magic(), b.compression(), b.crc(), why.empty()));
                if (a.records && b.compression() == 0) {
                    std::size_t rc = 0;
                    RecordView r;
                    while (b.next_record(&rc, &r))
                        put(
                            fmt::format("| offset: {} CreateTime: {} keySize: {} valueSize: {} "
                                        "headers: {} key: {} payload: {}\n",
                                        r.offset, r.timestamp, r.key ? int(r.key->size()) : -1,
                                        r.value ? int(r.value->size()) : -1, r.header_count,
                                        text(r.key), text(r.value)));
                }
                next = b.last_offset() + 1;
            }
            if (slice.empty()) break;
        }
    }
}

void run_retain(const LogArgs& a) {
    Log log = Log::open(a.dir, options_of(a, false));
    std::size_t n = log.retain();
    status(fmt::format("deleted {}; log starts at offset {}\n", counted(n, "segment"),
                       log.start_offset()));
    log.close();
}

void run(const LogArgs& a) {
    try {
        if (a.op == "create")
            run_create(a);
        else if (a.op == "append")
            run_append(a);
        else if (a.op == "read")
            run_read(a, false);
        else if (a.op == "tail")
            run_read(a, true);
        else if (a.op == "stat")
            run_stat(a);
        else if (a.op == "verify")
            run_verify(a);
        else if (a.op == "dump")
            run_dump(a);
        else
            run_retain(a);
    } catch (const Error& e) {
        if (e.operation().rfind("log ", 0) == 0) throw;
        fail(a, e);
    }
}

}  // namespace

void register_log(CLI::App& app) {
    auto args = std::make_shared<LogArgs>();
    CLI::App* log = app.add_subcommand(
        "log", "A persistent message log in Kafka's segment format (pagewire::Log)");
    log->require_subcommand(1);
    auto add = [&](const char* name, const char* help) {
        CLI::App* c = log->add_subcommand(name, help);
        c->add_option("DIR", args->dir, "The log directory")->required();
        c->add_option("--segment-bytes", args->segment_bytes,
                      "Roll segments at this size (default 1G)");
        c->callback([args, name] {
            args->op = name;
            run(*args);
        });
        return c;
    };
    add("create", "Create a log directory with its first segment");
    CLI::App* append = add("append", "Append stdin's lines (or --count generated records)");
    append->add_option("--key,-k", args->key, "Key of every record (default null)");
    append->add_option("--batch,-b", args->batch, "Records per batch (default 64)");
    append->add_option("--count,-n", args->count, "Append N generated records instead of stdin");
    append->add_option("--size", args->size, "Bytes per generated record (default 100)");
    append->add_option("--durability", args->durability, "none, interval or every (default none)");
    for (const char* name : {"read", "tail"}) {
        CLI::App* r =
            add(name, std::string(name) == "read"
                          ? "Print records: offset, timestamp, key, value"
                          : "Print records as they are appended (from the end by default)");
        r->add_option("--from", args->from, "First offset");
        r->add_option("--from-time", args->from_time,
                      "First record at or after this time (ms since epoch)");
        r->add_option("--count,-n", args->count, "Stop after N records");
        r->add_flag("--json", args->json, "One JSON object per record");
        if (std::string(name) == "tail")
            r->add_flag("--busy-poll", args->busy_poll, "Spin instead of sleeping while waiting");
    }
    add("stat", "Segments, offsets, sizes, page-cache residency, recovery point")
        ->add_flag("--json", args->json, "JSON output");
    add("verify", "Check every batch and index; say where damage is");
    add("dump", "Show batches like kafka-dump-log")
        ->add_flag("--print-records", args->records, "Show each record too");
    CLI::App* retain = add("retain", "Delete old segments past the retention limits");
    retain->add_option("--retention-bytes", args->retention_bytes, "Keep at most this many bytes");
    retain->add_option("--retention-ms", args->retention_ms, "Drop segments older than this");
}

}  // namespace pagewire::cli
