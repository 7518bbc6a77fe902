// Hostile input against `pagewire serve` (issue 6), checked against
// docs/SERVE-CONTRACT.md: path traversal in every spelling, dotfiles,
// symlinks leaving the root, malformed request lines, size limits, ranges,
// slow and half-open connections, abrupt disconnects, the connection limit
// and pipelining. The server runs as a real child process (the pagewire
// command this tree built) on 127.0.0.1 with a port it picks itself; the
// tests speak raw bytes over real sockets. After every hostile exchange a
// fresh connection must still get a normal response.
//
// This file builds its requests with `"literal" + <temporary std::string>` throughout,
// which GCC 12 at -O3 flags with a false -Wrestrict (GCC bug 105329, fixed in 13).
// Silenced for g++ 12 only, before any include: the warning is reported inside
// libstdc++'s char_traits.h.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "../serve/serve_test_util.hpp"
#include "../test_util.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testutil::contains;

constexpr auto kReadTimeout = 5s;    // one response, on a quiet machine milliseconds
constexpr auto kCloseTimeout = 3s;   // until the server closes after 400/414/431/503
constexpr auto kStartTimeout = 15s;  // until the listening line
constexpr auto kStopTimeout = 12s;   // SIGTERM: in-flight responses finish within 10 s
constexpr std::size_t kRangeFileBytes = 1000;
constexpr std::size_t kBigFileBytes = 64u << 20;  // for abrupt disconnects and stalled readers

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// ---- a server process ------------------------------------------------------

// `pagewire serve ROOT --listen 127.0.0.1:0 ARGS...` as a child, optionally
// as another user. The constructor waits for the listening line and takes
// the port from it; the destructor stops the server (SIGTERM, SIGKILL after
// kStopTimeout) and reaps it. The child gets SIGKILL if the test process dies.
class Server {
  public:
    Server(const std::string& root, std::vector<std::string> args, const std::string& stderr_path,
           std::optional<testutil::User> as_user = std::nullopt)
        : stderr_path_(stderr_path) {
        std::vector<std::string> argv = {PAGEWIRE_CLI, "serve", root, "--listen", "127.0.0.1:0"};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        int out[2];
        if (::pipe2(out, O_CLOEXEC) != 0) testutil::die("pipe2");
        const int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (err < 0) testutil::die("open " + stderr_path);
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) testutil::die("fork");
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            ::dup2(out[1], STDOUT_FILENO);
            ::dup2(err, STDERR_FILENO);
            if (as_user && !testutil::become(*as_user)) ::_exit(126);
            ::execv(cargv[0], cargv.data());
            ::_exit(127);
        }
        ::close(out[1]);
        ::close(err);
        out_ = out[0];
        const std::string line = servetest::read_first_line(out_, Clock::now() + kStartTimeout);
        startup_line_ = line.substr(0, line.find('\n'));
        const std::string prefix = "pagewire serve: listening on http://127.0.0.1:";
        if (startup_line_.rfind(prefix, 0) == 0)
            port_ = std::atoi(startup_line_.c_str() + prefix.size());
        if (port_ <= 0) {
            stop();
            throw std::runtime_error("pagewire serve did not start: stdout \"" + startup_line_ +
                                     "\", " + status_text_ +
                                     ", stderr: " + testutil::read_file(stderr_path_));
        }
    }
    ~Server() { stop(); }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    const std::string& startup_line() const { return startup_line_; }
    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            reaped(status);
            return false;
        }
        return true;
    }
    // SIGTERM, then SIGKILL after kStopTimeout; the wait status (or -1 if already reaped).
    int stop() {
        if (!running()) return last_status_;
        ::kill(pid_, SIGTERM);
        const auto deadline = Clock::now() + kStopTimeout;
        while (running() && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
        if (running()) {
            ::kill(pid_, SIGKILL);
            reaped(testutil::wait_for(pid_));
        }
        if (out_ >= 0) {
            ::close(out_);
            out_ = -1;
        }
        return last_status_;
    }
    std::string stderr_text() const { return testutil::read_file(stderr_path_); }

    // A line of /proc/PID/status, e.g. "VmRSS:" in kB; -1 if missing.
    long status_kb(const char* key) const {
        const std::string s = testutil::read_file("/proc/" + std::to_string(pid_) + "/status");
        const auto at = s.find(key);
        return at == std::string::npos
                   ? -1
                   : std::strtol(s.c_str() + at + std::strlen(key), nullptr, 10);
    }
    std::size_t open_fds() const {
        std::size_t n = 0;
        for ([[maybe_unused]] const auto& e :
             std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd")) {
            ++n;
        }
        return n;
    }

  private:
    void reaped(int status) {
        last_status_ = status;
        status_text_ = testutil::describe_status(status);
        pid_ = -1;
    }

    std::string stderr_path_;
    pid_t pid_ = -1;  // > 0 until reaped
    int out_ = -1;    // the server's stdout, kept open so a later write cannot SIGPIPE it
    int port_ = 0;
    int last_status_ = -1;
    std::string status_text_ = "running";
    std::string startup_line_;
};

// ---- raw HTTP over a socket ------------------------------------------------

struct Response {
    int status = 0;
    std::string status_line;
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;
    bool has_length = false;

    const std::string* find(std::string_view name) const {
        for (const auto& [k, v] : headers) {
            if (k == name) return &v;
        }
        return nullptr;
    }
    std::string header(std::string_view name) const {
        const std::string* v = find(name);
        return v == nullptr ? std::string() : *v;
    }
};

std::ostream& operator<<(std::ostream& os, const Response& r) {
    os << r.status_line << " [";
    for (const auto& [k, v] : r.headers) os << k << ": " << v << "; ";
    return os << "] body " << r.body.size() << " bytes";
}

