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

// Loans `size` bytes (waiting up to 10 s), writes message (id, seq) into the
// loan and publishes it; false if the loan did not succeed.
bool publish_message(Channel& ch, std::size_t size, std::uint32_t id, std::uint64_t seq,
                     WaitMode mode) {
    ChannelLoan loan;
    if (ch.loan(size, loan, 10s, mode) != ChannelStatus::Ok) return false;
    chantest::write_message({loan.data, size}, id, 0, seq);
    ch.publish(loan);
    return true;
}

void produce(const std::string& name, std::uint32_t id, std::uint64_t n, WaitMode mode,
             std::atomic<int>& errors) {
    Channel ch = Channel::open(name, ChannelRole::Producer);
    std::vector<std::byte> buf(ch.max_message());
    for (std::uint64_t seq = 0; seq < n; ++seq) {
        const std::size_t size = chantest::message_size(buf.size(), id, seq);
        if (!publish_message(ch, size, id, seq, mode)) {
            ++errors;
            return;
        }
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

TEST(ChannelThreads, MpmcSleepMode) {
    run_case(ChannelKind::Mpmc, 2, 3, WaitMode::Sleep);
}
TEST(ChannelThreads, SpscSleepMode) {
    run_case(ChannelKind::Spsc, 1, 1, WaitMode::Sleep);
}

// ------------------------------------------------------------------ pubsub

namespace {

const std::uint64_t kPubSubMessages = testutil::kTsan ? 4000 : 50000;

// Waits (at most 10 s) until `count` reaches `want`; false on timeout.
bool wait_for_count(const std::atomic<int>& count, int want) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (count.load() < want) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(100us);
    }
    return true;
}

// One publisher thread: `n` messages (producer 1, generation 0, seq =
// position, since it starts on a fresh channel), then an end marker; it
// starts once `subscribers` subscribers have registered.
void publish_all(const std::string& name, std::uint64_t n, WaitMode mode,
                 const std::atomic<int>& registered, int subscribers, std::atomic<int>& errors) {
    Channel ch = Channel::open(name, ChannelRole::Producer, ChannelKind::PubSub);
    if (!wait_for_count(registered, subscribers)) {
        ++errors;
        return;
    }
    for (std::uint64_t seq = 0; seq <= n; ++seq) {
        const std::uint32_t id = seq == n ? chantest::kEndProducer : 1;
        const std::size_t size = chantest::message_size(ch.max_message(), id, seq);
        if (!publish_message(ch, size, id, seq, mode)) {
            ++errors;
            return;
        }
    }
}

// What one subscriber thread saw.
struct Seen {
    std::uint64_t received = 0;    // messages of producer 1
    std::uint64_t lost = 0;        // sum of lost_before, the end marker's included
    std::uint64_t last = 0;        // position of the end marker
    std::uint64_t lost_total = 0;  // Channel::lost() at the end
    std::string error;             // first problem, if any
};

// Reads until the end marker, checking each message: whole, seq ==
// position, positions rising by exactly 1 + lost_before (Block: lost_before
// always 0). pause: sleep after each message; view_pause: sleep while
// holding every 8th view, then check it again.
void subscribe_all(const std::string& name, bool block, WaitMode mode,
                   std::chrono::microseconds pause, std::chrono::microseconds view_pause,
                   std::atomic<int>& registered, Seen& seen) {
    Channel ch = Channel::open(name, ChannelRole::Consumer, ChannelKind::PubSub);
    ++registered;
    bool first = true;
    std::uint64_t last = 0;
    for (;;) {
        ChannelView v;
        ChannelStatus st = ch.read(v, 10s, mode);
        if (st != ChannelStatus::Ok) {
            seen.error = std::string("read: ") + channel_status_name(st);
            return;
        }
        chantest::Parsed m;
        std::string why = chantest::check_message({v.data, v.size}, m);
        if (why.empty() && view_pause.count() > 0 && v.position % 8 == 0) {
            std::this_thread::sleep_for(view_pause);
            chantest::Parsed again;
            why = chantest::check_message({v.data, v.size}, again);
            if (why.empty() && again.seq != m.seq) why = "the view changed while held";
        }
        const ChannelView got = v;
        ch.release(v);
        auto fail = [&](const std::string& what) {
            seen.error = "position " + std::to_string(got.position) + ": " + what;
        };
        if (!why.empty()) return fail(why);
        if (m.seq != got.position) return fail("seq " + std::to_string(m.seq));
        const std::uint64_t expected = first ? 0 : last + 1;
        if (got.position != expected + got.lost_before)
            return fail("after " + std::to_string(last) + " with lost_before " +
                        std::to_string(got.lost_before));
        if (block && got.lost_before != 0) return fail("lost in block mode");
        seen.lost += got.lost_before;
        first = false;
        last = got.position;
        if (m.producer == chantest::kEndProducer) break;
        ++seen.received;
        if (pause.count() > 0) std::this_thread::sleep_for(pause);
    }
    seen.last = last;
    seen.lost_total = ch.lost();
}

}  // namespace

