// Runs every example program as a separate process (fork + exec) and checks
// that it behaves the way its seed article documents. The binaries' paths come
// from compile definitions set in examples/CMakeLists.txt. Each test works in
// its own mkdtemp directory, removed afterwards, so tests may run in parallel.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

// Whether this test (and so, in this build, every example) runs under
// AddressSanitizer: g++ defines __SANITIZE_ADDRESS__, clang has __has_feature.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Generous: the asan build is several times slower, and a loaded CI machine more.
constexpr auto kTimeout = 60s;

std::vector<std::string> split_lines(std::string_view text) {
    std::vector<std::string> lines;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        lines.emplace_back(text.substr(0, end));
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    }
    return lines;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// What a finished child did.
struct Outcome {
    int status = -1;  // waitpid status
    std::string out;  // everything it wrote to stdout
    std::string err;  // everything it wrote to stderr

    bool exited_with(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
    std::vector<std::string> lines() const { return split_lines(out); }
    std::string describe() const {
        return describe_status(status) + "\n--- stdout:\n" + out + "--- stderr:\n" + err;
    }
};

// A child process running one program, with pipes on stdin, stdout and
// stderr. Owns the child: the destructor kills (SIGKILL, by pid) and reaps a
// child that is still running, so a failed test never leaves one behind.
class Process {
  public:
    using Environment = std::vector<std::pair<std::string, std::string>>;

    // Starts argv[0] (a path) with our environment plus `extra_env`.
    explicit Process(const std::vector<std::string>& argv, const Environment& extra_env = {}) {
        int in[2], out[2], err[2];
        if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
            ADD_FAILURE() << "pipe2: " << std::strerror(errno);
            return;
        }
        std::fflush(nullptr);
        pid_ = fork();
        if (pid_ < 0) {
            ADD_FAILURE() << "fork: " << std::strerror(errno);
            return;
        }
        if (pid_ == 0) {
            // dup2 clears O_CLOEXEC on 0, 1, 2; every other pipe end closes on exec.
            dup2(in[0], STDIN_FILENO);
            dup2(out[1], STDOUT_FILENO);
            dup2(err[1], STDERR_FILENO);
            const rlimit no_core{0, 0};  // the raw boundary runs die of SIGBUS: no core files
            setrlimit(RLIMIT_CORE, &no_core);
            for (const auto& [name, value] : extra_env) setenv(name.c_str(), value.c_str(), 1);
            std::vector<char*> args;
            for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            execv(args[0], args.data());
            const std::string message = "exec " + argv[0] + ": " + std::strerror(errno) + "\n";
            (void)!write(STDERR_FILENO, message.data(), message.size());
            _exit(127);
        }
        close(in[0]);
        close(out[1]);
        close(err[1]);
        stdin_ = in[1];
        stdout_ = out[0];
        stderr_ = err[0];
    }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    ~Process() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            int status = 0;
            waitpid(pid_, &status, 0);
        }
        for (int fd : {stdin_, stdout_, stderr_}) {
            if (fd >= 0) close(fd);
        }
    }

    void close_stdin() {
        if (stdin_ >= 0) close(stdin_);
        stdin_ = -1;
    }

    // Reads the child's output until stdout contains `text`. False on
    // timeout, or when the child closed stdout without printing it.
    bool wait_for_output(std::string_view text) {
        const auto deadline = Clock::now() + kTimeout;
        while (outcome_.out.find(text) == std::string::npos) {
            if (stdout_ < 0 || !pump(deadline)) return false;
        }
        return true;
    }

    // Closes stdin, reads everything the child writes until it closes its
    // output, then reaps it. A child still running after kTimeout is killed.
    Outcome finish() {
        close_stdin();
        const auto deadline = Clock::now() + kTimeout;
        while (stdout_ >= 0 || stderr_ >= 0) {
            if (!pump(deadline)) {
                ADD_FAILURE() << "child timed out; killing it";
                kill(pid_, SIGKILL);
                break;
            }
        }
        if (pid_ > 0) {
            while (waitpid(pid_, &outcome_.status, 0) < 0 && errno == EINTR) {
            }
            pid_ = -1;
        }
        return outcome_;
    }

  private:
    // Waits for output on stdout or stderr and appends it. False on timeout.
    bool pump(Clock::time_point deadline) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left <= 0ms) return false;
        pollfd fds[2] = {{stdout_, POLLIN, 0}, {stderr_, POLLIN, 0}};  // fd -1 is ignored
        const int ready = poll(fds, 2, static_cast<int>(left.count()));
        if (ready < 0) return errno == EINTR;
        if (ready == 0) return false;
        drain(fds[0], stdout_, outcome_.out);
        drain(fds[1], stderr_, outcome_.err);
        return true;
    }

    static void drain(const pollfd& p, int& fd, std::string& sink) {
        if (fd < 0 || p.revents == 0) return;
        char buffer[4096];
        const ssize_t n = read(fd, buffer, sizeof buffer);
        if (n > 0) {
            sink.append(buffer, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            close(fd);  // EOF (or an error: nothing more will come)
            fd = -1;
        }
    }

    pid_t pid_ = -1;
    int stdin_ = -1, stdout_ = -1, stderr_ = -1;  // our ends of the pipes, -1 when closed
    Outcome outcome_;
};

