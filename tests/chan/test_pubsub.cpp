// PubSub channels across separately exec'd processes (chan_helper publishes
// with `produce` and subscribes with `subscribe`, which checks every message
// it gets and reports what it saw): fan-out with known counts, overwriting
// with slow subscribers, joining and leaving, dead subscribers, publishers and
// subscribers killed with kill -9 at random moments, and bad input. Named
// chan.<Suite>.<Case>.
#include "chan_process_test.hpp"

namespace {

// A subscriber's final report: "ok key=value ..." (see chan_helper subscribe).
struct Report {
    bool ok = false;
    std::string line;
    std::map<std::string, std::uint64_t> v;
    std::uint64_t operator[](const std::string& key) const {
        auto it = v.find(key);
        return it == v.end() ? ~std::uint64_t{0} : it->second;
    }
};

Report read_report(Child& sub, int seconds = 30) {
    Report r;
    r.line = sub.read_line(seconds);
    if (r.line.rfind("ok ", 0) != 0) return r;
    r.ok = true;
    std::istringstream in(r.line.substr(3));
    std::string kv;
    while (in >> kv) {
        auto eq = kv.find('=');
        r.v[kv.substr(0, eq)] = std::stoull(kv.substr(eq + 1));
    }
    return r;
}

std::unique_ptr<Child> start(std::vector<std::string> args) {
    args.insert(args.begin(), kHelper);
    return std::make_unique<Child>(args);
}

// Starts a subscriber and waits until it is registered.
std::unique_ptr<Child> subscriber(const std::string& name, std::vector<std::string> options = {}) {
    std::vector<std::string> args{"subscribe", name};
    args.insert(args.end(), options.begin(), options.end());
    auto c = start(args);
    const std::string line = c->read_line(20);
    EXPECT_EQ(line, "ready") << "subscriber " << name;
    return c;
}

testutil::RunResult run_helper(const std::vector<std::string>& args,
                               std::chrono::milliseconds timeout = 60s) {
    std::vector<std::string> argv{kHelper};
    argv.insert(argv.end(), args.begin(), args.end());
    testutil::RunOptions options;
    options.timeout = timeout;
    return testutil::run(argv, options);
}

void wait_ok(Child& c) {
    int status = c.wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
}

std::uint64_t n_scaled(std::uint64_t n) {
    return testutil::kAsan || testutil::kTsan ? n / 5 : n;
}

// The end marker, sent by a publisher of its own once the last one is gone.
void send_end(const std::string& name) {
    auto r = run_helper({"end", name, "1"});
    ASSERT_EQ(r.exit_code(), 0) << r;
}

// A subscriber that was there from the start and may miss nothing.
void expect_everything(const Report& r, std::uint64_t n) {
    ASSERT_TRUE(r.ok) << r.line;
    EXPECT_EQ(r["received"], n) << r.line;
    EXPECT_EQ(r["lost"], 0u) << r.line;
    EXPECT_EQ(r["join"], 0u) << r.line;
    EXPECT_EQ(r["first"], 0u) << r.line;
    EXPECT_EQ(r["last_data"], n - 1) << r.line;
    EXPECT_EQ(r["last"], n) << r.line;  // the end marker right after
}

ChannelStats stats_of(const std::string& name) {
    return Channel::open(name, ChannelRole::Observer).stats();
}

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

// ------------------------------------------------------------------ fan-out

TEST(PubSub, BlockThreeSubscribersGetEverythingInOrder) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel::create(name, {ChannelKind::PubSub, 64, 400});
    const std::uint64_t n = n_scaled(20000);
    std::vector<std::unique_ptr<Child>> subs;
    for (int i = 0; i < 3; ++i) subs.push_back(subscriber(name, {"order=block"}));
    EXPECT_EQ(stats_of(name).consumers, 3u);
    auto r = run_helper({"produce", name, "1", "1", std::to_string(n)});
    ASSERT_EQ(r.exit_code(), 0) << r;
    send_end(name);
    for (auto& s : subs) {
        expect_everything(read_report(*s), n);
        wait_ok(*s);
    }
    ChannelStats s = stats_of(name);
    EXPECT_EQ(s.sent, n + 1);
    EXPECT_EQ(s.received, 3 * (n + 1));  // every subscriber released every message
    EXPECT_EQ(s.lost, 0u);
    EXPECT_EQ(s.consumers, 0u);
}

