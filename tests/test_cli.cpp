// The pagewire command, run as a real process: exit codes, messages, and the
// output of `cat` compared byte for byte with seed 003's program; `replace`
// compared with a replace-all computed here.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "test_util.hpp"

using testutil::contains;
using testutil::RunResult;
using testutil::TempDir;

namespace {

const std::size_t kPage = testutil::page_size();

RunResult pagewire_cli(std::vector<std::string> args) {
    return testutil::run_pagewire(std::move(args));
}

RunResult seed_cat(std::vector<std::string> args) {
    args.insert(args.begin(), SEED003_CAT);
    return testutil::run(args);
}

// A failure: exit 1, nothing on stdout, exactly one line on stderr that
// starts with "pagewire: ".
void expect_one_line_failure(const RunResult& r) {
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_EQ(r.out, "") << r;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
    EXPECT_EQ(r.err.rfind("pagewire: ", 0), 0u) << r;
    EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n') << r;
}

// Non-overlapping, left to right: the meaning `pagewire replace` promises.
std::string replace_all(std::string s, const std::string& from, const std::string& to,
                        std::size_t* count = nullptr) {
    std::size_t n = 0;
    std::string out;
    out.reserve(s.size());
    std::size_t pos = 0;
    while (true) {
        std::size_t hit = s.find(from, pos);
        if (hit == std::string::npos) break;
        out.append(s, pos, hit - pos);
        out += to;
        pos = hit + from.size();
        ++n;
    }
    out.append(s, pos, std::string::npos);
    if (count) *count = n;
    return out;
}

}  // namespace

// ---------------------------------------------------------------- usage and help

TEST(Cli, HelpExitsZero) {
    RunResult r = pagewire_cli({"--help"});
    EXPECT_EQ(r.exit_code(), 0) << r;
    for (const char* sub : {"cat", "replace", "bench"}) EXPECT_TRUE(contains(r.out, sub)) << r;
}

TEST(Cli, SubcommandHelpExitsZero) {
    for (const char* sub : {"cat", "replace", "bench"}) {
        RunResult r = pagewire_cli({sub, "--help"});
        EXPECT_EQ(r.exit_code(), 0) << sub << "\n" << r;
        EXPECT_TRUE(contains(r.out, sub)) << r;
        EXPECT_EQ(r.err, "") << r;
    }
}

TEST(Cli, UsageErrorsExitTwo) {
    for (std::vector<std::string> args : {std::vector<std::string>{"frobnicate"},
                                          {"--no-such-flag"},
                                          {"cat", "--no-such-flag", "/etc/hostname"},
                                          {"replace", "--bogus", "f", "a", "b"},
                                          {"bench", "--definitely-not-a-flag"},
                                          {"cat"},
                                          {"replace", "only-a-file"},
                                          {}}) {
        RunResult r = pagewire_cli(args);
        std::string joined;
        for (auto& a : args) joined += a + " ";
        EXPECT_EQ(r.exit_code(), 2) << "pagewire " << joined << "\n" << r;
        EXPECT_FALSE(r.err.empty()) << "a usage error says why: pagewire " << joined;
    }
}

// ---------------------------------------------------------------- cat

TEST(CliCat, NonexistentFileIsOneLineError) {
    RunResult r = pagewire_cli({"cat", "/nonexistent", "0"});
    expect_one_line_failure(r);
    EXPECT_TRUE(contains(r.err, "/nonexistent")) << r;
    EXPECT_TRUE(contains(r.err, "No such file or directory")) << r;
}

TEST(CliCat, DirectoryIsOneLineError) {
    TempDir dir;
    RunResult r = pagewire_cli({"cat", dir.path()});
    expect_one_line_failure(r);
    EXPECT_TRUE(contains(r.err, dir.path())) << r;
    EXPECT_TRUE(contains(r.err, "Is a directory")) << r;
}

