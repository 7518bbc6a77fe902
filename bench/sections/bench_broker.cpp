// Section "broker" of pagewire bench (issue 15): Kafka clients against
// `pagewire broker` (Fetch by sendfile, and by read+write with --fetch-copy)
// and against librdkafka's in-memory mock cluster as the reference broker,
// in the same run, driven by the same load generator with the same settings
// (pagewire-bench-kafka-load, on librdkafka).
//
// Per broker, one at a time: start it, produce N messages of 100 B (the
// Kafka 2014 benchmark's size; 2 M with --quick, 10 M in the full run),
// acks=1, then consume them all from the beginning, then an end-to-end
// latency run at a fixed rate. Per phase: msgs/s, MB/s, the broker's CPU
// seconds per GB of payload (utime + stime from /proc/PID/stat before and
// after the phase), and which side saturates a core (client or broker CPU as
// a fraction of the wall time). pagewire broker keeps its data in the scratch
// directory, durability none.
//
// The mock keeps only the newest 5 MiB per partition: the topic gets enough
// partitions that every produced message stays consumable.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <pagewire/error.hpp>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "bench_process.hpp"

namespace pagewire::bench {
namespace {

constexpr std::size_t kMessageBytes = 100;
constexpr std::uint64_t kQuickMessages = 2'000'000;
constexpr std::uint64_t kFullMessages = 10'000'000;
// What the mock retains per partition is 5 MiB; a 100 B message takes about
// 111 B in a batch. Filled to at most 4.5 MiB, rounded up to a power of two.
constexpr double kMockPartitionBudget = 4.5 * 1024 * 1024;
constexpr double kBatchedMessageBytes = kMessageBytes + 12;
constexpr int kMinPartitions = 32;
constexpr double kSegmentHeadroom = 1.25;  // a partition's data fits one segment
// The same client settings for every broker.
constexpr int kLingerMs = 5;
constexpr long kBatchBytes = 1'000'000;
constexpr int kTurnMessages = 1000;
constexpr int kFetchWaitMs = 100;
// Latency: its own topic, a fixed rate, no lingering.
constexpr const char* kLatencyTopic = "pagewire-bench-latency";
constexpr int kLatencyPartitions = 4;
constexpr double kLatencyRate = 10'000;
constexpr double kQuickLatencySeconds = 2;
constexpr double kFullLatencySeconds = 10;
constexpr int kLatencyLingerMs = 0;

constexpr std::chrono::seconds kStartTimeout{15};
constexpr std::chrono::seconds kLoadTimeout{600};

// Targets of issue 15, checked on the same run.
constexpr double kTargetRateRatio = 1.2;         // produce and consume msgs/s vs the mock
constexpr double kTargetProduceMsgsPerS = 1e6;   // produce, absolute
constexpr double kTargetCpuRatio = 0.5;          // broker CPU/GB vs the mock's
constexpr double kTargetSendfileCpuRatio = 0.7;  // consume CPU/GB, sendfile vs --fetch-copy

constexpr const char* kMock = "rdkafka mock";
constexpr const char* kSendfile = "pagewire broker";
constexpr const char* kFetchCopy = "pagewire broker --fetch-copy";

// A broker under test: its process and address, or why it is not measured.
struct Broker {
    std::string name;
    std::unique_ptr<Child> process;
    std::string bootstrap;
    std::string unavailable;  // non-empty: no measurements; `skipped` tells whether a failure
    bool skipped = false;     // not built or not available here: not a failure of the run
    std::string out_path;
    std::string err_path;
    std::string create_error;  // CreateTopics failed: the topics were auto-created

