// pagewire broker --data DIR — a Kafka-protocol broker over pagewire::Log
// (issue 15). The broker itself lives in src/kafka (pagewire/broker.hpp).
#include <fmt/core.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <pagewire/broker.hpp>
#include <pagewire/error.hpp>
#include <pagewire/units.hpp>
#include <string>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

struct BrokerArgs {
    broker::BrokerConfig config;
    std::string durability = "none";
    std::string retention_bytes = "0";
    std::string segment_bytes = "64M";
    std::optional<unsigned> workers;
    bool no_auto_create = false;
};

std::uint64_t size_option(const std::string& text, const char* option) {
    const auto v = parse_size(text);
    if (!v) throw Error(option, text, EINVAL, "expected a size like 512M");
    return *v;
}

}  // namespace

void register_broker(CLI::App& app) {
    auto args = std::make_shared<BrokerArgs>();
    CLI::App* cmd = app.add_subcommand(
        "broker", "Serve topics of pagewire logs to Kafka clients (the Kafka protocol)");
    broker::BrokerConfig& c = args->config;
    cmd->add_option("--data", c.data_dir, "Directory of the topics' logs (DIR/<topic>-<n>)")
        ->required();
    cmd->add_option("--listen", c.listen,
                    "HOST:PORT to listen on: an address, [IPv6] or a name (port 0: any free port)")
        ->capture_default_str();
    cmd->add_option("--advertise", c.advertise,
                    "HOST:PORT clients are told to connect to (default: the bound address)");
    cmd->add_option(
           "--durability", args->durability,
           "When an append is acknowledged: none (page cache), interval, every (fdatasync)")
        ->check(CLI::IsMember({"none", "interval", "every"}))
        ->capture_default_str();
    cmd->add_option("--partitions", c.default_partitions, "Partitions of an auto-created topic")
        ->check(CLI::Range(1, 10000))
        ->capture_default_str();
    cmd->add_option("--retention-bytes", args->retention_bytes,
                    "Keep at most about this many bytes per partition (0: no limit)")
        ->capture_default_str();
    cmd->add_option("--retention-ms", c.retention_ms,
                    "Drop segments whose newest record is older than this (0: never)")
        ->capture_default_str();
    cmd->add_option("--segment-bytes", args->segment_bytes,
                    "Roll a partition's segment at this size (each active one is preallocated)")
        ->capture_default_str();
    cmd->add_flag("--no-auto-create", args->no_auto_create,
                  "Unknown topics are not created on Metadata requests");
    cmd->add_flag("--fetch-copy", c.fetch_copy,
                  "Send fetched records by read+write instead of sendfile (for comparison)");
    cmd->add_option("--workers", args->workers, "Worker threads (default: one per CPU)")
        ->check(CLI::Range(1, 1024));
    cmd->add_option("--max-connections", c.max_connections, "Open client connections at most")
        ->check(CLI::Range(1, 1 << 24))
        ->capture_default_str();
    cmd->add_option("--access-log", c.access_log, "Append one line per request to FILE");
    cmd->callback([args] {
        broker::BrokerConfig config = args->config;
        config.durability = args->durability == "every"      ? Durability::Every
                            : args->durability == "interval" ? Durability::Interval
                                                             : Durability::None;
        config.retention_bytes = size_option(args->retention_bytes, "--retention-bytes");
        config.segment_bytes = size_option(args->segment_bytes, "--segment-bytes");
        if (config.segment_bytes < 4096)
            throw Error("--segment-bytes", args->segment_bytes, EINVAL, "at least 4K");
        config.auto_create = !args->no_auto_create;
        if (args->workers) config.workers = *args->workers;
        const broker::BrokerSummary s =
            broker::run_broker(config, [&](const std::string& address, unsigned workers) {
                fmt::print("pagewire broker: listening on {} ({}, {} workers, durability {}{})\n",
                           address, config.data_dir, workers, args->durability,
                           config.fetch_copy ? ", fetch by copy" : "");
                std::fflush(stdout);
            });
        // The summary line, as the startup line on stdout.
        std::uint64_t total = 0;
        std::string by_api;
        for (const auto& [api, n] : s.requests) {
            total += n;
            by_api += fmt::format("{}{} {}", by_api.empty() ? "" : ", ", api, n);
        }
        fmt::print("pagewire broker: stopped after {:.1f} s: {}, {}{}, {} in, {} out\n", s.seconds,
                   counted(s.connections, "connection"), counted(total, "request"),
                   by_api.empty() ? "" : " (" + by_api + ")", format_bytes(s.bytes_in),
                   format_bytes(s.bytes_out));
        std::fflush(stdout);
    });
}

}  // namespace pagewire::cli