namespace {

// Runs `pagewire cat` and seed 003's program on a file of `size` random bytes
// for every interesting offset and length and compares what they print.
void compare_with_seed003(std::size_t size) {
    TempDir dir;
    int compared = 0;
    {
        // Named first: `"literal" + <temporary string>` trips a GCC 12 -O3 -Wrestrict false
        // positive (GCC bug 105329).
        const std::string size_text = std::to_string(size);
        auto path = dir.file("f" + size_text);
        std::string data = testutil::random_bytes(size, static_cast<std::uint32_t>(size));
        testutil::write_file(path, data);
        std::vector<std::size_t> offsets = {0, 1, kPage - 1, kPage, kPage + 1, size - 1};
        std::vector<std::string> lengths = {"", "0", "1", "100", "2000000000"};
        for (std::size_t offset : offsets) {
            for (const std::string& length : lengths) {
                std::vector<std::string> args = {path, std::to_string(offset)};
                if (!length.empty()) args.push_back(length);
                RunResult ref = seed_cat(args);
                std::vector<std::string> pw_args = args;
                pw_args.insert(pw_args.begin(), "cat");
                RunResult pw = pagewire_cli(pw_args);
                std::string label = "size " + std::to_string(size) + " offset " +
                                    std::to_string(offset) + " length '" + length + "'";
                if (ref.exit_code() == 0) {
                    EXPECT_EQ(pw.exit_code(), 0) << label << "\n" << pw;
                    EXPECT_EQ(pw.out.size(), ref.out.size()) << label;
                    EXPECT_TRUE(pw.out == ref.out) << label << ": output differs from seed 003's";
                    EXPECT_EQ(pw.err, "") << label;
                    // and both agree with the file itself
                    std::size_t want = length.empty() ? std::string::npos : std::stoul(length);
                    EXPECT_TRUE(ref.out == data.substr(offset, want)) << label;
                    ++compared;
                } else {
                    ASSERT_GE(offset, size) << label << ": the reference failed unexpectedly\n"
                                            << ref;
                    EXPECT_TRUE(contains(ref.err, "offset is past end of file")) << ref;
                    expect_one_line_failure(pw);
                    EXPECT_TRUE(contains(pw.err, "past end")) << label << "\n" << pw;
                    EXPECT_TRUE(contains(pw.err, path)) << label << "\n" << pw;
                }
            }
        }
    }
    EXPECT_GE(compared, 5);
}

}  // namespace

TEST(CliCat, MatchesSeed003OneByte) {
    compare_with_seed003(1);
}
TEST(CliCat, MatchesSeed003PageMinusOne) {
    compare_with_seed003(kPage - 1);
}
TEST(CliCat, MatchesSeed003OnePage) {
    compare_with_seed003(kPage);
}
TEST(CliCat, MatchesSeed003PagePlusOne) {
    compare_with_seed003(kPage + 1);
}
TEST(CliCat, MatchesSeed003ThreePagesPlus17) {
    compare_with_seed003(3 * kPage + 17);
}

TEST(CliCat, OffsetOptionalAndHugeLengthsClamp) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(2 * kPage + 5);
    testutil::write_file(path, data);
    RunResult whole = pagewire_cli({"cat", path});
    EXPECT_EQ(whole.exit_code(), 0) << whole;
    EXPECT_TRUE(whole.out == data);
    RunResult max = pagewire_cli({"cat", path, "10", "18446744073709551615"});
    EXPECT_EQ(max.exit_code(), 0) << max;
    EXPECT_TRUE(max.out == data.substr(10));
}

TEST(CliCat, BadNumbersAreRefused) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "0123456789");
    for (std::vector<std::string> args : {std::vector<std::string>{"cat", path, "-1"},
                                          {"cat", path, "abc"},
                                          {"cat", path, "0", "-5"},
                                          {"cat", path, "99999999999999999999999"}}) {
        RunResult r = pagewire_cli(args);
        EXPECT_TRUE(r.exit_code() == 1 || r.exit_code() == 2) << r;
        EXPECT_EQ(r.out, "") << r;
        EXPECT_FALSE(r.err.empty()) << r;
    }
}

TEST(CliCat, EmptyFilePrintsNothing) {
    TempDir dir;
    auto path = dir.file("empty");
    testutil::write_file(path, "");
    for (std::vector<std::string> args :
         {std::vector<std::string>{"cat", path}, {"cat", path, "0"}, {"cat", path, "0", "100"}}) {
        RunResult r = pagewire_cli(args);
        EXPECT_EQ(r.exit_code(), 0) << r;
        EXPECT_EQ(r.out, "");
        EXPECT_EQ(r.err, "");
    }
    RunResult past = pagewire_cli({"cat", path, "1"});
    expect_one_line_failure(past);
    EXPECT_TRUE(contains(past.err, "past end")) << past;
}

