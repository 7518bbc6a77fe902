// pagewire serve DIR — the static file server (issue 6; behaviour:
// docs/SERVE-CONTRACT.md). The server itself lives in serve/.
#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <pagewire/error.hpp>
#include <pagewire/serve.hpp>
#include <string>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// The contract's error line, "pagewire serve: <what>: <reason>", then exit.
[[noreturn]] void fail(const std::string& what, const std::string& reason, int code) {
    std::fflush(stdout);
    fmt::print(stderr, "pagewire serve: {}: {}\n", what, reason);
    std::exit(code);
}

constexpr long kMaxWorkers = 1024;
constexpr std::size_t kMaxConnections = std::size_t{1} << 24;

struct ServeArgs {
    serve::ServeConfig config;
    std::optional<long> workers;  // unset: one per online CPU
    std::string direct_threshold = "1g";
    double header_timeout = 10;
    double keepalive_timeout = 75;
};

unsigned to_ms(double seconds, const char* option) {
    if (!(seconds > 0) || seconds > 86400)
        fail(option, "expected seconds in (0, 86400]", kExitUsage);
    return static_cast<unsigned>(seconds * 1000);
}

}  // namespace

void register_serve(CLI::App& app) {
    auto args = std::make_shared<ServeArgs>();
    CLI::App* cmd =
        app.add_subcommand("serve", "Serve a directory over HTTP/1.1 (GET, HEAD, Range)");
    cmd->add_option("DIR", args->config.root, "Directory to serve")->required();
    cmd->add_option("--listen", args->config.listen,
                    "HOST:PORT to listen on: an address, [IPv6] or a name (port 0: any free port)")
        ->capture_default_str();
    cmd->add_option("--workers", args->workers, "Worker threads (default: one per CPU)");
    cmd->add_option("--direct-threshold", args->direct_threshold,
                    "Files at least this large are sent with O_DIRECT + io_uring (0: never)")
        ->capture_default_str();
    cmd->add_option("--access-log", args->config.access_log,
                    "Append one line per response to FILE");
    cmd->add_flag("--list-directories", args->config.list_directories,
                  "List directories that have no index.html");
    cmd->add_flag("--follow-symlinks", args->config.follow_symlinks,
                  "Follow symlinks that lead out of DIR");
    cmd->add_flag("--show-dotfiles", args->config.show_dotfiles, "Serve names starting with '.'");
    cmd->add_option("--max-connections", args->config.max_connections,
                    "Open client connections at most; more get 503")
        ->capture_default_str();
    cmd->add_option("--header-timeout", args->header_timeout,
                    "Seconds a request's header section may take")
        ->capture_default_str();
    cmd->add_option("--keepalive-timeout", args->keepalive_timeout,
                    "Seconds an idle keep-alive connection is kept")
        ->capture_default_str();
    cmd->callback([args] {
        serve::ServeConfig config = args->config;
        if (args->workers) {
            if (*args->workers < 1 || *args->workers > kMaxWorkers) {
                fail("--workers " + std::to_string(*args->workers), "expected 1 to 1024",
                     kExitUsage);
            }
            config.workers = static_cast<unsigned>(*args->workers);
        }
        if (config.max_connections < 1 || config.max_connections > kMaxConnections) {
            fail("--max-connections " + std::to_string(config.max_connections),
                 "expected 1 to 16777216", kExitUsage);
        }
        const auto threshold = parse_size(args->direct_threshold);
        if (!threshold) {
            fail("--direct-threshold '" + args->direct_threshold + "'", "expected a size like 512m",
                 kExitUsage);
        }
        config.direct_threshold = *threshold;
        config.header_timeout_ms = to_ms(args->header_timeout, "--header-timeout");
        config.keepalive_timeout_ms = to_ms(args->keepalive_timeout, "--keepalive-timeout");
        try {
            serve::run_server(config, stdout);
        } catch (const Error& e) {
            const int code = e.operation() == "--listen" ? kExitUsage : kExitFailure;
            const std::string what = e.operation() == "open" || e.operation() == "openat2"
                                         ? e.path()
                                         : e.operation() + " " + e.path();
            const std::string line = e.what();
            const std::size_t colon = line.find(": ");
            fail(what, colon == std::string::npos ? line : line.substr(colon + 2), code);
        }
    });
}

}  // namespace pagewire::cli
