// The network core (src/net) with a protocol that is not HTTP: a line
// protocol of a few commands, served by a forked child on 127.0.0.1:0 and
// driven over real sockets. It checks what the Kafka broker will need of
// the core and HTTP does not use: pipelined frames answered in order around
// a deferred response, deferral ended by a timer or by Link::resume() from
// a watched eventfd, a file range sent by sendfile after header bytes, the
// frame-size and frame-time limits, and deferred responses answered at
// SIGTERM.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <pagewire/unique_fd.hpp>
#include <string>
#include <vector>

#include "net/protocol.hpp"
#include "net/server.hpp"
#include "socket_util.hpp"
#include "test_util.hpp"

namespace net = pagewire::net;
using socktest::connect_to;
using socktest::read_to_eof;
using socktest::send_all;

namespace {

constexpr std::size_t kMaxLine = 64;
constexpr unsigned kFrameTimeoutMs = 300;

class LineProtocol;

// "echo X" -> "X"; "wait MS" -> deferred, "timeout" after MS; "park" ->
// deferred without a timer until some connection sends "wake" (-> "ok",
// and every parked one gets "woken"); "file OFF LEN" -> "F LEN\n" then
// bytes [OFF, OFF+LEN) of the protocol's file.
class LineSession final : public net::Session {
  public:
    explicit LineSession(LineProtocol& protocol) : protocol_(protocol) {}
    void start(net::Link& link) override { link_ = &link; }
    net::Input on_input(const char* data, std::size_t size, bool) override;
    net::Response* on_input_limit(net::InputLimit why) override {
        reply(why == net::InputLimit::TooLarge ? "too large" : "slow");
        return &response_;
    }
    net::Response* on_resume(bool timed_out) override;
    void on_sent(net::Response&, std::uint64_t, bool) override {}
    void on_close() noexcept override;

    net::Link* link_ = nullptr;

  private:
    void reply(const std::string& line) {
        response_.clear();
        response_.data = line + "\n";
        response_.segments.push_back({false, 0, response_.data.size()});
    }

    LineProtocol& protocol_;
    net::Response response_;
};

class LineProtocol final : public net::Protocol {
  public:
    LineProtocol(net::WorkerContext& context, int file_fd) : file_fd_(file_fd) {
        wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        context.watch(wake_.get(), [this] {
            std::uint64_t n = 0;
            while (::read(wake_.get(), &n, sizeof n) > 0) {
            }
            std::vector<LineSession*> parked;
            parked.swap(parked_);
            for (LineSession* s : parked) s->link_->resume();
        });
        file_.fd.reset(::dup(file_fd_));
    }
    std::unique_ptr<net::Session> make_session() override {
        return std::make_unique<LineSession>(*this);
    }
    const net::Response* over_limit(std::string_view) override { return nullptr; }

    void park(LineSession* s) { parked_.push_back(s); }
    void unpark(LineSession* s) { std::erase(parked_, s); }
    void wake() {
        const std::uint64_t one = 1;
        // An eventfd write fails only when the counter would overflow: nothing to do then.
        [[maybe_unused]] const ssize_t n = ::write(wake_.get(), &one, sizeof one);
    }
    net::FileSource file_;

  private:
    int file_fd_;
    pagewire::UniqueFd wake_;
    std::vector<LineSession*> parked_;
};

net::Input LineSession::on_input(const char* data, std::size_t size, bool) {
    const std::string_view in(data, size);
    const std::size_t nl = in.find('\n');
    net::Input r;
    if (nl == std::string_view::npos) return r;
    const std::string line(in.substr(0, nl));
    r.consumed = nl + 1;
    r.kind = net::Input::Kind::Respond;
    r.response = &response_;
    if (line.rfind("echo ", 0) == 0) {
        reply(line.substr(5));
    } else if (line.rfind("wait ", 0) == 0) {
        r.kind = net::Input::Kind::Defer;
        r.defer_ms = static_cast<unsigned>(std::stoul(line.substr(5)));
    } else if (line == "park") {
        r.kind = net::Input::Kind::Defer;
        protocol_.park(this);
    } else if (line == "wake") {
        protocol_.wake();
        reply("ok");
    } else if (line.rfind("file ", 0) == 0) {
        unsigned long long off = 0;
        unsigned long long len = 0;
        std::sscanf(line.c_str() + 5, "%llu %llu", &off, &len);
        reply("F " + std::to_string(len));
        response_.source = &protocol_.file_;
        response_.segments.push_back({true, off, len});
    } else {
        reply("bad");
        r.kind = net::Input::Kind::Error;
        response_.close = true;
    }
    return r;
}

net::Response* LineSession::on_resume(bool timed_out) {
    reply(timed_out ? "timeout" : "woken");
    return &response_;
}

void LineSession::on_close() noexcept {
    protocol_.unpark(this);
    link_ = nullptr;
}

// The core with LineProtocol in a child process; killed (SIGTERM) at the end.
class CoreServer {
  public:
    explicit CoreServer(const std::string& file) {
        int out[2];
        if (::pipe(out) != 0) testutil::die("pipe");
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) testutil::die("fork");
        if (pid_ == 0) {
            ::close(out[0]);
            int code = 0;
            try {
                const int file_fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
                net::ServerConfig config;
                config.name = "linetest";
                net::parse_listen_address("127.0.0.1:0", config);
                config.workers = 2;
                config.max_frame_bytes = kMaxLine;
                config.frame_timeout_ms = kFrameTimeoutMs;
                config.shutdown_grace_ms = 2000;
                net::run_server(
                    config,
                    [&](net::WorkerContext& context) {
                        return std::make_unique<LineProtocol>(context, file_fd);
                    },
                    [&](const std::string& address, unsigned) {
                        const std::string line = address + "\n";
                        // The test reads it; a lost line fails the test there.
                        [[maybe_unused]] const ssize_t n =
                            ::write(out[1], line.data(), line.size());
                    });
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child: %s\n", e.what());
                code = 1;
            }
            ::_exit(code);
        }
        ::close(out[1]);
        const std::string line = socktest::read_first_line(
            out[0], std::chrono::steady_clock::now() + std::chrono::seconds(10));
        ::close(out[0]);
        const std::size_t colon = line.rfind(':');
        if (colon != std::string::npos) port_ = std::atoi(line.c_str() + colon + 1);
    }
    ~CoreServer() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    int port() const { return port_; }
    void terminate() { ::kill(pid_, SIGTERM); }
    // The exit status, once it has exited.
    int wait() {
        const int status = testutil::wait_for(pid_);
        pid_ = -1;
        return status;
    }