// A publisher that never waits for a backlog: the slow subscriber skips ahead
// and counts what it missed; the fast one keeps up (almost).
TEST(PubSub, OverwriteSlowSubscriberLosesAndCountsFastOneKeepsUp) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    create_pubsub(name, 64, 400, ChannelOverflow::Overwrite);
    const std::uint64_t n = n_scaled(20000);
    auto slow = subscriber(name, {"order=overwrite", "hold_us=200"});
    auto fast = subscriber(name, {"order=overwrite"});
    const auto t0 = Clock::now();
    // Paced in bursts (~50k messages/s), so a subscriber that runs keeps up.
    auto r = run_helper({"produce", name, "1", "1", std::to_string(n), "wait_ms=2000", "report=1",
                         "pace_us=100", "burst=10"});
    const double took = ms_since(t0);
    ASSERT_EQ(r.exit_code(), 0) << r;
    send_end(name);
    Report rs = read_report(*slow), rf = read_report(*fast);
    wait_ok(*slow);
    wait_ok(*fast);
    ASSERT_TRUE(rs.ok) << rs.line;
    ASSERT_TRUE(rf.ok) << rf.line;
    // The helper checked order and lost_before gaps message by message; here
    // the totals: every position it covered was received or counted lost.
    EXPECT_EQ(rs["join"], 0u);
    EXPECT_EQ(rs["last"], n);
    EXPECT_EQ(rs["received"] + rs["lost"], n) << rs.line;
    EXPECT_GT(rs["lost"], 0u) << "a 200 us/message subscriber kept up with " << n << " messages in "
                              << took << " ms?";
    EXPECT_EQ(rf["received"] + rf["lost"], n) << rf.line;
    EXPECT_LT(rf["lost"] * 4, rs["lost"]) << rf.line << " vs " << rs.line;
    // 200 us x 20000 messages is 4 s at least for a publisher that waited for it.
    EXPECT_LT(took, 3500.0) << r;
    ChannelStats s = stats_of(name);
    EXPECT_EQ(s.lost, rs["lost"] + rf["lost"]);
    EXPECT_EQ(s.sent, n + 1);
    std::cout << "[ info ] publisher: " << took << " ms for " << n
              << " messages; slow subscriber got " << rs["received"] << " and lost " << rs["lost"]
              << "; fast one got " << rf["received"] << " and lost " << rf["lost"] << "\n";
}

// This process subscribes and sits on each view for 2 ms while a
// chan_helper publisher runs flat out: the publisher may lap it any number
// of times but must stop right at the held slot (sent == position +
// capacity), and the bytes under the view never change until release.
TEST(PubSub, OverwriteNeverRewritesAHeldView) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel sub = create_pubsub(name, 8, 300, ChannelOverflow::Overwrite, ChannelRole::Consumer);
    Child publisher({kHelper, "produce", name, "1", "1", "0", "wait_ms=10000"});
    int pressed = 0;
    const int views = 50;
    std::uint64_t last = 0;
    for (int i = 0; i < views; ++i) {
        ChannelView v;
        ASSERT_EQ(sub.read(v, 10s), ChannelStatus::Ok);
        if (i > 0) {
            EXPECT_EQ(v.position, last + 1 + v.lost_before);
        }
        last = v.position;
        chantest::Parsed before, after;
        ASSERT_EQ(chantest::check_message({v.data, v.size}, before), "");
        EXPECT_EQ(before.seq, v.position);
        std::this_thread::sleep_for(2ms);
        const std::uint64_t sent = sub.stats().sent;
        ASSERT_EQ(chantest::check_message({v.data, v.size}, after), "") << "torn while held";
        EXPECT_EQ(after.seq, before.seq) << "rewritten while held";
        EXPECT_LE(sent, v.position + 8) << "the publisher went past a held slot";
        if (sent == v.position + 8) ++pressed;
        sub.release(v);
    }
    publisher.kill9();
    int status = publisher.wait();
    EXPECT_TRUE(WIFSIGNALED(status))
        << testutil::describe_status(status) << " (" << publisher.read_line(1) << ")";
    EXPECT_GE(pressed, views / 2) << "the publisher rarely reached the held slot: test void";
    EXPECT_EQ(sub.lost(), last + 1 - views);
}