Outcome run(const std::vector<std::string>& argv, const Process::Environment& extra_env = {}) {
    return Process(argv, extra_env).finish();
}

std::string read_whole_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_whole_file(const std::string& path, std::string_view text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

std::uint64_t file_size(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
    return static_cast<std::uint64_t>(st.st_size);
}

std::size_t page_size() {
    return static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// Every test gets a fresh directory under $TMPDIR (or /tmp).
class ExampleTest : public ::testing::Test {
  protected:
    void SetUp() override {
        const char* base = std::getenv("TMPDIR");
        std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                              "/pagewire-examples-XXXXXX";
        ASSERT_NE(mkdtemp(pattern.data()), nullptr) << pattern << ": " << std::strerror(errno);
        dir_ = pattern;
    }
    void TearDown() override {
        std::error_code ignored;
        if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
    }
    std::string path(std::string_view name) const { return dir_ + "/" + std::string(name); }

    std::string dir_;
};

// ---------------------------------------------------------------- records (seed 000)

struct Record {  // the seed's RECORD, as records.cpp writes it
    int integer;
    char string[24];
};
static_assert(sizeof(Record) == 28);

using Records = ExampleTest;

TEST_F(Records, Record43GoesTo143ByStdioThenTo243ThroughTheMap) {
    const std::string file = path("record.dat");
    const Outcome result = run({EXAMPLE_RECORDS, file});
    ASSERT_TRUE(result.exited_with(0)) << result.describe();
    EXPECT_EQ(result.lines(),
              (std::vector<std::string>{"stdio: record 43 is 143 RECORD-143",
                                        "mmap: record 43 is 243 RECORD-243 (100 records)"}));

    ASSERT_EQ(file_size(file), 100 * sizeof(Record));
    const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    for (int i = 0; i < 100; ++i) {
        Record record{};
        ASSERT_EQ(pread(fd, &record, sizeof record, static_cast<off_t>(i * sizeof record)),
                  static_cast<ssize_t>(sizeof record));
        const int expected = i == 43 ? 243 : i;
        EXPECT_EQ(record.integer, expected) << "record " << i;
        EXPECT_STREQ(record.string, ("RECORD-" + std::to_string(expected)).c_str())
            << "record " << i;
    }
    close(fd);
}

// ------------------------------------------- map_normalfile1 / 2 (seed 004, example 1)

std::vector<std::string> people_lines(int count_with_data) {
    std::vector<std::string> lines;
    for (int i = 0; i < 10; ++i) {
        if (i < count_with_data) {
            lines.push_back("name: " + std::string(1, static_cast<char>('b' + i)) + " age " +
                            std::to_string(20 + i) + ";");
        } else {
            lines.push_back("name:  age 0;");
        }
    }
    return lines;
}

using MapNormalFile = ExampleTest;

TEST_F(MapNormalFile, ReaderSeesAllTenWhileMappedThenOnlyTheFilesFive) {
    const std::string file = path("test_shm");
    Process writer({EXAMPLE_MAP_NORMALFILE1, file});
    ASSERT_TRUE(writer.wait_for_output("initialize over\n")) << writer.finish().describe();

    // While the writer still maps it: all 10 people, 5 of them past end of file,
    // because both processes map the same page-cache page.
    const Outcome during = run({EXAMPLE_MAP_NORMALFILE2, file});
    ASSERT_TRUE(during.exited_with(0)) << during.describe();
    EXPECT_EQ(during.lines(), people_lines(10));

    const Outcome done = writer.finish();
    ASSERT_TRUE(done.exited_with(0)) << done.describe();
    EXPECT_EQ(done.out, "initialize over\numap ok\n");

    // A map never grows its file.
    EXPECT_EQ(file_size(file), 5 * 8u);

    const Outcome after = run({EXAMPLE_MAP_NORMALFILE2, file});
    ASSERT_TRUE(after.exited_with(0)) << after.describe();
    const std::vector<std::string> lines = after.lines();
    ASSERT_EQ(lines.size(), 10u) << after.describe();
    const std::vector<std::string> expected = people_lines(5);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(lines[i], expected[i]);

    // The zeros past end of file come from writeback, which zeroes the cached
    // page's tail (map_normalfile1 flushes before unmapping). tmpfs never
    // writes back, so there the writer's bytes stay in the cached page.
    struct statfs fs {};
    ASSERT_EQ(statfs(dir_.c_str(), &fs), 0) << std::strerror(errno);
    if (fs.f_type == TMPFS_MAGIC) {
        GTEST_SKIP() << dir_ << " is on tmpfs, which keeps bytes past end of file in memory; "
                     << "set TMPDIR to a disk file system to check the seed's zeros";
    }
    for (int i = 5; i < 10; ++i) EXPECT_EQ(lines[i], expected[i]);
}

// ------------------------------------------------------ fork_anon (seed 004, example 2)

using ForkAnon = ExampleTest;

TEST_F(ForkAnon, PrintsTheSeedsEightLines) {
    const Outcome result = run({EXAMPLE_FORK_ANON});
    ASSERT_TRUE(result.exited_with(0)) << result.describe();
    EXPECT_EQ(result.out,
              "child read: the 1 people's age is 20\n"
              "child read: the 2 people's age is 21\n"
              "child read: the 3 people's age is 22\n"
              "child read: the 4 people's age is 23\n"
              "child read: the 5 people's age is 24\n"
              "parent read: the first people,s age is 100\n"
              "umap\n"
              "umap ok\n");
    EXPECT_EQ(result.err, "");
}

// -------------------------------------------------------- boundary (seed 004, section 4)

// The lines the seed prints up to and including the last successful write
// before the first page that is not backed by the file (`bad_page`, from 1).
std::vector<std::string> boundary_lines(int bad_page) {
    std::vector<std::string> lines{"pagesize is " + std::to_string(page_size())};
    for (int i = 1;; ++i) {
        lines.push_back("access page " + std::to_string(i) + " over");
        lines.push_back("access page " + std::to_string(i) +
                        " edge over, now begin to access page " + std::to_string(i + 1));
        if (i + 1 == bad_page) return lines;
        lines.push_back("access page " + std::to_string(i + 1) + " over");
    }
}

using Boundary = ExampleTest;

// Guarded writes: the SIGBUS of the first unbacked page becomes a reported
// error, the program exits 0, and the file keeps its size.
void check_guarded(const std::string& file, const std::vector<std::string>& flags, int bad_page) {
    std::vector<std::string> argv{EXAMPLE_BOUNDARY};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(file);
    const Outcome result = run(argv);
    ASSERT_TRUE(result.exited_with(0)) << result.describe();

    std::vector<std::string> lines = result.lines();
    const std::vector<std::string> expected = boundary_lines(bad_page);
    ASSERT_EQ(lines.size(), expected.size() + 2) << result.describe();
    EXPECT_EQ(std::vector<std::string>(lines.begin(), lines.begin() + expected.size()), expected);
    const std::string error_prefix =
        "access page " + std::to_string(bad_page) + ": SIGBUS reported as error: ";
    EXPECT_EQ(lines[expected.size()].substr(0, error_prefix.size()), error_prefix)
        << result.describe();
    EXPECT_GT(lines[expected.size()].size(), error_prefix.size()) << "empty error message";
    EXPECT_EQ(lines.back(),
              "file size is still " + std::to_string(2 * page_size() - 99) + " bytes");
    EXPECT_EQ(file_size(file), 2 * page_size() - 99);
}

// Raw writes, exactly like the seed: the process dies of SIGBUS ("Bus error")
// right after printing the last line before the unbacked page.
void check_raw(const std::string& file, const std::vector<std::string>& flags, int bad_page) {
    std::vector<std::string> argv{EXAMPLE_BOUNDARY, "--raw"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(file);
    Process::Environment env;
    if (kAddressSanitizer) {
        // AddressSanitizer's deadly-signal handler would catch the SIGBUS,
        // print "BUS on unknown address" and abort (abort_on_error=1), so the
        // child would die of SIGABRT. handle_sigbus=0 leaves SIGBUS to the
        // kernel's default action, so both builds check the same death.
        const char* options = std::getenv("ASAN_OPTIONS");
        const std::string before =
            options != nullptr && *options != '\0' ? options + std::string(":") : "";
        env.emplace_back("ASAN_OPTIONS", before + "handle_sigbus=0");
    }
    const Outcome result = run(argv, env);
    EXPECT_EQ(result.lines(), boundary_lines(bad_page)) << result.describe();
    EXPECT_TRUE(WIFSIGNALED(result.status) && WTERMSIG(result.status) == SIGBUS)
        << "expected death by SIGBUS, got " << result.describe();
}

// Version 1: the map starts at file offset 0 and covers the whole
// pagesize*2-99 byte file: pages 1 and 2 are usable, page 3 is not.
TEST_F(Boundary, Version1GuardedReportsSigbusAtPage3) {
    check_guarded(path("f"), {}, 3);
}
TEST_F(Boundary, Version1RawDiesOfSigbusAtPage3) {
    check_raw(path("f"), {}, 3);
}

// Version 2: the map starts at offset pagesize and so covers pagesize-99
// bytes of file: page 1 is usable, page 2 is not.
TEST_F(Boundary, Version2GuardedReportsSigbusAtPage2) {
    check_guarded(path("f"), {"--offset-page"}, 2);
}
TEST_F(Boundary, Version2RawDiesOfSigbusAtPage2) {
    check_raw(path("f"), {"--offset-page"}, 2);
}

// ------------------------------------------------------------------------------ cow

using Cow = ExampleTest;

TEST_F(Cow, WritesStayInThePrivateMap) {
    const std::string file = path("cow.txt");
    const Outcome result = run({EXAMPLE_COW, file});
    ASSERT_TRUE(result.exited_with(0)) << result.describe();
    EXPECT_EQ(result.out,
              "private map:   HELLO, file\n"
              "file:          hello, file\n"
              "other process: hello, file\n");
    EXPECT_EQ(read_whole_file(file), "hello, file\n");
}

// ----------------------------------------------------------------------- quickstart

using Quickstart = ExampleTest;

TEST_F(Quickstart, PrintsSizeAndFirstLineThenUppercasesIt) {
    const std::string file = path("notes.txt");
    write_whole_file(file, "hello world\nsecond line\n");
    const Outcome result = run({EXAMPLE_QUICKSTART, file});
    ASSERT_TRUE(result.exited_with(0)) << result.describe();
    EXPECT_EQ(result.out, "24 bytes, first line: hello world\n");
    EXPECT_EQ(read_whole_file(file), "HELLO WORLD\nsecond line\n");
}

TEST_F(Quickstart, EmptyFileIsAnEmptyView) {
    const std::string file = path("empty.txt");
    write_whole_file(file, "");
    const Outcome result = run({EXAMPLE_QUICKSTART, file});
    ASSERT_TRUE(result.exited_with(0)) << result.describe();
    EXPECT_EQ(result.out, "0 bytes, first line: \n");
    EXPECT_EQ(file_size(file), 0u);
}

// ----------------------------------------------------------------------- chan_epoll

using ChanEpoll = ExampleTest;

TEST_F(ChanEpoll, SubscriberInEpollGetsEveryTick) {
    const std::string name = "/pwexample-" + std::to_string(::getpid());
    const Outcome result = run({EXAMPLE_CHAN_EPOLL, name, "5"});
    ASSERT_TRUE(result.exited_with(0)) << result.describe();
    EXPECT_EQ(result.out,
              "subscriber got: tick 1\nsubscriber got: tick 2\nsubscriber got: tick 3\n"
              "subscriber got: tick 4\nsubscriber got: tick 5\nsubscriber: 5 messages, 0 lost\n");
    EXPECT_NE(::access(("/dev/shm" + name).c_str(), F_OK), 0) << "the channel was not removed";
}

// ------------------------------------------------------------------------ bad input

using BadInput = ExampleTest;

// A path that cannot be opened or created gives one line on stderr naming the
// path, exit code 1, and no crash.
TEST_F(BadInput, UnusablePathIsOneLineErrorNamingIt) {
    const std::string missing = path("no/such/dir/file");
    for (const char* program : {EXAMPLE_RECORDS, EXAMPLE_MAP_NORMALFILE1, EXAMPLE_MAP_NORMALFILE2,
                                EXAMPLE_BOUNDARY, EXAMPLE_COW, EXAMPLE_QUICKSTART}) {
        SCOPED_TRACE(program);
        const Outcome result = run({program, missing});
        EXPECT_TRUE(result.exited_with(1)) << result.describe();
        EXPECT_EQ(result.out.find("umap ok"), std::string::npos);
        ASSERT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.describe();
        EXPECT_NE(result.err.find(missing), std::string::npos) << result.describe();
        EXPECT_NE(result.err.find(std::strerror(ENOENT)), std::string::npos) << result.describe();
    }
}

TEST_F(BadInput, MissingArgumentIsUsageError) {
    for (const char* program : {EXAMPLE_RECORDS, EXAMPLE_MAP_NORMALFILE1, EXAMPLE_MAP_NORMALFILE2,
                                EXAMPLE_BOUNDARY, EXAMPLE_COW, EXAMPLE_QUICKSTART}) {
        SCOPED_TRACE(program);
        const Outcome result = run({program});
        EXPECT_TRUE(result.exited_with(2)) << result.describe();
        EXPECT_NE(result.err, "") << result.describe();
    }
}

// map_normalfile2 on an empty file: the guarded read reports the problem
// instead of the process dying of SIGBUS on the unbacked first page.
TEST_F(BadInput, ReaderOfEmptyFileReportsErrorNotSigbus) {
    const std::string file = path("empty");
    write_whole_file(file, "");
    const Outcome result = run({EXAMPLE_MAP_NORMALFILE2, file});
    EXPECT_TRUE(result.exited_with(1)) << result.describe();
    EXPECT_NE(result.err.find(file), std::string::npos) << result.describe();
}

}  // namespace
