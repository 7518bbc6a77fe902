// Corrupted channels (issue 12): a channel whose shared bytes no peer can have
// written is refused with ChannelStatus::Corrupt (library) or one line and
// exit 1 (CLI), within the timeout, never a hang, a crash or a message padded
// with garbage. Deterministic cases first, then a bounded randomized test
// over the segment header, the channel header, the peer table and the slot
// headers. Named chan.<Suite>.<Case>.
#define SHM_HELPER CHAN_HELPER  // see test_chan.cpp
// GCC 12 at -O3 reports a false -Wrestrict (GCC bug 105329, fixed in 13) inside
// libstdc++'s char_traits.h for this file's string building; silenced for g++ 12
// only, before any include.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../shm/shm_test_util.hpp"
#include "channel_impl.hpp"  // the layout, to corrupt chosen fields

using namespace pagewire;
using namespace std::chrono_literals;
using shmtest::Cleanup;
using testutil::contains;
using Clock = std::chrono::steady_clock;

namespace {

namespace detail = pagewire::channel_detail;

// The channel's bytes as the creator laid them out (the segment's data).
struct Raw {
    explicit Raw(const std::string& name) : segment(Segment::open(Backend::Posix, name)) {}
    detail::Header& header() { return *reinterpret_cast<detail::Header*>(segment.data()); }
    detail::Slot& slot(std::uint64_t index) {
        return *reinterpret_cast<detail::Slot*>(segment.data() + header().header_size +
                                                index * header().slot_stride);
    }
    Segment segment;
};

std::span<const std::byte> bytes_of(const std::string& s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

std::string text_of(const ChannelView& v) {
    return std::string(reinterpret_cast<const char*>(v.data), v.size);
}

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// read() with a timeout on a corrupt channel: Corrupt, well before the timeout.
void expect_read_refused(Channel& consumer, const std::string& what) {
    ChannelView v;
    const auto t0 = Clock::now();
    EXPECT_EQ(consumer.read(v, 2s), ChannelStatus::Corrupt);
    EXPECT_LT(ms_since(t0), 1000.0);
    EXPECT_TRUE(contains(consumer.corruption(), what)) << consumer.corruption();
}

}  // namespace

// ------------------------------------------------------------------ library

TEST(Corrupt, SpscSequenceAheadOfPosition) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel producer = Channel::create(name, {ChannelKind::Spsc, 8, 64}, ChannelRole::Producer);
    Channel consumer = Channel::open(name, ChannelRole::Consumer);
    ASSERT_EQ(producer.try_send(bytes_of("first")), ChannelStatus::Ok);
    ASSERT_EQ(producer.try_send(bytes_of("second")), ChannelStatus::Ok);
    ChannelView v;
    ASSERT_EQ(consumer.try_read(v), ChannelStatus::Ok);
    EXPECT_EQ(text_of(v), "first");
    consumer.release(v);
    Raw raw(name);
    raw.slot(1).seq.store(1000);                              // was 2: "message 1 published"
    EXPECT_EQ(consumer.try_read(v), ChannelStatus::Corrupt);  // the old code spun here forever
    EXPECT_EQ(consumer.corruption(), "slot 1 sequence 1000 is ahead of position 1");
    expect_read_refused(consumer, "slot 1 sequence 1000 is ahead of position 1");
}

TEST(Corrupt, MpmcSequenceAheadOfPositionBothSides) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel producer = Channel::create(name, {ChannelKind::Mpmc, 4, 64}, ChannelRole::Producer);
    Channel consumer = Channel::open(name, ChannelRole::Consumer);
    ASSERT_EQ(producer.try_send(bytes_of("one")), ChannelStatus::Ok);
    Raw raw(name);
    raw.slot(0).seq.store(77);
    expect_read_refused(consumer, "slot 0 sequence 77 is ahead of position 0");

    // The producer's next slot: the MPMC claim loop retried forever.
    raw.slot(1).seq.store(99);
    ChannelLoan loan;
    EXPECT_EQ(producer.try_loan(8, loan), ChannelStatus::Corrupt);
    EXPECT_EQ(producer.corruption(), "slot 1 sequence 99 is ahead of position 1");
    const auto t0 = Clock::now();
    EXPECT_EQ(producer.loan(8, loan, 2s), ChannelStatus::Corrupt);
    EXPECT_LT(ms_since(t0), 1000.0);
    raw.slot(1).seq.store(0);  // far behind what the position allows, after a lap
    raw.header().enqueue_pos.store(5);
    raw.header().dequeue_pos.store(4);
    EXPECT_EQ(producer.try_loan(8, loan), ChannelStatus::Corrupt);
    EXPECT_EQ(producer.corruption(), "slot 1 sequence 0 is behind position 5");
}