// Block: every subscriber thread gets every message, in order, none lost.
void pubsub_block(WaitMode mode, std::uint64_t n) {
    const std::string name = unique_name();
    Removed removed{name};
    Channel::create(name, {ChannelKind::PubSub, 64, 256});
    std::atomic<int> errors{0}, registered{0};
    std::vector<Seen> seen(3);
    std::vector<std::thread> threads;
    for (auto& s : seen)
        threads.emplace_back(subscribe_all, name, true, mode, 0us, 0us, std::ref(registered),
                             std::ref(s));
    threads.emplace_back(publish_all, name, n, mode, std::cref(registered), 3, std::ref(errors));
    for (auto& t : threads) t.join();
    ASSERT_EQ(errors.load(), 0);
    for (const Seen& s : seen) {
        EXPECT_EQ(s.error, "");
        EXPECT_EQ(s.received, n);
        EXPECT_EQ(s.lost, 0u);
        EXPECT_EQ(s.last, n);
    }
    ChannelStats st = Channel::open(name, ChannelRole::Observer).stats();
    EXPECT_EQ(st.sent, n + 1);
    EXPECT_EQ(st.received, 3 * (n + 1));
    EXPECT_EQ(st.lost, 0u);
}

TEST(ChannelThreads, PubSubBlockThreeSubscribers) {
    pubsub_block(WaitMode::SpinThenSleep, kPubSubMessages);
}
TEST(ChannelThreads, PubSubBlockSleepMode) {
    pubsub_block(WaitMode::Sleep, kPubSubMessages / 4);
}

// Overwrite: a slow subscriber (sleeping after each message, sometimes
// holding the view) loses and counts; nothing it gets is torn.
TEST(ChannelThreads, PubSubOverwriteSlowSubscriber) {
    const std::string name = unique_name();
    Removed removed{name};
    ChannelOptions options{ChannelKind::PubSub, 16, 256};
    options.overflow = ChannelOverflow::Overwrite;
    Channel::create(name, options);
    const std::uint64_t n = kPubSubMessages;
    std::atomic<int> errors{0}, registered{0};
    Seen slow, fast;
    std::vector<std::thread> threads;
    threads.emplace_back(subscribe_all, name, false, WaitMode::SpinThenSleep, 50us, 200us,
                         std::ref(registered), std::ref(slow));
    threads.emplace_back(subscribe_all, name, false, WaitMode::Sleep, 0us, 0us,
                         std::ref(registered), std::ref(fast));
    threads.emplace_back(publish_all, name, n, WaitMode::SpinThenSleep, std::cref(registered), 2,
                         std::ref(errors));
    for (auto& t : threads) t.join();
    ASSERT_EQ(errors.load(), 0);
    for (const Seen* s : {&slow, &fast}) {
        EXPECT_EQ(s->error, "");
        EXPECT_EQ(s->last, n);
        EXPECT_EQ(s->received + s->lost, n);  // every position it covered: got or counted
        EXPECT_EQ(s->lost_total, s->lost);
    }
    EXPECT_GT(slow.lost, 0u);
    EXPECT_EQ(Channel::open(name, ChannelRole::Observer).stats().lost, slow.lost + fast.lost);
}