TEST(CliCat, ClosedStdoutEndsQuietly) {
    TempDir dir;
    auto path = dir.file("big");
    testutil::write_file(path, std::string(4 << 20, 'x'));
    // stdout is a pipe whose reader is gone (pagewire cat big | head). Either
    // the conventional death by SIGPIPE, or EPIPE reported on one line with
    // exit 1; never a crash, a hang or a claim of success.
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    ::close(fds[0]);
    int err_pipe[2];
    ASSERT_EQ(::pipe(err_pipe), 0);
    int status = testutil::run_in_child([&] {
        ::dup2(fds[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        ::signal(SIGPIPE, SIG_DFL);
        ::execl(PAGEWIRE_CLI, PAGEWIRE_CLI, "cat", path.c_str(), static_cast<char*>(nullptr));
        return 127;
    });
    ::close(fds[1]);
    ::close(err_pipe[1]);
    std::string err;
    char buf[4096];
    for (ssize_t n; (n = ::read(err_pipe[0], buf, sizeof buf)) > 0;)
        err.append(buf, static_cast<std::size_t>(n));
    ::close(err_pipe[0]);
    if (WIFSIGNALED(status)) {
        EXPECT_EQ(WTERMSIG(status), SIGPIPE) << testutil::describe_status(status);
    } else {
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1)
            << testutil::describe_status(status);
        EXPECT_EQ(testutil::line_count(err), 1u) << err;
        EXPECT_TRUE(contains(err, "Broken pipe")) << err;
    }
}

// ---------------------------------------------------------------- replace

namespace {

// Runs `pagewire replace` on a file holding `content` and checks the result
// against replace_all, the count on stdout and the file's mode.
void check_replace(const std::string& content, const std::string& from, const std::string& to,
                   mode_t mode = 0640) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, content, mode);
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    ino_t inode = testutil::stat_of(path).st_ino;
    std::size_t count = 0;
    std::string expected = replace_all(content, from, to, &count);

    RunResult r = pagewire_cli({"replace", path, from, to});
    std::string label =
        "'" + from + "' -> '" + to + "' on " + std::to_string(content.size()) + " bytes";
    ASSERT_EQ(r.exit_code(), 0) << label << "\n" << r;
    std::string after = testutil::read_file(path);
    EXPECT_EQ(after.size(), expected.size()) << label;
    EXPECT_TRUE(after == expected)
        << label << (content.size() < 200 ? "\ngot: " + after + "\nwant: " + expected : "");
    EXPECT_TRUE(contains(r.out, std::to_string(count))) << label << ": count " << count << "\n"
                                                        << r;
    EXPECT_EQ(testutil::stat_of(path).st_mode & 07777, mode) << label;
    if (from.size() == to.size()) {
        EXPECT_EQ(testutil::stat_of(path).st_ino, inode) << "in place";
    }
}

}  // namespace

TEST(CliReplace, EqualLengthInPlace) {
    check_replace("this is a test of the test file; test", "test", "best");
    check_replace("testtesttest", "test", "TEST");
}

TEST(CliReplace, Seed000TestToMapShrinks) {
    check_replace("this is a test\nanother test line\nno match here\ntest", "test", "map");
}

TEST(CliReplace, LongerReplacementGrows) {
    check_replace("map the map, mapmap", "map", "mmap!");
    check_replace("a", "a", "a much longer replacement");
}

TEST(CliReplace, OverlappingPatternsLeftToRight) {
    check_replace("aaaaa", "aa", "b");
    check_replace("aaaaa", "aa", "aaa");
    check_replace("aaaaa", "aa", "xy");
    check_replace("aaa", "a", "aa");  // TO contains FROM: no re-scan of replaced text
    check_replace("abababa", "aba", "X");
}

TEST(CliReplace, MatchesAtStartAndEnd) {
    check_replace("xmiddlex", "x", "START");
    check_replace("xmiddlex", "x", "");
    check_replace("xxmiddlexx", "xx", "y");
}

TEST(CliReplace, WholeFileReplacedByNothing) {
    check_replace("abab", "ab", "");
    check_replace("abab", "abab", "");
}

TEST(CliReplace, NoMatchesLeavesFileUnchanged) {
    check_replace("nothing to see here", "zzz", "y");
    check_replace("nothing to see here", "zzz", "yyyyyy");
    check_replace("nothing to see here", "zzz", "yyy");
    check_replace("short", "longer than the file", "x");
}

TEST(CliReplace, EmptyFile) {
    check_replace("", "a", "bbb");
}

