// `pagewire log` from the shell: create, append, read (text and JSON), tail
// across processes, stat, verify of a damaged segment, dump, retain, and the
// one-line failures.
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <pagewire/log.hpp>
#include <thread>

#include "../test_util.hpp"

namespace {

using testutil::RunResult;

RunResult cli(std::vector<std::string> args, std::string_view input = {}) {
    return testutil::run_pagewire(std::move(args), input);
}

void expect_one_line_failure(const RunResult& r, const std::string& starts) {
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_EQ(r.err.rfind(starts, 0), 0u) << r;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
}

TEST(LogCli, AppendReadStatVerifyDump) {
    testutil::TempDir dir;
    std::string log = dir.file("orders");
    ASSERT_EQ(cli({"log", "create", log}).exit_code(), 0);
    RunResult a =
        cli({"log", "append", log, "--key", "k1", "--batch", "2"}, "alpha\nbeta\ngamma\n");
    ASSERT_EQ(a.exit_code(), 0) << a;
    EXPECT_EQ(a.out, "appended 3 records, offsets 0..2\n");
    ASSERT_EQ(
        cli({"log", "append", log, "--count", "1000", "--size", "100", "--segment-bytes", "16K"})
            .exit_code(),
        0);

    RunResult r = cli({"log", "read", log, "--from", "1", "--count", "2"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    ASSERT_EQ(testutil::line_count(r.out), 2u) << r;
    EXPECT_TRUE(testutil::contains(r.out, "\tk1\tbeta\n")) << r.out;
    EXPECT_TRUE(testutil::contains(r.out, "\tk1\tgamma\n")) << r.out;

    RunResult j = cli({"log", "read", log, "--json"});
    ASSERT_EQ(j.exit_code(), 0) << j;
    ASSERT_EQ(testutil::line_count(j.out), 1003u);
    auto first = nlohmann::json::parse(j.out.substr(0, j.out.find('\n')));
    EXPECT_EQ(first["offset"], 0);
    EXPECT_EQ(first["key"], "k1");
    EXPECT_EQ(first["value"], "alpha");

    RunResult s = cli({"log", "stat", log, "--json"});
    ASSERT_EQ(s.exit_code(), 0) << s;
    auto st = nlohmann::json::parse(s.out);
    EXPECT_EQ(st["end_offset"], 1003);
    EXPECT_GT(st["segments"].size(), 1u);
    EXPECT_GT(st["segments"][0]["pages"], 0);

    RunResult v = cli({"log", "verify", log});
    EXPECT_EQ(v.exit_code(), 0) << v;

    RunResult d = cli({"log", "dump", log, "--print-records"});
    ASSERT_EQ(d.exit_code(), 0) << d;
    EXPECT_TRUE(testutil::contains(d.out, "baseOffset: 0 lastOffset: 1 count: 2")) << d.out;
    EXPECT_TRUE(testutil::contains(d.out, "isvalid: true")) << d.out;
    EXPECT_TRUE(testutil::contains(d.out, "| offset: 2 ")) << d.out;

    RunResult t = cli({"log", "read", log, "--from-time", "0", "--count", "1"});
    EXPECT_TRUE(testutil::contains(t.out, "alpha")) << t;

    RunResult ret =
        cli({"log", "retain", log, "--retention-bytes", "20K", "--segment-bytes", "16K"});
    ASSERT_EQ(ret.exit_code(), 0) << ret;
    EXPECT_FALSE(testutil::contains(ret.out, "deleted 0 ")) << ret.out;
    expect_one_line_failure(cli({"log", "read", log, "--from", "0"}),
                            "pagewire: log read " + log + ": offset 0 is out of range");
}

TEST(LogCli, VerifySaysWhereDamageIs) {
    testutil::TempDir dir;
    std::string log = dir.file("l");
    ASSERT_EQ(cli({"log", "append", log, "--count", "10"}).exit_code(), 1);  // no such log
    ASSERT_EQ(cli({"log", "create", log}).exit_code(), 0);
    ASSERT_EQ(cli({"log", "append", log, "--count", "10", "--batch", "5"}).exit_code(), 0);
    std::string seg = log + "/00000000000000000000.log";
    std::string bytes = testutil::read_file(seg);
    std::size_t second = bytes.size() / 2;  // two equal batches
    bytes[second + 100] ^= 1;
    testutil::write_file(seg, bytes);
    RunResult v = cli({"log", "verify", log});
    expect_one_line_failure(v, "pagewire: log verify " + log + ": damaged: " + seg + " byte " +
                                   std::to_string(second) + ": crc mismatch");
}

TEST(LogCli, BadInputIsOneLine) {
    testutil::TempDir dir;
    testutil::write_file(dir.file("x.txt"), "x");
    expect_one_line_failure(cli({"log", "stat", dir.path()}),
                            "pagewire: log stat " + dir.path() + ": not a log directory");
    expect_one_line_failure(cli({"log", "read", dir.file("missing")}),
                            "pagewire: log read " + dir.file("missing"));
    std::string log = dir.file("l");
    ASSERT_EQ(cli({"log", "create", log}).exit_code(), 0);
    expect_one_line_failure(cli({"log", "create", log}),
                            "pagewire: log create " + log + ": already exists");
    expect_one_line_failure(cli({"log", "append", log, "--durability", "sometimes"}, "a\n"),
                            "pagewire: log append " + log + ": --durability");
    expect_one_line_failure(cli({"log", "read", log, "--from", "5"}),
                            "pagewire: log read " + log + ": offset 5 is out of range");
}

// The rest of the bad input: foreign files in a log, a directory
// with no segment, a second writer, an offset past the end for tail; each one
// line and exit 1, and the log unchanged afterwards.
TEST(LogCli, ForeignFilesSecondWriterAndRangesAreOneLine) {
    testutil::TempDir dir;
    std::string log = dir.file("l");
    ASSERT_EQ(cli({"log", "create", log}).exit_code(), 0);
    ASSERT_EQ(cli({"log", "append", log}, "one\ntwo\n").exit_code(), 0);

    testutil::write_file(log + "/notes.txt", "mine");
    for (const char* op : {"append", "read", "stat", "verify"})
        expect_one_line_failure(cli({"log", op, log}, "x\n"),
                                "pagewire: log " + std::string(op) + " " + log +
                                    ": not a log directory: foreign file notes.txt");
    ASSERT_EQ(::unlink((log + "/notes.txt").c_str()), 0);

    std::string empty = dir.file("empty");
    ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
    expect_one_line_failure(cli({"log", "read", empty}),
                            "pagewire: log read " + empty + ": not a log directory: no segment");

    {
        pagewire::Log writer = pagewire::Log::open(log);
        expect_one_line_failure(cli({"log", "append", log}, "three\n"),
                                "pagewire: log append " + log + ": another writer");
        // A reader is no writer: it reads beside the one holding the lock.
        RunResult r = cli({"log", "read", log});
        EXPECT_EQ(r.exit_code(), 0) << r;
        EXPECT_EQ(testutil::line_count(r.out), 2u) << r;
    }
    expect_one_line_failure(cli({"log", "read", log, "--from", "-1"}),
                            "pagewire: log read " + log + ": offset -1 is out of range");
    expect_one_line_failure(cli({"log", "tail", log, "--from", "3"}),
                            "pagewire: log tail " + log + ": offset 3 is out of range");
    RunResult v = cli({"log", "verify", log});
    EXPECT_EQ(v.exit_code(), 0) << v;
    RunResult r = cli({"log", "read", log});
    EXPECT_EQ(testutil::line_count(r.out), 2u) << r;
}

// A full disk: append fails with one line, and what was appended before
// stays readable.
TEST(LogCli, FullDiskIsOneLineAndTheLogStillOpens) {
    testutil::SmallTmpfs dir("1m");
    if (!dir.mounted()) GTEST_SKIP() << "needs a small tmpfs: " << dir.why();
    std::string log = dir.file("l");
    ASSERT_EQ(cli({"log", "create", log, "--segment-bytes", "256K"}).exit_code(), 0);
    ASSERT_EQ(cli({"log", "append", log, "--segment-bytes", "256K"}, "kept\n").exit_code(), 0);
    RunResult a = cli({"log", "append", log, "--segment-bytes", "256K", "--count", "20000",
                       "--size", "1000", "--batch", "1"});
    EXPECT_EQ(a.exit_code(), 1) << a;
    EXPECT_EQ(testutil::line_count(a.err), 1u) << a;
    EXPECT_TRUE(testutil::contains(a.err, "pagewire: log append " + log)) << a;
    EXPECT_TRUE(testutil::contains(a.err, "No space left on device")) << a;
    RunResult r = cli({"log", "read", log, "--count", "1"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(testutil::contains(r.out, "\tnull\tkept\n")) << r.out;
    RunResult v = cli({"log", "verify", log});
    EXPECT_EQ(v.exit_code(), 0) << v;
}

TEST(LogCli, TailSeesAppendsFromAnotherProcess) {
    testutil::TempDir dir;
    std::string log = dir.file("l");
    ASSERT_EQ(cli({"log", "create", log}).exit_code(), 0);
    std::thread writer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        cli({"log", "append", log}, "one\ntwo\nthree\n");
    });
    RunResult t = cli({"log", "tail", log, "--from", "0", "--count", "3"});
    writer.join();
    ASSERT_EQ(t.exit_code(), 0) << t;
    EXPECT_TRUE(testutil::contains(t.out, "\tnull\tone\n")) << t.out;
    EXPECT_TRUE(testutil::contains(t.out, "\tnull\tthree\n")) << t.out;
}

}  // namespace