// One client connection. Reads keep what arrived past the current response
// (pipelined responses) in buffer_.
class Conn {
  public:
    explicit Conn(int port, int rcvbuf = 0) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) testutil::die("socket");
        if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            testutil::die("connect 127.0.0.1:" + std::to_string(port));
        }
    }
    ~Conn() { close(); }
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;
    Conn(Conn&& o) noexcept : fd_(std::exchange(o.fd_, -1)), buffer_(std::move(o.buffer_)) {}

    int fd() const { return fd_; }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    // Close with RST instead of FIN.
    void abort() {
        const linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close();
    }

    // False when the server has closed or reset the connection.
    bool send(std::string_view data) {
        std::size_t done = 0;
        while (done < data.size()) {
            const ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            done += static_cast<std::size_t>(n);
        }
        return true;
    }

    // Reads more bytes into buffer_ within the deadline; 0 on EOF, -1 on
    // timeout or error (errno kept: ECONNRESET, EAGAIN for timeout).
    ssize_t fill(Clock::time_point deadline) {
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) {
                errno = EAGAIN;
                return -1;
            }
            pollfd p{fd_, POLLIN, 0};
            const int r = ::poll(&p, 1, static_cast<int>(left.count()));
            if (r < 0 && errno == EINTR) continue;
            if (r == 0) {
                errno = EAGAIN;
                return -1;
            }
            char buf[65536];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n > 0) buffer_.append(buf, static_cast<std::size_t>(n));
            if (n == 0) errno = 0;  // end of stream, not an error
            return n;
        }
    }

    // One response; for a HEAD request (or 304) there is no body. nullopt
    // with *why set when the connection ends or the time runs out first.
    std::optional<Response> read_response(bool head = false,
                                          std::chrono::milliseconds timeout = kReadTimeout,
                                          std::string* why = nullptr) {
        const auto deadline = Clock::now() + timeout;
        std::string ignored;
        std::string& reason = why != nullptr ? *why : ignored;
        std::size_t end;
        while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
            if (fill(deadline) <= 0) {
                reason = describe_end("before the end of the response headers");
                return std::nullopt;
            }
        }
        Response r;
        const std::string head_text = buffer_.substr(0, end);
        buffer_.erase(0, end + 4);
        std::size_t pos = head_text.find("\r\n");
        r.status_line = head_text.substr(0, pos);
        if (r.status_line.rfind("HTTP/1.", 0) != 0 || r.status_line.size() < 12) {
            reason = "bad status line: " + r.status_line;
            return std::nullopt;
        }
        r.status = std::atoi(r.status_line.c_str() + 9);
        while (pos != std::string::npos) {
            const std::size_t start = pos + 2;
            pos = head_text.find("\r\n", start);
            const std::string line =
                head_text.substr(start, pos == std::string::npos ? std::string::npos : pos - start);
            const auto colon = line.find(':');
            if (colon == std::string::npos) continue;
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(" \t"));
            while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
                value.pop_back();
            r.headers.emplace_back(lower(line.substr(0, colon)), value);
        }
        const std::string* length = r.find("content-length");
        r.has_length = length != nullptr;
        const bool no_body =
            head || r.status == 304 || r.status == 204 || (r.status >= 100 && r.status < 200);
        if (no_body) return r;
        if (length != nullptr) {
            const std::size_t n = std::strtoull(length->c_str(), nullptr, 10);
            while (buffer_.size() < n) {
                if (fill(deadline) <= 0) {
                    reason = describe_end("after " + std::to_string(buffer_.size()) + " of " +
                                          std::to_string(n) + " body bytes");
                    return std::nullopt;
                }
            }
            r.body = buffer_.substr(0, n);
            buffer_.erase(0, n);
            return r;
        }
        // No length: the body runs to the end of the connection (the
        // contract forbids it; has_length tells the caller).
        for (;;) {
            const ssize_t n = fill(deadline);
            if (n == 0) break;
            if (n < 0) {
                reason = describe_end("in a body without Content-Length");
                return std::nullopt;
            }
        }
        r.body = std::move(buffer_);
        buffer_.clear();
        return r;
    }

    // Whether the server closes (EOF or reset) within timeout without
    // sending anything more; what it did send instead goes to *extra.
    bool closed_within(std::chrono::milliseconds timeout, std::string* extra = nullptr) {
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            const ssize_t n = fill(deadline);
            if (n == 0 || (n < 0 && errno != EAGAIN)) break;
            if (n < 0) return false;  // timeout: still open
        }
        if (extra != nullptr) *extra = buffer_;
        return buffer_.empty();
    }

    std::string& buffer() { return buffer_; }

  private:
    std::string describe_end(const std::string& where) const {
        const char* what = errno == EAGAIN ? "timed out"
                           : errno == 0    ? "connection closed"
                                           : std::strerror(errno);
        return std::string(what) + " " + where + " (" + std::to_string(buffer_.size()) +
               " bytes buffered)";
    }

    int fd_ = -1;
    std::string buffer_;  // received bytes not yet consumed by read_response
};

// The checks every response gets (the contract's "every response has").
void expect_common_headers(const Response& r) {
    EXPECT_EQ(r.header("server"), "pagewire") << r;
    EXPECT_NE(r.find("date"), nullptr) << r;
    if (r.status != 304) {
        EXPECT_TRUE(r.has_length) << "no Content-Length: " << r;
    }
}

std::string get(std::string_view target, std::string_view extra_headers = {}) {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
           std::string(extra_headers) + "\r\n";
}

// ---- the fixture: a root tree and a server on it ---------------------------

constexpr std::string_view kSecret = "S3CR3T-0f5c2e9a-never-served";
constexpr std::string_view kIndexBody = "<html><body>pagewire hostile index</body></html>\n";
constexpr std::string_view kHelloBody = "hello from pagewire serve\n";
constexpr std::string_view kHiddenBody = "dotfile content\n";

class ServeHostile : public ::testing::Test {
  protected:
    // tmp/secret (outside the root) and tmp/www/:
    //   index.html a.txt range.bin n0.txt..n9.txt .hidden sub/file.txt sub/.git/config
    //   a/ (empty directory) link_in -> a.txt  link_out -> ../secret  link_up -> ..
    void SetUp() override {
        root_ = tmp_.path() + "/www";
        std::filesystem::create_directories(root_ + "/sub/.git");
        std::filesystem::create_directories(root_ + "/a");
        testutil::write_file(tmp_.file("secret"), kSecret);
        testutil::write_file(root_ + "/index.html", kIndexBody);
        testutil::write_file(root_ + "/a.txt", kHelloBody);
        range_ = testutil::random_bytes(kRangeFileBytes, 77);
        testutil::write_file(root_ + "/range.bin", range_);
        for (int i = 0; i < 10; ++i) {
            testutil::write_file(root_ + "/n" + std::to_string(i) + ".txt",
                                 "file number " + std::to_string(i) + "\n" +
                                     std::string(static_cast<std::size_t>(i) * 37, 'x'));
        }
        testutil::write_file(root_ + "/.hidden", kHiddenBody);
        testutil::write_file(root_ + "/sub/file.txt", "sub file\n");
        testutil::write_file(root_ + "/sub/.git/config", "[core]\n");
        std::filesystem::create_symlink("a.txt", root_ + "/link_in");
        std::filesystem::create_symlink("../secret", root_ + "/link_out");
        std::filesystem::create_symlink("..", root_ + "/link_up");
    }

    std::unique_ptr<Server> start(std::vector<std::string> args = {},
                                  std::optional<testutil::User> as_user = std::nullopt) {
        return std::make_unique<Server>(
            root_, std::move(args),
            tmp_.file("serve-stderr-" + std::to_string(servers_++) + ".log"), as_user);
    }

    // A normal request on a new connection is answered, byte-exact.
    void expect_alive(Server& server, const std::string& after) {
        ASSERT_TRUE(server.running())
            << "server died after " << after << "; stderr: " << server.stderr_text();
        Conn c(server.port());
        ASSERT_TRUE(c.send(get("/a.txt"))) << "after " << after;
        std::string why;
        auto r = c.read_response(false, kReadTimeout, &why);
        ASSERT_TRUE(r.has_value()) << "no normal response after " << after << ": " << why;
        EXPECT_EQ(r->status, 200) << "after " << after << ": " << *r;
        EXPECT_EQ(r->body, kHelloBody) << "after " << after;
    }

