// pagewire chan create|send|recv|stat|ls|rm — message channels (pagewire/channel.hpp)
// from the shell. A channel is the POSIX segment /NAME, so `pagewire shm
// ls/stat/rm` see it too. Messages are lines: `send` publishes each line of
// stdin only once it is whole, `recv` prints each message as one line.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <pagewire/io.hpp>
#include <pagewire/segment.hpp>
#include <pagewire/units.hpp>
#include <string>
#include <vector>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

// Output is written in chunks of about this size (and whenever the channel is empty).
constexpr std::size_t kOutputChunkBytes = 64 * 1024;
constexpr std::size_t kInputChunkBytes = 64 * 1024;

struct ChanArgs {
    std::string name;
    std::vector<std::string> names;  // rm's NAMEs
    std::string kind = "spsc";
    std::string overflow = "block";
    std::string capacity = "1024";
    std::string max_message = "4096";
    std::string mode = "0600";
    std::optional<std::uint64_t> count;
    std::optional<std::string> size;
    std::optional<std::string> timeout;
    bool busy_poll = false;
    bool sleep = false;
    bool json = false;
};

std::uint64_t size_argument(const std::string& text, const char* what) {
    auto value = parse_size(text);
    if (!value)
        throw CLI::ValidationError(what, "'" + text + "' is not a count (e.g. 4096, 0x1000, 4K)");
    return *value;
}

// "250ms", "2s", "1.5s", "100us", "5m"; a bare number is seconds.
std::chrono::nanoseconds duration_argument(const std::string& text) {
    char* end = nullptr;
    errno = 0;
    double value = std::strtod(text.c_str(), &end);
    std::string unit = end != nullptr ? end : "";
    double scale = unit.empty() || unit == "s" ? 1e9
                   : unit == "ms"              ? 1e6
                   : unit == "us"              ? 1e3
                   : unit == "ns"              ? 1
                   : unit == "m"               ? 60e9
                                               : -1;
    if (text.empty() || end == text.c_str() || errno != 0 || value < 0 || scale < 0 ||
        value * scale > 1e18)
        throw CLI::ValidationError("--timeout",
                                   "'" + text + "' is not a duration (e.g. 500ms, 2s, 1.5s)");
    return std::chrono::nanoseconds(static_cast<std::int64_t>(value * scale));
}

std::chrono::nanoseconds timeout_of(const ChanArgs& a) {
    return a.timeout ? duration_argument(*a.timeout) : Channel::kForever;
}

WaitMode wait_mode_of(const ChanArgs& a) {
    return a.busy_poll ? WaitMode::BusyPoll : a.sleep ? WaitMode::Sleep : WaitMode::SpinThenSleep;
}

void write_out(const std::string& text) {
    if (write_full(STDOUT_FILENO, text.data(), text.size()) < 0) throw_error("write", "stdout");
}

// A corrupt channel is said as such, with what was found, whatever the call.
[[noreturn]] void fail(const Channel& ch, const char* operation, ChannelStatus st,
                       const std::string& detail) {
    if (st == ChannelStatus::Corrupt)
        throw_error(operation, ch.segment().name(), EPROTO,
                    fmt::format("{} ({})", channel_status_name(st), ch.corruption()));
    int err = st == ChannelStatus::TimedOut ? ETIMEDOUT
              : st == ChannelStatus::TooBig ? EMSGSIZE
                                            : EPROTO;
    throw_error(operation, ch.segment().name(), err, detail);
}

// ------------------------------------------------------------------ subcommands

void run_create(const ChanArgs& a) {
    ChannelOptions o;
    o.kind = parse_channel_kind(a.kind).value_or(ChannelKind::Spsc);
    o.overflow = a.overflow == "overwrite" ? ChannelOverflow::Overwrite : ChannelOverflow::Block;
    if (o.overflow == ChannelOverflow::Overwrite && o.kind != ChannelKind::PubSub)
        throw CLI::ValidationError("--overflow", "overwrite needs --kind pubsub");
    o.capacity = size_argument(a.capacity, "--capacity");
    o.max_message = size_argument(a.max_message, "--max-message");
    char* end = nullptr;
    unsigned long mode = std::strtoul(a.mode.c_str(), &end, 8);
    if (a.mode.empty() || *end != '\0' || mode > 0777)
        throw CLI::ValidationError("--mode",
                                   "'" + a.mode + "' is not an octal mode between 0 and 0777");
    o.mode = static_cast<mode_t>(mode);
    Channel ch = Channel::create(a.name, o);
    status(fmt::format(
        "created {} channel {}: {} of up to {} ({} in all, mode {:04o}){}\n",
        channel_kind_name(ch.kind()), ch.segment().name(), counted(ch.capacity(), "message"),
        format_bytes(ch.max_message()), format_bytes(ch.segment().size() + Segment::kHeaderSize),
        static_cast<unsigned>(o.mode),
        ch.kind() == ChannelKind::PubSub
            ? fmt::format(", slow subscribers {}", ch.overflow() == ChannelOverflow::Overwrite
                                                       ? "lose the oldest messages"
                                                       : "make the publisher wait")
            : ""));
}

