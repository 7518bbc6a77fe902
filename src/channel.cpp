// pagewire::Channel, the part every kind shares: setup (create, open,
// validate, the peer table), statistics, the waiting machinery, and the entry
// points of the data path (loan -> publish -> read -> release), which do
// what all kinds share and leave the queue algorithm to the kind's
// ChannelOps: channel_spsc.cpp, channel_mpmc.cpp, channel_pubsub.cpp.
#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <new>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <thread>

#include "channel_impl.hpp"
#include "sys.hpp"
#include "sys_ipc.hpp"

namespace pagewire {
using namespace channel_detail;

namespace {

// How long an open waits for a creator that is still writing the header.
constexpr int kInitWaitMilliseconds = 1000;
// A waiting call sleeps at most this long between looks at the ring, so a
// dead peer costs latency, never a hang.
constexpr std::int64_t kMaxSleepNs = 20'000'000;
// Busy loops read the clock only every this many polls (a clock read costs
// about as much as a poll of a cache line another core just wrote).
constexpr unsigned kPollsPerClockRead = 64;

std::string display_name(const std::string& name) {
    return name.starts_with('/') ? name : "/" + name;
}

bool known_kind(std::uint32_t kind) noexcept {
    return kind >= static_cast<std::uint32_t>(ChannelKind::Spsc) &&
           kind <= static_cast<std::uint32_t>(ChannelKind::PubSub);
}

// The abstract Unix socket address of a peer's notify descriptor: the
// channel (a random id), the peer's entry and its token (unique per
// registration; several handles of one process differ by entry).
sockaddr_un notify_address(std::uint64_t channel_id, unsigned index, std::uint64_t token,
                           socklen_t& length) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    char text[64];
    int n = std::snprintf(text, sizeof text, "pagewire-chan/%016llx/%02u/%016llx",
                          static_cast<unsigned long long>(channel_id), index,
                          static_cast<unsigned long long>(token));
    addr.sun_path[0] = '\0';  // abstract: no file, gone with the socket
    std::memcpy(addr.sun_path + 1, text, static_cast<std::size_t>(n));
    length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
    return addr;
}

}  // namespace

namespace channel_detail {

pid_t token_pid(std::uint64_t token) noexcept {
    return static_cast<pid_t>((token >> 32) & kPidMask);
}

bool token_alive(std::uint64_t token) noexcept {
    if (token == 0) return false;
    try {
        auto ticks = sys::process_start_ticks(token_pid(token));
        return ticks && (*ticks & 0xffffffffU) == (token & 0xffffffffU);
    } catch (...) {
        return true;  // cannot tell: assume alive, the safe side (never steal a live slot)
    }
}

const ChannelOps& channel_ops(ChannelKind kind) noexcept {
    switch (kind) {
        case ChannelKind::Spsc:
            return kSpscOps;
        case ChannelKind::Mpmc:
            return kMpmcOps;
        case ChannelKind::PubSub:
            return kPubSubOps;
    }
    return kSpscOps;  // not reached: the kind was validated with the header
}

void retire_entry(Peer& p, Header& header, std::uint64_t old_token) noexcept {
    const bool producer = token_role(old_token) == role_bits(ChannelRole::Producer);
    Wake& wake = producer ? header.space_wake : header.data_wake;
    if (p.armed.exchange(0, std::memory_order_seq_cst) != 0)
        wake.waiting.fetch_sub(kArmedOne, std::memory_order_seq_cst);
    if (is_consumer_token(old_token))
        header.departed.fetch_add(p.messages.load(std::memory_order_relaxed));
    p.messages.store(0, std::memory_order_relaxed);
    p.lost.store(0, std::memory_order_relaxed);
    p.intent.store(0, std::memory_order_seq_cst);  // a dead predecessor's claim is void
}

}  // namespace channel_detail

const char* channel_kind_name(ChannelKind kind) noexcept {
    switch (kind) {
        case ChannelKind::Spsc:
            return "spsc";
        case ChannelKind::Mpmc:
            return "mpmc";
        case ChannelKind::PubSub:
            return "pubsub";
    }
    return "?";
}

std::optional<ChannelKind> parse_channel_kind(std::string_view name) noexcept {
    for (ChannelKind k : {ChannelKind::Spsc, ChannelKind::Mpmc, ChannelKind::PubSub})
        if (name == channel_kind_name(k)) return k;
    return std::nullopt;
}

