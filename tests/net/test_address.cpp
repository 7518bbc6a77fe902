// pagewire/address.hpp: the one HOST:PORT parser, resolution and connect.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pagewire/address.hpp>
#include <pagewire/error.hpp>
#include <string>

#include "net/server.hpp"

namespace {

using pagewire::HostPort;
using pagewire::split_host_port;

TEST(Address, SplitsHostPortAndIpv6InBrackets) {
    auto a = split_host_port("127.0.0.1:8080");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "127.0.0.1");
    EXPECT_EQ(a->port, 8080);
    a = split_host_port("[::1]:0");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "::1");
    EXPECT_EQ(a->port, 0);
    a = split_host_port("localhost:65535");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "localhost");
    EXPECT_EQ(a->port, 65535);
    a = split_host_port(":9092");  // every address, for a listener
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "");
    EXPECT_EQ(pagewire::join_host_port("::1", 80), "[::1]:80");
    EXPECT_EQ(pagewire::join_host_port("example.org", 80), "example.org:80");
}

TEST(Address, RefusesMalformedTextWithAReason) {
    for (const char* text :
         {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:99999999999", "127.0.0.1:-1",
          "127.0.0.1:+1", "127.0.0.1:8x", "::1:80", "[::1]80", "[::1", "[]:80"}) {
        std::string reason;
        EXPECT_FALSE(split_host_port(text, &reason)) << text;
        EXPECT_FALSE(reason.empty()) << text;
    }
    std::string reason;
    split_host_port("h:70000", &reason);
    EXPECT_NE(reason.find("out of range"), std::string::npos) << reason;
    split_host_port("::1:80", &reason);
    EXPECT_NE(reason.find("brackets"), std::string::npos) << reason;
}

TEST(Address, ResolvesNamesAndNumbers) {
    auto v4 = pagewire::resolve_tcp({"127.0.0.1", 80}, false);
    ASSERT_EQ(v4.size(), 1u);
    EXPECT_EQ(v4[0].family(), AF_INET);
    EXPECT_EQ(v4[0].text(), "127.0.0.1:80");
    auto named = pagewire::resolve_tcp({"localhost", 81}, false);
    ASSERT_FALSE(named.empty());
    for (const auto& a : named) EXPECT_EQ(a.port(), 81);
    try {
        pagewire::resolve_tcp({"no-such-host.invalid", 80}, false);
        ADD_FAILURE() << "resolved no-such-host.invalid";
    } catch (const pagewire::Error& e) {
        EXPECT_EQ(e.operation(), "resolve");
        EXPECT_EQ(e.path(), "no-such-host.invalid");
    }
}

TEST(Address, ConnectTriesEachAddressOfAName) {
    // Listening on 127.0.0.1 only: "localhost" may resolve to ::1 first, which
    // refuses; connect_tcp must go on to 127.0.0.1.
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    const std::uint16_t port = pagewire::local_address(listener).port();
    pagewire::UniqueFd s = pagewire::connect_tcp({"localhost", port});
    EXPECT_TRUE(s);
    EXPECT_EQ(pagewire::peer_address(s.get()).text(), "127.0.0.1:" + std::to_string(port));
    ::close(listener);
    try {
        pagewire::connect_tcp({"127.0.0.1", port});  // nobody listens now
        ADD_FAILURE() << "connected to a closed port";
    } catch (const pagewire::Error& e) {
        EXPECT_EQ(e.operation(), "connect");
        EXPECT_EQ(e.path(), "127.0.0.1:" + std::to_string(port));
        EXPECT_EQ(e.error_number(), ECONNREFUSED);
    }
}

TEST(Address, ServerListenAcceptsNamesAndRefusesMalformedAsUsage) {
    pagewire::net::ServerConfig config;
    pagewire::net::parse_listen_address("localhost:0", config);
    EXPECT_TRUE(config.addr.ss_family == AF_INET || config.addr.ss_family == AF_INET6);
    try {
        pagewire::net::parse_listen_address("nowhere", config);
        ADD_FAILURE() << "accepted 'nowhere'";
    } catch (const pagewire::Error& e) {
        EXPECT_EQ(e.operation(), "--listen");
        EXPECT_EQ(e.error_number(), EINVAL);
    }
}

}  // namespace
