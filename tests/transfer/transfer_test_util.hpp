// Helpers for the transfer tests: a receiving child process on 127.0.0.1 or
// on a pipe that stores what it got in a file, and sparse test files.
#pragma once

#include <arpa/inet.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <climits>
#include <cstring>
#include <iostream>
#include <optional>
#include <pagewire/transfer.hpp>
#include <vector>

#include "test_util.hpp"

namespace transfer_test {

// Feature probes, liburing's way: a test of a method the running kernel (or
// the filesystem of the test's directory) refuses skips with the reason
// instead of failing. Each returns why the feature is missing, or nothing.
inline std::optional<std::string> io_uring_missing() {
    io_uring_params params{};
    const long fd = ::syscall(__NR_io_uring_setup, 2, &params);
    if (fd < 0) return std::string("io_uring_setup: ") + std::strerror(errno);
    ::close(static_cast<int>(fd));
    return std::nullopt;
}

inline std::optional<std::string> direct_io_missing(const std::string& dir) {
    if (auto why = io_uring_missing()) return why;
    const std::string path = dir + "/.pagewire-direct-probe";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
    const int err = errno;
    ::unlink(path.c_str());
    if (fd < 0) return "O_DIRECT on " + dir + ": " + std::strerror(err);
    ::close(fd);
    return std::nullopt;
}

inline std::optional<std::string> method_missing(pagewire::TransferMethod m,
                                                 const std::string& dir) {
    switch (m) {
        case pagewire::TransferMethod::IoUring:
            return io_uring_missing();
        case pagewire::TransferMethod::Direct:
            return direct_io_missing(dir);
        default:
            return std::nullopt;
    }
}

// `methods` less those this machine cannot run in `dir`, each dropped one
// named on stdout with its reason (the test goes on with the others).
inline std::vector<pagewire::TransferMethod> runnable(
    const std::vector<pagewire::TransferMethod>& methods, const std::string& dir) {
    std::vector<pagewire::TransferMethod> out;
    for (pagewire::TransferMethod m : methods) {
        if (auto why = method_missing(m, dir)) {
            std::cout << "[  SKIPPED ] method " << pagewire::method_name(m) << ": " << *why << "\n";
            continue;
        }
        out.push_back(m);
    }
    return out;
}

// The same for method names as the CLI takes them ("io-uring", "direct", ...).
inline std::vector<std::string> runnable(std::initializer_list<const char*> names,
                                         const std::string& dir) {
    std::vector<std::string> out;
    for (const char* name : names) {
        const std::optional<pagewire::TransferMethod> m = pagewire::parse_method(name);
        if (!m || !runnable({*m}, dir).empty()) out.emplace_back(name);
    }
    return out;
}

using testutil::die;

// A child process that accepts one TCP connection on 127.0.0.1 (or reads a
// pipe), writes everything it receives to `out_path`, and exits. With
// stop_after, it closes the connection after that many bytes (a receiver
// that leaves early); with slow, it sleeps between reads (the sender's
// socket buffer fills up).
class Receiver {
  public:
    static Receiver tcp(const std::string& out_path, std::size_t stop_after = SIZE_MAX,
                        bool slow = false) {
        int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (ls < 0) die("socket");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
        if (::listen(ls, 1) != 0) die("listen");
        socklen_t len = sizeof addr;
        if (::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len) != 0) die("getsockname");
        Receiver r;
        r.port_ = ntohs(addr.sin_port);
        r.pid_ = spawn([=] {
            int c = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) return 3;
            return drain(c, out_path, stop_after, slow);
        });
        ::close(ls);
        return r;
    }

    // Returns the write end of a pipe whose reader is the child.
    static Receiver pipe(const std::string& out_path) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) die("pipe2");
        Receiver r;
        r.pid_ = spawn([=] {
            ::close(fds[1]);
            return drain(fds[0], out_path, SIZE_MAX, false);
        });
        ::close(fds[0]);
        r.write_end_ = fds[1];
        return r;
    }

    Receiver(Receiver&& o) noexcept
        : pid_(std::exchange(o.pid_, -1)),
          port_(o.port_),
          write_end_(std::exchange(o.write_end_, -1)) {}
    ~Receiver() {
        if (write_end_ >= 0) ::close(write_end_);
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            testutil::wait_for(pid_);
        }
    }

    // A connected client socket (TCP).
    int connect() const {
        int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) die("socket");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<std::uint16_t>(port_));
        if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect");
        return s;
    }
    int port() const { return port_; }
    int write_end() const { return write_end_; }
    void close_write_end() {
        ::close(write_end_);
        write_end_ = -1;
    }
    // Waits for the child; returns its exit code (-1 if it did not exit).
    int wait() {
        int status = testutil::wait_for(pid_);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

  private:
    Receiver() = default;

    template <class F>
    static pid_t spawn(F child) {
        std::fflush(nullptr);
        pid_t pid = ::fork();
        if (pid < 0) die("fork");
        if (pid == 0) ::_exit(child());
        return pid;
    }

    static int drain(int fd, const std::string& out_path, std::size_t stop_after, bool slow) {
        int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0) return 4;
        static char buf[1 << 16];
        std::size_t got = 0;
        while (got < stop_after) {
            std::size_t want = std::min(sizeof buf, stop_after - got);
            ssize_t n = ::read(fd, buf, want);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return 5;
            if (n == 0) break;
            if (::write(out, buf, static_cast<std::size_t>(n)) != n) return 6;
            got += static_cast<std::size_t>(n);
            if (slow) ::usleep(2000);
        }
        if (stop_after != SIZE_MAX) {
            // Leave with unread data queued: the kernel answers with a reset.
            linger l{1, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        ::close(fd);
        ::close(out);
        return 0;
    }

    pid_t pid_ = -1;
    int port_ = 0;
    int write_end_ = -1;
};

}  // namespace transfer_test