const char* channel_overflow_name(ChannelOverflow overflow) noexcept {
    return overflow == ChannelOverflow::Overwrite ? "overwrite" : "block";
}

const char* channel_role_name(ChannelRole role) noexcept {
    switch (role) {
        case ChannelRole::Producer:
            return "producer";
        case ChannelRole::Consumer:
            return "consumer";
        case ChannelRole::Observer:
            return "observer";
    }
    return "?";
}

const char* channel_status_name(ChannelStatus status) noexcept {
    switch (status) {
        case ChannelStatus::Ok:
            return "ok";
        case ChannelStatus::Empty:
            return "empty";
        case ChannelStatus::Full:
            return "full";
        case ChannelStatus::TooBig:
            return "message too big";
        case ChannelStatus::TimedOut:
            return "timed out";
        case ChannelStatus::WrongRole:
            return "wrong role";
        case ChannelStatus::Busy:
            return "a loan or view is outstanding";
        case ChannelStatus::Corrupt:
            return "channel is corrupt";
    }
    return "?";
}

// ------------------------------------------------------------------ setup

Channel Channel::create(const std::string& name, const ChannelOptions& options, ChannelRole role) {
    const std::string shown = display_name(name);
    if (!known_kind(static_cast<std::uint32_t>(options.kind)))
        throw_error("create channel", shown, EINVAL, "unknown channel kind");
    if (options.overflow != ChannelOverflow::Block &&
        (options.kind != ChannelKind::PubSub || options.overflow != ChannelOverflow::Overwrite))
        throw_error("create channel", shown, EINVAL,
                    "only a pubsub channel may overwrite unread messages");
    if (options.capacity == 0 || options.capacity > kMaxCapacity)
        throw_error("create channel", shown, EINVAL,
                    "capacity " + std::to_string(options.capacity) + " is out of range (1.." +
                        std::to_string(kMaxCapacity) + " messages)");
    if (options.max_message == 0 || options.max_message > kMaxMessage)
        throw_error("create channel", shown, EINVAL,
                    "max message " + std::to_string(options.max_message) + " is out of range (1.." +
                        std::to_string(kMaxMessage) + " bytes)");
    // Capacity 1 would make "published" (pos+1) and "taken" (pos+capacity) the same sequence.
    const std::size_t capacity = std::max<std::size_t>(2, std::bit_ceil(options.capacity));
    const std::size_t stride =
        (kSlotHeaderBytes + options.max_message + kCacheLine - 1) / kCacheLine * kCacheLine;
    if (stride > kMaxSegmentBytes / capacity)
        throw_error("create channel", shown, EINVAL,
                    "capacity " + std::to_string(capacity) + " x max message " +
                        std::to_string(options.max_message) + " exceeds " +
                        std::to_string(kMaxSegmentBytes >> 30) + " GiB");
    const std::size_t bytes = sizeof(Header) + capacity * stride;

    SegmentOptions seg_options;
    seg_options.mode = options.mode;
    Segment segment = Segment::create(Backend::Posix, name, bytes, seg_options);
    try {
        // Reserve the pages now: tmpfs allocates on first touch, and a ring
        // that does not fit in /dev/shm would SIGBUS its peers laps later.
        if (int err = ::posix_fallocate(segment.fd(), 0,
                                        static_cast<off_t>(bytes + Segment::kHeaderSize));
            err != 0)
            throw_error("create channel", shown, err,
                        "cannot reserve " + std::to_string(bytes) +
                            " bytes of shared memory: " + std::strerror(err));
        auto* h = new (segment.data()) Header{};
        h->version = kLayoutVersion;
        h->kind = static_cast<std::uint32_t>(options.kind);
        h->overflow = static_cast<std::uint32_t>(options.overflow);
        h->capacity = capacity;
        h->max_message = options.max_message;
        h->slot_stride = stride;
        h->header_size = sizeof(Header);
        h->creator_pid = ::getpid();
        h->creator_start_ticks = sys::process_start_ticks(::getpid()).value_or(0);
        h->spin_ns.store(kDefaultSpin.count(), std::memory_order_relaxed);
        if (::getrandom(&h->channel_id, sizeof h->channel_id, 0) != sizeof h->channel_id)
            h->channel_id =
                static_cast<std::uint64_t>(sys::monotonic_ns()) ^ h->creator_start_ticks;
        std::byte* slots = segment.data() + sizeof(Header);
        // PubSub slots start as "no message" (0 is below every position + 1).
        const ChannelOps& ops = channel_ops(options.kind);
        for (std::size_t i = 0; i < capacity; ++i)
            new (slots + i * stride) Slot{{ops.initial_seq(i)}, 0, 0};
        h->magic.store(kMagic, std::memory_order_release);
        return Channel(std::make_unique<ChannelCore>(std::move(segment), role));
    } catch (...) {
        try {
            Segment::remove(Backend::Posix, name);
        } catch (...) {
        }
        throw;
    }
}

