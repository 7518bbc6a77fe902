// The separate processes of the channel tests, exec'd by test_chan,
// test_pubsub and test_chan_notify:
//   chan_helper produce NAME PRODUCER GENERATION COUNT [OPT=V...]  (COUNT 0: until killed)
//       options: wait_ms=N (a loan's timeout, default 10000), pace_us=N (pause
//       after every `burst` messages, burst=K default 1), report=1 (after
//       "done", a line "waits MAX_US": the longest single loan/send wait)
//   chan_helper end NAME K                               (K end markers)
//   chan_helper consume NAME strict|increasing [OPT=V...] (until an end marker)
//       options: pace_us=N (pause after each message)
//   chan_helper subscribe NAME [OPT=V...]                (PubSub; until an end marker)
//   chan_helper tick NAME COUNT INTERVAL_US              (timestamped messages)
//   chan_helper sleeper NAME HOLD_MS                     (MPMC consumer, WaitMode::Sleep)
// Every message of produce/end/consume/subscribe carries its producer,
// generation, sequence number and a checksum over all of it, with a length
// and bytes that vary with the sequence, so a torn or foreign message cannot
// pass. consume checks each message, the order per producer (strict:
// sequences 0, 1, 2... within a generation and generations rising;
// increasing: rising), and prints "ok MESSAGES" then "p PRODUCER COUNT SUM
// HASH" per producer; or one "error ..." line and exit 1.
//
// subscribe prints "ready" once registered, then checks every message (the
// checksum, the order per generation, position - sequence constant within a
// generation, positions rising with gaps of exactly lost_before) and ends
// with one line of key=value pairs: "ok received=N lost=L join=J first=F
// last=P last_data=D last_gen=G gens=K" (join: the position it joined at,
// from the first message's lost_before; last: the end marker's position);
// or "error ..." and exit 1. Options:
//   order=block (no message may be missed, a new generation starts at seq 0)
//       | overwrite (losses allowed, counted), default block
//   hold_us=N     sleep after each message (released first), to fall behind
//   view_us=N     sleep while holding each view, then check it again (a view
//                 must stay intact however far the publisher goes meanwhile)
//   leave=K       after K messages close the handle, print "left K" and
//                 stay alive until stdin closes
//   stall=K       after K messages read one more and hold its view forever
//                 (prints "stalled POSITION")
//   wait_ms=N     a read's timeout (default 10000)
//
// tick sends COUNT 16-byte messages {seq, CLOCK_MONOTONIC ns at send} every
// INTERVAL_US (0: back to back) and prints "done COUNT". sleeper waits with
// WaitMode::Sleep for messages {round, CLOCK_MONOTONIC ns at send} (16
// bytes), prints "got ROUND LATENCY_US" for each, then pauses HOLD_MS before
// reading again; a round of ~0 ends it ("bye").
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <string>
#include <thread>
#include <vector>

#include "chan_message.hpp"

using namespace pagewire;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = std::chrono::seconds(10);

// OPT=V arguments after the positional ones.
struct Options {
    std::map<std::string, std::string> values;
    explicit Options(const std::vector<std::string>& args) {
        for (const auto& a : args) {
            auto eq = a.find('=');
            if (eq == std::string::npos) throw std::runtime_error("bad option " + a);
            values[a.substr(0, eq)] = a.substr(eq + 1);
        }
    }
    std::uint64_t get(const std::string& key, std::uint64_t fallback) const {
        auto it = values.find(key);
        return it == values.end() ? fallback : std::stoull(it->second);
    }
    std::string text(const std::string& key, const std::string& fallback) const {
        auto it = values.find(key);
        return it == values.end() ? fallback : it->second;
    }
};

std::int64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void say(const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
}

