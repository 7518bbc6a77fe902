// `pagewire copy`, `pagewire send` and `pagewire recv` as real processes:
// contents, modes, refusals, one-line errors with exit 1 (usage: 2), nothing
// half-written after a failure (RLIMIT_FSIZE mid-copy, a sender that stops
// early), and a receiver that disconnects early.
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <pagewire/checksum.hpp>
#include <thread>

#include "transfer_test_util.hpp"

using testutil::RunResult;
using testutil::TempDir;

namespace {

const std::string kCli = PAGEWIRE_CLI;

RunResult cli(std::vector<std::string> args) {
    args.insert(args.begin(), kCli);
    return testutil::run(args);
}

// Files in `dir` whose names start with '.', i.e. temporary files left behind.
std::vector<std::string> hidden_files(const std::string& dir) {
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (!name.empty() && name[0] == '.') found.push_back(name);
    }
    return found;
}

// The single stderr line of a failed command.
void expect_one_line_error(const RunResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
    EXPECT_EQ(r.err.rfind("pagewire: ", 0), 0u) << r;
    EXPECT_TRUE(testutil::contains(r.err, needle)) << "expected '" << needle << "'\n" << r;
}

// Runs the command as user nobody (root bypasses permission checks).
RunResult cli_as_nobody(const std::vector<std::string>& args) {
    const passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr) throw std::runtime_error("no user nobody");
    const uid_t uid = nobody->pw_uid;
    const gid_t gid = nobody->pw_gid;
    // util-linux setpriv drops to nobody, then execs the command.
    std::vector<std::string> wrapped = {"setpriv", "--reuid=" + std::to_string(uid),
                                        "--regid=" + std::to_string(gid), "--clear-groups", kCli};
    wrapped.insert(wrapped.end(), args.begin(), args.end());
    return testutil::run(wrapped);
}

// `pagewire recv` in the background; the port comes from its "listening on" line.
class RecvProcess {
  public:
    // file_limit: RLIMIT_FSIZE of the receiver, in bytes (0: none).
    explicit RecvProcess(std::vector<std::string> args, rlim_t file_limit = 0) {
        int err_pipe[2];
        if (::pipe2(err_pipe, O_CLOEXEC) != 0) testutil::die("pipe2");
        out_path_ = dir_.file("stdout");
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) testutil::die("fork");
        if (pid_ == 0) {
            int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            ::dup2(out, STDOUT_FILENO);
            ::dup2(err_pipe[1], STDERR_FILENO);
            if (file_limit != 0) {
                rlimit limit{file_limit, file_limit};
                ::setrlimit(RLIMIT_FSIZE, &limit);
            }
            std::vector<std::string> argv = {kCli, "recv", "0"};
            if (std::find(args.begin(), args.end(), "--bind") == args.end()) {
                argv.push_back("--bind");
                argv.push_back("127.0.0.1");
            }
            argv.insert(argv.end(), args.begin(), args.end());
            std::vector<char*> c;
            for (auto& a : argv) c.push_back(a.data());
            c.push_back(nullptr);
            ::execv(c[0], c.data());
            ::_exit(127);
        }
        ::close(err_pipe[1]);
        err_fd_ = err_pipe[0];
        std::string line;
        char ch;
        while (::read(err_fd_, &ch, 1) == 1 && ch != '\n') line += ch;
        const auto colon = line.rfind(':');
        if (line.rfind("listening on ", 0) != 0 || colon == std::string::npos) {
            throw std::runtime_error("recv did not start: '" + line + "'");
        }
        port_ = std::stoi(line.substr(colon + 1));
    }
    ~RecvProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            testutil::wait_for(pid_);
        }
        if (err_fd_ >= 0) ::close(err_fd_);
    }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    int port() const { return port_; }
    // Waits for recv; returns its result (stdout from the file, the rest of stderr).
    RunResult finish() {
        RunResult r;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(err_fd_, buf, sizeof buf)) > 0)
            r.err.append(buf, static_cast<std::size_t>(n));
        r.status = testutil::wait_for(pid_);
        pid_ = -1;
        r.out = testutil::read_file(out_path_);
        return r;
    }

  private:
    TempDir dir_;
    std::string out_path_;
    pid_t pid_ = -1;
    int err_fd_ = -1;
    int port_ = 0;
};

