// pagewire serve: listen addresses. run_server() (pagewire/serve.hpp) is
// the server as a whole: it checks the root, binds one SO_REUSEPORT
// listening socket per worker, starts the worker threads, prints the
// startup line and waits for SIGTERM / SIGINT.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <pagewire/serve.hpp>
#include <string>

namespace pagewire::http {

// "A.B.C.D:PORT" or "[v6]:PORT". Returns false for anything else.
bool parse_listen_address(const std::string& text, sockaddr_storage& addr, socklen_t& len);
// "127.0.0.1:8080" / "[::1]:8080" of a bound address.
std::string format_address(const sockaddr_storage& addr);

}  // namespace pagewire::http