TEST(Corrupt, SizeBeyondSlotOrNotTheOneWritten) {
    for (ChannelKind kind : {ChannelKind::Spsc, ChannelKind::Mpmc, ChannelKind::PubSub}) {
        SCOPED_TRACE(channel_kind_name(kind));
        const std::string name = shmtest::unique_posix_name();
        Cleanup cleanup(Backend::Posix, name);
        Channel consumer = Channel::create(name, {kind, 8, 64}, ChannelRole::Consumer);
        Channel producer = Channel::open(name, ChannelRole::Producer);
        ASSERT_EQ(producer.try_send(bytes_of("hello")), ChannelStatus::Ok);
        ASSERT_EQ(producer.try_send(bytes_of("world")), ChannelStatus::Ok);
        Raw raw(name);
        raw.slot(0).size = 1000;  // once printed as "hello" and 995 stale bytes
        ChannelView v;
        EXPECT_EQ(consumer.try_read(v), ChannelStatus::Corrupt);
        EXPECT_EQ(consumer.corruption(), "message 0 size 1000 exceeds the max message 64");
        raw.slot(0).size = 40;  // within the slot, but not what was written
        EXPECT_EQ(consumer.try_read(v), ChannelStatus::Corrupt);
        EXPECT_TRUE(contains(consumer.corruption(), "message 0 size 40 is not the size written"))
            << consumer.corruption();
        raw.slot(0).size = 5;  // put back: the message reads again
        ASSERT_EQ(consumer.try_read(v), ChannelStatus::Ok);
        EXPECT_EQ(text_of(v), "hello");
        consumer.release(v);
    }
}

TEST(Corrupt, PositionsOutOfRange) {
    {  // SPSC consumer ahead of its producer
        const std::string name = shmtest::unique_posix_name();
        Cleanup cleanup(Backend::Posix, name);
        Channel producer = Channel::create(name, {ChannelKind::Spsc, 8, 64}, ChannelRole::Producer);
        Channel consumer = Channel::open(name, ChannelRole::Consumer);
        ASSERT_EQ(producer.try_send(bytes_of("x")), ChannelStatus::Ok);
        Raw(name).header().dequeue_pos.store(5);
        expect_read_refused(consumer, "consumer position 5 is ahead of producer position 1");
    }
    {  // SPSC producer more than a ring ahead of its consumer
        const std::string name = shmtest::unique_posix_name();
        Cleanup cleanup(Backend::Posix, name);
        Channel producer = Channel::create(name, {ChannelKind::Spsc, 8, 64}, ChannelRole::Producer);
        Raw(name).header().enqueue_pos.store(100);
        EXPECT_EQ(producer.send(bytes_of("x"), 2s), ChannelStatus::Corrupt);
        EXPECT_EQ(producer.corruption(),
                  "producer position 100 is more than 8 messages ahead of consumer position 0");
    }
    {  // MPMC consumers ahead of the producers: the slot looks merely unpublished
        const std::string name = shmtest::unique_posix_name();
        Cleanup cleanup(Backend::Posix, name);
        Channel consumer = Channel::create(name, {ChannelKind::Mpmc, 8, 64}, ChannelRole::Consumer);
        Raw(name).header().dequeue_pos.store(3);
        expect_read_refused(consumer, "consumer position 3 is ahead of producer position 0");
    }
    {  // PubSub Block: a message overwritten under a registered subscriber
        const std::string name = shmtest::unique_posix_name();
        Cleanup cleanup(Backend::Posix, name);
        Channel sub = Channel::create(name, {ChannelKind::PubSub, 4, 64}, ChannelRole::Consumer);
        Channel publisher = Channel::open(name, ChannelRole::Producer);
        ASSERT_EQ(publisher.try_send(bytes_of("p")), ChannelStatus::Ok);
        Raw(name).slot(0).seq.store(5);  // "message 4", which Block cannot have written yet
        ChannelView v;
        EXPECT_EQ(sub.try_read(v), ChannelStatus::Corrupt);
        EXPECT_EQ(sub.corruption(), "slot 0 sequence 5 is ahead of position 0");
    }
}