    std::string ended() const {
        std::string err = read_text(err_path);
        err = first_line(err.substr(std::min(err.size(), err.find_first_not_of("\n"))));
        return fmt::format("{} exited ({}{}{})", name, process->exit_status(),
                           err.empty() ? "" : ": ", err);
    }
};

// Waits for a line of the broker's output that contains `marker`, then
// returns what follows it up to the next space or newline; sets unavailable.
// An empty marker takes stdout's first line (the mock's), not stderr's.
std::string wait_for_address(Broker& b, const std::string& marker) {
    const auto deadline = Clock::now() + kStartTimeout;
    std::vector<std::string> paths{b.out_path};
    if (!marker.empty()) paths.push_back(b.err_path);
    while (Clock::now() < deadline) {
        for (const std::string& path : paths) {
            const std::string text = read_text(path);
            const auto at = marker.empty() ? 0 : text.find(marker);
            if (at == std::string::npos || text.find('\n', at) == std::string::npos) continue;
            const std::size_t from = at + marker.size();
            std::string address = text.substr(from, text.find_first_of(" \n", from) - from);
            while (!address.empty() && (address.back() == ')' || address.back() == ','))
                address.pop_back();
            if (!address.empty()) return address;
        }
        if (!b.process->running()) {
            b.unavailable = b.ended();
            return {};
        }
        std::this_thread::sleep_for(kChildPollInterval);
    }
    b.unavailable = fmt::format("{} printed no address within {} s", b.name, kStartTimeout.count());
    b.process->stop(SIGTERM);
    return {};
}

// The result of one run of the load generator.
struct Load {
    Json report;        // its JSON line
    std::string error;  // non-empty: the run does not count
    double wall = 0;    // seconds from start to exit
    double broker_cpu = 0;
};

Load run_load(Context& ctx, Broker& b, const std::string& load,
              const std::vector<std::string>& args) {
    Load result;
    std::vector<std::string> argv{load};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string out = ctx.scratch.file("broker-load.out");
    const std::string err = ctx.scratch.file("broker-load.err");
    const double cpu_before = process_cpu_seconds(b.process->pid());
    const auto start = Clock::now();
    {
        Child child(argv, out, err);
        if (!child.wait(kLoadTimeout)) {
            child.stop(SIGKILL);
            result.error =
                fmt::format("the load generator hung (killed after {} s)", kLoadTimeout.count());
            return result;
        }
        result.wall = seconds_since(start);
        result.broker_cpu = process_cpu_seconds(b.process->pid()) - cpu_before;
        if (!b.process->running()) {
            result.error = b.ended();
            return result;
        }
        const std::string text = first_line(read_text(out));
        try {
            result.report = Json::parse(text);
        } catch (const std::exception&) {
            std::string why = first_line(read_text(err));
            result.error = fmt::format("the load generator failed ({}): {}", child.exit_status(),
                                       why.empty() ? text : why);
            return result;
        }
        if (result.report.contains("error"))
            result.error = result.report["error"].get<std::string>();
        else if (child.exit_status() != "exit 0")
            result.error = "the load generator failed (" + child.exit_status() + ")";
    }
    return result;
}

struct Plan {
    std::uint64_t messages = 0;
    int partitions = 0;
    double latency_seconds = 0;
    int rounds = 1;
    // pagewire broker's segment size: its segments are preallocated, so the
    // default (1 GiB) times hundreds of partitions would fill the disk.
    std::uint64_t segment_mib = 0;
};

std::string topic_of(int round) {
    return fmt::format("pagewire-bench-{}", round);
}

Json base_row(const Broker& b, const char* phase) {
    Json row;
    row["broker"] = b.name;
    row["phase"] = phase;
    for (const char* key :
         {"msgs_per_s", "mb_per_s", "seconds", "broker_cpu_s", "broker_cpu_s_per_gb", "broker_core",
          "client_core", "p50_us", "p99_us", "p999_us"})
        row[key] = nullptr;
    row["saturates"] = "";
    row["status"] = b.unavailable.empty() ? "ok" : b.unavailable;
    return row;
}

// The side whose CPU is nearest a whole core; "neither" when both are well below.
std::string saturating_side(double client_core, double broker_core) {
    const double top = std::max(client_core, broker_core);
    if (top < 0.8) return fmt::format("neither (max {:.2f} core)", top);
    return client_core >= broker_core ? "client" : "broker";
}

// The produce, consume and latency rows of one broker (medians over rounds).
std::vector<Json> measure(Context& ctx, Broker& b, const std::string& load, const Plan& plan) {
    std::vector<Json> rows{base_row(b, "produce"), base_row(b, "consume"), base_row(b, "latency")};
    if (!b.unavailable.empty()) return rows;
    const std::string common_partitions = std::to_string(plan.partitions);
    // A failed phase fails its row; the phases after it did not run.
    auto fail = [&](Json& row, const std::string& why) {
        row["status"] = "FAILED: " + why;
        bool after = false;
        for (Json& r : rows) {
            if (after)
                r["status"] = fmt::format("not run: {} failed", row["phase"].get<std::string>());
            after = after || &r == &row;
        }
        return rows;
    };

    struct Samples {
        std::vector<double> rate, mb, seconds, cpu, cpu_gb, broker_core, client_core;
    };
    Samples phase[2];
    std::string last_version;
    for (int r = 0; r < plan.rounds; ++r) {
        const std::string topic = topic_of(r);
        const std::vector<std::string> where{"--bootstrap", b.bootstrap,    "--topic",
                                             topic,         "--partitions", common_partitions};
        for (int p = 0; p < 2; ++p) {
            const bool produce = p == 0;
            ctx.progress(fmt::format("{}: {} {} messages of {} B over {} partitions{}", b.name,
                                     produce ? "produce" : "consume", plan.messages, kMessageBytes,
                                     plan.partitions,
                                     plan.rounds > 1 ? fmt::format(" (round {})", r + 1) : ""));
            std::vector<std::string> args{produce ? "produce" : "consume"};
            args.insert(args.end(), where.begin(), where.end());
            for (const std::string& a :
                 {std::string("--messages"), std::to_string(plan.messages), std::string("--size"),
                  std::to_string(kMessageBytes), std::string("--linger-ms"),
                  std::to_string(kLingerMs), std::string("--batch-bytes"),
                  std::to_string(kBatchBytes), std::string("--turn"), std::to_string(kTurnMessages),
                  std::string("--fetch-wait-ms"), std::to_string(kFetchWaitMs)})
                args.push_back(a);
            const Load l = run_load(ctx, b, load, args);
            if (!l.error.empty()) return fail(rows[p], l.error);
            const Json& j = l.report;
            last_version = j.value("librdkafka", "");
            const double gb = static_cast<double>(plan.messages * kMessageBytes) / 1e9;
            const double seconds = j["seconds"];
            Samples& s = phase[p];
            s.rate.push_back(j["msgs_per_s"]);
            s.mb.push_back(j["mb_per_s"]);
            s.seconds.push_back(seconds);
            s.cpu.push_back(l.broker_cpu);
            s.cpu_gb.push_back(l.broker_cpu / gb);
            s.broker_core.push_back(l.broker_cpu / l.wall);
            s.client_core.push_back(j["client_cpu_s"].get<double>() / seconds);
        }
    }
    for (int p = 0; p < 2; ++p) {
        Json& row = rows[p];
        const Samples& s = phase[p];
        row["messages"] = plan.messages;
        row["msgs_per_s"] = summarize(s.rate).median;
        row["mb_per_s"] = summarize(s.mb).median;
        row["seconds"] = summarize(s.seconds).median;
        row["broker_cpu_s"] = summarize(s.cpu).median;
        row["broker_cpu_s_per_gb"] = summarize(s.cpu_gb).median;
        row["broker_core"] = summarize(s.broker_core).median;
        row["client_core"] = summarize(s.client_core).median;
        row["saturates"] = saturating_side(row["client_core"], row["broker_core"]);
        row["msgs_per_s_samples"] = s.rate;
        row["librdkafka"] = last_version;
        row["broker_cpu_s_per_gb_samples"] = s.cpu_gb;
    }

    ctx.progress(fmt::format("{}: latency, {:.0f} messages/s for {:.0f} s", b.name, kLatencyRate,
                             plan.latency_seconds));
    std::vector<std::string> args{"latency",
                                  "--bootstrap",
                                  b.bootstrap,
                                  "--topic",
                                  kLatencyTopic,
                                  "--partitions",
                                  std::to_string(kLatencyPartitions),
                                  "--size",
                                  std::to_string(kMessageBytes),
                                  "--rate",
                                  fmt::format("{}", kLatencyRate),
                                  "--seconds",
                                  fmt::format("{}", plan.latency_seconds),
                                  "--linger-ms",
                                  std::to_string(kLatencyLingerMs),
                                  "--fetch-wait-ms",
                                  std::to_string(kFetchWaitMs)};
    const Load l = run_load(ctx, b, load, args);
    if (!l.error.empty()) return fail(rows[2], l.error);
    Json& row = rows[2];
    row["messages"] = l.report["messages"];
    row["msgs_per_s"] = kLatencyRate;
    row["seconds"] = l.report["seconds"];
    row["broker_cpu_s"] = l.broker_cpu;
    row["broker_core"] = l.broker_cpu / l.wall;
    for (const char* key : {"p50_us", "p99_us", "p999_us", "max_us"}) row[key] = l.report[key];
    return rows;
}

// Starts the mock peer with the run's topics; its first stdout line is the
// bootstrap address.
Broker start_mock(Context& ctx, const std::string& mock, const Plan& plan) {
    Broker b;
    b.name = kMock;
    b.out_path = ctx.scratch.file("broker-mock.out");
    b.err_path = ctx.scratch.file("broker-mock.err");
    std::vector<std::string> argv{mock};
    for (int r = 0; r < plan.rounds; ++r)
        for (const std::string& a : {std::string("--topic"), topic_of(r),
                                     std::string("--partitions"), std::to_string(plan.partitions)})
            argv.push_back(a);
    for (const std::string& a : {std::string("--topic"), std::string(kLatencyTopic),
                                 std::string("--partitions"), std::to_string(kLatencyPartitions)})
        argv.push_back(a);
    ctx.progress("starting the rdkafka mock cluster");
    b.process = std::make_unique<Child>(argv, b.out_path, b.err_path);
    b.bootstrap = wait_for_address(b, "");
    return b;
}

// Starts `pagewire broker` and creates the run's topics through CreateTopics
// (or, failing that, leaves them to auto-creation with --partitions).
Broker start_pagewire(Context& ctx, const std::string& pagewire, const std::string& load,
                      const Plan& plan, bool fetch_copy) {
    Broker b;
    b.name = fetch_copy ? kFetchCopy : kSendfile;
    const std::string tag = fetch_copy ? "copy" : "sendfile";
    b.out_path = ctx.scratch.file("broker-" + tag + ".out");
    b.err_path = ctx.scratch.file("broker-" + tag + ".err");
    const std::string data = ctx.scratch.path() + "/broker-data-" + tag;
    std::error_code ec;
    std::filesystem::remove_all(data, ec);
    std::filesystem::create_directories(data);
    std::vector<std::string> argv{pagewire,          "broker",
                                  "--data",          data,
                                  "--listen",        fmt::format("127.0.0.1:{}", free_port()),
                                  "--durability",    "none",
                                  "--partitions",    std::to_string(plan.partitions),
                                  "--segment-bytes", fmt::format("{}M", plan.segment_mib)};
    if (fetch_copy) argv.push_back("--fetch-copy");
    ctx.progress("starting " + b.name);
    b.process = std::make_unique<Child>(argv, b.out_path, b.err_path);
    b.bootstrap = wait_for_address(b, "listening on ");
    if (!b.unavailable.empty()) return b;
    std::vector<std::pair<std::string, int>> topics;
    for (int r = 0; r < plan.rounds; ++r) topics.emplace_back(topic_of(r), plan.partitions);
    topics.emplace_back(kLatencyTopic, kLatencyPartitions);
    for (const auto& [topic, partitions] : topics) {
        const Load l = run_load(ctx, b, load,
                                {"create", "--bootstrap", b.bootstrap, "--topic", topic,
                                 "--partitions", std::to_string(partitions)});
        // A broker without CreateTopics still auto-creates the topic on the
        // producer's Metadata request, with --partitions partitions.
        if (!l.error.empty() && b.create_error.empty()) b.create_error = l.error;
        if (!b.process->running()) {
            b.unavailable = "FAILED: " + b.ended();
            break;
        }
    }
    return b;
}

// Whether `pagewire broker --help` works: a pagewire without the subcommand
// gets skipped rows rather than a failure.
bool has_broker(Context& ctx, const std::string& pagewire) {
    if (::access(pagewire.c_str(), X_OK) != 0) return false;
    const std::string out = ctx.scratch.file("broker-help.out");
    Child child({pagewire, "broker", "--help"}, out, out + ".err");
    ctx.scratch.file("broker-help.out.err");
    if (!child.wait(std::chrono::seconds(10))) return false;
    return child.exit_status() == "exit 0";
}

const Json* find_row(const std::vector<Json>& rows, const char* broker, const char* phase) {
    for (const Json& r : rows)
        if (r["broker"] == broker && r["phase"] == phase) return &r;
    return nullptr;
}

double value(const Json* row, const char* key) {
    return row == nullptr || (*row)[key].is_null() ? std::nan("") : (*row)[key].get<double>();
}

SectionResult run_broker(Context& ctx) {
    const bool quick = ctx.options.quick;
    Plan plan;
    plan.messages = ctx.options.messages > 0 ? ctx.options.messages
                    : quick                  ? kQuickMessages
                                             : kFullMessages;
    const double needed =
        static_cast<double>(plan.messages) * kBatchedMessageBytes / kMockPartitionBudget;
    plan.partitions = kMinPartitions;
    while (plan.partitions < needed) plan.partitions *= 2;
    const double per_partition = static_cast<double>(plan.messages) * kBatchedMessageBytes /
                                 plan.partitions * kSegmentHeadroom;
    plan.segment_mib = 1;
    while (static_cast<double>(plan.segment_mib) * 1024 * 1024 < per_partition)
        plan.segment_mib *= 2;
    plan.latency_seconds = quick ? kQuickLatencySeconds : kFullLatencySeconds;
    plan.rounds = ctx.options.repetitions > 0 ? ctx.options.repetitions : 1;
    ::signal(SIGPIPE, SIG_IGN);

    SectionResult result;
    result.title = fmt::format(
        "broker: Kafka clients (librdkafka) against pagewire broker and librdkafka's mock "
        "cluster, {} messages of {} B, {} partitions, acks=1{}",
        plan.messages, kMessageBytes, plan.partitions,
        plan.rounds > 1 ? fmt::format(", median of {} rounds", plan.rounds) : "");
    result.columns = {{"broker", "broker", -1, ""},
                      {"phase", "phase", -1, ""},
                      {"msgs_per_s", "msgs/s", 0, ""},
                      {"mb_per_s", "MB/s", 1, ""},
                      {"broker_cpu_s_per_gb", "broker CPU s/GB", 2, ""},
                      {"broker_core", "broker core", 2, ""},
                      {"client_core", "client core", 2, ""},
                      {"saturates", "saturates", -1, ""},
                      {"p50_us", "p50 µs", 0, ""},
                      {"p99_us", "p99 µs", 0, ""},
                      {"p999_us", "p99.9 µs", 0, ""},
                      {"status", "status", -1, ""}};

    const std::string bin = directory_of_self();
    const std::string mock = bin + "/pagewire-bench-kafka-mock";
    const std::string load = bin + "/pagewire-bench-kafka-load";
    const std::string pagewire = bin + "/pagewire";
    const bool peers = ::access(mock.c_str(), X_OK) == 0 && ::access(load.c_str(), X_OK) == 0;
    const std::string no_peers =
        "skipped: pagewire-bench-kafka-mock / -load not built (librdkafka missing at build; "
        "Debian: librdkafka-dev)";
    const bool broker = peers && has_broker(ctx, pagewire);
    const std::string no_broker = "skipped: this pagewire has no broker subcommand";

    std::vector<std::string> failures;
    std::string librdkafka;  // the version the load generator runs on
    for (const char* name : {kMock, kSendfile, kFetchCopy}) {
        Broker b;
        b.name = name;
        const bool is_mock = name == std::string(kMock);
        if (!peers) {
            b.unavailable = no_peers;
            b.skipped = true;
        } else if (is_mock) {
            b = start_mock(ctx, mock, plan);
        } else if (!broker) {
            b.unavailable = no_broker;
            b.skipped = true;
        } else {
            b = start_pagewire(ctx, pagewire, load, plan, name == std::string(kFetchCopy));
        }
        if (!b.unavailable.empty()) ctx.progress(b.unavailable);
        if (!b.create_error.empty())
            result.notes.push_back(
                fmt::format("{}: CreateTopics failed ({}); topics auto-created on Metadata with "
                            "--partitions {}",
                            b.name, b.create_error, plan.partitions));
        for (Json& row : measure(ctx, b, load, plan)) {
            const std::string status = row["status"];
            if (row.contains("librdkafka")) librdkafka = row["librdkafka"];
            if (status.rfind("FAILED", 0) == 0)
                failures.push_back(
                    fmt::format("{} {}: {}", b.name, row["phase"].get<std::string>(), status));
            result.rows.push_back(std::move(row));
        }
        if (!b.unavailable.empty() && !b.skipped && b.unavailable.rfind("FAILED", 0) != 0)
            failures.push_back(b.unavailable);
        if (b.process && b.unavailable.empty()) {
            b.process->stop(SIGTERM);
            if (b.process->exit_status() != "exit 0")
                failures.push_back(b.name + " did not exit cleanly on SIGTERM: " + b.ended());
        }
        std::error_code ec;
        std::filesystem::remove_all(ctx.scratch.path() + "/broker-data-sendfile", ec);
        std::filesystem::remove_all(ctx.scratch.path() + "/broker-data-copy", ec);
    }

    // ---- targets ---------------------------------------------------------------
    const Json* mock_produce = find_row(result.rows, kMock, "produce");
    const Json* mock_consume = find_row(result.rows, kMock, "consume");
    const Json* pw_produce = find_row(result.rows, kSendfile, "produce");
    const Json* pw_consume = find_row(result.rows, kSendfile, "consume");
    const Json* copy_consume = find_row(result.rows, kFetchCopy, "consume");
    Json verdicts = Json::array();
    auto verdict = [&](const std::string& what, double measured, double reference, double target,
                       bool at_most, const char* unit) {
        Json v;
        v["target"] = what;
        const double ratio = reference > 0 ? measured / reference : std::nan("");
        const double shown = std::isnan(reference) ? measured : ratio;
        if (std::isnan(shown)) {
            v["met"] = nullptr;
            result.notes.push_back(fmt::format("target {}: not measured", what));
        } else {
            const bool met = at_most ? shown <= target : shown >= target;
            v["measured"] = measured;
            if (!std::isnan(reference)) v["reference"] = reference;
            v["value"] = shown;
            v["met"] = met;
            result.notes.push_back(fmt::format("target {}: {:.2f}{} ({})", what, shown, unit,
                                               met ? "met" : "NOT met"));
        }
        verdicts.push_back(v);
    };
    verdict("produce msgs/s >= 1.2x the mock's", value(pw_produce, "msgs_per_s"),
            value(mock_produce, "msgs_per_s"), kTargetRateRatio, false, "x");
    verdict("consume msgs/s >= 1.2x the mock's", value(pw_consume, "msgs_per_s"),
            value(mock_consume, "msgs_per_s"), kTargetRateRatio, false, "x");
    verdict("produce >= 1 M msgs/s", value(pw_produce, "msgs_per_s") / 1e6, std::nan(""),
            kTargetProduceMsgsPerS / 1e6, false, " M msgs/s");
    verdict("produce broker CPU/GB <= 0.5x the mock's", value(pw_produce, "broker_cpu_s_per_gb"),
            value(mock_produce, "broker_cpu_s_per_gb"), kTargetCpuRatio, true, "x");
    verdict("consume broker CPU/GB <= 0.5x the mock's", value(pw_consume, "broker_cpu_s_per_gb"),
            value(mock_consume, "broker_cpu_s_per_gb"), kTargetCpuRatio, true, "x");
    verdict("consume CPU/GB sendfile <= 0.7x --fetch-copy",
            value(pw_consume, "broker_cpu_s_per_gb"), value(copy_consume, "broker_cpu_s_per_gb"),
            kTargetSendfileCpuRatio, true, "x");

    result.notes.push_back(fmt::format(
        "client (pagewire-bench-kafka-load, librdkafka {}): acks=1, linger.ms={}, batch.size={}, "
        "no compression, {} messages per partition in turn, simple consumer on one queue from "
        "the beginning, fetch.wait.max.ms={}; latency: {:.0f} msgs/s, linger.ms={}, {} "
        "partitions, first 10% not counted, send time to consumer poll in one process",
        librdkafka.empty() ? "-" : librdkafka, kLingerMs, kBatchBytes, kTurnMessages, kFetchWaitMs,
        kLatencyRate, kLatencyLingerMs, kLatencyPartitions));
    result.notes.push_back(
        "msgs/s: produce from the first send to the last delivery report, consume from the first "
        "message to the last; broker CPU = utime + stime of the broker process over the whole "
        "load run (connect and teardown included), per GB of payload; core = CPU seconds / wall "
        "seconds (client: over the measured interval); one broker runs at a time");
    result.notes.push_back(fmt::format(
        "{} partitions: the mock keeps only the newest 5 MiB per partition, so every produced "
        "message must fit; pagewire broker: data in the scratch directory, --durability none, "
        "--segment-bytes {}M",
        plan.partitions, plan.segment_mib));

    Json summary;
    summary["messages"] = plan.messages;
    summary["message_bytes"] = kMessageBytes;
    summary["partitions"] = plan.partitions;
    summary["rounds"] = plan.rounds;
    summary["segment_mib"] = plan.segment_mib;
    summary["verdicts"] = verdicts;
    bool all_met = true;
    for (const Json& v : verdicts) all_met = all_met && v["met"] == true;
    summary["all_targets_met"] = all_met;
    result.summary = std::move(summary);
    for (const std::string& f : failures)
        result.failure += (result.failure.empty() ? "broker: " : "; ") + f;
    return result;
}

}  // namespace

Section broker_section() {
    return {"broker",
            "Kafka clients (librdkafka) against pagewire broker (sendfile, --fetch-copy) and "
            "librdkafka's mock cluster: produce and consume 100 B messages, broker CPU/GB, "
            "end-to-end latency",
            run_broker};
}

}  // namespace pagewire::bench
