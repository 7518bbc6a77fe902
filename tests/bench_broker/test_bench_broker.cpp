// `pagewire bench broker`: a tiny run gives, for librdkafka's mock cluster,
// produce and consume rows with positive msgs/s and broker CPU, and a latency
// row with ordered percentiles; pagewire broker rows are measured the same way
// or say why they are skipped; the load generator fails clearly when the
// messages it must consume are not there.
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "../test_util.hpp"

namespace {

const std::string kBin = PAGEWIRE_BENCH_BIN;

bool peers_built() {
    return ::access((kBin + "/pagewire-bench-kafka-mock").c_str(), X_OK) == 0 &&
           ::access((kBin + "/pagewire-bench-kafka-load").c_str(), X_OK) == 0;
}

TEST(BenchBroker, TinyRunHasMockRowsWithPositiveRates) {
    if (!peers_built())
        GTEST_SKIP() << "librdkafka was not found at build (Debian: librdkafka-dev)";
    testutil::TempDir dir;
    const std::string json_path = dir.file("broker.json");
    testutil::RunOptions options;
    options.timeout = std::chrono::seconds(200);
    const auto r = testutil::run_pagewire(
        {"bench", "broker", "--quick", "--messages", "20000", "--json", json_path}, options);
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(testutil::contains(r.out, "target")) << r.out;

    const auto doc = nlohmann::json::parse(testutil::read_file(json_path));
    ASSERT_EQ(doc["sections"].size(), 1u);
    const auto& section = doc["sections"][0];
    EXPECT_EQ(section["name"], "broker");
    EXPECT_EQ(section["summary"]["messages"], 20000);
    EXPECT_EQ(section["summary"]["verdicts"].size(), 6u);
    std::map<std::string, int> phases;  // broker -> rows
    for (const auto& row : section["rows"]) {
        const std::string broker = row["broker"], phase = row["phase"], status = row["status"];
        ++phases[broker];
        if (broker != "rdkafka mock" && status.rfind("skipped: ", 0) == 0) {
            EXPECT_EQ(status, "skipped: this pagewire has no broker subcommand") << row.dump();
            continue;
        }
        ASSERT_EQ(status, "ok") << row.dump();
        if (phase == "latency") {
            const double p50 = row["p50_us"], p99 = row["p99_us"], p999 = row["p999_us"];
            EXPECT_GT(p50, 0.0) << row.dump();
            EXPECT_LE(p50, p99) << row.dump();
            EXPECT_LE(p99, p999) << row.dump();
            continue;
        }
        EXPECT_EQ(row["messages"], 20000) << row.dump();
        EXPECT_GT(row["msgs_per_s"].get<double>(), 0.0) << row.dump();
        EXPECT_GT(row["mb_per_s"].get<double>(), 0.0) << row.dump();
        EXPECT_GE(row["broker_cpu_s_per_gb"].get<double>(), 0.0) << row.dump();
        EXPECT_GT(row["client_core"].get<double>(), 0.0) << row.dump();
    }
    EXPECT_EQ(phases["rdkafka mock"], 3);
    EXPECT_EQ(phases["pagewire broker"], 3);
    EXPECT_EQ(phases["pagewire broker --fetch-copy"], 3);
}

// Consuming more than was produced must fail (not pass on a partial count):
// the mock with an empty topic, asked for messages that never come.
TEST(BenchBroker, LoadGeneratorFailsWhenMessagesAreMissing) {
    if (!peers_built())
        GTEST_SKIP() << "librdkafka was not found at build (Debian: librdkafka-dev)";
    testutil::TempDir dir;
    const std::string out = dir.file("mock.out");
    testutil::write_file(out, "");
    const pid_t mock = ::fork();
    ASSERT_GE(mock, 0);
    if (mock == 0) {
        // stdin at EOF would be the mock's signal to stop: /dev/null is not a pipe.
        if (std::freopen(out.c_str(), "w", stdout) == nullptr ||
            std::freopen("/dev/null", "r", stdin) == nullptr)
            _exit(127);
        ::execl((kBin + "/pagewire-bench-kafka-mock").c_str(), "pagewire-bench-kafka-mock",
                "--topic", "t", "--partitions", "2", static_cast<char*>(nullptr));
        _exit(127);
    }
    std::string bootstrap;
    for (int i = 0; i < 500 && bootstrap.empty(); ++i) {
        const std::string text = testutil::read_file(out);
        if (text.find('\n') != std::string::npos) bootstrap = text.substr(0, text.find('\n'));
        if (bootstrap.empty()) ::usleep(10000);
    }
    ASSERT_FALSE(bootstrap.empty()) << "the mock printed no address";
    const std::string load = kBin + "/pagewire-bench-kafka-load";
    testutil::RunOptions options;
    options.timeout = std::chrono::seconds(60);
    const auto produced = testutil::run({load, "produce", "--bootstrap", bootstrap, "--topic", "t",
                                         "--partitions", "2", "--messages", "100"},
                                        options);
    EXPECT_EQ(produced.exit_code(), 0) << produced;
    EXPECT_TRUE(testutil::contains(produced.out, "\"delivered\":100,")) << produced;
    const auto consumed = testutil::run({load, "consume", "--bootstrap", bootstrap, "--topic", "t",
                                         "--partitions", "2", "--messages", "101"},
                                        options);
    EXPECT_EQ(consumed.exit_code(), 1) << consumed;
    EXPECT_TRUE(testutil::contains(consumed.out, "after 100 of 101 messages")) << consumed;
    EXPECT_TRUE(testutil::contains(consumed.out, "\"verified\":false")) << consumed;
    ::kill(mock, SIGTERM);
    EXPECT_EQ(testutil::wait_for(mock), 0);
}

TEST(BenchBroker, LoadGeneratorRejectsBadUsage) {
    if (!peers_built())
        GTEST_SKIP() << "librdkafka was not found at build (Debian: librdkafka-dev)";
    const std::string load = kBin + "/pagewire-bench-kafka-load";
    const auto r = testutil::run({load, "produce", "--topic", "t"});
    EXPECT_EQ(r.exit_code(), 2) << r;
    EXPECT_TRUE(testutil::contains(r.err, "--bootstrap, --topic and --partitions are required"))
        << r;
    const auto bad = testutil::run({load, "consume", "--bootstrap", "127.0.0.1:1", "--topic", "t",
                                    "--partitions", "-3", "--messages", "1"});
    EXPECT_EQ(bad.exit_code(), 2) << bad;
}

}  // namespace