namespace {

// Why the segment is not a channel this pagewire can use, or "" when it is.
// `wait_for_creator`: a segment whose header is still zero may be one being
// initialized; wait up to kInitWaitMilliseconds for its magic.
template <class Header>
std::string channel_header_problem(const Segment& segment, bool wait_for_creator) {
    if (segment.size() < sizeof(Header))
        return "not a pagewire channel (segment of " + std::to_string(segment.size()) +
               " bytes is smaller than a channel header)";
    auto* h = reinterpret_cast<const Header*>(segment.data());
    std::uint64_t magic = h->magic.load(std::memory_order_acquire);
    for (int waited = 0; wait_for_creator && magic == 0 && waited < kInitWaitMilliseconds;
         ++waited) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        magic = h->magic.load(std::memory_order_acquire);
    }
    if (magic != kMagic) return "not a pagewire channel (no channel header)";
    if (h->version != Channel::kLayoutVersion)
        return "channel layout version " + std::to_string(h->version) + ", this pagewire reads " +
               std::to_string(Channel::kLayoutVersion);
    if (!known_kind(h->kind))
        return "corrupt channel header (kind " + std::to_string(h->kind) + ")";
    if (h->overflow > static_cast<std::uint32_t>(ChannelOverflow::Overwrite) ||
        (h->overflow != 0 && h->kind != static_cast<std::uint32_t>(ChannelKind::PubSub)))
        return "corrupt channel header (overflow policy " + std::to_string(h->overflow) + ")";
    const std::uint64_t cap = h->capacity;
    const bool sizes_ok = cap >= 2 && cap <= Channel::kMaxCapacity && std::has_single_bit(cap) &&
                          h->max_message >= 1 && h->max_message <= Channel::kMaxMessage &&
                          h->header_size == sizeof(Header) &&
                          h->slot_stride >= kSlotHeaderBytes + h->max_message &&
                          h->slot_stride % kCacheLine == 0 &&
                          h->slot_stride <= (segment.size() - sizeof(Header)) / cap &&
                          h->peer_limit.load(std::memory_order_relaxed) <= Channel::kMaxPeers;
    if (!sizes_ok) return "corrupt channel header (sizes do not fit the segment)";
    return {};
}

}  // namespace

Channel Channel::open(const std::string& name, ChannelRole role,
                      std::optional<ChannelKind> expected_kind) {
    const std::string shown = display_name(name);
    Segment segment = Segment::open(Backend::Posix, name);
    if (std::string why = channel_header_problem<Header>(segment, true); !why.empty())
        throw_error("open channel", shown, EPROTO, why);
    auto kind = static_cast<ChannelKind>(reinterpret_cast<const Header*>(segment.data())->kind);
    if (expected_kind && *expected_kind != kind)
        throw_error("open channel", shown, EPROTO,
                    std::string(kind == ChannelKind::PubSub ? "is a " : "is an ") +
                        channel_kind_name(kind) + " channel, not " +
                        channel_kind_name(*expected_kind));
    return Channel(std::make_unique<ChannelCore>(std::move(segment), role));
}

std::optional<ChannelStats> Channel::inspect(const std::string& name) {
    SegmentOptions options;
    options.read_only = true;
    Segment segment = Segment::open(Backend::Posix, name, options);
    if (!channel_header_problem<Header>(segment, false).empty()) return std::nullopt;
    return Channel(std::make_unique<ChannelCore>(std::move(segment), ChannelRole::Observer))
        .stats();
}

void Channel::remove(const std::string& name) {
    Segment::remove(Backend::Posix, name);
}

Channel::Channel() noexcept = default;
Channel::Channel(std::unique_ptr<ChannelCore> core) noexcept : core_(std::move(core)) {}
Channel::Channel(Channel&& other) noexcept = default;
Channel& Channel::operator=(Channel&& other) noexcept = default;
Channel::~Channel() = default;

