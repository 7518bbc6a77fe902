// Channels across separately exec'd processes (chan_helper): stress with known
// counts and checksums, producers killed with kill -9 at random moments, and
// bad input. Named chan.<Suite>.<Case>.
#include "chan_process_test.hpp"

namespace {

struct ProducerTotals {
    std::uint64_t count = 0, sum = 0, hash = 0;
    std::uint32_t last_generation = 0;
};

// Reads a consumer's report: "ok N" then "p ID COUNT SUM HASH GEN" lines, until EOF.
std::map<std::uint32_t, ProducerTotals> read_report(Child& consumer, std::uint64_t& total) {
    std::map<std::uint32_t, ProducerTotals> out;
    std::string line = consumer.read_line(30);
    EXPECT_TRUE(line.rfind("ok ", 0) == 0) << "consumer said: " << line;
    total = line.rfind("ok ", 0) == 0 ? std::stoull(line.substr(3)) : 0;
    for (;;) {
        line = consumer.read_line(30);
        if (line.rfind("p ", 0) != 0) break;
        std::istringstream in(line.substr(2));
        std::uint32_t id = 0;
        ProducerTotals t;
        in >> id >> t.count >> t.sum >> t.hash >> t.last_generation;
        out[id] = t;
    }
    return out;
}

void expect_all_of(const ProducerTotals& t, std::uint64_t n) {
    std::uint64_t sum = 0, hash = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        sum += i;
        hash += chantest::mix(i);
    }
    EXPECT_EQ(t.count, n);
    EXPECT_EQ(t.sum, sum);
    EXPECT_EQ(t.hash, hash) << "some sequence numbers lost and others duplicated";
}

testutil::RunResult run_helper(const std::vector<std::string>& args) {
    std::vector<std::string> argv{kHelper};
    argv.insert(argv.end(), args.begin(), args.end());
    return testutil::run(argv);
}

void wait_ok(Child& c) {
    int status = c.wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
}

std::uint64_t n_scaled(std::uint64_t n) {
    return testutil::kAsan || testutil::kTsan ? n / 5 : n;
}

}  // namespace

TEST(Stress, SpscOneProducerOneConsumer) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel::create(name, {ChannelKind::Spsc, 64, 512});
    const std::uint64_t n = n_scaled(100000);
    Child consumer({kHelper, "consume", name, "strict"});
    auto r = run_helper({"produce", name, "7", "1", std::to_string(n)});
    ASSERT_EQ(r.exit_code(), 0) << r;
    ASSERT_EQ(run_helper({"end", name, "1"}).exit_code(), 0);
    std::uint64_t total = 0;
    auto report = read_report(consumer, total);
    wait_ok(consumer);
    EXPECT_EQ(total, n);
    ASSERT_EQ(report.size(), 1u);
    expect_all_of(report[7], n);

    ChannelStats s = Channel::open(name, ChannelRole::Observer).stats();
    EXPECT_EQ(s.sent, n + 1);
    EXPECT_EQ(s.received, n + 1);
    EXPECT_EQ(s.depth, 0u);
    EXPECT_EQ(s.producers, 0u);
    EXPECT_EQ(s.consumers, 0u);
}

TEST(Stress, MpmcThreeProducersTwoConsumers) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel::create(name, {ChannelKind::Mpmc, 128, 300});
    const std::uint64_t n = n_scaled(30000);
    std::vector<std::unique_ptr<Child>> consumers, producers;
    for (int c = 0; c < 2; ++c)
        consumers.push_back(std::make_unique<Child>(
            std::vector<std::string>{kHelper, "consume", name, "increasing"}));
    for (int p = 0; p < 3; ++p)
        producers.push_back(std::make_unique<Child>(std::vector<std::string>{
            kHelper, "produce", name, std::to_string(p), "1", std::to_string(n)}));
    for (auto& p : producers) {
        EXPECT_EQ(p->read_line(60), "done " + std::to_string(n));
        wait_ok(*p);
    }
    ASSERT_EQ(run_helper({"end", name, "2"}).exit_code(), 0);  // one stop marker per consumer

    std::map<std::uint32_t, ProducerTotals> all;
    std::uint64_t grand = 0;
    for (auto& c : consumers) {
        std::uint64_t total = 0;
        for (auto& [id, t] : read_report(*c, total)) {
            all[id].count += t.count;
            all[id].sum += t.sum;
            all[id].hash += t.hash;
        }
        grand += total;
        wait_ok(*c);
    }
    EXPECT_EQ(grand, 3 * n);
    ASSERT_EQ(all.size(), 3u);
    for (std::uint32_t p = 0; p < 3; ++p) expect_all_of(all[p], n);
    EXPECT_EQ(Channel::open(name, ChannelRole::Observer).stats().abandoned, 0u);
}