// Publishes one message, waiting for room as --timeout allows.
void send_one(Channel& ch, const char* data, std::size_t size, const ChanArgs& a) {
    if (size > ch.max_message())
        throw_error("send", ch.segment().name(), EMSGSIZE,
                    fmt::format("message of {} bytes exceeds the channel's max message {}", size,
                                ch.max_message()));
    ChannelLoan loan;
    ChannelStatus st = ch.loan(size, loan, timeout_of(a), wait_mode_of(a));
    if (st != ChannelStatus::Ok)
        fail(ch, "send", st, fmt::format("no room: {}", channel_status_name(st)));
    std::memcpy(loan.data, data, size);
    ch.publish(loan);
}

void run_send(const ChanArgs& a) {
    (void)timeout_of(a);  // a usage error before anything is opened
    Channel ch = Channel::open(a.name, ChannelRole::Producer);
    std::uint64_t messages = 0, bytes = 0;
    if (a.count) {
        // Generated: "<sequence, 8 digits> " then a letter, cut to --size bytes.
        const std::size_t size = a.size ? size_argument(*a.size, "--size") : 16;
        std::string msg;
        for (std::uint64_t i = 0; i < *a.count; ++i) {
            msg = fmt::format("{:08d} ", i);
            msg.resize(size, static_cast<char>('a' + i % 26));
            send_one(ch, msg.data(), msg.size(), a);
            ++messages;
            bytes += msg.size();
        }
    } else {
        // A line is published only once its '\n' (or the end of input) has arrived.
        std::string pending;
        std::vector<char> chunk(kInputChunkBytes);
        for (;;) {
            ssize_t n = ::read(STDIN_FILENO, chunk.data(), chunk.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw_error("read", "stdin");
            if (n == 0) break;
            pending.append(chunk.data(), static_cast<std::size_t>(n));
            std::size_t start = 0;
            for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos;
                 start = nl + 1) {
                send_one(ch, pending.data() + start, nl - start, a);
                ++messages;
                bytes += nl - start;
            }
            pending.erase(0, start);
        }
        if (!pending.empty()) {
            send_one(ch, pending.data(), pending.size(), a);
            ++messages;
            bytes += pending.size();
        }
    }
    status(fmt::format("sent {} ({}) to {}\n", counted(messages, "message"), counted(bytes, "byte"),
                       ch.segment().name()));
}

void run_recv(const ChanArgs& a) {
    const auto timeout = timeout_of(a);  // a usage error before anything is opened
    Channel ch = Channel::open(a.name, ChannelRole::Consumer);
    std::string out;
    std::uint64_t received = 0;
    while (!a.count || received < *a.count) {
        ChannelView view;
        ChannelStatus st = ch.try_read(view);
        if (st == ChannelStatus::Empty) {
            write_out(out);  // nothing to read now: show what we have before waiting
            out.clear();
            st = ch.read(view, timeout, wait_mode_of(a));
        }
        if (st == ChannelStatus::TimedOut && !a.count) break;  // drained: no message for --timeout
        if (st != ChannelStatus::Ok) {
            write_out(out);
            fail(ch, "recv", st,
                 a.count ? fmt::format("{} after {} of {} messages", channel_status_name(st),
                                       received, *a.count)
                         : channel_status_name(st));
        }
        if (view.lost_before != 0) {
            // Said on stderr, in order with the messages around it; messages
            // are counted from 1, as `--count` and `chan stat` count them.
            write_out(out);
            out.clear();
            std::fprintf(
                stderr, "pagewire chan recv: %s: lost %llu message%s before message %llu\n",
                ch.segment().name().c_str(), static_cast<unsigned long long>(view.lost_before),
                view.lost_before == 1 ? "" : "s",
                static_cast<unsigned long long>(view.position + 1));
        }
        out.append(reinterpret_cast<const char*>(view.data), view.size);
        out += '\n';
        ch.release(view);
        ++received;
        if (out.size() >= kOutputChunkBytes) {
            write_out(out);
            out.clear();
        }
    }
    write_out(out);
}