ChannelCore::ChannelCore(Segment segment_in, ChannelRole role_in)
    : segment(std::move(segment_in)), role(role_in) {
    header = reinterpret_cast<Header*>(segment.data());
    slots = segment.data() + header->header_size;
    capacity = header->capacity;
    mask = capacity - 1;
    stride = header->slot_stride;
    max_message = header->max_message;
    kind = static_cast<ChannelKind>(header->kind);
    overflow = static_cast<ChannelOverflow>(header->overflow);
    ops = &channel_ops(kind);
    light_fence = sys::register_asymmetric_fence();
    if (!light_fence && role != ChannelRole::Observer)
        header->full_fences.store(1, std::memory_order_seq_cst);
    if (role != ChannelRole::Observer) register_peer();
}

ChannelCore::~ChannelCore() {
    deregister_peer();
}

ChannelKind Channel::kind() const noexcept {
    return core_->kind;
}
ChannelOverflow Channel::overflow() const noexcept {
    return core_->overflow;
}
std::size_t Channel::capacity() const noexcept {
    return core_->capacity;
}
std::size_t Channel::max_message() const noexcept {
    return core_->max_message;
}
ChannelRole Channel::role() const noexcept {
    return core_ ? core_->role : ChannelRole::Observer;
}
const Segment& Channel::segment() const noexcept {
    static const Segment kNone;
    return core_ ? core_->segment : kNone;
}
std::uint64_t Channel::lost() const noexcept {
    return core_ ? core_->lost : 0;
}
std::string Channel::corruption() const {
    return core_ ? core_->corruption : "";
}
std::chrono::nanoseconds Channel::spin() const noexcept {
    return std::chrono::nanoseconds(core_->header->spin_ns.load(std::memory_order_relaxed));
}
void Channel::set_spin(std::chrono::nanoseconds spin) noexcept {
    core_->header->spin_ns.store(std::max<std::int64_t>(0, spin.count()),
                                 std::memory_order_relaxed);
}

unsigned ChannelCore::peer_limit() const noexcept {
    return std::min<unsigned>(Channel::kMaxPeers,
                              header->peer_limit.load(std::memory_order_seq_cst));
}

void ChannelCore::register_peer() {
    const pid_t pid = ::getpid();
    const std::uint64_t ticks = sys::process_start_ticks(pid).value_or(0);
    token = role_bits(role) << kRoleShift | (static_cast<std::uint64_t>(pid) & kPidMask) << 32 |
            (ticks & 0xffffffffU);
    auto take = [&](unsigned index) {
        Peer& p = header->peers[index];
        std::uint64_t old = p.token.load(std::memory_order_acquire);
        if (old != 0 && token_alive(old)) return false;
        if (!p.token.compare_exchange_strong(old, token, std::memory_order_seq_cst)) return false;
        retire_entry(p, *header, old);
        peer = static_cast<int>(index);
        std::uint32_t limit = header->peer_limit.load(std::memory_order_relaxed);
        while (limit < index + 1 && !header->peer_limit.compare_exchange_weak(
                                        limit, index + 1, std::memory_order_seq_cst)) {
        }
        return true;
    };
    const bool producer = role == ChannelRole::Producer;
    if (const int fixed = producer ? ops->producer_entry : ops->consumer_entry; fixed >= 0) {
        if (!take(static_cast<unsigned>(fixed)))
            throw_error("open channel", segment.name(), EBUSY,
                        std::string("a ") + channel_kind_name(kind) + " channel has one " +
                            (producer ? ops->producer_noun : "consumer") + " and it is alive");
        ops->joined(*this);
        return;
    }
    for (unsigned i = ops->first_shared_entry; i < Channel::kMaxPeers; ++i)
        if (take(i)) {
            ops->joined(*this);
            return;
        }
    throw_error("open channel", segment.name(), EUSERS,
                "all " + std::to_string(Channel::kMaxPeers - ops->first_shared_entry) +
                    " peer entries are held by live processes");
}

void ChannelCore::deregister_peer() noexcept {
    notify_fd.reset();
    signal_fd.reset();
    if (header == nullptr || peer < 0) return;
    Peer& p = me();
    retire_entry(p, *header, token);
    std::uint64_t mine = token;
    p.token.compare_exchange_strong(mine, 0, std::memory_order_seq_cst);
    peer = -1;
    // A publisher waiting for this subscriber (PubSub Block) may go on now.
    if (ops->subscriber_cursors && role == ChannelRole::Consumer) notify(header->space_wake);
}