TEST(Corrupt, HealthyChannelsSayNothing) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    Channel producer = Channel::create(name, {ChannelKind::Mpmc, 4, 64}, ChannelRole::Producer);
    Channel consumer = Channel::open(name, ChannelRole::Consumer);
    for (int lap = 0; lap < 20; ++lap) {
        for (int i = 0; i < 4; ++i) ASSERT_EQ(producer.try_send(bytes_of("m")), ChannelStatus::Ok);
        EXPECT_EQ(producer.send(bytes_of("m"), 30ms),
                  ChannelStatus::TimedOut);  // full, not corrupt
        ChannelView v;
        for (int i = 0; i < 4; ++i) {
            ASSERT_EQ(consumer.read(v, 1s), ChannelStatus::Ok);
            consumer.release(v);
        }
        EXPECT_EQ(consumer.read(v, 30ms), ChannelStatus::TimedOut);  // empty, not corrupt
    }
    EXPECT_EQ(producer.corruption(), "");
    EXPECT_EQ(consumer.corruption(), "");
}

// ------------------------------------------------------------------ CLI

namespace {

testutil::RunResult cli(std::vector<std::string> args, std::string input = {}) {
    testutil::RunOptions options;
    options.input = std::move(input);
    options.timeout = 10s;  // a hang fails here instead of stalling the suite
    return testutil::run_pagewire(std::move(args), options);
}

void expect_one_line(const testutil::RunResult& r, const std::string& starts) {
    EXPECT_FALSE(r.timed_out) << r;
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_EQ(r.err.rfind(starts, 0), 0u) << r;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
}

}  // namespace

TEST(CorruptCli, RecvAndSendSayCorruptInOneLine) {
    for (const char* kind : {"spsc", "mpmc"}) {
        SCOPED_TRACE(kind);
        const std::string name = shmtest::unique_posix_name();
        Cleanup cleanup(Backend::Posix, name);
        ASSERT_EQ(cli({"chan", "create", name, "--kind", kind, "--capacity", "4"}).exit_code(), 0);
        ASSERT_EQ(cli({"chan", "send", name}, "alpha\nbeta\ngamma\n").exit_code(), 0);
        {
            Raw raw(name);
            raw.slot(1).seq.store(0xff00000000000002ULL);
        }
        // No --timeout: waits forever for a healthy channel; refused at once here.
        const auto t0 = Clock::now();
        testutil::RunResult r = cli({"chan", "recv", name, "--count", "3"});
        EXPECT_EQ(r.out, "alpha\n");
        expect_one_line(r, "pagewire: recv " + name +
                               ": channel is corrupt (slot 1 sequence 18374686479671623682 is "
                               "ahead of position 1)");
        EXPECT_LT(ms_since(t0), 5000.0);

        // The producers' next slot (3) ahead of its position; spsc producers
        // never read slots, so theirs is a moved position.
        {
            Raw raw(name);
            if (std::string(kind) == "mpmc")
                raw.slot(3).seq.store(42);
            else
                raw.header().dequeue_pos.store(9);
        }
        r = cli({"chan", "send", name, "--count", "5"});
        expect_one_line(r, "pagewire: send " + name + ": channel is corrupt (");
    }
}

TEST(CorruptCli, SizeBeyondSlotIsRefusedNotPadded) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    ASSERT_EQ(cli({"chan", "create", name, "--max-message", "100"}).exit_code(), 0);
    ASSERT_EQ(cli({"chan", "send", name}, "short\n").exit_code(), 0);
    Raw(name).slot(0).size = 90;
    testutil::RunResult r = cli({"chan", "recv", name, "--timeout", "1s"});
    EXPECT_EQ(r.out, "");  // once "short" and 85 NULs, exit 0
    expect_one_line(r, "pagewire: recv " + name +
                           ": channel is corrupt (message 0 size 90 is not the size written");
}

// ------------------------------------------------------------------ randomized