TEST(CliReplace, BinaryContentWithNulBytes) {
    std::string content("test\0test\0\0test", 15);
    check_replace(content, "test", "map");
    check_replace(content, "test", "mapping");
}

TEST(CliReplace, LargeFileManyMatchesGrowAndShrink) {
    // 50 MB with about 7 million matches: more than one chunk (2^20 matches)
    // of the growing pass. Under ASan only 4 MB with ~30 000 matches: ASan's
    // memmem interceptor checks the whole rest of the haystack on every call,
    // which makes a many-match scan quadratic (minutes for the 50 MB file).
    const std::size_t size = testutil::kAsan ? 4u << 20 : 50u << 20;
    const unsigned threshold = testutil::kAsan ? 2 : 48;  // of 256: how often "PW" follows a byte
    std::string content;
    content.reserve(size + (2 << 20));
    std::string rnd = testutil::random_bytes(1 << 20, 7);
    std::size_t i = 0;
    while (content.size() < size) {
        auto c = static_cast<unsigned char>(rnd[i++ % rnd.size()]);
        content += static_cast<char>('a' + c % 16);
        if (c < threshold) content += "PW";
    }
    check_replace(content, "PW", "<pagewire>", 0600);
    check_replace(content, "PW", "", 0604);
    check_replace(content, "PW", "pw", 0644);
}

TEST(CliReplace, MissingFileIsOneLineError) {
    TempDir dir;
    auto path = dir.file("missing");
    RunResult r = pagewire_cli({"replace", path, "a", "b"});
    expect_one_line_failure(r);
    EXPECT_TRUE(contains(r.err, path)) << r;
    EXPECT_TRUE(contains(r.err, "No such file or directory")) << r;
    EXPECT_FALSE(std::filesystem::exists(path)) << "replace must not create the file";
}

TEST(CliReplace, EmptyFromIsRefused) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "content");
    RunResult r = pagewire_cli({"replace", path, "", "x"});
    EXPECT_TRUE(r.exit_code() == 1 || r.exit_code() == 2) << r;
    EXPECT_EQ(r.out, "") << r;
    EXPECT_FALSE(r.err.empty());
    EXPECT_TRUE(contains(r.err, "FROM") || contains(r.err, "empty")) << r;
    EXPECT_EQ(testutil::read_file(path), "content");
}

TEST(CliReplace, DirectoryIsOneLineError) {
    TempDir dir;
    RunResult r = pagewire_cli({"replace", dir.path(), "a", "b"});
    expect_one_line_failure(r);
    EXPECT_TRUE(contains(r.err, dir.path())) << r;
}

// ---------------------------------------------------------------- files that are not plain files

// A file whose size the kernel does not report is read, not mapped as empty.
TEST(CliSpecialFiles, ProcFilesAreReadNotPrintedEmpty) {
    RunResult r = pagewire_cli({"cat", "/proc/self/status"});
    EXPECT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(contains(r.out, "Name:")) << r;
    r = pagewire_cli({"cat", "/proc/cpuinfo"});
    EXPECT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(contains(r.out, "processor")) << r;

    TempDir dir;
    r = pagewire_cli({"copy", "/proc/self/status", dir.file("status")});
    EXPECT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(contains(testutil::read_file(dir.file("status")), "Name:"));
}

TEST(CliSpecialFiles, ProcFileCannotBeEditedInPlace) {
    RunResult r = pagewire_cli({"replace", "/proc/self/status", "a", "b"});
    expect_one_line_failure(r);
    EXPECT_TRUE(contains(r.err, "no size")) << r;
    EXPECT_FALSE(contains(r.out, "replaced")) << r;
}

// Devices and FIFOs are refused at once with the reason, never an empty
// success and never a wait for a FIFO's writer.
TEST(CliSpecialFiles, DevicesAndFifosAreRefused) {
    TempDir dir;
    const std::string fifo = dir.file("fifo");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    for (std::vector<std::string> args : {std::vector<std::string>{"cat", "/dev/zero"},
                                          {"cat", fifo},
                                          {"copy", fifo, dir.file("out")},
                                          {"replace", fifo, "a", "b"}}) {
        RunResult r = pagewire_cli(args);
        SCOPED_TRACE(args[0] + " " + args[1]);
        expect_one_line_failure(r);
        EXPECT_TRUE(contains(r.err, "not a regular file")) << r;
    }
    EXPECT_FALSE(std::filesystem::exists(dir.file("out")));
}