// SPSC/PubSub publish ends with two stores (the slot's sequence, then the
// shared position); a predecessor killed between them left the position one
// step behind, which the slot's sequence tells. (A consumer's release is one
// store, nothing to repair.)
void ChannelCore::repair_producer() noexcept {
    std::uint64_t t = header->enqueue_pos.load(std::memory_order_acquire);
    if (slot(t).seq.load(std::memory_order_acquire) == t + 1) ++t;
    min_cursor = 0;  // PubSub: unknown, the first loan looks
    header->enqueue_pos.store(t, std::memory_order_release);
}

ChannelStats Channel::stats() const noexcept {
    const ChannelCore& c = *core_;
    ChannelStats s;
    s.kind = c.kind;
    s.overflow = c.overflow;
    s.capacity = c.capacity;
    s.max_message = c.max_message;
    c.ops->totals(c, s);
    s.abandoned = c.header->abandoned.load(std::memory_order_relaxed);
    s.lost = c.header->lost.load(std::memory_order_relaxed);
    for (const Peer& p : c.header->peers) {
        std::uint64_t t = p.token.load(std::memory_order_acquire);
        if (t == 0 || !token_alive(t)) continue;
        if (token_role(t) == role_bits(ChannelRole::Producer)) ++s.producers;
        if (is_consumer_token(t)) ++s.consumers;
    }
    s.creator_pid = c.header->creator_pid;
    return s;
}

std::vector<ChannelPeerInfo> Channel::peers() const {
    const ChannelCore& c = *core_;
    std::vector<ChannelPeerInfo> out;
    const std::uint64_t enq = c.header->enqueue_pos.load(std::memory_order_acquire);
    for (unsigned i = 0; i < kMaxPeers; ++i) {
        const Peer& p = c.header->peers[i];
        const std::uint64_t t = p.token.load(std::memory_order_acquire);
        if (t == 0) continue;
        ChannelPeerInfo info;
        info.index = i;
        info.role = token_role(t) == role_bits(ChannelRole::Producer) ? ChannelRole::Producer
                    : is_consumer_token(t)                            ? ChannelRole::Consumer
                                                                      : ChannelRole::Observer;
        info.pid = token_pid(t);
        info.alive = token_alive(t);
        info.messages = p.messages.load(std::memory_order_relaxed);
        if (c.ops->subscriber_cursors && info.role == ChannelRole::Consumer) {
            const std::uint64_t cur = p.cursor.load(std::memory_order_acquire);
            info.lag = enq > cur ? enq - cur : 0;
            info.lost = p.lost.load(std::memory_order_relaxed);
        }
        out.push_back(info);
    }
    return out;
}

// ------------------------------------------------------------------ corruption

ChannelStatus ChannelCore::corrupt(const char* format, std::uint64_t a, std::uint64_t b,
                                   std::uint64_t c) noexcept {
    std::snprintf(corruption, sizeof corruption, format, static_cast<unsigned long long>(a),
                  static_cast<unsigned long long>(b), static_cast<unsigned long long>(c));
    return ChannelStatus::Corrupt;
}

ChannelStatus ChannelCore::sequence_ahead(std::uint64_t position, std::uint64_t seq) noexcept {
    return corrupt("slot %llu sequence %llu is ahead of position %llu", position & mask, seq,
                   position);
}

ChannelStatus ChannelCore::sequence_behind(std::uint64_t position, std::uint64_t seq) noexcept {
    return corrupt("slot %llu sequence %llu is behind position %llu", position & mask, seq,
                   position);
}

ChannelStatus ChannelCore::bad_size(std::uint64_t position, std::uint32_t size) noexcept {
    if (size > max_message)
        return corrupt("message %llu size %llu exceeds the max message %llu", position, size,
                       max_message);
    return corrupt("message %llu size %llu is not the size written (check word %llu)", position,
                   size, slot(position).check);
}

ChannelStatus ChannelCore::check_queue_positions(std::uint64_t slack) noexcept {
    // The consumers' position first: the producers' one, read later, can only be larger.
    const std::uint64_t deq = header->dequeue_pos.load(std::memory_order_seq_cst);
    const std::uint64_t enq = header->enqueue_pos.load(std::memory_order_seq_cst);
    if (deq > enq + slack)
        return corrupt("consumer position %llu is ahead of producer position %llu", deq, enq);
    const std::uint64_t deq_now = header->dequeue_pos.load(std::memory_order_seq_cst);
    if (enq > deq_now && enq - deq_now > capacity)
        return corrupt(
            "producer position %llu is more than %llu messages ahead of consumer "
            "position %llu",
            enq, capacity, deq_now);
    return ChannelStatus::Ok;
}