int produce(const std::string& name, std::uint32_t producer, std::uint32_t generation,
            std::uint64_t count, const Options& opt) {
    const auto wait = std::chrono::milliseconds(opt.get("wait_ms", 10000));
    const auto pace = std::chrono::microseconds(opt.get("pace_us", 0));
    const std::uint64_t burst = std::max<std::uint64_t>(1, opt.get("burst", 1));
    const bool report = opt.get("report", 0) != 0;
    Channel ch = Channel::open(name, ChannelRole::Producer);
    std::vector<std::byte> buf(ch.max_message());
    std::int64_t max_wait = 0;
    for (std::uint64_t seq = 0; count == 0 || seq < count; ++seq) {
        const std::size_t size = chantest::message_size(buf.size(), producer, seq);
        ChannelStatus st;
        const std::int64_t t0 = report ? now_ns() : 0;
        if (seq % 2 == 0) {  // even: the loan API, written in place
            ChannelLoan loan;
            st = ch.loan(size, loan, wait);
            if (st == ChannelStatus::Ok) {
                if (report) max_wait = std::max(max_wait, now_ns() - t0);
                chantest::write_message({loan.data, size}, producer, generation, seq);
                ch.publish(loan);
            }
        } else {  // odd: the copying API
            chantest::write_message({buf.data(), size}, producer, generation, seq);
            st = ch.send({buf.data(), size}, wait);
            if (report) max_wait = std::max(max_wait, now_ns() - t0);
        }
        if (st != ChannelStatus::Ok) {
            std::printf("error send %llu: %s\n", static_cast<unsigned long long>(seq),
                        channel_status_name(st));
            return 1;
        }
        if (pace.count() > 0 && (seq + 1) % burst == 0) std::this_thread::sleep_for(pace);
    }
    std::printf("done %llu\n", static_cast<unsigned long long>(count));
    if (report) std::printf("waits %lld\n", static_cast<long long>(max_wait / 1000));
    return 0;
}

int end(const std::string& name, int markers) {
    Channel ch = Channel::open(name, ChannelRole::Producer);
    std::vector<std::byte> buf(ch.max_message());
    for (int i = 0; i < markers; ++i) {
        std::size_t size =
            chantest::make_message(buf, chantest::kEndProducer, 0, static_cast<std::uint64_t>(i));
        if (ch.send({buf.data(), size}, kWait) != ChannelStatus::Ok) return 1;
    }
    return 0;
}

struct PerProducer {
    std::uint64_t count = 0, sum = 0, hash = 0;
    bool any = false;
    std::uint32_t generation = 0;
    std::uint64_t last_seq = 0;
};

int consume(const std::string& name, bool strict, const Options& opt) {
    const auto pace = std::chrono::microseconds(opt.get("pace_us", 0));
    Channel ch = Channel::open(name, ChannelRole::Consumer);
    std::map<std::uint32_t, PerProducer> seen;
    std::uint64_t total = 0;
    for (;;) {
        ChannelView v;
        ChannelStatus st = ch.read(v, kWait);
        if (st != ChannelStatus::Ok) {
            std::printf("error read after %llu messages: %s\n",
                        static_cast<unsigned long long>(total), channel_status_name(st));
            return 1;
        }
        chantest::Parsed m;
        std::string why = chantest::check_message({v.data, v.size}, m);
        ch.release(v);
        if (!why.empty()) {
            std::printf("error message %llu: %s\n", static_cast<unsigned long long>(total),
                        why.c_str());
            return 1;
        }
        if (m.producer == chantest::kEndProducer) break;
        PerProducer& p = seen[m.producer];
        bool ok;
        if (!p.any)
            ok = !strict || m.seq == 0;
        else if (strict)
            ok = (m.generation == p.generation && m.seq == p.last_seq + 1) ||
                 (m.generation > p.generation && m.seq == 0);
        else
            ok =
                m.generation > p.generation || (m.generation == p.generation && m.seq > p.last_seq);
        if (!ok) {
            std::printf("error order: producer %u gen %u seq %llu after gen %u seq %llu\n",
                        m.producer, m.generation, static_cast<unsigned long long>(m.seq),
                        p.generation, static_cast<unsigned long long>(p.last_seq));
            return 1;
        }
        p.any = true;
        p.generation = m.generation;
        p.last_seq = m.seq;
        ++p.count;
        p.sum += m.seq;
        p.hash += chantest::mix(m.seq);
        ++total;
        if (pace.count() > 0) std::this_thread::sleep_for(pace);
    }
    std::printf("ok %llu\n", static_cast<unsigned long long>(total));
    for (const auto& [id, p] : seen)
        std::printf("p %u %llu %llu %llu %u\n", id, static_cast<unsigned long long>(p.count),
                    static_cast<unsigned long long>(p.sum), static_cast<unsigned long long>(p.hash),
                    p.generation);
    return 0;
}

