// HOST:PORT parsing, resolution and connect: see pagewire/address.hpp.
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <pagewire/address.hpp>
#include <pagewire/error.hpp>

#include "sys.hpp"

namespace pagewire {

std::optional<HostPort> split_host_port(std::string_view text, std::string* reason) {
    auto fail = [&](const char* why) -> std::optional<HostPort> {
        if (reason != nullptr) *reason = why;
        return std::nullopt;
    };
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos) return fail("'[' without ']'");
        host = text.substr(1, close - 1);
        if (host.empty()) return fail("empty IPv6 address");
        if (close + 1 >= text.size() || text[close + 1] != ':') return fail("no port");
        port = text.substr(close + 2);
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) return fail("no port (expected HOST:PORT)");
        host = text.substr(0, colon);
        if (host.find(':') != std::string_view::npos)
            return fail("an IPv6 address needs brackets: [ADDRESS]:PORT");
        port = text.substr(colon + 1);
    }
    if (port.empty()) return fail("no port");
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (end != port.data() + port.size() || port.front() == '+' || port.front() == '-')
        return fail("the port is not a number");
    if (ec != std::errc() || value > 65535) return fail("the port is out of range (0..65535)");
    return HostPort{std::string(host), static_cast<std::uint16_t>(value)};
}

std::string join_host_port(std::string_view host, std::uint16_t port) {
    std::string text;
    const bool v6 = host.find(':') != std::string_view::npos;
    if (v6) text += '[';
    text += host;
    if (v6) text += ']';
    text += ':';
    text += std::to_string(port);
    return text;
}

std::uint16_t SocketAddress::port() const {
    if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
    if (family() == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
    return 0;
}

std::string SocketAddress::text() const {
    char host[INET6_ADDRSTRLEN] = "?";
    if (family() == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, host,
                    sizeof host);
    } else if (family() == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, host,
                    sizeof host);
    }
    return join_host_port(host, port());
}

std::vector<SocketAddress> resolve_tcp(const HostPort& where, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    const std::string port = std::to_string(where.port);
    addrinfo* found = nullptr;
    const char* host = where.host.empty() ? nullptr : where.host.c_str();
    if (const int r = ::getaddrinfo(host, port.c_str(), &hints, &found); r != 0) {
        const int code = r == EAI_SYSTEM ? errno : (r == EAI_NONAME ? ENOENT : EHOSTUNREACH);
        throw_error("resolve", where.host.empty() ? std::string("*") : where.host, code,
                    r == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(r));
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(found, ::freeaddrinfo);
    std::vector<SocketAddress> out;
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
        if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
        SocketAddress s;
        std::memcpy(&s.storage, a->ai_addr, a->ai_addrlen);
        s.length = a->ai_addrlen;
        out.push_back(s);
    }
    if (out.empty()) throw_error("resolve", where.host, ENOENT, "no TCP address");
    return out;
}

namespace {

SocketAddress socket_name(int fd, bool peer) {
    SocketAddress s;
    s.length = sizeof s.storage;
    auto* addr = reinterpret_cast<sockaddr*>(&s.storage);
    const int r = peer ? ::getpeername(fd, addr, &s.length) : ::getsockname(fd, addr, &s.length);
    if (r != 0) throw_error(peer ? "getpeername" : "getsockname", "fd " + std::to_string(fd));
    return s;
}

}  // namespace

SocketAddress local_address(int fd) {
    return socket_name(fd, false);
}
SocketAddress peer_address(int fd) {
    return socket_name(fd, true);
}

UniqueFd connect_tcp(const HostPort& where) {
    const std::string name = join_host_port(where.host, where.port);
    int last_error = ECONNREFUSED;
    for (const SocketAddress& a : resolve_tcp(where, false)) {
        UniqueFd s(::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!s) {
            last_error = errno;
            continue;
        }
        if (sys::retry_eintr([&] { return ::connect(s.get(), a.get(), a.length); }) == 0) return s;
        last_error = errno;
    }
    throw_error("connect", name, last_error);
}

}  // namespace pagewire