void run_stat(const ChanArgs& a) {
    Channel ch = Channel::open(a.name, ChannelRole::Observer);
    ChannelStats s = ch.stats();
    std::vector<ChannelPeerInfo> peers = ch.peers();
    const std::uint64_t total_bytes = ch.segment().size() + Segment::kHeaderSize;
    const bool pubsub = s.kind == ChannelKind::PubSub;
    if (a.json) {
        nlohmann::json j;
        j["name"] = ch.segment().name();
        j["kind"] = channel_kind_name(s.kind);
        if (pubsub) j["overflow"] = channel_overflow_name(s.overflow);
        j["capacity"] = s.capacity;
        j["max_message"] = s.max_message;
        j["depth"] = s.depth;
        j["sent"] = s.sent;
        j["received"] = s.received;
        j["abandoned"] = s.abandoned;
        j["lost"] = s.lost;
        j["producers"] = s.producers;
        j["consumers"] = s.consumers;
        j["creator_pid"] = s.creator_pid;
        j["bytes"] = total_bytes;
        j["peers"] = nlohmann::json::array();
        for (const ChannelPeerInfo& p : peers) {
            nlohmann::json e;
            e["role"] = pubsub ? (p.role == ChannelRole::Producer ? "publisher" : "subscriber")
                               : channel_role_name(p.role);
            e["pid"] = p.pid;
            e["alive"] = p.alive;
            e["messages"] = p.messages;
            if (pubsub && p.role == ChannelRole::Consumer) {
                e["lag"] = p.lag;
                e["lost"] = p.lost;
            }
            j["peers"].push_back(std::move(e));
        }
        write_out(j.dump(2) + "\n");
        return;
    }
    std::string out = fmt::format(
        "        Name: {}\n"
        "        Kind: {}{}\n"
        "    Capacity: {} of up to {} ({} in all)\n"
        "       Depth: {}\n"
        "        Sent: {}\n"
        "    Received: {}\n"
        "   Abandoned: {}\n"
        "        Lost: {}\n"
        "{:>12}: {} alive\n"
        "{:>12}: {} alive\n"
        " Creator pid: {}\n",
        ch.segment().name(), channel_kind_name(s.kind),
        pubsub ? fmt::format(" (slow subscribers: {})", channel_overflow_name(s.overflow)) : "",
        counted(s.capacity, "message"), format_bytes(s.max_message), format_bytes(total_bytes),
        s.depth, s.sent, s.received, s.abandoned, s.lost, pubsub ? "Publishers" : "Producers",
        s.producers, pubsub ? "Subscribers" : "Consumers", s.consumers, s.creator_pid);
    if (!peers.empty()) {
        out +=
            fmt::format("\n  {:>8}  {:<10}  {:>5}  {:>12}{}\n", "PID", "ROLE", "ALIVE", "MESSAGES",
                        pubsub ? fmt::format("  {:>10}  {:>10}", "LAG", "LOST") : "");
        for (const ChannelPeerInfo& p : peers) {
            const bool subscriber = pubsub && p.role == ChannelRole::Consumer;
            out += fmt::format(
                "  {:>8}  {:<10}  {:>5}  {:>12}{}\n", p.pid,
                pubsub ? (subscriber ? "subscriber" : "publisher") : channel_role_name(p.role),
                p.alive ? "yes" : "no", p.messages,
                subscriber ? fmt::format("  {:>10}  {:>10}", p.lag, p.lost) : "");
        }
    }
    write_out(out);
}

// Every POSIX segment that is a channel this pagewire reads, with its kind,
// size, depth and peers; other segments are not listed (`shm ls` lists all).
void run_ls(const ChanArgs& a) {
    nlohmann::json list = nlohmann::json::array();
    std::vector<std::array<std::string, 8>> rows{
        {"NAME", "KIND", "CAPACITY", "MAX MESSAGE", "SIZE", "DEPTH", "PRODUCERS", "CONSUMERS"}};
    for (const SegmentInfo& i : Segment::list()) {
        if (i.backend != Backend::Posix) continue;
        std::optional<ChannelStats> s;
        try {
            s = Channel::inspect(i.name);
        } catch (const Error&) {
            continue;  // gone meanwhile, or not ours to read: not a channel we can show
        }
        if (!s) continue;
        const bool pubsub = s->kind == ChannelKind::PubSub;
        if (a.json) {
            nlohmann::json j;
            j["name"] = i.name;
            j["kind"] = channel_kind_name(s->kind);
            j["capacity"] = s->capacity;
            j["max_message"] = s->max_message;
            j["bytes"] = i.size;
            j["depth"] = s->depth;
            j["producers"] = s->producers;
            j["consumers"] = s->consumers;
            list.push_back(std::move(j));
            continue;
        }
        rows.push_back(
            {i.name,
             std::string(channel_kind_name(s->kind)) +
                 (pubsub && s->overflow == ChannelOverflow::Overwrite ? " (overwrite)" : ""),
             std::to_string(s->capacity), format_bytes(s->max_message), format_bytes(i.size),
             std::to_string(s->depth), std::to_string(s->producers), std::to_string(s->consumers)});
    }
    if (a.json) {
        write_out(list.dump(2) + "\n");
        return;
    }
    std::array<std::size_t, 8> width{};
    for (const auto& r : rows)
        for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
    std::string out;
    for (const auto& r : rows) {
        out += fmt::format("{:<{}}  {:<{}}", r[0], width[0], r[1], width[1]);
        for (std::size_t c = 2; c < r.size(); ++c) out += fmt::format("  {:>{}}", r[c], width[c]);
        out += '\n';
    }
    write_out(out);
}

