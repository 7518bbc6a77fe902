// Helpers for the pagewire serve integration tests: the server as a child
// process (port read from its startup line, always killed at the end) and a
// small raw HTTP/1.1 client over a blocking socket with a receive timeout.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "socket_util.hpp"
#include "test_util.hpp"

namespace servetest {

using socktest::connect_to;
using socktest::read_first_line;
using socktest::read_to_eof;
using socktest::send_all;
using testutil::die;

// `pagewire serve DIR --listen 127.0.0.1:0 ARGS...` as a child process.
class Server {
  public:
    Server(const std::string& dir, std::vector<std::string> args = {},
           const std::string& listen = "127.0.0.1:0") {
        std::vector<std::string> argv = {PAGEWIRE_CLI, "serve", dir, "--listen", listen};
        argv.insert(argv.end(), args.begin(), args.end());
        int out[2];
        int err[2];
        if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) die("pipe2");
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) die("fork");
        if (pid_ == 0) {
            ::dup2(out[1], STDOUT_FILENO);
            ::dup2(err[1], STDERR_FILENO);
            std::vector<char*> a;
            for (auto& s : argv) a.push_back(s.data());
            a.push_back(nullptr);
            ::execv(a[0], a.data());
            ::_exit(127);
        }
        ::close(out[1]);
        ::close(err[1]);
        out_ = out[0];
        err_ = err[0];
        // The startup line, within 20 s (a loaded machine).
        const std::string line =
            read_first_line(out_, std::chrono::steady_clock::now() + std::chrono::seconds(20));
        startup_ = line;
        // "... listening on http://HOST:PORT/ (...)": the port ends the authority.
        const std::size_t scheme = line.find("http://");
        const std::size_t slash =
            scheme == std::string::npos ? std::string::npos : line.find('/', scheme + 7);
        const std::size_t colon =
            slash == std::string::npos ? std::string::npos : line.rfind(':', slash);
        if (colon == std::string::npos || colon < scheme + 7) {
            throw std::runtime_error("no startup line: '" + line + "' stderr: " + drain_stderr());
        }
        port_ = std::stoi(line.substr(colon + 1, slash - colon - 1));
    }
    ~Server() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            testutil::wait_for(pid_);
        }
        ::close(out_);
        ::close(err_);
    }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    const std::string& startup_line() const { return startup_; }
    std::string url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }
    // Sends `sig` and waits (SIGKILL after timeout_ms); the wait status.
    int stop(int sig = SIGTERM, int timeout_ms = 15000) {
        ::kill(pid_, sig);
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        int status = 0;
        for (;;) {
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) break;
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                status = testutil::wait_for(pid_);
                status = -1;
                break;
            }
            ::usleep(10000);
        }
        pid_ = -1;
        return status;
    }
    std::string drain_stderr() {
        std::string s;
        char buf[4096];
        pollfd p{err_, POLLIN, 0};
        while (::poll(&p, 1, 100) > 0) {
            const ssize_t n = ::read(err_, buf, sizeof buf);
            if (n <= 0) break;
            s.append(buf, static_cast<std::size_t>(n));
        }
        return s;
    }

  private:
    pid_t pid_ = -1;
    int out_ = -1;
    int err_ = -1;
    int port_ = 0;
    std::string startup_;
};

struct HttpResponse {
    int status = 0;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
    bool has(const std::string& name) const { return headers.count(name) != 0; }
    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? "" : it->second;
    }
};

// Reads one response from fd; `pending` keeps bytes read past it (pipelining).
// No body for HEAD, 304 (and 1xx); otherwise Content-Length bytes.
inline std::optional<HttpResponse> read_response(int fd, std::string& pending, bool head = false) {
    char buf[65536];
    auto fill = [&]() {
        for (;;) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            pending.append(buf, static_cast<std::size_t>(n));
            return true;
        }
    };
    std::size_t end;
    while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
        if (!fill()) return std::nullopt;
    }
    HttpResponse r;
    const std::string block = pending.substr(0, end + 2);
    pending.erase(0, end + 4);
    if (block.compare(0, 9, "HTTP/1.1 ") != 0) return std::nullopt;
    r.status = std::stoi(block.substr(9, 3));
    std::size_t pos = block.find("\r\n") + 2;
    while (pos < block.size()) {
        const std::size_t eol = block.find("\r\n", pos);
        const std::string line = block.substr(pos, eol - pos);
        const std::size_t colon = line.find(':');
        std::string name = line.substr(0, colon);
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value[0] == ' ') value.erase(0, 1);
        r.headers[name] = value;
        pos = eol + 2;
    }
    if (head || r.status == 304) return r;
    const std::uint64_t length = std::stoull(r.header("content-length"));
    while (pending.size() < length) {
        if (!fill()) return std::nullopt;
    }
    r.body = pending.substr(0, length);
    pending.erase(0, length);
    return r;
}

// One request on a fresh connection.
inline std::optional<HttpResponse> request(int port, const std::string& text, bool head = false) {
    const int fd = connect_to(port);
    send_all(fd, text);
    std::string pending;
    auto r = read_response(fd, pending, head);
    ::close(fd);
    return r;
}

// Whether the server closed the connection (EOF or reset) within the timeout.
inline bool closed_by_peer(int fd) {
    char c;
    for (;;) {
        const ssize_t n = ::recv(fd, &c, 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) return true;
        if (n < 0) return errno == ECONNRESET;
        // More data: keep reading (e.g. the rest of an error page).
    }
}

}  // namespace servetest