// kill -9 at a random moment, `rounds` times, while one consumer checks
// every message; then a new producer must get its messages through.
void kill_producers(ChannelKind kind, int rounds) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel::create(name, {kind, 16, 700});
    Child consumer({kHelper, "consume", name, "strict"});
    std::mt19937 rng(static_cast<unsigned>(::getpid()));
    const auto start = std::chrono::steady_clock::now();
    for (int g = 1; g <= rounds; ++g) {
        Child producer({kHelper, "produce", name, "1", std::to_string(g), "0"});
        std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 4000));
        producer.kill9();
        int status = producer.wait();
        ASSERT_TRUE(WIFSIGNALED(status))
            << "producer " << g << ": " << testutil::describe_status(status) << " ("
            << producer.read_line(1) << ")";
    }
    const std::uint64_t n = 2000;
    auto r = run_helper({"produce", name, "1", std::to_string(rounds + 1), std::to_string(n)});
    ASSERT_EQ(r.exit_code(), 0) << r;  // a new producer takes over and gets through
    ASSERT_EQ(run_helper({"end", name, "1"}).exit_code(), 0);
    std::uint64_t total = 0;
    auto report = read_report(consumer, total);
    wait_ok(consumer);
    EXPECT_GE(total, n);
    EXPECT_EQ(report[1].last_generation, static_cast<std::uint32_t>(rounds + 1));
    ChannelStats s = Channel::open(name, ChannelRole::Observer).stats();
    EXPECT_EQ(s.depth, 0u);
    if (kind == ChannelKind::Spsc) {
        EXPECT_EQ(s.received, s.sent);
    } else {  // MPMC's sent can miss a producer killed between publish and count
        EXPECT_GE(s.received, s.sent);
        EXPECT_LE(s.received, s.sent + static_cast<std::uint64_t>(rounds));
    }
    std::cout << "[ info ] " << rounds << " producers killed in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count()
              << " ms; consumer saw " << total << " whole messages in order; " << s.abandoned
              << " abandoned slots skipped\n";
}

TEST(Chaos, SpscProducerKilled) {
    kill_producers(ChannelKind::Spsc, 150);
}
TEST(Chaos, MpmcProducerKilled) {
    kill_producers(ChannelKind::Mpmc, 100);
}

// Consumers killed at random moments (some while holding a message) while a
// producer keeps sending; then a new consumer and a new producer: the channel
// must still work, every message the last consumer sees whole and in order.
// SPSC: the message a dead consumer held is read again by its successor, so
// every slot is released exactly once. MPMC: the producer frees a dead
// consumer's slot and that message is lost (counted).
void kill_consumers(ChannelKind kind, int rounds) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel::create(name, {kind, 8, 200});
    Child producer({kHelper, "produce", name, "2", "1", "0"});
    std::mt19937 rng(static_cast<unsigned>(::getpid()));
    for (int i = 0; i < rounds; ++i) {
        Child consumer({kHelper, "consume", name, "increasing"});
        std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 3000));
        consumer.kill9();
        consumer.wait();
    }
    const std::uint64_t before = Channel::open(name, ChannelRole::Observer).stats().sent;
    Child last({kHelper, "consume", name, "increasing"});
    std::this_thread::sleep_for(50ms);
    producer.kill9();
    producer.wait();
    auto r = run_helper({"produce", name, "2", "2", "1000"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    ASSERT_EQ(run_helper({"end", name, "1"}).exit_code(), 0);
    std::uint64_t total = 0;
    auto report = read_report(last, total);
    wait_ok(last);
    EXPECT_EQ(report[2].last_generation, 2u);
    ChannelStats s = Channel::open(name, ChannelRole::Observer).stats();
    EXPECT_GT(s.sent, before + 1000);  // the first producer kept going too
    EXPECT_EQ(s.depth, 0u);
    if (kind == ChannelKind::Spsc) {
        EXPECT_EQ(s.received, s.sent);
    }
    EXPECT_LE(s.lost, static_cast<std::uint64_t>(rounds));  // at most one per dead consumer
    std::cout << "[ info ] " << rounds << " consumers killed; " << s.sent << " messages sent, "
              << s.lost << " lost with dead consumers; the last consumer got " << total << "\n";
}

TEST(Chaos, SpscConsumerKilled) {
    kill_consumers(ChannelKind::Spsc, 50);
}
TEST(Chaos, MpmcConsumerKilled) {
    kill_consumers(ChannelKind::Mpmc, 50);
}

// The recoveries, deterministically: a process that dies holding a loan (a
// claimed, unpublished slot) or a view (a taken, unreleased message).
TEST(Recovery, MpmcProducerDiedHoldingALoan) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel consumer = Channel::create(name, {ChannelKind::Mpmc, 4, 16}, ChannelRole::Consumer);
    int status = testutil::run_in_child([&] {
        Channel p = Channel::open(name, ChannelRole::Producer);
        ChannelLoan loan;
        if (p.try_loan(8, loan) != ChannelStatus::Ok) return 1;
        std::memset(loan.data, 'x', 8);
        ::_exit(0);  // dies before publish
    });
    ASSERT_EQ(status, 0);
    Channel producer = Channel::open(name, ChannelRole::Producer);
    std::byte msg[3] = {std::byte{'a'}, std::byte{'b'}, std::byte{'c'}};
    ASSERT_EQ(producer.try_send(msg), ChannelStatus::Ok);
    ChannelView v;
    EXPECT_EQ(consumer.try_read(v), ChannelStatus::Empty);  // the dead claim is first in line
    ASSERT_EQ(consumer.read(v, 2s), ChannelStatus::Ok);     // waiting: the claim is found dead
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.data), v.size), "abc");
    consumer.release(v);
    EXPECT_EQ(consumer.stats().abandoned, 1u);
}