// Block: a subscriber that joins mid-stream gets a contiguous suffix (from
// where it joined to the end); one that closes its handle (and stays alive)
// holds nobody back.
TEST(PubSub, JoinMidStreamAndLeave) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel::create(name, {ChannelKind::PubSub, 16, 300});
    const std::uint64_t n = 4000;
    auto early = subscriber(name);
    auto leaver = subscriber(name, {"leave=100"});
    auto publisher = start({"produce", name, "1", "1", std::to_string(n), "pace_us=50"});
    EXPECT_EQ(leaver->read_line(20), "left 100");
    const auto deadline = Clock::now() + 20s;
    while (stats_of(name).sent < 500 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    auto late = subscriber(name);
    const std::uint64_t sent_when_late_joined = stats_of(name).sent;
    for (const ChannelPeerInfo& p : Channel::open(name, ChannelRole::Observer).peers())
        EXPECT_NE(p.pid, leaver->pid()) << "a closed handle is still registered";
    EXPECT_EQ(publisher->read_line(60), "done " + std::to_string(n));  // not held back by leaver
    wait_ok(*publisher);
    send_end(name);
    expect_everything(read_report(*early), n);
    wait_ok(*early);
    Report rl = read_report(*late);
    wait_ok(*late);
    ASSERT_TRUE(rl.ok) << rl.line;
    EXPECT_GE(rl["join"], 500u);
    EXPECT_LE(rl["join"], sent_when_late_joined);
    EXPECT_EQ(rl["lost"], 0u);
    EXPECT_EQ(rl["first"], rl["join"])
        << "joined at " << rl["join"] << " but first got " << rl["first"];
    EXPECT_EQ(rl["last_data"], n - 1);
    EXPECT_EQ(rl["received"], n - rl["join"]);
    leaver->close_stdin();
    wait_ok(*leaver);
}

// A subscriber stalls holding a view, so the publisher must wait (Block: for
// its read position; Overwrite: for the very slot it views); it is killed
// with kill -9; the publisher goes on within about a second (the dead one is
// found by the waiting loan), the others get everything (Overwrite: all
// they did not skip).
void dead_subscriber(ChannelOverflow overflow) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    create_pubsub(name, 16, 300, overflow);
    const bool block = overflow == ChannelOverflow::Block;
    const std::string order = order_arg(overflow);
    const std::uint64_t n = n_scaled(5000);
    auto a = subscriber(name, {order});
    auto b = subscriber(name, {order});
    auto stuck = subscriber(name, {order, "stall=0"});
    const pid_t stuck_pid = stuck->pid();
    {
        // Message 0 (generation 1) from this process, so the stuck one holds
        // it before the real publisher (generation 2) starts.
        Channel first = Channel::open(name, ChannelRole::Producer);
        std::vector<std::byte> buf(first.max_message());
        const std::size_t size = chantest::make_message(buf, 1, 1, 0);
        ASSERT_EQ(first.send({buf.data(), size}, 5s), ChannelStatus::Ok);
    }
    EXPECT_EQ(stuck->read_line(20), "stalled 0");
    auto publisher =
        start({"produce", name, "1", "2", std::to_string(n), "wait_ms=10000", "report=1"});
    // The publisher is held at the capacity (reusing the held slot 0): the
    // test can fail.
    const auto deadline = Clock::now() + 10s;
    while (stats_of(name).sent < 16 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(stats_of(name).sent, 16u) << "the publisher did not wait for the subscriber";
    bool listed = false;
    for (const ChannelPeerInfo& p : Channel::open(name, ChannelRole::Observer).peers())
        if (p.pid == stuck->pid()) {
            listed = true;
            EXPECT_TRUE(p.alive);
            EXPECT_EQ(p.role, ChannelRole::Consumer);
            EXPECT_EQ(p.messages, 0u);
            EXPECT_EQ(p.lag, 16u);
        }
    EXPECT_TRUE(listed);

    stuck->kill9();
    stuck->wait();  // reaped: dead for /proc
    const auto killed = Clock::now();
    while (stats_of(name).sent <= 16 && Clock::now() < killed + 10s)
        std::this_thread::sleep_for(1ms);
    const double resumed = ms_since(killed);
    EXPECT_LT(resumed, 1000.0) << "the publisher took " << resumed << " ms to drop the dead one";
    EXPECT_EQ(publisher->read_line(60), "done " + std::to_string(n));
    wait_ok(*publisher);
    send_end(name);
    for (auto* sub : {a.get(), b.get()}) {
        Report r = read_report(*sub);
        ASSERT_TRUE(r.ok) << r.line;
        EXPECT_EQ(r["join"], 0u);
        EXPECT_EQ(r["last"], n + 1) << r.line;  // 1 + n messages, then the end marker
        EXPECT_EQ(r["last_gen"], 2u);
        EXPECT_EQ(r["received"] + r["lost"], n + 1) << r.line;
        if (block) {
            EXPECT_EQ(r["lost"], 0u) << r.line;
        }
        wait_ok(*sub);
    }
    for (const ChannelPeerInfo& p : Channel::open(name, ChannelRole::Observer).peers())
        EXPECT_NE(p.pid, stuck_pid) << "the dead subscriber is still listed";
    EXPECT_EQ(stats_of(name).consumers, 0u);
    std::cout << "[ info ] the publisher went on " << resumed << " ms after the kill\n";
}