// ---------------------------------------------------------------- usage format and stdout

TEST(CliUsage, UnknownSubcommandIsNamedWithTheList) {
    RunResult r = pagewire_cli({"bogus"});
    EXPECT_EQ(r.exit_code(), 2) << r;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
    EXPECT_TRUE(contains(r.err, "pagewire: unknown subcommand 'bogus'")) << r;
    EXPECT_TRUE(contains(r.err, "cat") && contains(r.err, "serve")) << r;
}

TEST(CliUsage, UsageErrorsStartWithTheProgramName) {
    for (std::vector<std::string> args :
         {std::vector<std::string>{"cat"}, {"--no-such-flag"}, {}}) {
        RunResult r = pagewire_cli(args);
        EXPECT_EQ(r.exit_code(), 2) << r;
        EXPECT_EQ(r.err.rfind("pagewire: ", 0), 0u) << r;
    }
    RunResult help = pagewire_cli({"--help"});
    EXPECT_TRUE(contains(help.out, "Exit status")) << help;
}

// Output that cannot be written is a failure: exit 1 and the reason.
TEST(CliUsage, FullStdoutIsAnError) {
    TempDir dir;
    testutil::write_file(dir.file("f"), "some bytes\n");
    for (std::vector<std::string> args : {std::vector<std::string>{"cache", "stat", dir.file("f")},
                                          {"copy", dir.file("f"), dir.file("g"), "--stats"},
                                          {"--help"}}) {
        std::string cmd = std::string(PAGEWIRE_CLI);
        for (const std::string& a : args) cmd += " '" + a + "'";
        const std::string err = dir.file("err");
        const int status = std::system((cmd + " > /dev/full 2> '" + err + "'").c_str());
        ASSERT_TRUE(WIFEXITED(status)) << cmd;
        EXPECT_EQ(WEXITSTATUS(status), 1) << cmd;
        EXPECT_TRUE(contains(testutil::read_file(err), "write stdout: No space left on device"))
            << cmd;
        std::filesystem::remove(dir.file("g"));
    }
}

// `ulimit -f` set before exec, SIGXFSZ at its default action: growing the
// file past the limit is one line naming "File too large", and the file is
// left as it was (issue 12).
TEST(CliReplace, GrowingPastTheFileSizeLimitFailsCleanly) {
    TempDir dir;
    auto path = dir.file("f");
    const std::string content(48 * 1024, 'a');
    testutil::write_file(path, content);
    testutil::RunOptions options;
    options.limits = {{RLIMIT_FSIZE, 64 * 1024}};
    RunResult r = testutil::run_pagewire({"replace", path, "a", "bb"}, options);
    expect_one_line_failure(r);
    EXPECT_TRUE(contains(r.err, "File too large")) << r;
    EXPECT_TRUE(contains(r.err, path)) << r;
    EXPECT_TRUE(testutil::read_file(path) == content);
}