int connect_to(int port) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        testutil::die("connect");
    return s;
}

}  // namespace

TEST(Copy, CopiesBytesAndKeepsMode) {
    TempDir dir;
    const std::string data = testutil::random_bytes((3u << 20) + 7, 1);
    testutil::write_file(dir.file("src"), data, 0640);
    ::chmod(dir.file("src").c_str(), 0640);
    for (const std::string& method :
         transfer_test::runnable({"auto", "read-write", "mmap-write", "sendfile", "splice",
                                  "copy-file-range", "io-uring", "direct"},
                                 dir.path())) {
        SCOPED_TRACE(method);
        RunResult r = cli(
            {"copy", dir.file("src"), dir.file("dst"), "--method", method, "--stats", "--force"});
        ASSERT_EQ(r.exit_code(), 0) << r;
        EXPECT_TRUE(testutil::read_file(dir.file("dst")) == data);
        EXPECT_EQ(testutil::stat_of(dir.file("dst")).st_mode & 07777, 0640u);
        EXPECT_TRUE(testutil::contains(r.out, "3145735 bytes (3.0 MiB) by ")) << r;
        EXPECT_TRUE(hidden_files(dir.path()).empty());
    }
}

TEST(Copy, IntoDirectoryAndEmptyFile) {
    TempDir dir;
    testutil::write_file(dir.file("empty"), "");
    std::filesystem::create_directory(dir.file("sub"));
    RunResult r = cli({"copy", dir.file("empty"), dir.file("sub")});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(testutil::file_size(dir.file("sub/empty")), 0u);
}