// ------------------------------------------------------------------ waiting

// The hot side of the Dekker handshake between a notifier and a waiter: the
// store that makes a message (or room) visible, ordered before notify()'s
// load of `waiting`. With the asymmetric fence a compiler barrier is enough
// here, because every waiter runs sys::heavy_fence() between announcing
// itself and re-checking; without it, a full fence. A full barrier per
// message would stall on every cross-core cache miss of the slot, which
// costs more than half the ring's throughput.
void ChannelCore::store_visible(std::atomic<std::uint64_t>& word, std::uint64_t value) noexcept {
    word.store(value, std::memory_order_release);
    // The flag is read after the store, so that a cache miss on it cannot
    // hold the store back (a store becomes visible only after the loads
    // before it are done).
    if (!light_fence || header->full_fences.load(std::memory_order_relaxed) != 0)
        std::atomic_thread_fence(std::memory_order_seq_cst);
    else
        std::atomic_signal_fence(std::memory_order_seq_cst);
}

// After the store that made something visible: a sleeper or an armed
// descriptor is told. The ordering against that store is the caller's:
// store_visible(), or a seq_cst store or read-modify-write (full barriers).
// The common case, nobody waiting, is this one load.
void ChannelCore::notify(Wake& wake) noexcept {
    const std::uint64_t waiting_now = wake.waiting.load(std::memory_order_relaxed);
    if (waiting_now == 0) return;
    if ((waiting_now & kSleepersMask) != 0) {
        wake.seq.fetch_add(1, std::memory_order_seq_cst);
        sys::futex_wake(reinterpret_cast<const std::uint32_t*>(&wake.seq), INT_MAX);
    }
    if (waiting_now >= kArmedOne) notify_armed(wake);
}

// Signals every peer that armed its descriptor on `wake` (consumers on
// data_wake, producers on space_wake), once per arm.
void ChannelCore::notify_armed(Wake& wake) noexcept {
    if (!signal_fd) {
        signal_fd.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!signal_fd) return;  // the armed peers re-check within their poll timeout
    }
    const std::uint64_t wanted = &wake == &header->data_wake ? role_bits(ChannelRole::Consumer)
                                                             : role_bits(ChannelRole::Producer);
    const unsigned limit = peer_limit();
    const std::uint64_t channel_id = header->channel_id;
    for (unsigned i = 0; i < limit; ++i) {
        Peer& p = header->peers[i];
        if (p.armed.load(std::memory_order_seq_cst) == 0) continue;
        const std::uint64_t t = p.token.load(std::memory_order_seq_cst);
        if (token_role(t) != wanted || p.armed.exchange(0, std::memory_order_seq_cst) == 0)
            continue;
        wake.waiting.fetch_sub(kArmedOne, std::memory_order_seq_cst);
        socklen_t length = 0;
        sockaddr_un addr = notify_address(channel_id, i, t, length);
        const char byte = 1;
        // EAGAIN: its queue is full, so it is readable already; ECONNREFUSED: it is gone.
        (void)::sendto(signal_fd.get(), &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&addr), length);
    }
}

// True once every kRecoverAfter while a try_* call keeps failing (the first
// failure starts the clock; a success stops it, see try_loan/try_read).
bool ChannelCore::stalled() noexcept {
    if (waiting) return false;  // wait_until() recovers on its own schedule
    const std::int64_t now = sys::monotonic_ns();
    if (stall_since_ns == 0) {
        stall_since_ns = now;
        return false;
    }
    if (now - stall_since_ns < kRecoverAfterNs) return false;
    stall_since_ns = now;
    return true;
}

int Channel::notify_fd() {
    ChannelCore& c = *core_;
    if (c.notify_fd) return c.notify_fd.get();
    if (c.peer < 0)
        throw_error("channel notify descriptor", c.segment.name(), EINVAL,
                    "only a producer or consumer handle can wait");
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) throw_error("channel notify descriptor", c.segment.name());
    socklen_t length = 0;
    sockaddr_un addr =
        notify_address(c.header->channel_id, static_cast<unsigned>(c.peer), c.token, length);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), length) != 0)
        throw_error("channel notify descriptor", c.segment.name());
    c.notify_fd = std::move(fd);
    return c.notify_fd.get();
}

