// `pagewire chan create|send|recv|stat` as separate processes: lines in,
// lines out, totals, errors as one line, and the segment visible to `pagewire shm`.
#define SHM_HELPER CHAN_HELPER  // see test_chan.cpp
#include <signal.h>

#include <nlohmann/json.hpp>
#include <pagewire/channel.hpp>
#include <thread>

#include "../shm/shm_test_util.hpp"

using namespace pagewire;
using shmtest::Cleanup;
using testutil::contains;
using testutil::RunResult;

namespace {

RunResult cli(std::vector<std::string> args, std::string_view input = {}) {
    return testutil::run_pagewire(std::move(args), input);
}

void expect_one_line_failure(const RunResult& r, const std::string& starts) {
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_EQ(r.err.rfind(starts, 0), 0u) << r;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
}

nlohmann::json stat_json(const std::string& name) {
    RunResult r = cli({"chan", "stat", name, "--json"});
    EXPECT_EQ(r.exit_code(), 0) << r;
    return nlohmann::json::parse(r.out);
}

// Waits (up to 10 s) until `count` subscribers are registered; their pids.
std::vector<pid_t> wait_for_subscribers(const std::string& name, std::size_t count) {
    for (int i = 0; i < 1000; ++i) {
        std::vector<pid_t> pids;
        const nlohmann::json j = stat_json(name);
        for (const auto& p : j["peers"])
            if (p["role"] == "subscriber" && p["alive"] == true)
                pids.push_back(p["pid"].get<pid_t>());
        if (pids.size() >= count) return pids;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << count << " subscribers never registered on " << name << ": "
                  << stat_json(name).dump();
    return {};
}

}  // namespace

TEST(ChanCli, CreateSendRecvStat) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    RunResult r =
        cli({"chan", "create", name, "--kind", "spsc", "--capacity", "8", "--max-message", "64"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(contains(r.out, "created spsc channel " + name + ": 8 messages of up to 64 bytes"))
        << r;

    r = cli({"chan", "send", name}, "hello\nworld\nlast line without newline");
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(r.out, "sent 3 messages (35 bytes) to " + name + "\n");
    r = cli({"chan", "stat", name, "--json"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["kind"], "spsc");
    EXPECT_EQ(j["capacity"], 8);
    EXPECT_EQ(j["max_message"], 64);
    EXPECT_EQ(j["depth"], 3);
    EXPECT_EQ(j["sent"], 3);
    EXPECT_EQ(j["received"], 0);

    r = cli({"chan", "recv", name, "--count", "2"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(r.out, "hello\nworld\n");
    r = cli({"chan", "recv", name, "--timeout", "50ms"});  // drains, then stops
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(r.out, "last line without newline\n");
    expect_one_line_failure(cli({"chan", "recv", name, "--count", "1", "--timeout", "50ms"}),
                            "pagewire: recv " + name + ": timed out after 0 of 1 messages");

    r = cli({"chan", "send", name, "--count", "5", "--size", "12"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    r = cli({"chan", "recv", name, "-n", "5"});
    EXPECT_EQ(r.out, "00000000 aaa\n00000001 bbb\n00000002 ccc\n00000003 ddd\n00000004 eee\n") << r;

    r = cli({"chan", "stat", name});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(contains(r.out, "Kind: spsc")) << r;
    EXPECT_TRUE(contains(r.out, "Sent: 8\n")) << r;
    EXPECT_TRUE(contains(r.out, "Received: 8\n")) << r;
    EXPECT_TRUE(contains(r.out, "Depth: 0\n")) << r;

    // It is a pagewire segment like any other.
    r = cli({"shm", "stat", name, "--json"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(nlohmann::json::parse(r.out)["pagewire"], true);
    EXPECT_EQ(cli({"shm", "rm", name}).exit_code(), 0);
    expect_one_line_failure(cli({"chan", "stat", name}),
                            "pagewire: open " + name + ": No such file or directory");
}

TEST(ChanCli, MpmcLinesGoToOneConsumerEach) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    ASSERT_EQ(cli({"chan", "create", name, "--kind", "mpmc", "--capacity", "1K"}).exit_code(), 0);
    std::string input;
    for (int i = 0; i < 500; ++i) input += "line " + std::to_string(i) + "\n";
    ASSERT_EQ(cli({"chan", "send", name}, input).exit_code(), 0);
    ASSERT_EQ(cli({"chan", "send", name}, input).exit_code(), 0);  // a second producer, in turn
    RunResult a = cli({"chan", "recv", name, "--count", "600"});
    RunResult b = cli({"chan", "recv", name, "--timeout", "50ms"});
    EXPECT_EQ(a.exit_code(), 0) << a;
    EXPECT_EQ(b.exit_code(), 0) << b;
    EXPECT_EQ(a.out + b.out, input + input);
}

TEST(ChanCli, BadInputGivesOneLineErrors) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    expect_one_line_failure(cli({"chan", "create", name, "--capacity", "0"}),
                            "pagewire: create channel " + name + ": capacity 0 is out of range");
    expect_one_line_failure(
        cli({"chan", "create", name, "--capacity", "1T"}),
        "pagewire: create channel " + name + ": capacity 1099511627776 is out of range");
    EXPECT_EQ(cli({"chan", "create", name, "--kind", "fifo"}).exit_code(), 2);
    EXPECT_EQ(cli({"chan", "create", name, "--overflow", "overwrite"}).exit_code(), 2);  // spsc
    EXPECT_EQ(cli({"chan", "recv", name, "--timeout", "soon"}).exit_code(), 2);

    ASSERT_EQ(cli({"chan", "create", name, "--max-message", "8"}).exit_code(), 0);
    expect_one_line_failure(cli({"chan", "create", name}),
                            "pagewire: create " + name + ": File exists");
    RunResult r = cli({"chan", "send", name}, "fits\nthis line is too long\nnever sent\n");
    expect_one_line_failure(
        r, "pagewire: send " + name + ": message of 21 bytes exceeds the channel's max message 8");
    EXPECT_EQ(cli({"chan", "recv", name, "--timeout", "20ms"}).out,
              "fits\n");  // the lines before it went through

    const std::string plain = shmtest::unique_posix_name();
    Cleanup c2(Backend::Posix, plain);
    ASSERT_EQ(cli({"shm", "create", plain, "--size", "4K"}).exit_code(), 0);
    expect_one_line_failure(cli({"chan", "recv", plain}),
                            "pagewire: open channel " + plain + ": not a pagewire channel");
}

TEST(ChanCli, PubSubEverySubscriberGetsEveryLine) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    RunResult r =
        cli({"chan", "create", name, "--kind", "pubsub", "--capacity", "4", "--max-message", "64"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(contains(r.out, "slow subscribers make the publisher wait")) << r;
    RunResult a, b;
    std::thread ta([&] { a = cli({"chan", "recv", name, "--count", "200", "--timeout", "20s"}); });
    std::thread tb([&] {
        b = cli({"chan", "recv", name, "--count", "200", "--sleep", "-t", "20s"});
    });
    wait_for_subscribers(name, 2);
    std::string input;
    for (int i = 0; i < 200; ++i) input += "message " + std::to_string(i) + "\n";
    // A ring of 4 and 200 lines: the publisher waits for the slower subscriber.
    r = cli({"chan", "send", name, "--timeout", "20s"}, input);
    ta.join();
    tb.join();
    EXPECT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(a.out, input) << a;
    EXPECT_EQ(b.out, input) << b;
    auto j = stat_json(name);
    EXPECT_EQ(j["kind"], "pubsub");
    EXPECT_EQ(j["overflow"], "block");
    EXPECT_EQ(j["sent"], 200);
    EXPECT_EQ(j["received"], 400);  // 200 to each subscriber
    EXPECT_EQ(j["lost"], 0);
    EXPECT_TRUE(j["peers"].empty()) << j.dump();
}

TEST(ChanCli, PubSubOverwriteTellsTheSubscriberWhatItLost) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    ASSERT_EQ(cli({"chan", "create", name, "--kind", "pubsub", "--capacity", "4", "--overflow",
                   "overwrite"})
                  .exit_code(),
              0);
    RunResult sub;
    std::thread t([&] { sub = cli({"chan", "recv", name, "--count", "3", "--timeout", "20s"}); });
    std::vector<pid_t> pids = wait_for_subscribers(name, 1);
    ASSERT_EQ(pids.size(), 1u);
    // Stopped, the subscriber cannot keep up: the publisher overwrites 7 of 10.
    ASSERT_EQ(::kill(pids[0], SIGSTOP), 0);
    RunResult r = cli({"chan", "send", name, "--timeout", "5s"}, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
    EXPECT_EQ(r.exit_code(), 0) << r;  // never waited for the stopped subscriber
    auto j = stat_json(name);
    EXPECT_EQ(j["peers"][0]["lag"], 10) << j.dump();
    ASSERT_EQ(::kill(pids[0], SIGCONT), 0);
    t.join();
    EXPECT_EQ(sub.exit_code(), 0) << sub;
    EXPECT_EQ(sub.out, "8\n9\n10\n");
    EXPECT_EQ(sub.err, "pagewire chan recv: " + name + ": lost 7 messages before message 8\n");
    j = stat_json(name);
    EXPECT_EQ(j["lost"], 7);
    EXPECT_EQ(j["received"], 3);
}

// `chan ls` lists channels and nothing else; `chan rm` removes channels and
// refuses other segments (naming them), trying every NAME.
TEST(ChanCli, LsListsChannelsAndRmRemovesOnlyChannels) {
    const std::string chan = shmtest::unique_posix_name(), plain = shmtest::unique_posix_name();
    Cleanup c1(Backend::Posix, chan), c2(Backend::Posix, plain);
    ASSERT_EQ(cli({"chan", "create", chan, "--kind", "mpmc", "-c", "16", "-s", "2K"}).exit_code(),
              0);
    ASSERT_EQ(cli({"shm", "create", plain, "--size", "64K"}).exit_code(), 0);
    ASSERT_EQ(cli({"chan", "send", chan, "--count", "3"}).exit_code(), 0);

    RunResult ls = cli({"chan", "ls", "--json"});
    ASSERT_EQ(ls.exit_code(), 0) << ls;
    const nlohmann::json list = nlohmann::json::parse(ls.out);
    const nlohmann::json* mine = nullptr;
    for (const auto& j : list) {
        EXPECT_NE(j["name"], plain) << ls.out;  // not a channel: not listed
        if (j["name"] == chan) mine = &j;
    }
    ASSERT_NE(mine, nullptr) << ls.out;
    EXPECT_EQ((*mine)["kind"], "mpmc");
    EXPECT_EQ((*mine)["capacity"], 16);
    EXPECT_EQ((*mine)["max_message"], 2048);
    EXPECT_EQ((*mine)["depth"], 3);

    RunResult table = cli({"chan", "ls"});
    ASSERT_EQ(table.exit_code(), 0) << table;
    EXPECT_EQ(table.out.rfind("NAME", 0), 0u) << table;
    EXPECT_TRUE(contains(table.out, "2.0 KiB")) << table;
    EXPECT_FALSE(contains(table.out, plain + " ")) << table;
    // Every row's columns line up under the header's.
    const std::size_t header_end = table.out.find('\n');
    for (std::size_t at = 0; at < table.out.size(); at = table.out.find('\n', at) + 1)
        EXPECT_EQ(table.out.find('\n', at) - at, header_end) << table;

    RunResult rm = cli({"chan", "rm", plain, chan});
    EXPECT_EQ(rm.exit_code(), 1) << rm;
    EXPECT_EQ(rm.err, "pagewire: rm " + plain +
                          ": not a pagewire channel (use 'pagewire shm rm' for other segments)\n")
        << rm;
    EXPECT_EQ(cli({"shm", "stat", plain}).exit_code(), 0);  // left alone
    EXPECT_EQ(cli({"chan", "stat", chan}).exit_code(), 1);  // removed despite the failure before it
}