TEST(PubSub, BlockDeadSubscriberIsDropped) {
    dead_subscriber(ChannelOverflow::Block);
}
TEST(PubSub, OverwriteDeadViewerIsDropped) {
    dead_subscriber(ChannelOverflow::Overwrite);
}

// ------------------------------------------------------------------ chaos

// A publisher killed at a random moment `rounds` times while a subscriber
// checks every message: each generation whole and in order (Block: with no
// gap at all, even across publishers), and then a last publisher gets
// through.
void kill_publishers(ChannelOverflow overflow, int rounds) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    create_pubsub(name, 16, 700, overflow);
    const bool block = overflow == ChannelOverflow::Block;
    auto sub = subscriber(name, {order_arg(overflow), block ? "hold_us=0" : "view_us=20"});
    std::mt19937 rng(static_cast<unsigned>(::getpid()));
    const auto t0 = Clock::now();
    int busy = 0;
    for (int g = 1; g <= rounds; ++g) {
        Child publisher({kHelper, "produce", name, "1", std::to_string(g), "0", "wait_ms=5000"});
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 5000));
        publisher.kill9();
        int status = publisher.wait();  // reaped, so the next one may take over
        if (WIFEXITED(status)) {
            const std::string said = publisher.read_line(1);
            if (contains(said, "is alive")) ++busy;  // the previous one not gone?
            ADD_FAILURE() << "publisher " << g << ": " << testutil::describe_status(status) << " ("
                          << said << ")";
            if (g > 5 && ::testing::Test::HasFailure()) break;
        }
    }
    const std::uint64_t n = 1000;
    auto r = run_helper({"produce", name, "1", std::to_string(rounds + 1), std::to_string(n)});
    ASSERT_EQ(r.exit_code(), 0) << r;
    send_end(name);
    Report rep = read_report(*sub);
    wait_ok(*sub);
    ASSERT_TRUE(rep.ok) << rep.line;
    EXPECT_EQ(rep["last_gen"], static_cast<std::uint64_t>(rounds + 1));
    ChannelStats s = stats_of(name);
    EXPECT_EQ(rep["last"] + 1, s.sent);
    if (block) {
        EXPECT_EQ(rep["lost"], 0u);
        EXPECT_EQ(rep["received"] + 1, s.sent) << rep.line;  // every position, once
    } else {
        EXPECT_EQ(rep["received"] + rep["lost"] + 1, s.sent) << rep.line;
        EXPECT_EQ(s.lost, rep["lost"]);
    }
    EXPECT_EQ(busy, 0);
    std::cout << "[ info ] " << rounds << " publishers killed in " << ms_since(t0)
              << " ms; the subscriber saw " << rep["received"] << " whole messages of "
              << rep["gens"] << " generations in order, lost " << rep["lost"] << "\n";
}