// PubSub subscriber; see the top of the file.
int subscribe(const std::string& name, const Options& opt) {
    const bool block = opt.text("order", "block") == "block";
    const auto hold = std::chrono::microseconds(opt.get("hold_us", 0));
    const auto view_hold = std::chrono::microseconds(opt.get("view_us", 0));
    const std::uint64_t leave = opt.get("leave", 0);
    const std::uint64_t stall = opt.get("stall", 0);
    const bool stalls = opt.values.count("stall") != 0;
    const auto wait = std::chrono::milliseconds(opt.get("wait_ms", 10000));
    Channel ch = Channel::open(name, ChannelRole::Consumer, ChannelKind::PubSub);
    say("ready");
    std::uint64_t received = 0, lost_sum = 0, join = 0, first = 0, last = 0, last_data = 0;
    std::uint64_t gens = 0, last_seq = 0, offset = 0;
    std::uint32_t last_gen = 0;
    bool any = false;
    auto fail = [&](const std::string& why) {
        say("error after " + std::to_string(received) + " messages: " + why);
        return 1;
    };
    for (;;) {
        if (stalls && received == stall) {
            ChannelView v;
            if (ch.read(v, wait) != ChannelStatus::Ok) return fail("read before stalling");
            say("stalled " + std::to_string(v.position));
            for (;;) std::this_thread::sleep_for(1s);  // holds the view until killed
        }
        ChannelView v;
        ChannelStatus st = ch.read(v, wait);
        if (st != ChannelStatus::Ok) return fail(std::string("read: ") + channel_status_name(st));
        chantest::Parsed m;
        std::string why = chantest::check_message({v.data, v.size}, m);
        if (why.empty() && view_hold.count() > 0) {
            std::this_thread::sleep_for(view_hold);
            chantest::Parsed again;
            why = chantest::check_message({v.data, v.size}, again);
            if (why.empty() && (again.seq != m.seq || again.generation != m.generation))
                why = "the view changed while held";
            if (!why.empty()) why = "after holding the view: " + why;
        }
        const ChannelView seen = v;
        ch.release(v);
        if (!why.empty()) return fail("position " + std::to_string(seen.position) + ": " + why);
        lost_sum += seen.lost_before;
        if (!any) {
            if (seen.lost_before > seen.position) return fail("lost_before beyond position 0");
            join = seen.position - seen.lost_before;
            first = seen.position;
        } else if (seen.position != last + 1 + seen.lost_before) {
            return fail("position " + std::to_string(seen.position) + " after " +
                        std::to_string(last) + " with lost_before " +
                        std::to_string(seen.lost_before));
        }
        if (block && seen.lost_before != 0)
            return fail("lost " + std::to_string(seen.lost_before) + " in block mode");
        last = seen.position;
        if (m.producer == chantest::kEndProducer) break;
        if (m.producer != 1) return fail("foreign producer " + std::to_string(m.producer));
        if (any && m.generation == last_gen) {
            const bool ok = block ? m.seq == last_seq + 1 : m.seq > last_seq;
            if (!ok || seen.position - m.seq != offset)
                return fail("gen " + std::to_string(m.generation) + " seq " +
                            std::to_string(m.seq) + " at position " +
                            std::to_string(seen.position) + " after seq " +
                            std::to_string(last_seq));
        } else {
            if (any && m.generation < last_gen)
                return fail("gen " + std::to_string(m.generation) + " after gen " +
                            std::to_string(last_gen));
            if (any && block && m.seq != 0)
                return fail("gen " + std::to_string(m.generation) + " starts at seq " +
                            std::to_string(m.seq));
            if (seen.position < m.seq) return fail("seq beyond position");
            offset = seen.position - m.seq;
            ++gens;
        }
        any = true;
        last_gen = m.generation;
        last_seq = m.seq;
        last_data = seen.position;
        ++received;
        if (leave != 0 && received == leave) {
            ch = Channel();
            say("left " + std::to_string(received));
            char c;
            while (::read(STDIN_FILENO, &c, 1) > 0) {
            }
            return 0;
        }
        if (hold.count() > 0) std::this_thread::sleep_for(hold);
    }
    if (ch.lost() != lost_sum)
        return fail("lost() " + std::to_string(ch.lost()) + " but the views said " +
                    std::to_string(lost_sum));
    say("ok received=" + std::to_string(received) + " lost=" + std::to_string(lost_sum) +
        " join=" + std::to_string(join) + " first=" + std::to_string(first) +
        " last=" + std::to_string(last) + " last_data=" + std::to_string(last_data) +
        " last_gen=" + std::to_string(last_gen) + " gens=" + std::to_string(gens));
    return 0;
}