// Removes each NAME that is a channel (a segment that is not one is refused,
// so `chan rm` cannot take another program's memory); like `shm rm`, tries
// every name and fails if any failed.
void run_rm(const ChanArgs& a) {
    for_each_name(a.names, [](const std::string& name) {
        if (!Channel::inspect(name))
            throw_error("rm", name.front() == '/' ? name : "/" + name, EPROTO,
                        "not a pagewire channel (use 'pagewire shm rm' for other segments)");
        Channel::remove(name);
    });
}

void add_wait_options(CLI::App* cmd, ChanArgs& a, const char* timeout_help) {
    cmd->add_option("--timeout,-t", a.timeout, timeout_help);
    auto* busy = cmd->add_flag("--busy-poll", a.busy_poll,
                               "Wait by polling (one CPU at 100%) instead of spin-then-sleep");
    cmd->add_flag("--sleep", a.sleep, "Wait by sleeping at once (no spinning)")->excludes(busy);
}

}  // namespace

void register_chan(CLI::App& app) {
    auto args = std::make_shared<ChanArgs>();
    CLI::App* chan =
        app.add_subcommand("chan", "Message channels over shared memory (POSIX segment /NAME)");
    chan->require_subcommand(1);
    const char* name_help = "Channel name (the POSIX shared memory segment /NAME)";

    CLI::App* create = chan->add_subcommand("create", "Create a channel (exclusive)");
    create->add_option("NAME", args->name, name_help)->required();
    create
        ->add_option("--kind,-k", args->kind,
                     "spsc (default), mpmc (each message to one consumer) or pubsub (every "
                     "subscriber gets every message)")
        ->check(CLI::IsMember({"spsc", "mpmc", "pubsub"}));
    create
        ->add_option("--overflow", args->overflow,
                     "pubsub: when a subscriber is a whole ring behind, block the publisher "
                     "(default) or overwrite the oldest messages (the subscriber is told how "
                     "many it lost)")
        ->check(CLI::IsMember({"block", "overwrite"}));
    create->add_option("--capacity,-c", args->capacity,
                       "Messages in flight, rounded up to a power of two (default 1024)");
    create->add_option("--max-message,-s", args->max_message,
                       "Largest message in bytes (default 4096; K, M)");
    create->add_option("--mode,-m", args->mode, "Permission bits, octal (default 0600)");
    create->callback([args] { run_create(*args); });

    CLI::App* send = chan->add_subcommand(
        "send", "Send each line of stdin as one message (or --count generated ones)");
    send->add_option("NAME", args->name, name_help)->required();
    send->add_option("--count,-n", args->count, "Send N generated messages instead of stdin");
    send->add_option("--size", args->size, "Bytes per generated message (default 16)");
    add_wait_options(send, *args, "How long to wait for room (default: forever), e.g. 500ms, 2s");
    send->callback([args] { run_send(*args); });

    CLI::App* recv = chan->add_subcommand("recv", "Print each message received as one line");
    recv->add_option("NAME", args->name, name_help)->required();
    recv->add_option("--count,-n", args->count,
                     "Stop after N messages (an error if they do not come in --timeout)");
    add_wait_options(recv, *args,
                     "Stop when no message came for this long (default: wait forever)");
    recv->callback([args] { run_recv(*args); });

    CLI::App* ls = chan->add_subcommand(
        "ls", "List the channels: kind, capacity, size, depth and live peers of each");
    ls->add_flag("--json", args->json, "JSON output");
    ls->callback([args] { run_ls(*args); });

    CLI::App* rm = chan->add_subcommand(
        "rm", "Remove channels (processes that have one open keep using it until they close it)");
    rm->add_option("NAME", args->names, name_help)->required();
    rm->callback([args] { run_rm(*args); });

    CLI::App* stat =
        chan->add_subcommand("stat", "Show a channel: kind, capacity, depth, totals, peers alive");
    stat->add_option("NAME", args->name, name_help)->required();
    stat->add_flag("--json", args->json, "JSON output");
    stat->callback([args] { run_stat(*args); });
}

}  // namespace pagewire::cli
