// `pagewire bench ipc`: the message verifier catches what it must (corrupt
// bytes, a header on another message's payload, lost, repeated and cut
// messages), and a quick run of the kernel and pagewire methods in real
// processes gives a full, clean row for every method and size.
#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "../test_util.hpp"
#include "bench_ipc_message.hpp"

namespace {

using pagewire::bench::ipc::kLastMessage;
using pagewire::bench::ipc::MessageHeader;
using pagewire::bench::ipc::read_header;
using pagewire::bench::ipc::SequenceChecker;
using pagewire::bench::ipc::write_message;
using Verdict = SequenceChecker::Verdict;

std::vector<std::byte> message(std::size_t size, std::uint64_t sequence, std::uint32_t flags = 0) {
    std::vector<std::byte> m(size);
    write_message(m, sequence, flags, true);
    return m;
}

TEST(Message, HeaderCarriesSequenceSizeFlagsAndTime) {
    const std::int64_t before = pagewire::bench::ipc::monotonic_now_ns();
    const auto m = message(1024, 7, kLastMessage);
    const MessageHeader h = read_header(m);
    EXPECT_EQ(h.sequence, 7u);
    EXPECT_EQ(h.size, 1024u);
    EXPECT_EQ(h.flags, kLastMessage);
    EXPECT_GE(h.sent_ns, before);
    EXPECT_LE(h.sent_ns, pagewire::bench::ipc::monotonic_now_ns());
}

TEST(Message, InOrderMessagesOfEverySizePass) {
    // Sizes with a partial last word too: the checksum pads it with zeros.
    for (std::size_t size : {32u, 33u, 61u, 64u, 1000u, 1024u, 65536u, 1048576u}) {
        SequenceChecker checker;
        for (std::uint64_t seq = 0; seq < 5; ++seq) {
            EXPECT_EQ(checker.check(message(size, seq)), Verdict::Ok)
                << "size " << size << " seq " << seq;
        }
        EXPECT_EQ(checker.received(), 5u);
        EXPECT_EQ(checker.lost() + checker.duplicated() + checker.corrupt(), 0u) << "size " << size;
    }
}

TEST(Message, PayloadDiffersPerSequence) {
    // Stale bytes left from an earlier message must not pass as the new one.
    const auto a = message(256, 1);
    const auto b = message(256, 2);
    EXPECT_NE(std::vector<std::byte>(a.begin() + sizeof(MessageHeader), a.end()),
              std::vector<std::byte>(b.begin() + sizeof(MessageHeader), b.end()));
}

TEST(Message, EveryFlippedPayloadByteIsCorrupt) {
    const auto good = message(200, 3);
    for (std::size_t i = sizeof(MessageHeader); i < good.size(); ++i) {
        auto bad = good;
        bad[i] ^= std::byte{0x10};
        SequenceChecker checker(3);
        EXPECT_EQ(checker.check(bad), Verdict::Corrupt) << "byte " << i;
        EXPECT_EQ(checker.corrupt(), 1u);
    }
}

TEST(Message, FlippedHeaderFieldsAreCorrupt) {
    const auto good = message(128, 9);
    for (std::size_t offset : {offsetof(MessageHeader, sequence), offsetof(MessageHeader, size),
                               offsetof(MessageHeader, flags), offsetof(MessageHeader, checksum)}) {
        auto bad = good;
        bad[offset] ^= std::byte{0x01};
        SequenceChecker checker(9);
        EXPECT_EQ(checker.check(bad), Verdict::Corrupt) << "header offset " << offset;
    }
}

TEST(Message, TornMessageIsCorrupt) {
    // The new header on the old payload (a receiver that read too early).
    const auto old_message = message(4096, 10);
    auto torn = message(4096, 11);
    std::copy(old_message.begin() + 2048, old_message.end(), torn.begin() + 2048);
    SequenceChecker checker(11);
    EXPECT_EQ(checker.check(torn), Verdict::Corrupt);
}

TEST(Message, CutOrShortMessagesAreCorrupt) {
    const auto good = message(1024, 0);
    SequenceChecker checker;
    EXPECT_EQ(checker.check(std::span(good).first(1000)), Verdict::Corrupt);
    EXPECT_EQ(checker.check(std::span(good).first(10)), Verdict::Corrupt);
    EXPECT_EQ(checker.corrupt(), 2u);
}

TEST(Message, LostAndDuplicatedSequencesAreCounted) {
    SequenceChecker checker;
    EXPECT_EQ(checker.check(message(64, 0)), Verdict::Ok);
    EXPECT_EQ(checker.check(message(64, 1)), Verdict::Ok);
    EXPECT_EQ(checker.check(message(64, 4)), Verdict::Lost);  // 2 and 3 never came
    EXPECT_EQ(checker.lost(), 2u);
    EXPECT_EQ(checker.check(message(64, 4)), Verdict::Duplicate);
    EXPECT_EQ(checker.check(message(64, 1)), Verdict::Duplicate);
    EXPECT_EQ(checker.duplicated(), 2u);
    EXPECT_EQ(checker.check(message(64, 5)), Verdict::Ok);
    EXPECT_EQ(checker.received(), 6u);
    EXPECT_EQ(checker.corrupt(), 0u);
}

// The methods of this repository (the peers have their own tests). Anchored:
// "zeromq ipc" contains "mq".
constexpr const char* kOwnMethods =
    "^(pipe|unix socket|tcp 127\\.0\\.0\\.1|posix mq|raw futex|pagewire .*)$";
const std::set<std::string> kMethodNames = {"pipe",
                                            "unix socket",
                                            "tcp 127.0.0.1",
                                            "posix mq",
                                            "raw futex",
                                            "pagewire busy-poll loan",
                                            "pagewire busy-poll copy",
                                            "pagewire spin-then-sleep",
                                            "pagewire sleep"};
const std::vector<std::uint64_t> kSizes = {64, 1024, 65536, 1048576};

TEST(BenchIpc, QuickRunHasCleanRowsForEveryMethodAndSize) {
    testutil::TempDir dir;
    const std::string json_path = dir.file("ipc.json");
    testutil::RunOptions options;
    options.timeout = std::chrono::seconds(200);
    const auto r = testutil::run_pagewire(
        {"bench", "ipc", "--quick", "--only", kOwnMethods, "--json", json_path}, options);
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(testutil::contains(r.out, "zero lost, duplicated or corrupt")) << r.out;
    EXPECT_TRUE(testutil::contains(r.out, "target")) << r.out;

    const auto doc = nlohmann::json::parse(testutil::read_file(json_path));
    ASSERT_EQ(doc["sections"].size(), 1u);
    const auto& section = doc["sections"][0];
    EXPECT_EQ(section["name"], "ipc");
    std::map<std::string, std::set<std::uint64_t>> seen;
    for (const auto& row : section["rows"]) {
        const std::string method = row["method"];
        const std::uint64_t size = row["size_bytes"];
        EXPECT_TRUE(kMethodNames.count(method)) << "unexpected method " << method;
        seen[method].insert(size);
        if (row["status"] == "unavailable") {
            // Only the message queue may lack a size (fs.mqueue.msgsize_max), and it must say why.
            EXPECT_EQ(method, "posix mq") << row.dump();
            EXPECT_TRUE(testutil::contains(row["note"].get<std::string>(), "msgsize_max"))
                << row.dump();
            continue;
        }
        ASSERT_EQ(row["status"], "ok") << row.dump();
        EXPECT_EQ(row["lost"], 0) << row.dump();
        EXPECT_EQ(row["duplicated"], 0) << row.dump();
        EXPECT_EQ(row["corrupt"], 0) << row.dump();
        // Both directions' samples of every measured round trip.
        EXPECT_EQ(row["samples"].get<std::uint64_t>(), 2 * row["round_trips"].get<std::uint64_t>())
            << row.dump();
        const double p50 = row["p50_us"], p99 = row["p99_us"], p999 = row["p999_us"],
                     max = row["max_us"];
        EXPECT_GT(p50, 0.0) << row.dump();
        EXPECT_LE(p50, p99) << row.dump();
        EXPECT_LE(p99, p999) << row.dump();
        EXPECT_LE(p999, max) << row.dump();
        EXPECT_GT(row["msgs_per_s"].get<double>(), 0.0) << row.dump();
        EXPECT_GT(row["gbps"].get<double>(), 0.0) << row.dump();
        EXPECT_EQ(row["stream_sent"], row["stream_received"]) << row.dump();
    }
    for (const std::string& method : kMethodNames) {
        EXPECT_EQ(seen[method], std::set<std::uint64_t>(kSizes.begin(), kSizes.end())) << method;
    }
    for (const char* key :
         {"busy_poll_vs_iceoryx", "loan_flatness", "spsc_throughput", "sleep_vs_futex"}) {
        EXPECT_TRUE(section["summary"]["verdicts"].contains(key)) << key;
    }
}

TEST(BenchIpc, OnlyMatchingNothingIsAnError) {
    const auto r =
        testutil::run_pagewire({"bench", "ipc", "--quick", "--only", "^no such method$"});
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_TRUE(testutil::contains(r.err, "matches no method")) << r;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
}

}  // namespace