TEST(Recovery, MpmcConsumerDiedHoldingAMessage) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel producer = Channel::create(name, {ChannelKind::Mpmc, 2, 16}, ChannelRole::Producer);
    std::byte msg[1] = {std::byte{'m'}};
    ASSERT_EQ(producer.try_send(msg), ChannelStatus::Ok);
    ASSERT_EQ(producer.try_send(msg), ChannelStatus::Ok);
    int status = testutil::run_in_child([&] {
        Channel c = Channel::open(name, ChannelRole::Consumer);
        ChannelView v;
        if (c.try_read(v) != ChannelStatus::Ok) return 1;
        ::_exit(0);  // dies before release
    });
    ASSERT_EQ(status, 0);
    Channel consumer = Channel::open(name, ChannelRole::Consumer);
    std::byte buf[16];
    std::size_t size = 0;
    ASSERT_EQ(consumer.try_receive(buf, size), ChannelStatus::Ok);  // the second message
    EXPECT_EQ(producer.try_send(msg), ChannelStatus::Full);  // next in line: the dead one's slot
    EXPECT_EQ(producer.send(msg, 2s), ChannelStatus::Ok);    // waiting: found dead, freed
    EXPECT_EQ(producer.stats().lost, 1u);
    EXPECT_EQ(producer.try_send(msg), ChannelStatus::Ok);  // into the slot released above
    EXPECT_EQ(consumer.receive(buf, size, 1s), ChannelStatus::Ok);
    EXPECT_EQ(consumer.receive(buf, size, 1s), ChannelStatus::Ok);
    EXPECT_EQ(consumer.try_receive(buf, size), ChannelStatus::Empty);
}

TEST(Recovery, SpscConsumerDiedHoldingAMessageItIsReadAgain) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel producer = Channel::create(name, {ChannelKind::Spsc, 2, 16}, ChannelRole::Producer);
    std::byte msg[2] = {std::byte{'o'}, std::byte{'k'}};
    ASSERT_EQ(producer.try_send(msg), ChannelStatus::Ok);
    int status = testutil::run_in_child([&] {
        Channel c = Channel::open(name, ChannelRole::Consumer);
        ChannelView v;
        if (c.try_read(v) != ChannelStatus::Ok) return 1;
        ::_exit(0);  // dies before release
    });
    ASSERT_EQ(status, 0);
    Channel consumer = Channel::open(name, ChannelRole::Consumer);  // the dead one's role is free
    std::byte buf[16];
    std::size_t size = 0;
    ASSERT_EQ(consumer.try_receive(buf, size), ChannelStatus::Ok);
    EXPECT_EQ(size, 2u);
    EXPECT_EQ(consumer.stats().received, 1u);
}

// ------------------------------------------------------------------ bad input

TEST(BadInput, RandomFileIsNotAChannel) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    testutil::write_file("/dev/shm" + name, testutil::random_bytes(8192), 0600);
    auto e = testutil::catch_as<Error>([&] { Channel::open(name, ChannelRole::Consumer); });
    ASSERT_TRUE(e);
    EXPECT_TRUE(contains(e->what(), name)) << e->what();
}

TEST(BadInput, PlainSegmentIsNotAChannel) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Segment::create(Backend::Posix, name, 65536);
    auto e = testutil::catch_as<Error>([&] { Channel::open(name, ChannelRole::Consumer); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EPROTO);
    EXPECT_TRUE(contains(e->what(), "not a pagewire channel")) << e->what();

    const std::string small = shmtest::unique_posix_name();
    Cleanup cleanup_small(Backend::Posix, small);
    Segment::create(Backend::Posix, small, 16);
    e = testutil::catch_as<Error>([&] { Channel::open(small, ChannelRole::Observer); });
    ASSERT_TRUE(e);
    EXPECT_TRUE(contains(e->what(), "smaller than a channel header")) << e->what();
}