TEST(Chaos, PubSubBlockPublisherKilled) {
    kill_publishers(ChannelOverflow::Block, 200);
}
TEST(Chaos, PubSubOverwritePublisherKilled) {
    kill_publishers(ChannelOverflow::Overwrite, 200);
}

// Subscribers killed at random moments (some before they registered, some
// while reading or holding a view) while one publisher keeps going: it must
// never wedge (its loans time out after 3 s); then a last subscriber gets
// the last publisher's messages.
void kill_subscribers(ChannelOverflow overflow, int rounds) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    create_pubsub(name, 16, 300, overflow);
    const bool block = overflow == ChannelOverflow::Block;
    const std::string order = order_arg(overflow);
    Child publisher({kHelper, "produce", name, "1", "1", "0", "wait_ms=3000"});
    std::mt19937 rng(static_cast<unsigned>(::getpid()));
    const auto t0 = Clock::now();
    for (int i = 0; i < rounds; ++i) {
        Child sub({kHelper, "subscribe", name, order});
        if (i % 2 == 1) (void)sub.read_line(5);  // "ready": registered, then killed reading
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 5000));
        sub.kill9();
        sub.wait();
    }
    const double chaos_ms = ms_since(t0);
    const std::uint64_t sent_during = stats_of(name).sent;
    std::this_thread::sleep_for(300ms);
    const std::uint64_t sent_after = stats_of(name).sent;
    EXPECT_GT(sent_after, sent_during) << "the publisher wedged";

    auto last = subscriber(name, {order});
    std::this_thread::sleep_for(20ms);
    publisher.kill9();
    int status = publisher.wait();
    EXPECT_TRUE(WIFSIGNALED(status))
        << "the publisher gave up: " << testutil::describe_status(status) << " ("
        << publisher.read_line(1) << ")";
    const std::uint64_t n = 1000;
    auto r = run_helper({"produce", name, "1", "2", std::to_string(n), "wait_ms=3000"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    send_end(name);
    Report rep = read_report(*last);
    wait_ok(*last);
    ASSERT_TRUE(rep.ok) << rep.line;
    EXPECT_EQ(rep["last_gen"], 2u);
    ChannelStats s = stats_of(name);
    EXPECT_EQ(rep["last"] + 1, s.sent);
    EXPECT_EQ(rep["received"] + rep["lost"], s.sent - 1 - rep["join"]) << rep.line;
    if (block) {
        EXPECT_EQ(rep["lost"], 0u) << rep.line;
    }
    EXPECT_EQ(s.consumers, 0u);
    std::cout << "[ info ] " << rounds << " subscribers killed in " << chaos_ms << " ms while "
              << sent_during << " messages were published; the last subscriber got "
              << rep["received"] << ", lost " << rep["lost"] << "\n";
}

TEST(Chaos, PubSubOverwriteSubscribersKilled) {
    kill_subscribers(ChannelOverflow::Overwrite, 200);
}
TEST(Chaos, PubSubBlockSubscribersKilled) {
    kill_subscribers(ChannelOverflow::Block, 150);
}

// ------------------------------------------------------------------ in one process

// The counters and positions, deterministically (publisher and subscribers
// as handles of this process).
TEST(PubSubBasics, BlockWaitsForTheSlowestAndPeersSayWho) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel pub = Channel::create(name, {ChannelKind::PubSub, 4, 16}, ChannelRole::Producer);
    EXPECT_EQ(pub.kind(), ChannelKind::PubSub);
    EXPECT_EQ(pub.overflow(), ChannelOverflow::Block);
    std::byte msg[1] = {std::byte{0}};
    ASSERT_EQ(pub.try_send(msg), ChannelStatus::Ok);  // nobody subscribed: gone for good
    Channel a = Channel::open(name, ChannelRole::Consumer, ChannelKind::PubSub);
    Channel b = Channel::open(name, ChannelRole::Consumer);
    ChannelView v;
    EXPECT_EQ(a.try_read(v), ChannelStatus::Empty);
    for (int i = 1; i <= 4; ++i) {
        msg[0] = std::byte(i);
        ASSERT_EQ(pub.try_send(msg), ChannelStatus::Ok) << i;
    }
    EXPECT_EQ(pub.try_send(msg), ChannelStatus::Full);  // both are 4 behind
    EXPECT_FALSE(pub.ready());
    for (int i = 1; i <= 4; ++i) {
        ASSERT_EQ(a.try_read(v), ChannelStatus::Ok);
        EXPECT_EQ(v.position, static_cast<std::uint64_t>(i));
        EXPECT_EQ(v.lost_before, 0u);
        EXPECT_EQ(v.data[0], std::byte(i));
        a.release(v);
    }
    EXPECT_EQ(pub.try_send(msg), ChannelStatus::Full);  // b still is
    ASSERT_EQ(b.try_read(v), ChannelStatus::Ok);
    EXPECT_EQ(v.position, 1u);
    b.release(v);
    EXPECT_TRUE(pub.ready());
    EXPECT_EQ(pub.try_send(msg), ChannelStatus::Ok);

    std::map<ChannelRole, int> roles;
    for (const ChannelPeerInfo& p : pub.peers()) {
        ++roles[p.role];
        EXPECT_EQ(p.pid, ::getpid());
        EXPECT_TRUE(p.alive);
        if (p.role == ChannelRole::Producer) {
            EXPECT_EQ(p.messages, 6u);
        }
    }
    EXPECT_EQ(roles[ChannelRole::Producer], 1);
    EXPECT_EQ(roles[ChannelRole::Consumer], 2);
    std::vector<std::uint64_t> lags;
    for (const ChannelPeerInfo& p : pub.peers())
        if (p.role == ChannelRole::Consumer) lags.push_back(p.lag);
    std::sort(lags.begin(), lags.end());
    EXPECT_EQ(lags, (std::vector<std::uint64_t>{1, 4}));  // a read 4 of 5, b 1 of 5

    b = Channel();  // leaving: b's backlog no longer counts
    EXPECT_EQ(pub.try_send(msg), ChannelStatus::Ok);
    ChannelStats s = pub.stats();
    EXPECT_EQ(s.sent, 7u);
    EXPECT_EQ(s.received, 5u);  // a's 4 + b's 1
    EXPECT_EQ(s.consumers, 1u);
    EXPECT_EQ(s.producers, 1u);
    EXPECT_EQ(s.depth, 2u);  // a's backlog

    // Joining now: only what comes next.
    Channel c = Channel::open(name, ChannelRole::Consumer);
    EXPECT_EQ(c.try_read(v), ChannelStatus::Empty);
    EXPECT_FALSE(c.ready());
    ASSERT_EQ(pub.try_send(msg), ChannelStatus::Ok);
    EXPECT_TRUE(c.ready());
    ASSERT_EQ(c.try_read(v), ChannelStatus::Ok);
    EXPECT_EQ(v.position, 7u);
    c.release(v);
}

