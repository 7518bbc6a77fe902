// The separate processes of the channel tests, exec'd by test_chan:
//   chan_helper produce NAME PRODUCER GENERATION COUNT   (COUNT 0: until killed)
//   chan_helper end NAME K                               (K end markers)
//   chan_helper consume NAME strict|increasing           (until an end marker)
// Every message carries its producer, generation, sequence number and a
// checksum over all of it, with a length and bytes that vary with the
// sequence, so a torn or foreign message cannot pass. consume checks each
// message, the order per producer (strict: sequences 0, 1, 2... within a
// generation and generations rising; increasing: rising), and prints
// "ok MESSAGES" then "p PRODUCER COUNT SUM HASH" per producer; or one
// "error ..." line and exit 1.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <string>
#include <vector>

#include "chan_message.hpp"

using namespace pagewire;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = std::chrono::seconds(10);

int produce(const std::string& name, std::uint32_t producer, std::uint32_t generation,
            std::uint64_t count) {
    Channel ch = Channel::open(name, ChannelRole::Producer);
    std::vector<std::byte> buf(ch.max_message());
    for (std::uint64_t seq = 0; count == 0 || seq < count; ++seq) {
        const std::size_t size = chantest::message_size(buf.size(), producer, seq);
        ChannelStatus st;
        if (seq % 2 == 0) {  // even: the loan API, written in place
            ChannelLoan loan;
            st = ch.loan(size, loan, kWait);
            if (st == ChannelStatus::Ok) {
                chantest::write_message({loan.data, size}, producer, generation, seq);
                ch.publish(loan);
            }
        } else {  // odd: the copying API
            chantest::write_message({buf.data(), size}, producer, generation, seq);
            st = ch.send({buf.data(), size}, kWait);
        }
        if (st != ChannelStatus::Ok) {
            std::printf("error send %llu: %s\n", static_cast<unsigned long long>(seq),
                        channel_status_name(st));
            return 1;
        }
    }
    std::printf("done %llu\n", static_cast<unsigned long long>(count));
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

int consume(const std::string& name, bool strict) {
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
    }
    std::printf("ok %llu\n", static_cast<unsigned long long>(total));
    for (const auto& [id, p] : seen)
        std::printf("p %u %llu %llu %llu %u\n", id, static_cast<unsigned long long>(p.count),
                    static_cast<unsigned long long>(p.sum), static_cast<unsigned long long>(p.hash),
                    p.generation);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> a(argv + 1, argv + argc);
    try {
        if (a.size() == 5 && a[0] == "produce")
            return produce(a[1], static_cast<std::uint32_t>(std::stoul(a[2])),
                           static_cast<std::uint32_t>(std::stoul(a[3])), std::stoull(a[4]));
        if (a.size() == 3 && a[0] == "end") return end(a[1], std::stoi(a[2]));
        if (a.size() == 3 && a[0] == "consume") return consume(a[1], a[2] == "strict");
    } catch (const std::exception& e) {
        std::printf("error %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "usage: chan_helper produce|end|consume ...\n");
    return 2;
}