// "-" where a file is expected: stdin for cat (a pipe too), copy and send's
// SRC (a regular file: copy keeps SRC's mode, send sends its length first),
// stdout for copy's DST.
namespace {

// Runs `pagewire ARGS < stdin_path > stdout_path` through the shell; the exit status.
int run_redirected(const std::vector<std::string>& args, const std::string& stdin_path,
                   const std::string& stdout_path, const std::string& stderr_path) {
    std::string cmd = std::string(PAGEWIRE_CLI);
    for (const std::string& a : args) cmd += " '" + a + "'";
    cmd += " < '" + stdin_path + "' > '" + stdout_path + "' 2> '" + stderr_path + "'";
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST(CliStdio, CatDashReadsStdinEvenAPipe) {
    RunResult r = testutil::run_pagewire({"cat", "-"}, "piped bytes\n");
    EXPECT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(r.out, "piped bytes\n");
    RunResult at = testutil::run_pagewire({"cat", "-", "3"}, "piped bytes\n");
    expect_one_line_failure(at);
    EXPECT_TRUE(contains(at.err, "cat stdin: ")) << at;
    // A regular file on stdin is mapped like a named one: any offset.
    TempDir dir;
    testutil::write_file(dir.file("in"), "0123456789");
    EXPECT_EQ(
        run_redirected({"cat", "-", "4", "3"}, dir.file("in"), dir.file("out"), dir.file("err")), 0)
        << testutil::read_file(dir.file("err"));
    EXPECT_EQ(testutil::read_file(dir.file("out")), "456");
}

TEST(CliStdio, CopyFromAndToDash) {
    TempDir dir;
    std::string data(300000, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 251);
    testutil::write_file(dir.file("src"), data);
    // DST "-": the bytes on stdout, --stats on stderr.
    ASSERT_EQ(run_redirected({"copy", dir.file("src"), "-", "--stats"}, "/dev/null",
                             dir.file("out"), dir.file("err")),
              0)
        << testutil::read_file(dir.file("err"));
    EXPECT_TRUE(testutil::read_file(dir.file("out")) == data);
    EXPECT_TRUE(contains(testutil::read_file(dir.file("err")), "-> stdout: 300000 bytes"));
    // SRC "-": a file on stdin, copied to DST.
    ASSERT_EQ(run_redirected({"copy", "-", dir.file("dst")}, dir.file("src"), dir.file("out"),
                             dir.file("err")),
              0)
        << testutil::read_file(dir.file("err"));
    EXPECT_TRUE(testutil::read_file(dir.file("dst")) == data);
    // A pipe on stdin has no length to copy by: refused in one line.
    RunResult piped = testutil::run_pagewire({"copy", "-", dir.file("dst2")}, "bytes");
    expect_one_line_failure(piped);
    EXPECT_TRUE(contains(piped.err, "copy stdin: ")) << piped;
    EXPECT_FALSE(std::filesystem::exists(dir.file("dst2")));
}

TEST(CliStdio, SendDashNeedsAFileOnStdin) {
    RunResult r = testutil::run_pagewire({"send", "-", "127.0.0.1:9"}, "bytes");
    expect_one_line_failure(r);
    EXPECT_EQ(r.err, "pagewire: send stdin: not a regular file\n") << r;
}

// -q/--quiet before or after the subcommand drops the status line only.
TEST(CliQuiet, StatusLinesGoDataStays) {
    TempDir dir;
    testutil::write_file(dir.file("f"), "aXbXc");
    RunResult loud = testutil::run_pagewire({"replace", dir.file("f"), "X", "Y"});
    EXPECT_EQ(loud.exit_code(), 0) << loud;
    EXPECT_EQ(loud.out, "replaced 2 occurrences in " + dir.file("f") + "\n");
    for (std::vector<std::string> args :
         {std::vector<std::string>{"-q", "replace", dir.file("f"), "Y", "Z"},
          {"replace", dir.file("f"), "Z", "W", "--quiet"}}) {
        RunResult r = testutil::run_pagewire(args);
        EXPECT_EQ(r.exit_code(), 0) << r;
        EXPECT_EQ(r.out, "") << r;
        EXPECT_EQ(r.err, "") << r;
    }
    EXPECT_EQ(testutil::read_file(dir.file("f")), "aWbWc");
    RunResult one = testutil::run_pagewire({"replace", dir.file("f"), "aW", "x"});
    EXPECT_EQ(one.out, "replaced 1 occurrence in " + dir.file("f") + "\n") << one;
    // Data is not a status line: cat -q still prints.
    RunResult data = testutil::run_pagewire({"-q", "cat", dir.file("f")});
    EXPECT_EQ(data.out, "xbWc") << data;
}

// --stats: the CPU split adds up to the total, counts agree with their nouns,
// sizes are said in binary units next to the exact count.
TEST(CliCopyStats, NumbersAgree) {
    TempDir dir;
    testutil::write_file(dir.file("src"), std::string(3u << 20, 'z'));
    RunResult r = testutil::run_pagewire(
        {"copy", dir.file("src"), dir.file("dst"), "--method", "read-write", "--stats"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(contains(r.out, "3145728 bytes (3.0 MiB) by read-write")) << r;
    EXPECT_FALSE(contains(r.out, " 1 syscalls")) << r;
    double cpu = 0, user = 0, system = 0;
    const auto at = r.out.find("; cpu ");
    ASSERT_NE(at, std::string::npos) << r;
    const int got =
        std::sscanf(r.out.c_str() + at, "; cpu %lf s (user %lf system %lf)", &cpu, &user, &system);
    ASSERT_GE(got, 1) << r;
    if (got == 3) {  // the split is there once the copy lasted a scheduler tick
        EXPECT_LE(user, cpu + 1e-6) << r;
        EXPECT_LE(system, cpu + 1e-6) << r;
        EXPECT_NEAR(user + system, cpu, 2e-6) << r;
    }
}