// Subscriber threads waiting in poll() on their notify descriptors (arm()
// protocol), each with its own handle.
TEST(ChannelThreads, PubSubPollingSubscribers) {
    const std::string name = unique_name();
    Removed removed{name};
    Channel::create(name, {ChannelKind::PubSub, 16, 64});
    const std::uint64_t n = testutil::kTsan ? 500 : 5000;
    std::atomic<int> registered{0}, errors{0};
    std::vector<std::uint64_t> got(2, 0);
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
        threads.emplace_back([&, i] {
            Channel ch = Channel::open(name, ChannelRole::Consumer);
            int fd = -1;
            try {
                fd = ch.notify_fd();
            } catch (const std::exception&) {
                ++errors;
                ++registered;
                return;
            }
            ++registered;
            const auto deadline = std::chrono::steady_clock::now() + 20s;
            std::uint64_t& mine = got[static_cast<std::size_t>(i)];
            while (mine < n && std::chrono::steady_clock::now() < deadline) {
                ChannelView v;
                while (mine < n && ch.try_read(v) == ChannelStatus::Ok) {
                    std::uint64_t x = 0;
                    std::memcpy(&x, v.data, sizeof x);
                    if (x != mine || v.position != mine) ++errors;
                    ch.release(v);
                    ++mine;
                }
                if (mine == n || !ch.arm()) continue;
                pollfd p{fd, POLLIN, 0};
                (void)::poll(&p, 1, 1000);
            }
        });
    threads.emplace_back([&] {
        Channel ch = Channel::open(name, ChannelRole::Producer);
        if (!wait_for_count(registered, 2)) {
            ++errors;
            return;
        }
        for (std::uint64_t i = 0; i < n; ++i) {
            if (ch.send(std::as_bytes(std::span(&i, 1)), 10s) != ChannelStatus::Ok) {
                ++errors;
                return;
            }
        }
    });
    for (auto& t : threads) t.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(got, (std::vector<std::uint64_t>{n, n}));
}

// Block: subscribers join and leave again and again while the publisher
// runs. Each one's first message is the first published after it opened
// (between the counts before and after its open), then every following
// one in order; the steady subscriber gets everything; nobody wedges.
TEST(ChannelThreads, PubSubJoinLeaveChurn) {
    const std::string name = unique_name();
    Removed removed{name};
    Channel::create(name, {ChannelKind::PubSub, 16, 256});
    const std::uint64_t n = testutil::kTsan ? 3000 : 30000;
    const int cycles = testutil::kTsan ? 20 : 100;
    std::atomic<int> errors{0}, registered{0};
    std::atomic<bool> done{false};
    Seen steady;
    std::vector<std::string> problems(2);
    std::vector<std::thread> threads;
    threads.emplace_back(subscribe_all, name, true, WaitMode::SpinThenSleep, 0us, 0us,
                         std::ref(registered), std::ref(steady));
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&, t] {
            Channel observer = Channel::open(name, ChannelRole::Observer);
            for (int c = 0; c < cycles && !done.load() && problems[t].empty(); ++c) {
                const std::uint64_t before = observer.stats().sent;
                Channel sub = Channel::open(name, ChannelRole::Consumer, ChannelKind::PubSub);
                const std::uint64_t after = observer.stats().sent;
                std::uint64_t expected = 0;
                for (int k = 0; k < 20; ++k) {
                    ChannelView v;
                    ChannelStatus st = sub.read(v, 200ms);
                    if (st == ChannelStatus::TimedOut && done.load()) break;  // the end
                    if (st != ChannelStatus::Ok) {
                        problems[t] = std::string("read: ") + channel_status_name(st);
                        break;
                    }
                    chantest::Parsed m;
                    std::string why = chantest::check_message({v.data, v.size}, m);
                    const ChannelView got = v;
                    sub.release(v);
                    if (!why.empty())
                        problems[t] = why;
                    else if (k == 0 && (got.position < before || got.position > after))
                        problems[t] = "joined between " + std::to_string(before) + " and " +
                                      std::to_string(after) + " but first got " +
                                      std::to_string(got.position);
                    else if (k > 0 && got.position != expected)
                        problems[t] = "position " + std::to_string(got.position) + " instead of " +
                                      std::to_string(expected);
                    else if (got.lost_before != 0 || m.seq != got.position)
                        problems[t] = "lost or foreign message at " + std::to_string(got.position);
                    if (!problems[t].empty()) break;
                    expected = got.position + 1;
                }
            }
        });
    threads.emplace_back([&] {
        publish_all(name, n, WaitMode::SpinThenSleep, registered, 1, errors);
        done = true;
    });
    for (auto& t : threads) t.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(problems[0], "");
    EXPECT_EQ(problems[1], "");
    EXPECT_EQ(steady.error, "");
    EXPECT_EQ(steady.received, n);
    EXPECT_EQ(steady.lost, 0u);
}