    // Sends `request` on a new connection and expects one of `statuses`;
    // for 400/408/414/431/503 also Connection: close and the close itself.
    // Never the secret's bytes. Returns the response.
    Response expect_status(Server& server, const std::string& request,
                           std::initializer_list<int> statuses, const std::string& name) {
        Conn c(server.port());
        c.send(request);
        std::string why;
        auto r = c.read_response(request.rfind("HEAD", 0) == 0, kReadTimeout, &why);
        EXPECT_TRUE(r.has_value()) << name << ": no response: " << why;
        if (!r) return {};
        expect_common_headers(*r);
        const bool expected =
            std::find(statuses.begin(), statuses.end(), r->status) != statuses.end();
        EXPECT_TRUE(expected) << name << ": unexpected status; " << *r << "\nbody: "
                              << (r->status >= 300 ? r->body.substr(0, 300) : "(file bytes)");
        EXPECT_FALSE(contains(r->body, kSecret)) << name << " served the secret";
        EXPECT_FALSE(contains(r->body, "root:x:0:0")) << name << " served /etc/passwd";
        const int s = r->status;
        if (s == 400 || s == 408 || s == 414 || s == 431 || s == 503) {
            EXPECT_EQ(lower(r->header("connection")), "close") << name << ": " << *r;
            std::string extra;
            EXPECT_TRUE(c.closed_within(kCloseTimeout, &extra))
                << name << ": connection not closed after " << s
                << "; extra bytes: " << extra.substr(0, 200);
        }
        return *r;
    }

    testutil::TempDir tmp_;
    std::string root_;
    std::string range_;  // range.bin's content
    int servers_ = 0;
};

// ---- traversal, symlinks, dotfiles, encoding -------------------------------

TEST_F(ServeHostile, TraversalIsRejectedInEverySpelling) {
    auto server = start({"--workers", "2"});
    // A path escaping the root with `..`, however spelled: 400.
    for (const char* target :
         {"/../secret", "/a/../../secret", "/%2e%2e/secret", "/%2E%2E%2Fsecret", "/..%2fsecret",
          "/a/%2e%2e/%2e%2e/secret", "/a/..%2F..%2Fsecret", "/./../secret", "/a/./../../secret",
          "/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd"}) {
        expect_status(*server, get(target), {400}, target);
        expect_alive(*server, target);
    }
    // `..` that stays inside the root is fine after normalization.
    {
        Response r = expect_status(*server, get("/a/../a.txt"), {200}, "/a/../a.txt");
        EXPECT_EQ(r.body, kHelloBody);
        r = expect_status(*server, get("//a.txt"), {200}, "//a.txt");
        EXPECT_EQ(r.body, kHelloBody);
    }
    // Backslash is no separator in a URL: the segment is a name that starts
    // with '.' (a dotfile) or does not exist: 404, never the secret.
    for (const char* target : {"/..\\secret", "/a\\..\\..\\secret", "/%5c..%5csecret",
                               "/..%5csecret", "/a/..\\..\\secret"}) {
        expect_status(*server, get(target), {404}, target);
        expect_alive(*server, target);
    }
    // `//etc/passwd` normalizes to /etc/passwd under the root: missing.
    expect_status(*server, get("//etc/passwd"), {404}, "//etc/passwd");
    // Absolute form with an escaping path: 400 whether or not the absolute
    // form is understood (a bad target or an escaping `..`).
    expect_status(*server, "GET http://x/../secret HTTP/1.1\r\nHost: x\r\n\r\n", {400},
                  "GET http://x/../secret");
    expect_status(*server, "GET http://127.0.0.1/%2e%2e/secret HTTP/1.1\r\nHost: x\r\n\r\n", {400},
                  "GET http://127.0.0.1/%2e%2e/secret");
    // NUL bytes: 400.
    for (const char* target : {"/%00", "/a.txt%00", "/a.txt%00.html", "/%00/../secret"}) {
        expect_status(*server, get(target), {400}, target);
        expect_alive(*server, target);
    }
    // Overlong UTF-8 for '.': decodes to bytes that are not '.', so a name
    // that does not exist: 404 (and never a traversal).
    for (const char* target :
         {"/%c0%ae%c0%ae/secret", "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
          "/%e0%80%ae%e0%80%ae/secret", "/a/%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afsecret"}) {
        expect_status(*server, get(target), {404}, target);
        expect_alive(*server, target);
    }
}

TEST_F(ServeHostile, SymlinksLeavingTheRootAreForbiddenUnlessFollowed) {
    {
        auto server = start({"--workers", "2"});
        expect_status(*server, get("/link_out"), {403}, "/link_out (-> ../secret)");
        expect_status(*server, get("/link_up/secret"), {403}, "/link_up/secret (link_up -> ..)");
        expect_alive(*server, "/link_out");
        const Response r = expect_status(*server, get("/link_in"), {200}, "/link_in (-> a.txt)");
        EXPECT_EQ(r.body, kHelloBody);
    }
    {
        auto server = start({"--workers", "2", "--follow-symlinks"});
        Conn c(server->port());
        c.send(get("/link_out"));
        std::string why;
        auto r = c.read_response(false, kReadTimeout, &why);
        ASSERT_TRUE(r.has_value()) << why;
        EXPECT_EQ(r->status, 200) << *r;
        EXPECT_EQ(r->body, kSecret) << "--follow-symlinks serves a symlink leaving the root";
        // ... but the request path itself still cannot escape with `..`.
        expect_status(*server, get("/../secret"), {400}, "/../secret with --follow-symlinks");
        expect_status(*server, get("/%2e%2e/secret"), {400},
                      "/%2e%2e/secret with --follow-symlinks");
        expect_alive(*server, "--follow-symlinks");
    }
}

TEST_F(ServeHostile, DotfilesAreHiddenAndBadEscapesRejected) {
    auto server = start({"--workers", "2"});
    for (const char* target : {"/.hidden", "/sub/.git/config", "/sub/.git/", "/.git/config",
                               "/%2ehidden", "/sub/%2Egit/config"}) {
        expect_status(*server, get(target), {404}, target);
        expect_alive(*server, target);
    }
    EXPECT_EQ(expect_status(*server, get("/sub/file.txt"), {200}, "/sub/file.txt").body,
              "sub file\n");
    for (const char* target : {"/%zz", "/%4", "/a.txt%", "/%g0", "/a%2", "/%%41"}) {
        expect_status(*server, get(target), {400}, target);
        expect_alive(*server, target);
    }
    // The query string is ignored.
    EXPECT_EQ(
        expect_status(*server, get("/a.txt?x=../../secret&y=%zz"), {200}, "/a.txt?query").body,
        kHelloBody);
    // --show-dotfiles serves them.
    auto shown = start({"--workers", "1", "--show-dotfiles"});
    EXPECT_EQ(expect_status(*shown, get("/.hidden"), {200}, "/.hidden with --show-dotfiles").body,
              kHiddenBody);
}