TEST(BadInput, CorruptOrNewerHeaderIsRefused) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel::create(name, {ChannelKind::Spsc, 8, 64});
    Segment raw = Segment::open(Backend::Posix, name);
    std::uint64_t capacity = 3;  // not a power of two
    std::memcpy(raw.data() + 16, &capacity, 8);
    auto e = testutil::catch_as<Error>([&] { Channel::open(name, ChannelRole::Observer); });
    ASSERT_TRUE(e);
    EXPECT_TRUE(contains(e->what(), "corrupt channel header")) << e->what();

    std::uint32_t version = 99;
    std::memcpy(raw.data() + 8, &version, 4);
    e = testutil::catch_as<Error>([&] { Channel::open(name, ChannelRole::Observer); });
    ASSERT_TRUE(e);
    EXPECT_TRUE(contains(e->what(), "layout version 99")) << e->what();
}

TEST(BadInput, OtherKindIsRefused) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel::create(name, {ChannelKind::Spsc, 8, 64});
    auto e = testutil::catch_as<Error>(
        [&] { Channel::open(name, ChannelRole::Producer, ChannelKind::Mpmc); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EPROTO);
    EXPECT_TRUE(contains(e->what(), "is an spsc channel, not mpmc")) << e->what();
    EXPECT_NO_THROW(Channel::open(name, ChannelRole::Producer, ChannelKind::Spsc));
}

TEST(BadInput, CapacityAndSizeLimits) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    auto refused = [&](std::size_t capacity, std::size_t max_message, const char* text) {
        auto e = testutil::catch_as<Error>([&] {
            Channel::create(name, {ChannelKind::Mpmc, capacity, max_message});
        });
        ASSERT_TRUE(e) << capacity << " x " << max_message;
        EXPECT_EQ(e->error_number(), EINVAL);
        EXPECT_TRUE(contains(e->what(), text)) << e->what();
    };
    refused(0, 64, "capacity 0 is out of range");
    refused(Channel::kMaxCapacity + 1, 64, "is out of range");
    refused(std::size_t{1} << 62, 64, "is out of range");
    refused(8, 0, "max message 0 is out of range");
    refused(8, Channel::kMaxMessage + 1, "is out of range");
    refused(Channel::kMaxCapacity, Channel::kMaxMessage, "exceeds");
    EXPECT_THROW(Segment::open(Backend::Posix, name), Error);  // nothing was left behind

    Channel ch = Channel::create(name, {ChannelKind::Spsc, 3, 100}, ChannelRole::Producer);
    EXPECT_EQ(ch.capacity(), 4u);  // rounded up to a power of two
    std::vector<std::byte> big(101);
    EXPECT_EQ(ch.try_send(big), ChannelStatus::TooBig);
    ChannelLoan loan;
    EXPECT_EQ(ch.try_loan(101, loan), ChannelStatus::TooBig);
    EXPECT_EQ(ch.try_send({big.data(), 100}), ChannelStatus::Ok);
}

TEST(BadInput, RolesAndOneLoanAtATime) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel producer = Channel::create(name, {ChannelKind::Spsc, 4, 16}, ChannelRole::Producer);
    // SPSC: a second live producer is refused; once the first is gone, fine.
    auto e = testutil::catch_as<Error>([&] { Channel::open(name, ChannelRole::Producer); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EBUSY);
    Channel consumer = Channel::open(name, ChannelRole::Consumer);
    std::byte one[1]{};
    EXPECT_EQ(consumer.try_send(one), ChannelStatus::WrongRole);
    ChannelView view;
    EXPECT_EQ(producer.try_read(view), ChannelStatus::WrongRole);
    EXPECT_EQ(consumer.try_read(view), ChannelStatus::Empty);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(consumer.read(view, 50ms), ChannelStatus::TimedOut);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);

    ChannelLoan a, b;
    ASSERT_EQ(producer.try_loan(1, a), ChannelStatus::Ok);
    EXPECT_EQ(producer.try_loan(1, b), ChannelStatus::Busy);
    producer.cancel(a);
    EXPECT_EQ(consumer.try_read(view), ChannelStatus::Empty);  // a cancelled loan is never seen
    for (int i = 0; i < 4; ++i) ASSERT_EQ(producer.try_send(one), ChannelStatus::Ok);
    EXPECT_EQ(producer.try_send(one), ChannelStatus::Full);
    EXPECT_EQ(producer.send(one, 20ms, WaitMode::BusyPoll), ChannelStatus::TimedOut);
    producer = Channel();
    EXPECT_NO_THROW(Channel::open(name, ChannelRole::Producer));
}