TEST(Copy, RefusesToOverwriteWithoutForce) {
    TempDir dir;
    testutil::write_file(dir.file("src"), "new contents");
    testutil::write_file(dir.file("dst"), "old");
    RunResult r = cli({"copy", dir.file("src"), dir.file("dst")});
    expect_one_line_error(r, "open " + dir.file("dst") + ": File exists");
    EXPECT_EQ(testutil::read_file(dir.file("dst")), "old");
    r = cli({"copy", dir.file("src"), dir.file("dst"), "--force"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(testutil::read_file(dir.file("dst")), "new contents");
    r = cli({"copy", dir.file("dst"), dir.file("dst"), "--force"});
    expect_one_line_error(r, "is the same file");
}

TEST(Copy, BadInput) {
    TempDir dir;
    expect_one_line_error(cli({"copy", dir.file("missing"), dir.file("dst")}),
                          "open " + dir.file("missing") + ": No such file or directory");
    expect_one_line_error(cli({"copy", dir.path(), dir.file("dst")}), "Is a directory");
    testutil::write_file(dir.file("src"), "x");
    expect_one_line_error(cli({"copy", dir.file("src"), dir.file("no/such/dir/dst")}),
                          "No such file or directory");
    RunResult usage = cli({"copy", dir.file("src"), dir.file("dst"), "--method", "teleport"});
    EXPECT_EQ(usage.exit_code(), 2) << usage;
    usage = cli({"copy", dir.file("src"), dir.file("dst"), "--method", "msg-zerocopy"});
    EXPECT_EQ(usage.exit_code(), 2) << usage;
    usage = cli({"copy", dir.file("src")});
    EXPECT_EQ(usage.exit_code(), 2) << usage;
    EXPECT_FALSE(std::filesystem::exists(dir.file("dst")));
}

TEST(Copy, PermissionsAsAnotherUser) {
    if (::getpwnam("nobody") == nullptr) GTEST_SKIP() << "no user nobody here";
    TempDir dir;
    ::chmod(dir.path().c_str(), 0755);
    testutil::write_file(dir.file("secret"), "secret");
    ::chmod(dir.file("secret").c_str(), 0600);
    testutil::write_file(dir.file("public"), "public");
    ::chmod(dir.file("public").c_str(), 0644);
    std::filesystem::create_directory(dir.file("readonly"));
    ::chmod(dir.file("readonly").c_str(), 0555);
    RunResult r = cli_as_nobody({"copy", dir.file("secret"), "/tmp/never-written"});
    expect_one_line_error(r, "open " + dir.file("secret") + ": Permission denied");
    r = cli_as_nobody({"copy", dir.file("public"), dir.file("readonly/dst")});
    expect_one_line_error(r, "open " + dir.file("readonly/dst") + ": Permission denied");
    EXPECT_FALSE(std::filesystem::exists("/tmp/never-written"));
}

// The file-size limit hit part-way: a clear error, and neither DST nor a
// temporary file is left behind.
TEST(Copy, FileSizeLimitLeavesNothingHalfWritten) {
    TempDir dir;
    testutil::write_file(dir.file("src"), testutil::random_bytes(4u << 20, 2));
    for (const std::string& method : transfer_test::runnable(
             {"auto", "read-write", "sendfile", "splice", "io-uring", "direct"}, dir.path())) {
        SCOPED_TRACE(method);
        const std::string dst = dir.file("dst");
        // SIGXFSZ left at its default action: pagewire itself must ignore it.
        testutil::RunOptions options;
        options.limits = {{RLIMIT_FSIZE, 1u << 20}};
        RunResult r =
            testutil::run({kCli, "copy", dir.file("src"), dst, "--method", method}, options);
        expect_one_line_error(r, dst + ": File too large");
        EXPECT_FALSE(std::filesystem::exists(dst));
        EXPECT_TRUE(hidden_files(dir.path()).empty());
    }
}

TEST(Copy, FallbackIsReportedAndCanBeRefused) {
    TempDir dir;
    char templ[] = "/dev/shm/pagewire-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    const std::string shm_src = std::string(templ) + "/src";
    testutil::write_file(shm_src, testutil::random_bytes(100000, 3));
    RunResult r = cli({"copy", shm_src, dir.file("dst"), "--method", "copy-file-range", "--stats"});
    EXPECT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(testutil::contains(r.out, "by sendfile")) << r;
    EXPECT_TRUE(testutil::contains(r.out, "fell back copy-file-range -> sendfile")) << r;
    r = cli({"copy", shm_src, dir.file("dst2"), "--method", "copy-file-range", "--no-fallback"});
    expect_one_line_error(r, "Invalid cross-device link");
    EXPECT_FALSE(std::filesystem::exists(dir.file("dst2")));
    std::filesystem::remove_all(templ);
}

TEST(SendRecv, EndToEndEveryMethod) {
    TempDir dir;
    const std::string data = testutil::random_bytes((2u << 20) + 11, 4);
    testutil::write_file(dir.file("file"), data);
    for (const std::string& method :
         transfer_test::runnable({"auto", "read-write", "mmap-write", "sendfile", "splice",
                                  "io-uring", "direct", "msg-zerocopy"},
                                 dir.path())) {
        SCOPED_TRACE(method);
        const std::string out = dir.file(std::string("got-") + method);
        RecvProcess recv({"--output", out, "--stats"});
        RunResult s =
            cli({"send", dir.file("file"), recv.address(), "--method", method, "--stats"});
        RunResult r = recv.finish();
        ASSERT_EQ(s.exit_code(), 0) << s;
        ASSERT_EQ(r.exit_code(), 0) << r;
        EXPECT_TRUE(testutil::contains(s.out, "sent " + std::to_string(data.size()) + " bytes"))
            << s;
        EXPECT_TRUE(testutil::contains(r.out, "checksum ok")) << r;
        EXPECT_TRUE(testutil::contains(r.out, "by splice")) << r;
        EXPECT_TRUE(testutil::read_file(out) == data);
    }
}

TEST(SendRecv, ToStdoutAndEmptyFile) {
    TempDir dir;
    const std::string data = testutil::random_bytes(300001, 5);
    testutil::write_file(dir.file("file"), data);
    {
        RecvProcess recv({});
        RunResult s = cli({"send", dir.file("file"), recv.address()});
        RunResult r = recv.finish();
        ASSERT_EQ(s.exit_code(), 0) << s;
        ASSERT_EQ(r.exit_code(), 0) << r;
        EXPECT_TRUE(r.out == data);
    }
    testutil::write_file(dir.file("empty"), "");
    RecvProcess recv({"-o", dir.file("got-empty")});
    RunResult s = cli({"send", dir.file("empty"), recv.address()});
    RunResult r = recv.finish();
    ASSERT_EQ(s.exit_code(), 0) << s;
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(testutil::file_size(dir.file("got-empty")), 0u);
}

TEST(SendRecv, ReceiverDisconnectsEarly) {
    TempDir dir;
    testutil::write_file(dir.file("file"), testutil::random_bytes(64u << 20, 6));
    for (const std::string& method : transfer_test::runnable(
             {"sendfile", "read-write", "splice", "msg-zerocopy", "io-uring"}, dir.path())) {
        SCOPED_TRACE(method);
        // Accepts, reads 128 KiB, then resets the connection.
        transfer_test::Receiver leaver =
            transfer_test::Receiver::tcp(dir.file("partial"), 128 * 1024);
        const std::string address = "127.0.0.1:" + std::to_string(leaver.port());
        RunResult s = cli({"send", dir.file("file"), address, "--method", method});
        EXPECT_EQ(leaver.wait(), 0);
        EXPECT_EQ(s.exit_code(), 1) << s;
        EXPECT_EQ(testutil::line_count(s.err), 1u) << s;
        EXPECT_TRUE(testutil::contains(s.err, "pagewire: ")) << s;
        EXPECT_TRUE(testutil::contains(s.err, address + ": ")) << s;
        EXPECT_TRUE(testutil::contains(s.err, "Connection reset by peer") ||
                    testutil::contains(s.err, "Broken pipe") ||
                    testutil::contains(s.err, "without confirming"))
            << s;
    }
}

TEST(SendRecv, SenderLeavesEarlyAndBadStreams) {
    TempDir dir;
    const std::string out = dir.file("out");
    {
        RecvProcess recv({"-o", out});
        int s = connect_to(recv.port());
        // A header promising 1 MiB, then 1000 bytes, then goodbye.
        std::string header = "PAGEWIRE";
        std::uint64_t version = 1, length = 1 << 20, checksum = 0;
        header.append(reinterpret_cast<const char*>(&version), 8);
        header.append(reinterpret_cast<const char*>(&length), 8);
        header.append(reinterpret_cast<const char*>(&checksum), 8);
        header += std::string(1000, 'x');
        ASSERT_EQ(::write(s, header.data(), header.size()), static_cast<ssize_t>(header.size()));
        ::close(s);
        RunResult r = recv.finish();
        expect_one_line_error(r, "the sender closed the connection after 1000 of 1048576 bytes");
        EXPECT_FALSE(std::filesystem::exists(out));
        EXPECT_TRUE(hidden_files(dir.path()).empty());
    }
    {
        RecvProcess recv({"-o", out});
        int s = connect_to(recv.port());
        const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n......";
        ASSERT_EQ(::write(s, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
        RunResult r = recv.finish();
        ::close(s);
        expect_one_line_error(r, "not a pagewire stream");
        EXPECT_FALSE(std::filesystem::exists(out));
    }
    {
        // A checksum that does not match the bytes: refused, nothing kept.
        RecvProcess recv({"-o", out});
        int s = connect_to(recv.port());
        std::string msg = "PAGEWIRE";
        std::uint64_t version = 1, length = 5, checksum = 12345;
        msg.append(reinterpret_cast<const char*>(&version), 8);
        msg.append(reinterpret_cast<const char*>(&length), 8);
        msg.append(reinterpret_cast<const char*>(&checksum), 8);
        msg += "hello";
        ASSERT_EQ(::write(s, msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
        char answer[8] = {};
        ASSERT_EQ(::read(s, answer, 8), 8);
        ::close(s);
        EXPECT_EQ(std::string(answer, 4), "PWNO");
        RunResult r = recv.finish();
        expect_one_line_error(r, "checksum mismatch");
        EXPECT_FALSE(std::filesystem::exists(out));
    }
    RunResult usage = cli({"recv", "70000"});
    EXPECT_EQ(usage.exit_code(), 2) << usage;
    usage = cli({"send", dir.file("x"), "no-port-here"});
    EXPECT_EQ(usage.exit_code(), 2) << usage;
}

// A receiver that fails mid-stream tells the sender why, in the protocol:
// the sender's one line carries the receiver's reason, not "Broken pipe".
TEST(SendRecv, SenderIsToldWhyTheReceiverFailed) {
    TempDir dir;
    testutil::write_file(dir.file("file"), testutil::random_bytes(8u << 20, 8));
    for (const char* method : {"splice", "read-write"}) {
        SCOPED_TRACE(method);
        const std::string out = dir.file(std::string("out-") + method);
        RecvProcess recv({"-o", out, "--method", method}, 1 << 20);  // 1 MiB file size limit
        RunResult s = cli({"send", dir.file("file"), recv.address()});
        RunResult r = recv.finish();
        expect_one_line_error(r, "File too large");
        expect_one_line_error(s, recv.address() + ": the receiver failed: ");
        EXPECT_TRUE(testutil::contains(s.err, "File too large")) << s;
        EXPECT_FALSE(std::filesystem::exists(out));
        EXPECT_TRUE(hidden_files(dir.path()).empty());
    }
}

// A version-2 sender's refusal carries errno and the receiver's line.
TEST(SendRecv, RefusalCarriesTheReasonOnTheWire) {
    TempDir dir;
    RecvProcess recv({"-o", dir.file("out")});
    int s = connect_to(recv.port());
    std::string msg = "PAGEWIRE";
    std::uint64_t version = 2, length = 5, checksum = 12345;
    msg.append(reinterpret_cast<const char*>(&version), 8);
    msg.append(reinterpret_cast<const char*>(&length), 8);
    msg.append(reinterpret_cast<const char*>(&checksum), 8);
    msg += "hello";
    ASSERT_EQ(::write(s, msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
    std::string answer;
    char buf[512];
    ssize_t n;
    while ((n = ::read(s, buf, sizeof buf)) > 0) answer.append(buf, static_cast<std::size_t>(n));
    ::close(s);
    ASSERT_GE(answer.size(), 12u);
    EXPECT_EQ(answer.substr(0, 4), "PWNO");
    std::uint32_t err = 0, reason_length = 0;
    std::memcpy(&err, answer.data() + 4, 4);
    std::memcpy(&reason_length, answer.data() + 8, 4);
    EXPECT_EQ(err, static_cast<std::uint32_t>(EIO));
    ASSERT_EQ(answer.size(), 12u + reason_length);
    EXPECT_TRUE(testutil::contains(answer.substr(12), "checksum mismatch")) << answer;
    RunResult r = recv.finish();
    expect_one_line_error(r, "checksum mismatch");
}

// Data on stdout: --stats goes to stderr, stdout holds the bytes and only them.
TEST(SendRecv, StatsGoToStderrWhenDataGoesToStdout) {
    TempDir dir;
    const std::string data = testutil::random_bytes(200000, 9);
    testutil::write_file(dir.file("file"), data);
    RecvProcess recv({"--stats"});
    RunResult s = cli({"send", dir.file("file"), recv.address(), "--quiet"});
    RunResult r = recv.finish();
    ASSERT_EQ(s.exit_code(), 0) << s;
    EXPECT_EQ(s.out, "") << s;  // --quiet
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(r.out == data);
    EXPECT_TRUE(testutil::contains(r.err, "200000 bytes (195.3 KiB) by read-write")) << r;
}

// On a terminal, send and recv draw a progress bar on stderr.
TEST(SendRecv, ProgressBarOnATerminal) {
    TempDir dir;
    testutil::write_file(dir.file("file"), testutil::random_bytes(80u << 20, 10));
    RecvProcess recv({"-o", dir.file("out")});
    int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT_GE(master, 0) << std::strerror(errno);
    ASSERT_EQ(::grantpt(master), 0);
    ASSERT_EQ(::unlockpt(master), 0);
    const std::string slave_name = ::ptsname(master);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int slave = ::open(slave_name.c_str(), O_RDWR | O_NOCTTY);
        ::dup2(slave, STDERR_FILENO);
        int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, STDOUT_FILENO);
        ::execl(kCli.c_str(), kCli.c_str(), "send", dir.file("file").c_str(),
                recv.address().c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    std::string screen;
    char buf[4096];
    ssize_t n;
    // Reads until the sender exits and the pty has nothing left (EIO).
    while ((n = ::read(master, buf, sizeof buf)) > 0)
        screen.append(buf, static_cast<std::size_t>(n));
    ::close(master);
    int status = testutil::wait_for(pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << screen;
    EXPECT_TRUE(testutil::contains(screen, "100%  80.0 MiB / 80.0 MiB")) << screen;
    EXPECT_EQ(recv.finish().exit_code(), 0);
}

// ---- truncation while a checksum reads a mapping (issue 12) ----------------

namespace {

// Truncates the files `pick` names, over and over, every ~1 ms, until destroyed;
// with regrow_to, grows each back to that size in between (holes: zeros).
class TruncateLoop {
  public:
    TruncateLoop(std::function<std::vector<std::string>()> pick, off_t regrow_to = -1)
        : thread_([this, pick = std::move(pick), regrow_to] {
              while (!stop_.load()) {
                  for (const std::string& path : pick()) {
                      if (::truncate(path.c_str(), 0) == 0) ++truncations_;
                      std::this_thread::sleep_for(std::chrono::microseconds(500));
                      if (regrow_to >= 0 && ::truncate(path.c_str(), regrow_to) != 0)
                          continue;  // removed meanwhile: the next round picks again
                  }
                  std::this_thread::sleep_for(std::chrono::microseconds(500));
              }
          }) {}
    ~TruncateLoop() { stop(); }
    int stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        return truncations_.load();
    }

  private:
    std::atomic<bool> stop_{false};
    std::atomic<int> truncations_{0};
    std::thread thread_;
};

// Not killed by a signal; and either a one-line failure, or success.
void expect_error_line_or_success(const RunResult& r) {
    EXPECT_FALSE(r.signaled()) << r;
    if (r.exit_code() != 0) expect_one_line_error(r, "pagewire: ");
}

}  // namespace

// `pagewire send` of a file another process truncates and regrows while the
// sender checksums it: an error line or a correct transfer, never SIGBUS.
TEST(SendRecv, SenderSurvivesTruncationWhileChecksumming) {
    TempDir dir;
    const std::string src = dir.file("src");
    const off_t size = 256 << 20;  // sparse: zeros, so a regrown file has the same bytes
    {
        const int fd = ::open(src.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, size), 0);
        ::close(fd);
    }
    const std::string out = dir.file("out");
    RecvProcess recv({"-o", out});
    TruncateLoop loop([&] { return std::vector<std::string>{src}; }, size);
    RunResult r = cli({"send", src, recv.address()});
    EXPECT_GT(loop.stop(), 0);
    expect_error_line_or_success(r);
    if (r.exit_code() == 0) {
        // Only then did recv get the whole stream; otherwise it may still wait.
        RunResult received = recv.finish();
        EXPECT_EQ(received.exit_code(), 0) << received;
        const std::string got = testutil::read_file(out);
        EXPECT_TRUE(testutil::contains(r.out, "sent " + std::to_string(got.size()) + " bytes"))
            << r;
        EXPECT_EQ(got.find_first_not_of('\0'), std::string::npos);
    }
}

// `pagewire recv -o OUT` with its temporary file truncated over and over by
// another process until it exits (the final checksum reads it through a
// mapping): an error line, never SIGBUS; OUT only if correct.
TEST(SendRecv, ReceiverSurvivesTruncationOfItsTemporaryFile) {
    TempDir dir;
    const std::string out = dir.file("out");
    const std::string payload = testutil::random_bytes(64u << 20, 12);
    pagewire::Checksum sum;
    sum.update(payload.data(), payload.size());
    RecvProcess recv({"-o", out});
    const int s = connect_to(recv.port());
    std::string header = "PAGEWIRE";
    const std::uint64_t version = 1, length = payload.size(), checksum = sum.value();
    header.append(reinterpret_cast<const char*>(&version), 8);
    header.append(reinterpret_cast<const char*>(&length), 8);
    header.append(reinterpret_cast<const char*>(&checksum), 8);
    ASSERT_EQ(::write(s, header.data(), header.size()), static_cast<ssize_t>(header.size()));
    TruncateLoop loop([&] {
        std::vector<std::string> paths;
        for (const std::string& name : hidden_files(dir.path())) paths.push_back(dir.file(name));
        return paths;
    });
    ::signal(SIGPIPE, SIG_IGN);  // recv may leave before reading everything
    for (std::size_t done = 0; done < payload.size();) {
        const ssize_t n = ::write(s, payload.data() + done, payload.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
    }
    ::shutdown(s, SHUT_WR);
    RunResult r = recv.finish();
    EXPECT_GT(loop.stop(), 0);
    ::close(s);
    expect_error_line_or_success(r);
    if (r.exit_code() == 0) {
        EXPECT_TRUE(testutil::read_file(out) == payload);
    } else {
        EXPECT_FALSE(std::filesystem::exists(out));
    }
}

// ---- addresses and recv's checks before listening (issue 13) ---------------

TEST(SendRecvAddresses, MalformedHostPortIsAUsageErrorBeforeAnyIo) {
    TempDir dir;
    testutil::write_file(dir.file("f"), "data");
    for (const std::string address :
         {"127.0.0.1:99999", "127.0.0.1:", "127.0.0.1", "::1:80", "[::1]80", "127.0.0.1:8x"}) {
        RunResult r = cli({"send", dir.file("f"), address});
        EXPECT_EQ(r.exit_code(), 2) << address << ": " << r.err;
        EXPECT_NE(r.err.find("pagewire: HOST:PORT: '" + address + "'"), std::string::npos) << r.err;
    }
    RunResult r = cli({"send", dir.file("f"), "no-such-host.invalid:80"});
    EXPECT_EQ(r.exit_code(), 1) << r.err;
    EXPECT_EQ(r.err.rfind("pagewire: resolve no-such-host.invalid: ", 0), 0u) << r.err;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r.err;
}

TEST(SendRecvAddresses, RecvRefusesItsOutputBeforeListening) {
    TempDir dir;
    testutil::write_file(dir.file("exists"), "keep me");
    RunResult r = cli({"recv", "0", "-o", dir.file("exists")});
    EXPECT_EQ(r.exit_code(), 1) << r.err;
    EXPECT_EQ(r.err, "pagewire: open " + dir.file("exists") + ": File exists\n");
    EXPECT_EQ(testutil::read_file(dir.file("exists")), "keep me");
    r = cli({"recv", "0", "-o", dir.file("missing/dir/out")});
    EXPECT_EQ(r.exit_code(), 1) << r.err;
    EXPECT_EQ(r.err,
              "pagewire: open " + dir.file("missing/dir/out") + ": No such file or directory\n");
    EXPECT_TRUE(hidden_files(dir.path()).empty());
}

TEST(SendRecvAddresses, RecvListensOnLoopbackByDefault) {
    testutil::RunOptions options;
    options.timeout = std::chrono::milliseconds(1000);
    RunResult r = testutil::run({kCli, "recv", "0"}, options);
    EXPECT_TRUE(r.timed_out) << r.err;  // it was listening, waiting for a sender
    EXPECT_EQ(r.err.rfind("listening on 127.0.0.1:", 0), 0u) << r.err;
}

TEST(SendRecvAddresses, NamesAndIpv6OnBothSides) {
    TempDir dir;
    testutil::write_file(dir.file("f"), "over a name");
    {
        RecvProcess recv({"--bind", "localhost", "-o", dir.file("by-name")});
        RunResult s = cli({"send", dir.file("f"), "localhost:" + std::to_string(recv.port())});
        EXPECT_EQ(s.exit_code(), 0) << s.err;
        RunResult r = recv.finish();
        EXPECT_EQ(r.exit_code(), 0) << r.err;
        EXPECT_EQ(testutil::read_file(dir.file("by-name")), "over a name");
    }
    const int probe = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 v6{};
    v6.sin6_family = AF_INET6;
    v6.sin6_addr = in6addr_loopback;
    const bool have_v6 =
        probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&v6), sizeof v6) == 0;
    if (probe >= 0) ::close(probe);
    if (!have_v6) GTEST_SKIP() << "no IPv6 loopback here (bind [::1] failed): IPv6 case not run";
    RecvProcess recv({"--bind", "::1", "-o", dir.file("by-v6")});
    RunResult s = cli({"send", dir.file("f"), "[::1]:" + std::to_string(recv.port())});
    EXPECT_EQ(s.exit_code(), 0) << s.err;
    RunResult r = recv.finish();
    EXPECT_EQ(r.exit_code(), 0) << r.err;
    EXPECT_EQ(testutil::read_file(dir.file("by-v6")), "over a name");
}