TEST_F(ServeHostile, UnreadableFileIsForbidden) {
    testutil::write_file(root_ + "/unreadable.txt", "no one may read this\n", 0000);
    ASSERT_EQ(::chmod((root_ + "/unreadable.txt").c_str(), 0000), 0);
    std::optional<testutil::User> as_user;
    if (::geteuid() == 0) {
        // Root reads anything: run this server as nobody, with the tree
        // made enterable and the other files readable for it.
        as_user = testutil::nobody();
        if (!as_user)
            GTEST_SKIP() << "running as root and there is no user `nobody` to run the server as";
        for (const std::string& dir : {tmp_.path(), root_})
            ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
        ASSERT_EQ(::chmod((root_ + "/a.txt").c_str(), 0644), 0);
    }
    auto server = start({"--workers", "1"}, as_user);
    expect_status(*server, get("/unreadable.txt"), {403}, "/unreadable.txt (mode 000)");
    expect_alive(*server, "/unreadable.txt");
}

// ---- malformed requests and limits ----------------------------------------

TEST_F(ServeHostile, MalformedRequestLinesGet400AndClose) {
    auto server = start({"--workers", "2"});
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"garbage", "garbage\r\n\r\n"},
        {"binary garbage",
         std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "\r\n\r\n"},
        {"missing version", "GET /a.txt\r\nHost: x\r\n\r\n"},
        {"missing target", "GET HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"two words, no version", "BROKEN REQUEST\r\n\r\n"},
        {"tabs as separators", "GET\t/a.txt\tHTTP/1.1\r\nHost: x\r\n\r\n"},
        {"CR without LF", "GET /a.txt HTTP/1.1\rHost: x\r\n\r\n"},
        {"target without slash", "GET a.txt HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"version garbage", "GET /a.txt HTTP/1.x\r\nHost: x\r\n\r\n"},
        {"not HTTP", "GET /a.txt FTP/1.1\r\nHost: x\r\n\r\n"},
        {"header without colon", "GET /a.txt HTTP/1.1\r\nHost x\r\n\r\n"},
        {"control character in target", "GET /a\x01.txt HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"space in target", "GET /a .txt HTTP/1.1\r\nHost: x\r\n\r\n"},
    };
    for (const auto& [name, request] : cases) {
        expect_status(*server, request, {400}, name);
        expect_alive(*server, name);
    }
    // Versions the server does not speak: 400 or 505 (the contract names
    // neither), never 200.
    expect_status(*server, "GET /a.txt HTTP/9.9\r\nHost: x\r\n\r\n", {400, 505}, "HTTP/9.9");
    expect_status(*server, "GET /a.txt HTTP/2.0\r\nHost: x\r\n\r\n", {400, 505}, "HTTP/2.0");
    expect_alive(*server, "HTTP/9.9");
    // Methods are case-sensitive: `get` is not GET. A valid token that is not
    // GET or HEAD is "any other method" (405); a parser may call it malformed.
    for (const std::string& method :
         {std::string("get"), std::string("Get"), std::string(4000, 'A')}) {
        const Response r = expect_status(
            *server, method + " /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", {400, 405},
            "method " + method.substr(0, 10) + " (" + std::to_string(method.size()) + " bytes)");
        if (r.status == 405) {
            EXPECT_EQ(r.header("allow"), "GET, HEAD");
        }
        expect_alive(*server, "method " + method.substr(0, 10));
    }
    // Bare LF line ends: RFC 9112 lets a server accept them; the contract
    // does not say. Either a correct 200 or a 400 and close, promptly.
    {
        const Response r =
            expect_status(*server, "GET /a.txt HTTP/1.1\nHost: x\n\n", {200, 400}, "bare LF");
        if (r.status == 200) {
            EXPECT_EQ(r.body, kHelloBody);
        }
        expect_alive(*server, "bare LF");
    }
}

TEST_F(ServeHostile, OversizedRequestsHitTheLimits) {
    auto server = start({"--workers", "2"});
    // Request line over 8 KiB: 414.
    expect_status(*server, get("/" + std::string(9 * 1024, 'a')), {414}, "9 KiB request line");
    expect_alive(*server, "9 KiB request line");
    // Header section over 16 KiB: 431, as one header or as many.
    expect_status(*server, get("/a.txt", "X-Big: " + std::string(20 * 1024, 'b') + "\r\n"), {431},
                  "20 KiB header");
    expect_alive(*server, "20 KiB header");
    std::string many;
    for (int i = 0; i < 20; ++i)
        many += "X-H" + std::to_string(i) + ": " + std::string(1000, 'c') + "\r\n";
    expect_status(*server, get("/a.txt", many), {431}, "20 headers of 1 KB");
    // More than 100 header lines: 431; exactly 100 are fine.
    std::string lines100;  // Host + 99
    for (int i = 0; i < 99; ++i) lines100 += "X-L" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(expect_status(*server, get("/a.txt", lines100), {200}, "100 header lines").body,
              kHelloBody);
    expect_status(*server, get("/a.txt", lines100 + "X-Last: v\r\n"), {431}, "101 header lines");
    expect_alive(*server, "101 header lines");
    // Methods other than GET and HEAD: 405 with Allow.
    for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"}) {
        const std::string request =
            std::string(method) + " /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        const Response r = expect_status(*server, request, {405}, method);
        EXPECT_EQ(r.header("allow"), "GET, HEAD") << method;
        expect_alive(*server, method);
    }
    // A GET or HEAD with a body: 400 and close.
    expect_status(*server, "GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789",
                  {400}, "GET with Content-Length: 10");
    expect_status(*server, "HEAD /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", {400},
                  "HEAD with Content-Length: 3");
    expect_status(*server,
                  "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                  {400}, "GET with Transfer-Encoding");
    expect_alive(*server, "GET with a body");
    // Content-Length: 0 is no body.
    EXPECT_EQ(
        expect_status(*server, get("/a.txt", "Content-Length: 0\r\n"), {200}, "Content-Length: 0")
            .body,
        kHelloBody);
}

// ---- ranges ----------------------------------------------------------------

// Parses a multipart/byteranges body; each part as (first, last, bytes).
struct Part {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::uint64_t total = 0;
    std::string content_type;
    std::string bytes;
};

std::optional<std::vector<Part>> parse_multipart(const Response& r, std::string* why) {
    const std::string type = r.header("content-type");
    const auto b = type.find("boundary=");
    if (lower(type).rfind("multipart/byteranges", 0) != 0 || b == std::string::npos) {
        *why = "not multipart/byteranges: " + type;
        return std::nullopt;
    }
    std::string boundary = type.substr(b + 9);
    if (!boundary.empty() && boundary.front() == '"')
        boundary = boundary.substr(1, boundary.find('"', 1) - 1);
    const std::string delimiter = "--" + boundary;
    std::vector<Part> parts;
    std::size_t pos = r.body.find(delimiter);
    if (pos == std::string::npos) {
        *why = "no boundary in the body";
        return std::nullopt;
    }
    for (;;) {
        pos += delimiter.size();
        if (r.body.compare(pos, 2, "--") == 0) return parts;  // closing delimiter
        if (r.body.compare(pos, 2, "\r\n") != 0) {
            *why = "no CRLF after a boundary";
            return std::nullopt;
        }
        const std::size_t headers_end = r.body.find("\r\n\r\n", pos);
        if (headers_end == std::string::npos) {
            *why = "part headers not terminated";
            return std::nullopt;
        }
        Part part;
        std::string headers = r.body.substr(pos + 2, headers_end - pos - 2) + "\r\n";
        for (std::size_t at = 0, eol; (eol = headers.find("\r\n", at)) != std::string::npos;
             at = eol + 2) {
            const std::string line = headers.substr(at, eol - at);
            const std::string name = lower(line.substr(0, line.find(':')));
            std::string value = line.substr(std::min(line.size(), line.find(':') + 1));
            value.erase(0, value.find_first_not_of(' '));
            if (name == "content-type") part.content_type = value;
            if (name == "content-range" && std::sscanf(value.c_str(), "bytes %lu-%lu/%lu",
                                                       &part.first, &part.last, &part.total) != 3) {
                *why = "bad part Content-Range: " + value;
                return std::nullopt;
            }
        }
        if (part.total == 0 || part.last < part.first) {
            *why = "part without a usable Content-Range: " + headers;
            return std::nullopt;
        }
        const std::size_t data = headers_end + 4;
        const std::size_t n = part.last - part.first + 1;
        part.bytes = r.body.substr(data, n);
        parts.push_back(part);
        pos = data + n;
        if (r.body.compare(pos, 2 + delimiter.size(), "\r\n" + delimiter) != 0) {
            *why =
                "part " + std::to_string(parts.size()) + " not followed by CRLF and the boundary";
            return std::nullopt;
        }
        pos += 2;
    }
}

TEST_F(ServeHostile, RangesFollowTheContract) {
    auto server = start({"--workers", "2"});
    const std::string size = std::to_string(kRangeFileBytes);
    auto range = [&](const std::string& spec) {
        return get("/range.bin", "Range: " + spec + "\r\n");
    };
    auto expect_full = [&](const std::string& spec) {
        const Response r = expect_status(*server, range(spec), {200}, "Range: " + spec);
        EXPECT_TRUE(r.body == range_) << "Range: " << spec << ": not the file's bytes";
    };
    auto expect_single = [&](const std::string& spec, std::uint64_t first, std::uint64_t last) {
        const Response r = expect_status(*server, range(spec), {206}, "Range: " + spec);
        EXPECT_EQ(r.header("content-range"),
                  "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + size)
            << spec;
        EXPECT_TRUE(r.body == range_.substr(first, last - first + 1)) << spec << ": wrong bytes";
    };
    auto expect_416 = [&](const std::string& spec) {
        const Response r = expect_status(*server, range(spec), {416}, "Range: " + spec);
        EXPECT_EQ(r.header("content-range"), "bytes */" + size) << spec;
        expect_alive(*server, "Range: " + spec);
    };

    expect_single("bytes=0-9", 0, 9);
    expect_single("bytes=990-", 990, 999);
    expect_single("bytes=-10", 990, 999);
    expect_single("bytes=-5000", 0, 999);       // a suffix longer than the file: all of it
    expect_single("bytes=995-5000", 995, 999);  // last-pos past the end: clamped
    expect_single("bytes=999-999", 999, 999);
    // Unsatisfiable: first byte past the end, or a zero-length suffix.
    expect_416("bytes=999999-");
    expect_416("bytes=1000-");
    expect_416("bytes=-0");
    expect_416("bytes=1000-1001,2000-");
    // Malformed (last < first is invalid per RFC 9110 14.1.1, letters, no
    // unit): ignored, the full file.
    for (const char* spec : {"bytes=5-1", "bytes=abc", "bytes=", "bytes=-", "pages=0-9",
                             "bytes=0-9-", "bytes 0-9", "bytes=--5", "bytes=1-2,x"}) {
        expect_full(spec);
        expect_alive(*server, std::string("Range: ") + spec);
    }
    // A number too large for any integer type: the range starts at 0, so it
    // is satisfiable (clamped, 206); a server that cannot represent it may
    // call it malformed (200). Either way byte-exact, never 416 or an error.
    {
        const std::string spec = "bytes=0-99999999999999999999";
        const Response r = expect_status(*server, range(spec), {200, 206}, spec);
        EXPECT_TRUE(r.body == range_) << spec << ": not the file's bytes";
        if (r.status == 206) {
            EXPECT_EQ(r.header("content-range"), "bytes 0-999/" + size);
        }
        expect_alive(*server, spec);
    }
    // Several ranges: multipart/byteranges, each part byte-exact.
    auto expect_multipart = [&](const std::string& spec, std::size_t min_parts,
                                std::uint64_t union_first, std::uint64_t union_last) {
        const Response r =
            expect_status(*server, range(spec), {206}, "Range: " + spec.substr(0, 60));
        std::string why;
        const auto parts = parse_multipart(r, &why);
        ASSERT_TRUE(parts.has_value()) << spec.substr(0, 60) << ": " << why;
        EXPECT_GE(parts->size(), min_parts) << spec.substr(0, 60);
        std::vector<bool> covered(kRangeFileBytes, false);
        for (const Part& p : *parts) {
            EXPECT_EQ(p.total, kRangeFileBytes);
            ASSERT_LT(p.last, kRangeFileBytes);
            EXPECT_TRUE(p.bytes == range_.substr(p.first, p.last - p.first + 1))
                << "part " << p.first << "-" << p.last << ": wrong bytes";
            EXPECT_FALSE(p.content_type.empty())
                << "part " << p.first << "-" << p.last << " without Content-Type";
            for (std::uint64_t i = p.first; i <= p.last; ++i) covered[i] = true;
        }
        for (std::uint64_t i = union_first; i <= union_last; ++i) {
            if (!covered[i]) {
                ADD_FAILURE() << spec.substr(0, 60) << ": byte " << i << " not covered";
                break;
            }
        }
    };
    expect_multipart("bytes=0-1,5-6", 2, 0, 1);
    expect_multipart("bytes=0-99,50-149", 1, 0, 149);  // overlapping: may be coalesced
    expect_multipart("bytes=-3,0-2", 2, 0, 2);
    std::string sixty_four = "bytes=";
    for (int i = 0; i < 64; ++i) {
        sixty_four += (i ? "," : "") + std::to_string(i * 10) + "-" + std::to_string(i * 10 + 4);
    }
    expect_multipart(sixty_four, 64, 0, 4);
    std::string many = "bytes=";
    for (int i = 0; i < 200; ++i)
        many += (i ? "," : "") + std::to_string(i * 4) + "-" + std::to_string(i * 4 + 1);
    expect_multipart(many, 200, 0, 1);
    expect_alive(*server, "200 ranges");
    // HEAD with a range: headers only, no body bytes on the wire.
    {
        Conn c(server->port());
        c.send("HEAD /range.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n" + get("/a.txt"));
        auto head = c.read_response(true);
        ASSERT_TRUE(head.has_value());
        EXPECT_EQ(head->status, 206);
        auto next = c.read_response(false);
        ASSERT_TRUE(next.has_value()) << "HEAD sent a body";
        EXPECT_EQ(next->body, kHelloBody) << "HEAD sent a body";
    }
}

// ---- slow, idle and half-closed connections --------------------------------

TEST_F(ServeHostile, SlowlorisDoesNotStarveOthersAndIsCutAtTheHeaderTimeout) {
    constexpr int kSlow = 50;
    constexpr double kHeaderTimeout = 2.0;
    auto server = start({"--workers", "2", "--header-timeout", "2"});
    std::vector<Conn> slow;
    std::vector<double> closed_at(kSlow, -1);
    std::vector<std::string> received(kSlow);
    const auto t0 = Clock::now();
    for (int i = 0; i < kSlow; ++i) {
        slow.emplace_back(server->port());
        slow.back().send("GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    }
    // A normal client meanwhile: each request answered promptly.
    std::vector<double> latencies;
    std::string normal_error;
    std::thread normal([&] {
        for (int i = 0; i < 10; ++i) {
            const auto start = Clock::now();
            Conn c(server->port());
            c.send(get("/a.txt"));
            std::string why;
            auto r = c.read_response(false, 3s, &why);
            if (!r || r->status != 200 || r->body != kHelloBody) {
                normal_error = "request " + std::to_string(i) + ": " + (r ? r->status_line : why);
                break;
            }
            latencies.push_back(seconds_since(start));
            std::this_thread::sleep_for(200ms);
        }
    });
    // One header byte per second on every slow connection until it is closed.
    while (seconds_since(t0) < 6.0) {
        for (int i = 0; i < kSlow; ++i) {
            if (closed_at[i] >= 0) continue;
            slow[i].send("x");
        }
        const auto tick = Clock::now() + 1s;
        while (Clock::now() < tick) {
            for (int i = 0; i < kSlow; ++i) {
                if (closed_at[i] >= 0) continue;
                pollfd p{slow[i].fd(), POLLIN, 0};
                if (::poll(&p, 1, 0) <= 0) continue;
                // poll said readable, so fill() returns at once; its deadline
                // must still be whole milliseconds away (it waits in ms).
                const ssize_t n = slow[i].fill(Clock::now() + 100ms);
                if (n == 0 || (n < 0 && errno != EAGAIN)) closed_at[i] = seconds_since(t0);
            }
            std::this_thread::sleep_for(20ms);
        }
        if (std::all_of(closed_at.begin(), closed_at.end(), [](double t) { return t >= 0; })) break;
    }
    normal.join();
    EXPECT_TRUE(normal_error.empty())
        << "the normal client failed beside 50 slowloris connections: " << normal_error;
    for (double l : latencies)
        EXPECT_LT(l, 1.0) << "a normal request took " << l << " s beside slowloris";
    // One failure per kind, naming the connections, rather than 50 lines.
    std::string still_open, early, late, not_408;
    for (int i = 0; i < kSlow; ++i) {
        const std::string id = " " + std::to_string(i);
        if (closed_at[i] < 0) still_open += id;
        if (closed_at[i] >= 0 && closed_at[i] < kHeaderTimeout - 0.5) early += id;
        if (closed_at[i] > kHeaderTimeout + 2.5) late += id;
        const std::string& got = slow[i].buffer();
        if (!got.empty() && got.rfind("HTTP/1.1 408", 0) != 0)
            not_408 += id + " (" + got.substr(0, 40) + ")";
    }
    EXPECT_TRUE(still_open.empty())
        << "slow connections still open after 6 s with --header-timeout 2 (one "
           "header byte per second must not extend it):"
        << still_open;
    EXPECT_TRUE(early.empty()) << "slow connections closed before the header timeout:" << early;
    EXPECT_TRUE(late.empty()) << "slow connections closed later than 4.5 s:" << late;
    EXPECT_TRUE(not_408.empty()) << "slow connections got something other than 408:" << not_408;
    expect_alive(*server, "slowloris");
}

TEST_F(ServeHostile, IdleAndHalfClosedConnections) {
    auto server = start({"--workers", "2", "--header-timeout", "2"});
    // Connects and sends nothing: closed after the header timeout (408 or nothing).
    {
        const auto t0 = Clock::now();
        Conn idle(server->port());
        std::string extra;
        const bool closed = idle.closed_within(6s, &extra);
        const double after = seconds_since(t0);
        EXPECT_TRUE(closed || extra.rfind("HTTP/1.1 408", 0) == 0)
            << "idle connection: "
            << (extra.empty() ? "still open after 6 s" : extra.substr(0, 100));
        EXPECT_GE(after, 1.5) << "idle connection closed before the header timeout";
        EXPECT_LE(after, 4.5) << "idle connection closed late";
        expect_alive(*server, "idle connection");
    }
    // Half a request, then nothing: the same.
    {
        const auto t0 = Clock::now();
        Conn half(server->port());
        half.send("GET /a.txt HTTP/1.1\r\nHost: x\r\n");
        std::string extra;
        half.closed_within(6s, &extra);
        const double after = seconds_since(t0);
        EXPECT_TRUE(extra.empty() || extra.rfind("HTTP/1.1 408", 0) == 0) << extra.substr(0, 100);
        EXPECT_GE(after, 1.5);
        EXPECT_LE(after, 4.5) << "a half-sent request was not cut at the header timeout";
    }
    // A full request, then shutdown(SHUT_WR): the response still comes.
    {
        Conn c(server->port());
        // Corked, the requests and the FIN leave in one segment: the server
        // sees the data and the end of the stream in the same wake-up.
        const int on = 1;
        ASSERT_EQ(::setsockopt(c.fd(), IPPROTO_TCP, TCP_CORK, &on, sizeof on), 0);
        c.send(get("/a.txt") + get("/n3.txt"));
        ASSERT_EQ(::shutdown(c.fd(), SHUT_WR), 0);
        std::string why;
        auto r = c.read_response(false, kReadTimeout, &why);
        ASSERT_TRUE(r.has_value()) << "half-closed client got no response: " << why;
        EXPECT_EQ(r->status, 200);
        EXPECT_EQ(r->body, kHelloBody);
        auto r2 = c.read_response(false, kReadTimeout, &why);
        ASSERT_TRUE(r2.has_value()) << "half-closed client got no second response: " << why;
        EXPECT_EQ(r2->body, testutil::read_file(root_ + "/n3.txt"));
        EXPECT_TRUE(c.closed_within(kCloseTimeout))
            << "the server kept a half-closed connection open";
    }
    expect_alive(*server, "half-closed");
}

// ---- abrupt disconnects and stalled readers --------------------------------

class ServeHostileBig : public ServeHostile {
  protected:
    void SetUp() override {
        ServeHostile::SetUp();
        big_ = testutil::random_bytes(kBigFileBytes, 4242);
        testutil::write_file(root_ + "/big.bin", big_);
    }
    // 20 clients request big.bin, read a few KiB and go away (FIN or RST);
    // the server stays up, closes its side, and its descriptors and memory
    // stay bounded.
    void abrupt_disconnects(const std::vector<std::string>& args, const std::string& name) {
        auto server = start(args);
        expect_alive(*server, "start");
        // A first round of 20 sets up what each worker keeps for later
        // requests (open-file cache, an io_uring ring per worker); a leak is
        // what grows again with the second round of 20.
        abort_downloads(*server, 20, name + " (first round)");
        expect_alive(*server, name + ": first 20 abrupt disconnects");
        std::this_thread::sleep_for(1s);
        const long rss_before = server->status_kb("VmRSS:");
        const std::size_t fds_before = server->open_fds();
        abort_downloads(*server, 20, name);
        expect_alive(*server, name + ": 20 abrupt disconnects");
        // The server notices the closed peers and releases their sockets and files.
        const auto deadline = Clock::now() + 5s;
        while (server->open_fds() > fds_before + 2 && Clock::now() < deadline)
            std::this_thread::sleep_for(50ms);
        EXPECT_LE(server->open_fds(), fds_before + 2)
            << name << ": descriptors leaked by aborted downloads";
        const long rss_after = server->status_kb("VmRSS:");
        // Generous: 20 x 64 MiB would be a leak of whole files; ASan's
        // quarantine holds freed memory, so its builds get more room.
        const long bound_kb = (testutil::kAsan ? 512 : 128) * 1024;
        EXPECT_LT(rss_after - rss_before, bound_kb)
            << name << ": VmRSS grew from " << rss_before << " kB to " << rss_after << " kB";
        expect_alive(*server, name);
    }
    // `count` clients request big.bin, read 8 KiB and go away, half with RST.
    void abort_downloads(Server& server, int count, const std::string& name) {
        for (int i = 0; i < count; ++i) {
            Conn c(server.port());
            c.send(get("/big.bin"));
            std::size_t got = 0;
            const auto deadline = Clock::now() + kReadTimeout;
            while (got < 8192) {
                const ssize_t n = c.fill(deadline);
                ASSERT_GT(n, 0) << name << ": download " << i << " ended after " << got << " bytes";
                got += static_cast<std::size_t>(n);
            }
            ASSERT_TRUE(c.buffer().rfind("HTTP/1.1 200", 0) == 0) << c.buffer().substr(0, 100);
            if (i % 2 == 0) {
                c.abort();
            } else {
                c.close();
            }
        }
    }
    std::string big_;
};

TEST_F(ServeHostileBig, AbruptDisconnectsMidTransfer) {
    abrupt_disconnects({"--workers", "2"}, "sendfile path");
}

TEST_F(ServeHostileBig, AbruptDisconnectsMidDirectTransfer) {
    abrupt_disconnects({"--workers", "2", "--direct-threshold", "1m"},
                       "direct path (--direct-threshold 1m)");
}

TEST_F(ServeHostileBig, StalledReaderDoesNotBlockOthers) {
    // One worker: a blocking send to the stalled client would stall everyone.
    for (const char* threshold : {"0", "1m"}) {
        auto server = start({"--workers", "1", "--direct-threshold", threshold});
        Conn stalled(server->port(), 4096);
        stalled.send(get("/big.bin"));
        std::this_thread::sleep_for(300ms);  // the server fills the socket buffers
        for (int i = 0; i < 10; ++i) {
            const auto start = Clock::now();
            Conn c(server->port());
            c.send(get("/n" + std::to_string(i) + ".txt"));
            std::string why;
            auto r = c.read_response(false, 3s, &why);
            ASSERT_TRUE(r.has_value()) << "--direct-threshold " << threshold << ": request " << i
                                       << " blocked behind a stalled reader: " << why;
            EXPECT_EQ(r->body, testutil::read_file(root_ + "/n" + std::to_string(i) + ".txt"));
            EXPECT_LT(seconds_since(start), 1.0)
                << "request " << i << " was slow beside a stalled reader";
        }
        // The stalled client still gets its file, byte-exact, when it reads.
        std::string why;
        auto r = stalled.read_response(false, 30s, &why);
        ASSERT_TRUE(r.has_value()) << "the stalled client's download: " << why;
        EXPECT_EQ(r->status, 200);
        EXPECT_TRUE(r->body == big_)
            << "--direct-threshold " << threshold << ": big.bin arrived corrupted ("
            << r->body.size() << " bytes)";
    }
}

// ---- connection limit ------------------------------------------------------

TEST_F(ServeHostile, ConnectionLimitAnswers503AndRecovers) {
    auto server = start({"--workers", "2", "--max-connections", "20"});
    std::vector<Conn> open;
    for (int i = 0; i < 20; ++i) {
        open.emplace_back(server->port());
        ASSERT_TRUE(open.back().send(get("/a.txt")));
        std::string why;
        auto r = open.back().read_response(false, kReadTimeout, &why);
        ASSERT_TRUE(r.has_value()) << "connection " << i + 1 << " of 20: " << why;
        ASSERT_EQ(r->status, 200) << "connection " << i + 1 << " of 20";
    }
    // The 21st: 503 and close (or, tolerated, closed at once).
    {
        Conn extra(server->port());
        extra.send(get("/a.txt"));
        std::string why;
        auto r = extra.read_response(false, kReadTimeout, &why);
        if (r) {
            EXPECT_EQ(r->status, 503) << *r;
            EXPECT_EQ(lower(r->header("connection")), "close");
            EXPECT_TRUE(extra.closed_within(kCloseTimeout)) << "the 21st connection was not closed";
        } else {
            EXPECT_FALSE(contains(why, "timed out"))
                << "the 21st connection got neither 503 nor a close: " << why;
        }
    }
    // The 20 are still served.
    for (int i = 0; i < 20; i += 5) {
        ASSERT_TRUE(open[static_cast<std::size_t>(i)].send(get("/n1.txt")));
        auto r = open[static_cast<std::size_t>(i)].read_response();
        ASSERT_TRUE(r.has_value()) << "connection " << i << " lost over the limit";
        EXPECT_EQ(r->status, 200);
    }
    // Close five: new connections are accepted again.
    for (int i = 0; i < 5; ++i) open[static_cast<std::size_t>(i)].close();
    const auto deadline = Clock::now() + 3s;
    int status = 0;
    while (Clock::now() < deadline) {
        Conn c(server->port());
        c.send(get("/a.txt"));
        auto r = c.read_response(false, 2s);
        status = r ? r->status : -1;
        if (status == 200) break;
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(status, 200) << "no new connection accepted after closing 5 of 20";
}

// ---- pipelining ------------------------------------------------------------

TEST_F(ServeHostile, FiftyPipelinedRequestsAnsweredInOrder) {
    auto server = start({"--workers", "2"});
    std::string requests;
    std::vector<std::string> expected;
    std::vector<bool> head;
    for (int i = 0; i < 50; ++i) {
        const std::string name = "n" + std::to_string((i * 7) % 10) + ".txt";
        const bool is_head = i % 11 == 5;
        requests += std::string(is_head ? "HEAD /" : "GET /") + name + " HTTP/1.1\r\nHost: x\r\n" +
                    (i == 49 ? "Connection: close\r\n" : "") + "\r\n";
        expected.push_back(is_head ? std::string() : testutil::read_file(root_ + "/" + name));
        head.push_back(is_head);
    }
    Conn c(server->port());
    ASSERT_TRUE(c.send(requests));
    for (int i = 0; i < 50; ++i) {
        std::string why;
        auto r = c.read_response(head[static_cast<std::size_t>(i)], kReadTimeout, &why);
        ASSERT_TRUE(r.has_value()) << "pipelined response " << i << ": " << why;
        EXPECT_EQ(r->status, 200) << i;
        EXPECT_EQ(r->body, expected[static_cast<std::size_t>(i)])
            << "pipelined response " << i << " out of order";
        if (head[static_cast<std::size_t>(i)]) {
            EXPECT_EQ(r->header("content-length"),
                      std::to_string(testutil::file_size(root_ + "/n" +
                                                         std::to_string((i * 7) % 10) + ".txt")));
        }
    }
    EXPECT_TRUE(c.closed_within(kCloseTimeout))
        << "Connection: close on the last request not honoured";
}

TEST_F(ServeHostile, MalformedRequestInsideAPipeline) {
    auto server = start({"--workers", "2"});
    Conn c(server->port());
    ASSERT_TRUE(c.send(get("/n1.txt") + get("/n2.txt") + get("/a.txt") + "garbage\r\n\r\n" +
                       get("/n4.txt") + get("/n5.txt")));
    for (const char* name : {"n1.txt", "n2.txt", "a.txt"}) {
        std::string why;
        auto r = c.read_response(false, kReadTimeout, &why);
        ASSERT_TRUE(r.has_value()) << name << ": " << why;
        EXPECT_EQ(r->status, 200) << name;
        EXPECT_EQ(r->body, testutil::read_file(root_ + "/" + name)) << name;
    }
    std::string why;
    auto bad = c.read_response(false, kReadTimeout, &why);
    ASSERT_TRUE(bad.has_value()) << "no 400 for the malformed request: " << why;
    EXPECT_EQ(bad->status, 400) << *bad;
    EXPECT_EQ(lower(bad->header("connection")), "close");
    std::string extra;
    EXPECT_TRUE(c.closed_within(kCloseTimeout, &extra))
        << "requests after the malformed one were answered: " << extra.substr(0, 100);
    expect_alive(*server, "malformed pipeline");
}

// ---- startup and shutdown --------------------------------------------------

TEST_F(ServeHostile, StartupLineAndCleanShutdown) {
    auto server = start({"--workers", "2"});
    EXPECT_TRUE(contains(server->startup_line(), "(" + root_ + ", 2 workers)"))
        << server->startup_line();
    // An in-flight request on a keep-alive connection, then SIGTERM: exit 0.
    Conn c(server->port());
    c.send(get("/a.txt"));
    ASSERT_TRUE(c.read_response().has_value());
    const int status = server->stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "SIGTERM: " << testutil::describe_status(status)
        << "; stderr: " << server->stderr_text();
}

}  // namespace

// ---- issue 12: range amplification, Host, obs-fold, versions ---------------

// 200 copies of "0-" on a 1 MiB file once made the server send 200 MiB.
// Whatever the answer, the bytes on the wire stay about one file's worth.
TEST_F(ServeHostile, OverlappingRangesAreNotAmplified) {
    constexpr std::size_t kMiB = 1 << 20;
    const std::string mib = testutil::random_bytes(kMiB, 12);
    testutil::write_file(root_ + "/mib.bin", mib);
    auto server = start({"--workers", "2"});
    auto wire_bytes = [&](const std::string& spec, std::string* head) {
        Conn c(server->port());
        c.send("GET /mib.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRange: " + spec +
               "\r\n\r\n");
        const std::string all = servetest::read_to_eof(c.fd());
        *head = all.substr(0, all.find("\r\n\r\n"));
        return all.size();
    };
    std::string spec = "bytes=0-";
    for (int i = 1; i < 200; ++i) spec += ",0-";
    std::string head;
    const std::size_t got = wire_bytes(spec, &head);
    EXPECT_LE(got, kMiB + 4096) << head;
    EXPECT_GE(got, kMiB) << head;
    EXPECT_EQ(head.substr(0, 15), "HTTP/1.1 200 OK") << head;
    // Two whole copies are already more than the file: the whole file, once.
    EXPECT_LE(wire_bytes("bytes=0-,0-", &head), kMiB + 4096);
    EXPECT_EQ(head.substr(0, 15), "HTTP/1.1 200 OK") << head;
    // Many small overlapping ranges: coalesced, each byte sent once.
    spec = "bytes=0-99";
    for (int i = 1; i < 200; ++i) spec += "," + std::to_string(i) + "-" + std::to_string(i + 99);
    const std::size_t small = wire_bytes(spec, &head);
    EXPECT_LE(small, 298 + 4096) << head;
    EXPECT_NE(head.find(" 206 "), std::string::npos) << head;
    {
        Conn c(server->port());
        c.send(get("/mib.bin", "Range: " + spec + "\r\n"));
        std::string why;
        auto r = c.read_response(false, kReadTimeout, &why);
        ASSERT_TRUE(r.has_value()) << why;
        const auto parts = parse_multipart(*r, &why);
        ASSERT_TRUE(parts.has_value()) << why;
        ASSERT_EQ(parts->size(), 1u);
        EXPECT_EQ(parts->front().first, 0u);
        EXPECT_EQ(parts->front().last, 298u);
        EXPECT_TRUE(parts->front().bytes == mib.substr(0, 299));
    }
    expect_alive(*server, "amplifying ranges");
}

TEST_F(ServeHostile, DuplicateHostAndObsFoldAre400) {
    auto server = start({"--workers", "2"});
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"two Host lines", "GET /a.txt HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n"},
        {"two different Hosts", "GET /a.txt HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n"},
        {"HTTP/1.0 with two Hosts", "GET /a.txt HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n"},
        {"obs-fold with SP", "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"},
        {"obs-fold with HTAB", "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n"},
        {"whitespace before the first header", "GET /a.txt HTTP/1.1\r\n Host: x\r\n\r\n"},
    };
    for (const auto& [name, request] : cases) {
        expect_status(*server, request, {400}, name);
        expect_alive(*server, name);
    }
}

TEST_F(ServeHostile, HigherMinorVersionIsServedAsHttp11OtherMajorsAre505) {
    auto server = start({"--workers", "2"});
    {
        Conn c(server->port());
        c.send("GET /a.txt HTTP/1.2\r\nHost: x\r\n\r\n" + get("/a.txt"));
        std::string why;
        for (int i = 0; i < 2; ++i) {  // kept alive as 1.1 would be
            auto r = c.read_response(false, kReadTimeout, &why);
            ASSERT_TRUE(r.has_value()) << "HTTP/1.2: " << why;
            EXPECT_EQ(r->status, 200);
            EXPECT_EQ(r->status_line.substr(0, 9), "HTTP/1.1 ");
            EXPECT_EQ(r->body, kHelloBody);
        }
    }
    for (const char* version : {"HTTP/2.0", "HTTP/3.0", "HTTP/3.1"}) {
        Conn c(server->port());
        c.send(std::string("GET /a.txt ") + version + "\r\nHost: x\r\n\r\n");
        std::string why;
        auto r = c.read_response(false, kReadTimeout, &why);
        ASSERT_TRUE(r.has_value()) << version << ": " << why;
        EXPECT_EQ(r->status, 505) << version;
        EXPECT_EQ(lower(r->header("connection")), "close") << version;
        EXPECT_TRUE(c.closed_within(kCloseTimeout)) << version;
        expect_alive(*server, version);
    }
}
