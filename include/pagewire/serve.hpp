// pagewire::serve — the static file server behind `pagewire serve DIR`
// (behaviour: docs/SERVE-CONTRACT.md): HTTP/1.1 GET and HEAD with ranges,
// conditionals, keep-alive and pipelining, over the library's network core
// (epoll workers, one SO_REUSEPORT socket each). Implemented by the
// pagewire_http library (src/http), which links the HTTP parser; the core
// libpagewire does not need it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <pagewire/config.hpp>
#include <pagewire/transfer.hpp>
#include <string>

namespace pagewire::serve {

// The settings one server runs with. Plain data: filled by the caller,
// read by every worker and never written after run_server() starts them,
// so sharing it between threads is safe.
struct ServeConfig {
    std::string root;  // the served directory, as given
    std::string listen = "127.0.0.1:8080";
    unsigned workers = 0;                                      // 0: one per online CPU
    std::uint64_t direct_threshold = kDefaultDirectThreshold;  // 0: never direct
    std::string access_log;                                    // empty: none
    bool list_directories = false;
    bool follow_symlinks = false;
    bool show_dotfiles = false;
    std::size_t max_connections = 10000;
    unsigned header_timeout_ms = 10'000;
    unsigned keepalive_timeout_ms = 75'000;
    // Not on the command line: nginx's send_timeout (a client that takes no
    // byte for this long is dropped), lingering_timeout, and how long a
    // stopping server lets in-flight responses run.
    unsigned send_timeout_ms = 60'000;
    unsigned linger_timeout_ms = 5'000;
    unsigned shutdown_grace_ms = 10'000;
    // nginx open_file_cache_valid: a cached descriptor + stat is trusted
    // this long before its path is opened and checked again.
    unsigned open_file_valid_ms = 1'000;
};

// Serves config.root until SIGTERM or SIGINT, then lets in-flight responses
// finish (at most config.shutdown_grace_ms) and returns. Writes the startup
// line ("pagewire serve: listening on http://ADDR:PORT/ (...)") to `out`
// once every worker listens. Throws pagewire::Error for what prevents
// starting: a bad config.listen (operation "--listen", EINVAL), the root
// ("open" / "openat2"), the address ("bind", ...), the access log ("open").
void run_server(const ServeConfig& config, std::FILE* out);

}  // namespace pagewire::serve