  private:
    pid_t pid_ = -1;
    int port_ = 0;
};

// Reads until `want` bytes arrived (or EOF / the receive timeout).
std::string read_n(int fd, std::size_t want) {
    std::string s;
    char buf[4096];
    while (s.size() < want) {
        const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, want - s.size()), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        s.append(buf, static_cast<std::size_t>(n));
    }
    return s;
}

class NetCore : public ::testing::Test {
  protected:
    void SetUp() override {
        testutil::write_file(dir_.file("data"), "0123456789abcdef");
        server_ = std::make_unique<CoreServer>(dir_.file("data"));
        ASSERT_GT(server_->port(), 0) << "no address line from the server";
    }
    testutil::TempDir dir_;
    std::unique_ptr<CoreServer> server_;
};

}  // namespace

TEST_F(NetCore, PipelinedFramesAnsweredInOrderAroundATimedDeferral) {
    pagewire::UniqueFd c(connect_to(server_->port()));
    const auto t0 = std::chrono::steady_clock::now();
    send_all(c.get(), "echo a\nwait 150\necho b\n");
    EXPECT_EQ(read_n(c.get(), 12), "a\ntimeout\nb\n");
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(140));
}

TEST_F(NetCore, ResumeFromAWatchedEventfdEndsADeferral) {
    pagewire::UniqueFd parked(connect_to(server_->port()));
    send_all(parked.get(), "park\necho after\n");
    // Two workers: "wake" may land on either; the eventfd is per worker, so
    // keep waking until the parked connection's worker takes one.
    std::string got;
    for (int i = 0; i < 50 && got.empty(); ++i) {
        pagewire::UniqueFd waker(connect_to(server_->port()));
        send_all(waker.get(), "wake\n");
        EXPECT_EQ(read_n(waker.get(), 3), "ok\n");
        timeval tv{0, 100'000};
        ::setsockopt(parked.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        got = read_n(parked.get(), 12);
    }
    timeval tv{5, 0};
    ::setsockopt(parked.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (!got.empty() && got.size() < 12) got += read_n(parked.get(), 12 - got.size());
    EXPECT_EQ(got, "woken\nafter\n");
}

TEST_F(NetCore, HeaderBytesThenAFileRangeBySendfile) {
    pagewire::UniqueFd c(connect_to(server_->port()));
    send_all(c.get(), "file 3 5\nfile 10 6\n");
    EXPECT_EQ(read_n(c.get(), 4 + 5 + 4 + 6), "F 5\n34567F 6\nabcdef");
}

TEST_F(NetCore, FrameOverTheSizeLimitIsAnsweredThenClosed) {
    pagewire::UniqueFd c(connect_to(server_->port()));
    send_all(c.get(), std::string(kMaxLine + 10, 'x'));
    EXPECT_EQ(read_to_eof(c.get()), "too large\n");
}

TEST_F(NetCore, FrameOverTheTimeLimitIsAnsweredThenClosed) {
    pagewire::UniqueFd c(connect_to(server_->port()));
    const auto t0 = std::chrono::steady_clock::now();
    send_all(c.get(), "ech");
    EXPECT_EQ(read_to_eof(c.get()), "slow\n");
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(kFrameTimeoutMs));
}

TEST_F(NetCore, SigtermAnswersDeferredResponsesAndExitsCleanly) {
    pagewire::UniqueFd c(connect_to(server_->port()));
    // The echo's answer proves the park is in: the worker takes the next
    // frame right after sending it, before it can see the stop.
    send_all(c.get(), "echo in\npark\necho never-read\n");
    ASSERT_EQ(read_n(c.get(), 3), "in\n");
    const auto t0 = std::chrono::steady_clock::now();
    server_->terminate();
    // Answered as timed out; the pipelined frame after it is not served
    // (a stopping server closes after the response under way).
    EXPECT_EQ(read_to_eof(c.get()), "timeout\n");
    c.reset();
    const int status = server_->wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
    // Well inside the 2 s grace: nothing was left to wait for.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
}