TEST(PubSubBasics, OverwriteCountsWhatASubscriberMissed) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel pub = create_pubsub(name, 8, 16, ChannelOverflow::Overwrite, ChannelRole::Producer);
    EXPECT_EQ(pub.overflow(), ChannelOverflow::Overwrite);
    Channel sub = Channel::open(name, ChannelRole::Consumer);
    Channel keeper = Channel::open(name, ChannelRole::Consumer);
    auto send = [&](std::uint64_t value) {
        std::byte m[8];
        std::memcpy(m, &value, 8);
        return pub.try_send(m);
    };
    auto value_of = [](const ChannelView& v) {
        std::uint64_t x = 0;
        std::memcpy(&x, v.data, 8);
        return x;
    };
    ChannelView v, held;
    for (std::uint64_t i = 0; i < 3 * 8; ++i) ASSERT_EQ(send(i), ChannelStatus::Ok) << i;
    // 24 sent into 8 slots: sub skips to one of the last 8 and counts the rest.
    ASSERT_EQ(sub.try_read(v), ChannelStatus::Ok);
    EXPECT_GE(v.position, 16u);
    EXPECT_EQ(v.lost_before, v.position);
    EXPECT_EQ(value_of(v), v.position);
    std::uint64_t got = 1, lost = v.lost_before, last = v.position;
    sub.release(v);
    while (sub.try_read(v) == ChannelStatus::Ok) {
        EXPECT_EQ(v.position, last + 1);
        EXPECT_EQ(v.lost_before, 0u);
        EXPECT_EQ(value_of(v), v.position);
        last = v.position;
        ++got;
        sub.release(v);
    }
    EXPECT_EQ(last, 23u);
    EXPECT_EQ(got + lost, 24u);
    EXPECT_EQ(sub.lost(), lost);

    // A held view is never rewritten: the publisher waits for that one slot.
    ASSERT_EQ(keeper.try_read(held), ChannelStatus::Ok);
    const std::uint64_t kept = held.position;
    const std::uint64_t kept_value = value_of(held);
    std::uint64_t next = 24;
    while (next < kept + 8) ASSERT_EQ(send(next++), ChannelStatus::Ok) << next;
    EXPECT_EQ(send(next), ChannelStatus::Full);  // would reuse the held slot
    ChannelLoan loan;
    EXPECT_EQ(pub.loan(8, loan, 30ms), ChannelStatus::TimedOut);
    EXPECT_EQ(value_of(held), kept_value);
    keeper.release(held);
    ASSERT_EQ(send(next++), ChannelStatus::Ok);
    // The keeper went on past its view: it lost everything but the slots
    // still holding messages.
    ASSERT_EQ(keeper.try_read(v), ChannelStatus::Ok);
    EXPECT_EQ(v.position, kept + 1 + v.lost_before);
    EXPECT_EQ(value_of(v), v.position);
    keeper.release(v);

    std::uint64_t peer_lost = 0;
    for (const ChannelPeerInfo& p : pub.peers())
        if (p.role == ChannelRole::Consumer) peer_lost += p.lost;
    EXPECT_EQ(peer_lost, sub.lost() + keeper.lost());
    EXPECT_EQ(pub.stats().lost, sub.lost() + keeper.lost());
}

