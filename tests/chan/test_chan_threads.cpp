// The lock-free ring under ThreadSanitizer: producer and consumer threads,
// each with its own handle on one channel, in one process (the process tests
// are in test_chan.cpp; TSan cannot see across processes). Label sync, so the
// tsan preset runs them.
#include <atomic>
#include <map>
#include <pagewire/channel.hpp>
#include <pagewire/segment.hpp>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "chan_message.hpp"

using namespace pagewire;
using namespace std::chrono_literals;

namespace {

std::string unique_name() {
    static std::atomic<int> serial{0};
    return "/pwtest-thr-" + std::to_string(::getpid()) + "-" + std::to_string(++serial);
}

struct Removed {
    std::string name;
    ~Removed() {
        try {
            Channel::remove(name);
        } catch (...) {
        }
    }
};

const std::uint64_t kMessages = testutil::kTsan ? 20000 : 200000;

void produce(const std::string& name, std::uint32_t id, std::uint64_t n, WaitMode mode,
             std::atomic<int>& errors) {
    Channel ch = Channel::open(name, ChannelRole::Producer);
    std::vector<std::byte> buf(ch.max_message());
    for (std::uint64_t seq = 0; seq < n; ++seq) {
        const std::size_t size = chantest::message_size(buf.size(), id, seq);
        ChannelLoan loan;
        if (ch.loan(size, loan, 10s, mode) != ChannelStatus::Ok) {
            ++errors;
            return;
        }
        chantest::write_message({loan.data, size}, id, 0, seq);
        ch.publish(loan);
    }
}

// Receives until `stop` end markers... here: until n_total messages overall
// have been taken by all consumers (shared counter).
void consume(const std::string& name, std::atomic<std::uint64_t>& taken, std::uint64_t n_total,
             WaitMode mode, std::atomic<int>& errors,
             std::map<std::uint32_t, std::vector<std::uint64_t>>& got) {
    Channel ch = Channel::open(name, ChannelRole::Consumer);
    std::vector<std::byte> buf(ch.max_message());
    while (taken.load() < n_total) {
        std::size_t size = 0;
        ChannelStatus st = ch.receive(buf, size, 20ms, mode);
        if (st == ChannelStatus::TimedOut) continue;
        if (st != ChannelStatus::Ok) {
            ++errors;
            return;
        }
        chantest::Parsed m;
        if (!chantest::check_message({buf.data(), size}, m).empty()) {
            ++errors;
            return;
        }
        auto& seqs = got[m.producer];
        if (!seqs.empty() && seqs.back() >= m.seq) ++errors;  // order per producer
        seqs.push_back(m.seq);
        ++taken;
    }
}

void run_case(ChannelKind kind, int producers, int consumers, WaitMode mode) {
    const std::string name = unique_name();
    Removed removed{name};
    Channel::create(name, {kind, 64, 256});
    std::atomic<int> errors{0};
    std::atomic<std::uint64_t> taken{0};
    const std::uint64_t per = kMessages / static_cast<std::uint64_t>(producers);
    std::vector<std::map<std::uint32_t, std::vector<std::uint64_t>>> got(
        static_cast<std::size_t>(consumers));
    std::vector<std::thread> threads;
    for (int c = 0; c < consumers; ++c)
        threads.emplace_back(consume, name, std::ref(taken),
                             per * static_cast<std::uint64_t>(producers), mode, std::ref(errors),
                             std::ref(got[static_cast<std::size_t>(c)]));
    for (int p = 0; p < producers; ++p)
        threads.emplace_back(produce, name, static_cast<std::uint32_t>(p), per, mode,
                             std::ref(errors));
    for (auto& t : threads) t.join();
    ASSERT_EQ(errors.load(), 0);
    // Every (producer, seq) exactly once across the consumers.
    for (int p = 0; p < producers; ++p) {
        std::vector<char> seen(per, 0);
        for (auto& g : got)
            for (std::uint64_t s : g[static_cast<std::uint32_t>(p)]) {
                ASSERT_LT(s, per);
                ASSERT_EQ(seen[s], 0) << "duplicate " << s;
                seen[s] = 1;
            }
        for (std::uint64_t s = 0; s < per; ++s)
            ASSERT_EQ(seen[s], 1) << "lost producer " << p << " seq " << s;
    }
    ChannelStats st = Channel::open(name, ChannelRole::Observer).stats();
    EXPECT_EQ(st.sent, per * static_cast<std::uint64_t>(producers));
    EXPECT_EQ(st.received, st.sent);
    EXPECT_EQ(st.depth, 0u);
}

}  // namespace

TEST(ChannelThreads, SpscSleeping) {
    run_case(ChannelKind::Spsc, 1, 1, WaitMode::SpinThenSleep);
}
TEST(ChannelThreads, SpscBusyPoll) {
    run_case(ChannelKind::Spsc, 1, 1, WaitMode::BusyPoll);
}
TEST(ChannelThreads, MpmcTwoByTwo) {
    run_case(ChannelKind::Mpmc, 2, 2, WaitMode::SpinThenSleep);
}
TEST(ChannelThreads, MpmcFourProducersOneConsumerBusyPoll) {
    run_case(ChannelKind::Mpmc, 4, 1, WaitMode::BusyPoll);
}
