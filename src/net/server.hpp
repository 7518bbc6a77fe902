// pagewire net: a server as a whole — binds one SO_REUSEPORT listening
// socket per worker, starts the worker threads (each with its own protocol
// object), reports the address and waits for SIGTERM / SIGINT. The protocol
// (HTTP, Kafka) comes in through a factory; nothing here knows it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <functional>
#include <string>

#include "net/protocol.hpp"

namespace pagewire::net {

struct ServerConfig {
    std::string name = "server";  // in error messages: "pagewire <name>: worker: ..."
    std::string listen;           // as given, for messages
    sockaddr_storage addr{};      // parse_listen_address(listen) (port 0: any free one)
    socklen_t addr_len = 0;
    unsigned workers = 0;  // 0: one per online CPU
    std::size_t max_connections = 10000;
    std::size_t max_frame_bytes = 64 * 1024;  // buffered bytes of one frame at most
    // A frame started (or a connection opened) must complete within this.
    unsigned frame_timeout_ms = 10'000;
    unsigned idle_timeout_ms = 75'000;   // between frames
    unsigned send_timeout_ms = 60'000;   // a peer that takes no byte this long is dropped
    unsigned linger_timeout_ms = 5'000;  // lingering close: reading after our FIN
    unsigned shutdown_grace_ms = 10'000;
    int access_log_fd = -1;  // O_APPEND descriptor (open_access_log), or -1; not owned
};

// HOST:PORT (pagewire/address.hpp: IPv4, [IPv6] or a name, resolved to its
// first address) into addr / addr_len (and `listen`). Throws pagewire::Error
// (operation "--listen", EINVAL) for a malformed text, ("resolve", host) for
// a name that does not resolve.
void parse_listen_address(const std::string& text, ServerConfig& config);
// "127.0.0.1:8080" / "[::1]:8080" of a bound address.
std::string format_address(const sockaddr_storage& addr);

// Runs until SIGTERM or SIGINT (blocked in every thread and taken by
// sigwait), then lets in-flight responses finish for at most
// config.shutdown_grace_ms. Calls on_listening(address, workers) once every
// worker listens. Throws pagewire::Error for what prevents starting
// ("bind", "listen", "epoll_create1", ...).
void run_server(
    const ServerConfig& config, const ProtocolFactory& factory,
    const std::function<void(const std::string& address, unsigned workers)>& on_listening);

}  // namespace pagewire::net
