// pagewire::HostPort — the one parser of "HOST:PORT" for every command and
// server (send, recv, serve, the broker): HOST an IPv4 address, a bracketed
// IPv6 address ("[::1]:8080") or a name, resolved with getaddrinfo; PORT a
// decimal number 0..65535. Also the socket addresses it resolves to, their
// text form, and a TCP connect that tries each address in turn.
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <pagewire/config.hpp>
#include <pagewire/unique_fd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace pagewire {

struct HostPort {
    std::string host;  // without the brackets of an IPv6 address
    std::uint16_t port = 0;
};

// Splits "HOST:PORT" / "[IPv6]:PORT". On a malformed text returns nullopt and,
// if `reason` is given, says what is wrong in a few words ("no port",
// "port 99999 is out of range", ...). Nothing is resolved here.
std::optional<HostPort> split_host_port(std::string_view text, std::string* reason = nullptr);

// Formats HOST and PORT back as split_host_port reads them ("[::1]:80").
std::string join_host_port(std::string_view host, std::uint16_t port);

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;

    int family() const { return storage.ss_family; }
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    std::uint16_t port() const;
    std::string text() const;  // "127.0.0.1:8080" / "[::1]:8080"
};

// The TCP addresses of `where`, in getaddrinfo's order; `passive` for a socket
// to bind (an empty host is then every address). Numeric hosts are never
// looked up. Throws pagewire::Error (operation "resolve", the host, the
// resolver's reason) when there is none.
std::vector<SocketAddress> resolve_tcp(const HostPort& where, bool passive);

// The address of a socket (getsockname) or its peer (getpeername).
SocketAddress local_address(int fd);
SocketAddress peer_address(int fd);

// A connected, blocking TCP socket (close-on-exec) to the first address of
// `where` that accepts. Throws pagewire::Error ("connect", HOST:PORT, the last
// address's reason).
UniqueFd connect_tcp(const HostPort& where);

}  // namespace pagewire