namespace {

constexpr std::size_t kCapacity = 8;
constexpr std::size_t kMaxMessage = 48;

// One corruption of the segment's object (/dev/shm/NAME): the pagewire
// segment header, the channel header, the peer table or a slot's header
// (message bytes carry no checksum, so those are left alone).
struct Damage {
    std::uint64_t offset = 0;  // in the object
    std::vector<std::uint8_t> bytes;
    std::string describe() const {
        std::string s = "offset " + std::to_string(offset) + " <-";
        for (std::uint8_t b : bytes) s += " " + std::to_string(b);
        return s;
    }
};

Damage random_damage(std::mt19937_64& rng, const std::string& path, std::uint64_t header_size,
                     std::uint64_t stride) {
    const std::uint64_t base = Segment::kHeaderSize;
    std::uint64_t offset = 0;
    switch (rng() % 5) {
        case 0:  // the pagewire segment header
            offset = rng() % base;
            break;
        case 1:  // the channel header's fields and positions (before the wake words)
            offset = base + rng() % 256;
            break;
        case 2:  // anywhere in the channel header, peer table included
            offset = base + rng() % header_size;
            break;
        default:  // a slot's sequence, size or check word
            offset = base + header_size + (rng() % kCapacity) * stride + rng() % 16;
            break;
    }
    Damage d;
    d.offset = offset;
    const std::string old = testutil::pread_file(path, offset, 8);
    // Within the slot header when in a slot: a byte of the message itself
    // would be a different message, which nothing checks.
    const std::uint64_t slot_room =
        offset >= base + header_size ? 16 - (offset - base - header_size) % stride : 8;
    const std::size_t n = std::min<std::size_t>(1 + rng() % 4, slot_room);
    for (std::size_t i = 0; i < n && i < old.size(); ++i) {
        const auto was = static_cast<std::uint8_t>(old[i]);
        switch (rng() % 5) {
            case 0:
                d.bytes.push_back(static_cast<std::uint8_t>(rng()));
                break;
            case 1:
                d.bytes.push_back(0);
                break;
            case 2:
                d.bytes.push_back(0xff);
                break;
            case 3:
                d.bytes.push_back(static_cast<std::uint8_t>(was + 1));
                break;
            default:
                d.bytes.push_back(static_cast<std::uint8_t>(was - 1));
                break;
        }
    }
    return d;
}

void apply(const std::string& path, const Damage& d) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::pwrite(fd, d.bytes.data(), d.bytes.size(), static_cast<off_t>(d.offset)),
              static_cast<ssize_t>(d.bytes.size()));
    ::close(fd);
}

std::string message(std::uint64_t trial, unsigned i) {
    std::string m = "t" + std::to_string(trial) + "m" + std::to_string(i) + "-";
    m.resize(std::min<std::size_t>(kMaxMessage, m.size() + (trial * 7 + i * 13) % 30),
             static_cast<char>('a' + i % 26));
    return m;
}

// In a forked child: the consumer reads, a producer sends, the consumer reads
// again, every wait bounded. 0: every message read was one sent (possibly
// again: a moved position may deliver an old one twice) or the channel was
// refused; 2: garbage (said on stderr).
int library_trial(const std::string& name, const std::set<std::string>& sent, std::uint64_t trial) {
    std::optional<Channel> consumer, producer;
    try {
        consumer.emplace(Channel::open(name, ChannelRole::Consumer));
    } catch (const Error&) {
        return 0;  // refused at open: fine
    }
    (void)consumer->stats();
    (void)consumer->peers();
    auto drain = [&]() -> int {
        for (int i = 0; i < 32; ++i) {
            ChannelView v;
            const ChannelStatus st = consumer->read(v, 25ms, WaitMode::Sleep);
            if (st != ChannelStatus::Ok) return 0;
            if (!sent.contains(text_of(v))) {
                std::fprintf(stderr, "garbage message of %zu bytes at %llu\n", v.size,
                             static_cast<unsigned long long>(v.position));
                return 2;
            }
            consumer->release(v);
        }
        return 0;
    };
    if (int rc = drain(); rc != 0) return rc;
    try {
        producer.emplace(Channel::open(name, ChannelRole::Producer));
    } catch (const Error&) {
        return 0;
    }
    for (unsigned i = 100; i < 103; ++i)
        if (producer->send(bytes_of(message(trial, i)), 25ms, WaitMode::Sleep) != ChannelStatus::Ok)
            break;
    return drain();
}

}  // namespace