bool Channel::arm() noexcept {
    if (!core_ || !core_->notify_fd || core_->peer < 0) return false;
    ChannelCore& c = *core_;
    char buffer[64];
    while (::recv(c.notify_fd.get(), buffer, sizeof buffer, MSG_DONTWAIT) > 0) {
    }
    Wake& wake = c.role == ChannelRole::Producer ? c.header->space_wake : c.header->data_wake;
    if (c.me().armed.exchange(1, std::memory_order_seq_cst) == 0)
        wake.waiting.fetch_add(kArmedOne, std::memory_order_seq_cst);
    (void)sys::heavy_fence();  // see store_visible()
    // Either this re-check sees what a peer made visible, or the peer sees
    // the armed flag after its store and signals the descriptor.
    return !ready();
}

bool Channel::ready() const noexcept {
    if (!core_ || core_->peer < 0) return false;
    const ChannelCore& c = *core_;
    if (c.holding) return true;
    return c.role == ChannelRole::Consumer ? c.ops->readable(c) : c.ops->writable(c);
}

// Retries `attempt` until it returns anything but `busy` or the timeout
// passes. BusyPoll polls; SpinThenSleep polls for spin() and then sleeps;
// Sleep sleeps at once. Sleeping: announce on `wake`, read its sequence,
// re-try, sleep while the sequence is unchanged (a notifier that made the
// re-try's miss visible bumps it). `on_stall` runs every kRecoverAfterNs;
// what it returns other than Ok ends the wait (Corrupt).
template <class Attempt, class Stall>
ChannelStatus Channel::wait_until(Attempt attempt, Stall on_stall, ChannelStatus busy, Wake& wake,
                                  std::chrono::nanoseconds timeout, WaitMode mode) noexcept {
    ChannelStatus st = attempt();
    if (st != busy) return st;
    struct Waiting {  // try_* skip their own stall checks meanwhile (see stalled())
        bool& flag;
        explicit Waiting(bool& f) : flag(f) { flag = true; }
        ~Waiting() { flag = false; }
    } waiting_scope(core_->waiting);
    const std::int64_t start = sys::monotonic_ns();
    const std::int64_t wait_ns = std::max<std::int64_t>(0, timeout.count());
    const std::int64_t deadline = wait_ns >= INT64_MAX - start ? INT64_MAX : start + wait_ns;
    // The spin time is shared memory: clamped, so that no value in it overflows.
    const std::int64_t spin = std::clamp<std::int64_t>(
        core_->header->spin_ns.load(std::memory_order_relaxed), 0, deadline - start);
    const std::int64_t spin_until = mode == WaitMode::BusyPoll ? INT64_MAX
                                    : mode == WaitMode::Sleep  ? start
                                                               : start + spin;
    std::int64_t next_stall = start + kRecoverAfterNs;
    for (;;) {
        const std::int64_t now = sys::monotonic_ns();
        if (now >= deadline) return ChannelStatus::TimedOut;
        if (now >= next_stall) {
            if (st = on_stall(); st != ChannelStatus::Ok) return st;
            next_stall = now + kRecoverAfterNs;
        }
        if (now < spin_until) {
            for (unsigned i = 0; i < kPollsPerClockRead; ++i) {
                sys::cpu_relax();
                st = attempt();
                if (st != busy) return st;
            }
            continue;
        }
        wake.waiting.fetch_add(1, std::memory_order_seq_cst);
        (void)sys::heavy_fence();  // see store_visible()
        const std::uint32_t seq = wake.seq.load(std::memory_order_seq_cst);
        st = attempt();
        if (st == busy) {
            const timespec ts = sys::to_timespec(std::min(kMaxSleepNs, deadline - now));
            (void)sys::futex_wait(reinterpret_cast<const std::uint32_t*>(&wake.seq), seq, &ts);
        }
        wake.waiting.fetch_sub(1, std::memory_order_seq_cst);
        if (st != busy) return st;
        st = attempt();
        if (st != busy) return st;
    }
}

// ------------------------------------------------------------------ producer

ChannelStatus Channel::try_loan(std::size_t size, ChannelLoan& loan) noexcept {
    if (!core_ || core_->role != ChannelRole::Producer) return ChannelStatus::WrongRole;
    ChannelCore& c = *core_;
    if (size > c.max_message) return ChannelStatus::TooBig;
    // MPMC: the peer entry announces one claimed position; a second would hide the first.
    if (c.holding) return ChannelStatus::Busy;
    std::uint64_t pos = 0;
    if (ChannelStatus st = c.ops->claim(c, pos); st != ChannelStatus::Ok) return st;
    loan = {c.slot(pos).bytes(), size, pos};
    c.holding = true;
    c.stall_since_ns = 0;
    return ChannelStatus::Ok;
}