// A killed publisher that its parent has not reaped yet (a zombie) still
// counts as alive: EBUSY until waitpid, then the role is free.
TEST(PubSubBasics, PublisherRoleFreeOnceTheOldOneIsReaped) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel::create(name, {ChannelKind::PubSub, 8, 64});
    Child old({kHelper, "produce", name, "1", "1", "0"});
    Channel sub = Channel::open(name, ChannelRole::Consumer);
    ChannelView v;
    ASSERT_EQ(sub.read(v, 10s), ChannelStatus::Ok);  // the publisher is registered and running
    sub.release(v);
    auto e = testutil::catch_as<Error>([&] { Channel::open(name, ChannelRole::Producer); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EBUSY);
    old.kill9();
    std::this_thread::sleep_for(50ms);  // dead but not reaped
    e = testutil::catch_as<Error>([&] { Channel::open(name, ChannelRole::Producer); });
    ASSERT_TRUE(e) << "a zombie publisher counted as dead";
    EXPECT_EQ(e->error_number(), EBUSY);
    old.wait();
    Channel pub = Channel::open(name, ChannelRole::Producer);
    // The subscriber goes on with the new publisher's messages, no gap (Block).
    std::uint64_t last = v.position;
    while (sub.try_read(v) == ChannelStatus::Ok) {  // what the old one published meanwhile
        EXPECT_EQ(v.position, ++last);
        sub.release(v);
    }
    std::byte msg[1] = {std::byte{9}};
    ASSERT_EQ(pub.send(msg, 5s), ChannelStatus::Ok);
    ASSERT_EQ(sub.read(v, 5s), ChannelStatus::Ok);
    EXPECT_EQ(v.position, last + 1);
    EXPECT_EQ(v.size, 1u);
    sub.release(v);
}