int tick(const std::string& name, std::uint64_t count, std::uint64_t interval_us) {
    Channel ch = Channel::open(name, ChannelRole::Producer);
    for (std::uint64_t seq = 0; seq < count; ++seq) {
        if (interval_us != 0) std::this_thread::sleep_for(std::chrono::microseconds(interval_us));
        std::uint64_t msg[2] = {seq, static_cast<std::uint64_t>(now_ns())};
        if (ch.send(std::as_bytes(std::span(msg)), kWait) != ChannelStatus::Ok) {
            say("error send " + std::to_string(seq));
            return 1;
        }
    }
    say("done " + std::to_string(count));
    return 0;
}

int sleeper(const std::string& name, std::uint64_t hold_ms) {
    Channel ch = Channel::open(name, ChannelRole::Consumer);
    say("ready");
    for (;;) {
        std::uint64_t msg[2] = {0, 0};
        std::size_t size = 0;
        ChannelStatus st =
            ch.receive(std::as_writable_bytes(std::span(msg)), size, kWait, WaitMode::Sleep);
        const std::int64_t got = now_ns();
        if (st != ChannelStatus::Ok || size != sizeof msg) {
            say(std::string("error receive: ") + channel_status_name(st));
            return 1;
        }
        if (msg[0] == 0) break;
        say("got " + std::to_string(msg[0]) + " " +
            std::to_string((got - static_cast<std::int64_t>(msg[1])) / 1000));
        std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
    }
    say("bye");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> a(argv + 1, argv + argc);
    auto rest = [&](std::size_t from) {
        return Options(std::vector<std::string>(a.begin() + static_cast<long>(from), a.end()));
    };
    try {
        if (a.size() >= 5 && a[0] == "produce")
            return produce(a[1], static_cast<std::uint32_t>(std::stoul(a[2])),
                           static_cast<std::uint32_t>(std::stoul(a[3])), std::stoull(a[4]),
                           rest(5));
        if (a.size() == 3 && a[0] == "end") return end(a[1], std::stoi(a[2]));
        if (a.size() >= 3 && a[0] == "consume") return consume(a[1], a[2] == "strict", rest(3));
        if (a.size() >= 2 && a[0] == "subscribe") return subscribe(a[1], rest(2));
        if (a.size() == 4 && a[0] == "tick")
            return tick(a[1], std::stoull(a[2]), std::stoull(a[3]));
        if (a.size() == 3 && a[0] == "sleeper") return sleeper(a[1], std::stoull(a[2]));
    } catch (const std::exception& e) {
        std::printf("error %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "usage: chan_helper produce|end|consume|subscribe|tick|sleeper ...\n");
    return 2;
}