ChannelStatus Channel::loan(std::size_t size, ChannelLoan& l, std::chrono::nanoseconds timeout,
                            WaitMode mode) noexcept {
    if (!core_) return ChannelStatus::WrongRole;
    return wait_until([&] { return try_loan(size, l); },
                      [&] { return core_->ops->loan_stalled(*core_); }, ChannelStatus::Full,
                      core_->header->space_wake, timeout, mode);
}

void Channel::publish(ChannelLoan& loan, std::size_t size) noexcept {
    ChannelCore& c = *core_;
    Slot& s = c.slot(loan.position);
    s.size = static_cast<std::uint32_t>(std::min(size, loan.size));
    s.check = size_check(s.size, loan.position);
    // The one store that makes the message visible, after all its bytes.
    c.store_visible(s.seq, loan.position + 1);
    c.ops->published(c, loan.position);
    c.me().messages.store(++c.messages, std::memory_order_relaxed);
    loan = {};
    c.holding = false;
    c.notify(c.header->data_wake);
}

void Channel::cancel(ChannelLoan& loan) noexcept {
    core_->ops->cancel(*core_, loan.position);
    loan = {};
    core_->holding = false;
}

ChannelStatus Channel::try_send(std::span<const std::byte> message) noexcept {
    ChannelLoan l;
    ChannelStatus st = try_loan(message.size(), l);
    if (st != ChannelStatus::Ok) return st;
    if (!message.empty()) std::memcpy(l.data, message.data(), message.size());
    publish(l);
    return ChannelStatus::Ok;
}

ChannelStatus Channel::send(std::span<const std::byte> message, std::chrono::nanoseconds timeout,
                            WaitMode mode) noexcept {
    ChannelLoan l;
    ChannelStatus st = loan(message.size(), l, timeout, mode);
    if (st != ChannelStatus::Ok) return st;
    if (!message.empty()) std::memcpy(l.data, message.data(), message.size());
    publish(l);
    return ChannelStatus::Ok;
}

// ------------------------------------------------------------------ consumer

ChannelStatus Channel::try_read(ChannelView& view) noexcept {
    if (!core_ || core_->role != ChannelRole::Consumer) return ChannelStatus::WrongRole;
    ChannelCore& c = *core_;
    // SPSC takes the position only at release, so a second view would be the same message.
    if (c.holding) return ChannelStatus::Busy;
    ChannelStatus st = c.ops->try_read(c, view);
    if (st == ChannelStatus::Ok) {
        c.holding = true;
        c.stall_since_ns = 0;
    }
    return st;
}

ChannelStatus Channel::read(ChannelView& view, std::chrono::nanoseconds timeout,
                            WaitMode mode) noexcept {
    if (!core_) return ChannelStatus::WrongRole;
    return wait_until([&] { return try_read(view); },
                      [&] { return core_->ops->read_stalled(*core_); }, ChannelStatus::Empty,
                      core_->header->data_wake, timeout, mode);
}

void Channel::release(ChannelView& view) noexcept {
    ChannelCore& c = *core_;
    c.ops->release(c, view);
    c.me().messages.store(++c.messages, std::memory_order_relaxed);
    view = {};
    c.holding = false;
    c.notify(c.header->space_wake);
}

ChannelStatus Channel::try_receive(std::span<std::byte> buffer, std::size_t& size) noexcept {
    ChannelView v;
    ChannelStatus st = try_read(v);
    if (st != ChannelStatus::Ok) return st;
    size = std::min(v.size, buffer.size());
    if (size != 0) std::memcpy(buffer.data(), v.data, size);
    release(v);
    return ChannelStatus::Ok;
}

ChannelStatus Channel::receive(std::span<std::byte> buffer, std::size_t& size,
                               std::chrono::nanoseconds timeout, WaitMode mode) noexcept {
    ChannelView v;
    ChannelStatus st = read(v, timeout, mode);
    if (st != ChannelStatus::Ok) return st;
    size = std::min(v.size, buffer.size());
    if (size != 0) std::memcpy(buffer.data(), v.data, size);
    release(v);
    return ChannelStatus::Ok;
}

}  // namespace pagewire