// 63 subscribers at most (one entry of the 64 is the publisher's); a
// subscriber that leaves frees its entry. The spin time is the channel's.
TEST(PubSubBasics, SixtyThreeSubscribersAtMost) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel pub = Channel::create(name, {ChannelKind::PubSub, 4, 16}, ChannelRole::Producer);
    std::vector<Channel> subs;
    for (unsigned i = 0; i + 1 < Channel::kMaxPeers; ++i)
        subs.push_back(Channel::open(name, ChannelRole::Consumer));
    auto e = testutil::catch_as<Error>([&] { Channel::open(name, ChannelRole::Consumer); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EUSERS);
    EXPECT_EQ(pub.stats().consumers, Channel::kMaxPeers - 1);
    std::byte msg[1] = {std::byte{5}};
    ASSERT_EQ(pub.try_send(msg), ChannelStatus::Ok);
    for (Channel& s : subs) {
        std::byte buf[16];
        std::size_t size = 0;
        ASSERT_EQ(s.try_receive(buf, size), ChannelStatus::Ok);
        EXPECT_EQ(buf[0], std::byte{5});
    }
    subs.pop_back();
    Channel again = Channel::open(name, ChannelRole::Consumer);
    ChannelView v;
    EXPECT_EQ(again.try_read(v), ChannelStatus::Empty);  // joined after that message

    pub.set_spin(std::chrono::microseconds(7));
    EXPECT_EQ(again.spin(), std::chrono::microseconds(7));
    pub.set_spin(Channel::kDefaultSpin);
}

// ------------------------------------------------------------------ bad input

TEST(PubSubBadInput, WrongKindTooBigOverwriteElsewhereSecondPublisher) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel pub = Channel::create(name, {ChannelKind::PubSub, 8, 64}, ChannelRole::Producer);

    auto e = testutil::catch_as<Error>(
        [&] { Channel::open(name, ChannelRole::Consumer, ChannelKind::Spsc); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EPROTO);
    EXPECT_TRUE(contains(e->what(), "pubsub")) << e->what();
    EXPECT_TRUE(contains(e->what(), name)) << e->what();

    // A second live publisher, in this process or in another.
    e = testutil::catch_as<Error>([&] { Channel::open(name, ChannelRole::Producer); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EBUSY);
    auto r = run_helper({"produce", name, "1", "1", "1"});
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_TRUE(contains(r.out, "alive")) << r;

    std::vector<std::byte> big(65);
    EXPECT_EQ(pub.try_send(big), ChannelStatus::TooBig);
    ChannelLoan loan;
    EXPECT_EQ(pub.try_loan(65, loan), ChannelStatus::TooBig);
    EXPECT_EQ(pub.send(big, 10ms), ChannelStatus::TooBig);
    EXPECT_EQ(pub.try_send({big.data(), 64}), ChannelStatus::Ok);

    Channel sub = Channel::open(name, ChannelRole::Consumer);
    std::byte one[1]{};
    EXPECT_EQ(sub.try_send(one), ChannelStatus::WrongRole);
    ChannelView v;
    EXPECT_EQ(pub.try_read(v), ChannelStatus::WrongRole);
    const auto t0 = Clock::now();
    EXPECT_EQ(sub.read(v, 30ms, WaitMode::Sleep), ChannelStatus::TimedOut);
    EXPECT_GE(Clock::now() - t0, 30ms);

    // Overwrite is for pubsub only.
    for (ChannelKind kind : {ChannelKind::Mpmc, ChannelKind::Spsc}) {
        const std::string other = shmtest::unique_posix_name();
        Cleanup cleanup_other(Backend::Posix, other);
        ChannelOptions options{kind, 8, 64};
        options.overflow = ChannelOverflow::Overwrite;
        e = testutil::catch_as<Error>([&] { Channel::create(other, options); });
        ASSERT_TRUE(e) << channel_kind_name(kind);
        EXPECT_EQ(e->error_number(), EINVAL);
        EXPECT_THROW(Segment::open(Backend::Posix, other), Error);  // nothing left behind
    }

    // Once the publisher is gone, another may take over.
    pub = Channel();
    EXPECT_NO_THROW(Channel::open(name, ChannelRole::Producer, ChannelKind::PubSub));
    EXPECT_EQ(parse_channel_kind("pubsub"), ChannelKind::PubSub);
    EXPECT_STREQ(channel_overflow_name(ChannelOverflow::Overwrite), "overwrite");
}
