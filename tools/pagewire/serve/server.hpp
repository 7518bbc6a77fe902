// pagewire serve: the server as a whole — checks the root, binds one
// SO_REUSEPORT listening socket per worker, starts the worker threads,
// prints the startup line and waits for SIGTERM / SIGINT.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <string>

#include "serve/config.hpp"

namespace pagewire::serve {

// "A.B.C.D:PORT" or "[v6]:PORT". Returns false for anything else.
bool parse_listen_address(const std::string& text, sockaddr_storage& addr, socklen_t& len);
// "127.0.0.1:8080" / "[::1]:8080" of a bound address.
std::string format_address(const sockaddr_storage& addr);

// Runs until SIGTERM or SIGINT, then lets in-flight responses finish (at most
// config.shutdown_grace_ms). Writes the startup line to `out` once
// listening. Throws pagewire::Error for what prevents starting (root,
// address, access log).
void run_server(const ServeConfig& config, std::FILE* out);

}  // namespace pagewire::serve
