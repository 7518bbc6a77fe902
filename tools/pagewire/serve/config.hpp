// pagewire serve: the settings one server runs with (docs/SERVE-CONTRACT.md).
// Plain data, filled by cmd_serve.cpp and read by every worker (never written
// after the workers start, so sharing it between threads is safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <pagewire/transfer.hpp>
#include <string>

namespace pagewire::serve {

// Limits of the contract; 414 / 431 above them.
inline constexpr std::size_t kMaxRequestLineBytes = 8 * 1024;
inline constexpr std::size_t kMaxHeaderSectionBytes = 16 * 1024;
inline constexpr std::size_t kMaxHeaderLines = 100;
// More ranges than this in one Range header make it "malformed" (full 200):
// overlapping ranges would otherwise multiply the response size without
// bound. Apache's MaxRanges default.
inline constexpr std::size_t kMaxRanges = 200;

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

}  // namespace pagewire::serve