TEST(CorruptRandom, RefusedOrCorrectNeverHangCrashOrGarbage) {
    const int library_trials = testutil::kAsan || testutil::kTsan ? 60 : 240;
    const int cli_trials = testutil::kAsan || testutil::kTsan ? 8 : 30;
    std::mt19937_64 rng(0x5eed ^ static_cast<std::uint64_t>(::getpid()));
    const auto t0 = Clock::now();
    int refused = 0, read_ok = 0;
    const ChannelKind kinds[] = {ChannelKind::Spsc, ChannelKind::Mpmc, ChannelKind::PubSub};
    for (int trial = 0; trial < library_trials + cli_trials; ++trial) {
        const bool via_cli = trial >= library_trials;
        const ChannelKind kind = via_cli ? kinds[trial % 2] : kinds[trial % 3];
        const std::string name = shmtest::unique_posix_name();
        const std::string path = "/dev/shm" + name;
        Cleanup cleanup(Backend::Posix, name);
        std::set<std::string> sent;
        std::uint64_t header_size = 0, stride = 0;
        {
            ChannelOptions options{kind, kCapacity, kMaxMessage};
            if (kind == ChannelKind::PubSub && trial % 2 == 0)
                options.overflow = ChannelOverflow::Overwrite;
            Channel producer = Channel::create(name, options, ChannelRole::Producer);
            std::optional<Channel> subscriber;  // PubSub keeps messages only for one
            if (kind == ChannelKind::PubSub)
                subscriber.emplace(Channel::open(name, ChannelRole::Consumer));
            const unsigned count = static_cast<unsigned>(rng() % (kCapacity + 1));
            for (unsigned i = 0; i < count; ++i) {
                const std::string m = message(static_cast<std::uint64_t>(trial), i);
                ASSERT_EQ(producer.try_send(bytes_of(m)), ChannelStatus::Ok);
                sent.insert(m);
            }
            Raw raw(name);
            header_size = raw.header().header_size;
            stride = raw.header().slot_stride;
        }
        for (unsigned i = 100; i < 103; ++i)
            sent.insert(message(static_cast<std::uint64_t>(trial), i));
        const Damage damage = random_damage(rng, path, header_size, stride);
        apply(path, damage);
        SCOPED_TRACE("trial " + std::to_string(trial) + " (" + channel_kind_name(kind) + ", " +
                     (via_cli ? "cli" : "library") + "): " + damage.describe());
        if (!via_cli) {
            const int status = testutil::run_in_child([&] {
                ::alarm(5);  // a hang dies of SIGALRM
                return library_trial(name, sent, static_cast<std::uint64_t>(trial));
            });
            ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
                << testutil::describe_status(status);
            continue;
        }
        // The CLI: each command refused in one line (exit 1), or correct output.
        testutil::RunOptions options;
        options.timeout = 5s;
        testutil::RunResult r =
            testutil::run_pagewire({"chan", "recv", name, "--timeout", "100ms"}, options);
        ASSERT_FALSE(r.timed_out) << r;
        ASSERT_TRUE(r.exited()) << r;
        if (r.exit_code() == 0) {
            ++read_ok;
            EXPECT_EQ(r.err, "") << r;
            std::size_t start = 0;
            for (std::size_t nl; (nl = r.out.find('\n', start)) != std::string::npos;
                 start = nl + 1)
                EXPECT_TRUE(sent.contains(r.out.substr(start, nl - start))) << r;
            EXPECT_EQ(start, r.out.size()) << r;
        } else {
            ++refused;
            EXPECT_EQ(r.exit_code(), 1) << r;
            EXPECT_EQ(r.err.rfind("pagewire: ", 0), 0u) << r;
            EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
        }
        options.input = message(static_cast<std::uint64_t>(trial), 100) + "\n";
        r = testutil::run_pagewire({"chan", "send", name, "--timeout", "100ms"}, options);
        ASSERT_FALSE(r.timed_out) << r;
        ASSERT_TRUE(r.exited()) << r;
        if (r.exit_code() != 0) {
            EXPECT_EQ(r.exit_code(), 1) << r;
            EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
        }
    }
    std::cout << "[ info ] " << library_trials << " library and " << cli_trials << " CLI trials in "
              << ms_since(t0) << " ms; CLI recv: " << read_ok << " read, " << refused
              << " refused\n";
    EXPECT_LT(ms_since(t0), 60000.0);
}
