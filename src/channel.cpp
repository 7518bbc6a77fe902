// pagewire::Channel: setup (create/open/validate/peer table) first, then the
// waiting machinery, then the data path of one message, top to bottom:
// loan -> publish -> read -> release, and last the crash recovery.
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
#include <cstring>
#include <new>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <thread>

#include "sys.hpp"
#include "sys_ipc.hpp"

namespace pagewire {
namespace {

// "PWCHAN01" read as a little-endian integer.
constexpr std::uint64_t kMagic = 0x31304e4148435750ULL;
// Set in a slot's sequence instead of a message. MPMC: a claimed position
// whose producer died or cancelled; consumers skip it. PubSub Overwrite: the
// publisher is rewriting the slot; its old message is gone.
constexpr std::uint64_t kMarkBit = std::uint64_t{1} << 63;
constexpr std::size_t kCacheLine = 64;
constexpr std::size_t kSlotHeaderBytes = 16;  // Slot's fields before the message bytes
// How long an open waits for a creator that is still writing the header.
constexpr int kInitWaitMilliseconds = 1000;
// A waiting call sleeps at most this long between looks at the ring, so a
// dead peer costs latency, never a hang.
constexpr std::int64_t kMaxSleepNs = 20'000'000;
// How long a waiting call waits before it asks the peer table whether the
// peer it waits for is still alive (reads /proc).
constexpr std::int64_t kRecoverAfterNs = std::chrono::nanoseconds(Channel::kRecoverAfter).count();
// Busy loops read the clock only every this many polls (a clock read costs
// about as much as a poll of a cache line another core just wrote).
constexpr unsigned kPollsPerClockRead = 64;
// Wake::waiting: futex sleepers in the low half, armed descriptors in the high half.
constexpr std::uint64_t kArmedOne = std::uint64_t{1} << 32;
constexpr std::uint64_t kSleepersMask = kArmedOne - 1;

// Peer table tokens: role in bits 62-63, pid in 32-61, low 32 bits of the
// process start time (clock ticks) in 0-31, so one CAS registers a process
// and a recycled pid never passes for the dead one.
constexpr unsigned kRoleShift = 62;
constexpr std::uint64_t kPidMask = (std::uint64_t{1} << 30) - 1;
// SPSC: the producer and the consumer each have one fixed entry, so a second
// live one fails its CAS. PubSub: the publisher has entry 0, subscribers the rest.
constexpr unsigned kProducerPeer = 0;
constexpr unsigned kSpscConsumerPeer = 1;

std::uint64_t role_bits(ChannelRole role) noexcept {
    return role == ChannelRole::Producer ? 1 : role == ChannelRole::Consumer ? 2 : 0;
}

std::uint64_t token_role(std::uint64_t token) noexcept {
    return token >> kRoleShift;
}

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

// One entry of the peer table: one cache line, written by its owner only
// (and by whoever reaps it after its owner died).
struct alignas(kCacheLine) ChannelPeer {
    std::atomic<std::uint64_t> token{0};  // 0: free; see kRoleShift
    // MPMC: position + 1 it is claiming or holds unpublished/unreleased, 0 none.
    // Written before the claim, so a peer can tell a dead claimer's slot.
    // PubSub subscriber: position + 1 of the slot it holds a view of (Overwrite).
    std::atomic<std::uint64_t> intent{0};
    std::atomic<std::uint64_t> cursor{0};    // PubSub subscriber: next position it reads
    std::atomic<std::uint64_t> messages{0};  // published / released by this registration
    std::atomic<std::uint64_t> lost{0};      // PubSub subscriber: messages it missed
    std::atomic<std::uint32_t> armed{0};     // 1: signal its notify descriptor
};

// A futex eventcount: sleepers read `seq`, re-check, and sleep while it is
// unchanged; a notifier that sees `waiting` non-zero bumps it and wakes all.
struct Channel::Wake {
    std::atomic<std::uint32_t> seq{0};
    std::uint32_t reserved = 0;
    std::atomic<std::uint64_t> waiting{0};  // sleepers | armed descriptors << 32
};

// The channel header at the start of the segment's data. Read-only after
// creation except the atomics; magic is stored last (release).
struct Channel::Header {
    std::atomic<std::uint64_t> magic{0};
    std::uint32_t version = 0;
    std::uint32_t kind = 0;
    std::uint64_t capacity = 0;     // slots, a power of two >= 2
    std::uint64_t max_message = 0;  // bytes
    std::uint64_t slot_stride = 0;  // bytes per slot, a multiple of kCacheLine
    std::uint64_t header_size = 0;  // sizeof(Header) of the creator: offset of slot 0
    std::int32_t creator_pid = 0;
    std::uint32_t overflow = 0;  // ChannelOverflow
    std::uint64_t creator_start_ticks = 0;
    std::atomic<std::int64_t> spin_ns{0};
    std::atomic<std::uint32_t> peer_limit{0};  // 1 + the highest peer entry ever used
    // 1 once a process that cannot run sys::heavy_fence() opened the channel:
    // then every notifier uses full fences (see store_visible()).
    std::atomic<std::uint32_t> full_fences{0};
    std::uint64_t channel_id = 0;  // random, names the notify descriptors' addresses

    // Next position a producer claims / a consumer takes. Own cache lines:
    // producers and consumers must not false-share.
    alignas(kCacheLine) std::atomic<std::uint64_t> enqueue_pos{0};
    alignas(kCacheLine) std::atomic<std::uint64_t> dequeue_pos{0};
    // MPMC totals (SPSC's and PubSub's come from the positions and the peer
    // table). A process killed between its publish/release and the increment
    // leaves them one short.
    alignas(kCacheLine) std::atomic<std::uint64_t> sent{0};
    alignas(kCacheLine) std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> abandoned{0};
    std::atomic<std::uint64_t> lost{0};
    std::atomic<std::uint64_t> departed{0};  // PubSub: messages released by subscribers gone
    alignas(kCacheLine) Wake data_wake;      // consumers wait here for messages
    alignas(kCacheLine) Wake space_wake;     // producers wait here for room
    alignas(kCacheLine) ChannelPeer peers[kMaxPeers];
};

// One ring slot. MPMC: `seq` says whose turn it is (Vyukov): == position:
// free for the producer of that position; == position + 1: holds its
// message; == position + capacity: taken, free for the next lap. SPSC and
// PubSub: == position + 1 holds that message, anything smaller is no message
// yet; room for the producer is told by the consumers' positions instead, so
// consumers never write to slots. The message bytes follow at kSlotHeaderBytes.
struct Channel::Slot {
    std::atomic<std::uint64_t> seq;
    std::uint32_t size;  // written before seq's release-store, read after its acquire-load
    std::uint32_t reserved;
    std::byte* bytes() noexcept { return reinterpret_cast<std::byte*>(this) + kSlotHeaderBytes; }
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(sizeof(ChannelPeer) == kCacheLine);

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
            h->channel_id = static_cast<std::uint64_t>(sys::monotonic_ns()) ^ h->creator_start_ticks;
        std::byte* slots = segment.data() + sizeof(Header);
        // PubSub slots start as "no message" (0 is below every position + 1).
        for (std::size_t i = 0; i < capacity; ++i)
            new (slots + i * stride) Slot{{options.kind == ChannelKind::PubSub ? 0 : i}, 0, 0};
        h->magic.store(kMagic, std::memory_order_release);
        return Channel(std::move(segment), role);
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
    for (int waited = 0; wait_for_creator && magic == 0 && waited < kInitWaitMilliseconds; ++waited) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        magic = h->magic.load(std::memory_order_acquire);
    }
    if (magic != kMagic) return "not a pagewire channel (no channel header)";
    if (h->version != Channel::kLayoutVersion)
        return "channel layout version " + std::to_string(h->version) + ", this pagewire reads " +
               std::to_string(Channel::kLayoutVersion);
    if (!known_kind(h->kind)) return "corrupt channel header (kind " + std::to_string(h->kind) + ")";
    if (h->overflow > static_cast<std::uint32_t>(ChannelOverflow::Overwrite) ||
        (h->overflow != 0 && h->kind != static_cast<std::uint32_t>(ChannelKind::PubSub)))
        return "corrupt channel header (overflow policy " + std::to_string(h->overflow) + ")";
    const std::uint64_t cap = h->capacity;
    const bool sizes_ok =
        cap >= 2 && cap <= Channel::kMaxCapacity && std::has_single_bit(cap) &&
        h->max_message >= 1 && h->max_message <= Channel::kMaxMessage &&
        h->header_size == sizeof(Header) && h->slot_stride >= kSlotHeaderBytes + h->max_message &&
        h->slot_stride % kCacheLine == 0 && h->slot_stride <= (segment.size() - sizeof(Header)) / cap &&
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
    return Channel(std::move(segment), role);
}

std::optional<ChannelStats> Channel::inspect(const std::string& name) {
    SegmentOptions options;
    options.read_only = true;
    Segment segment = Segment::open(Backend::Posix, name, options);
    if (!channel_header_problem<Header>(segment, false).empty()) return std::nullopt;
    return Channel(std::move(segment), ChannelRole::Observer).stats();
}

void Channel::remove(const std::string& name) {
    Segment::remove(Backend::Posix, name);
}

Channel::Channel(Segment segment, ChannelRole role) : segment_(std::move(segment)), role_(role) {
    header_ = reinterpret_cast<Header*>(segment_.data());
    slots_ = segment_.data() + header_->header_size;
    mask_ = header_->capacity - 1;
    stride_ = header_->slot_stride;
    kind_ = static_cast<ChannelKind>(header_->kind);
    light_fence_ = sys::register_asymmetric_fence();
    if (!light_fence_ && role_ != ChannelRole::Observer)
        header_->full_fences.store(1, std::memory_order_seq_cst);
    if (role_ != ChannelRole::Observer) register_peer();
}

Channel::Channel(Channel&& other) noexcept {
    *this = std::move(other);
}

Channel& Channel::operator=(Channel&& other) noexcept {
    if (this != &other) {
        deregister_peer();
        segment_ = std::move(other.segment_);
        header_ = std::exchange(other.header_, nullptr);
        slots_ = std::exchange(other.slots_, nullptr);
        mask_ = other.mask_;
        stride_ = other.stride_;
        kind_ = other.kind_;
        light_fence_ = other.light_fence_;
        role_ = other.role_;
        peer_ = std::exchange(other.peer_, -1);
        token_ = std::exchange(other.token_, 0);
        holding_ = std::exchange(other.holding_, false);
        messages_ = other.messages_;
        cursor_ = other.cursor_;
        lost_ = other.lost_;
        min_cursor_ = other.min_cursor_;
        consumer_pos_ = other.consumer_pos_;
        stall_since_ns_ = other.stall_since_ns_;
        lost_pending_ = other.lost_pending_;
        notify_fd_ = std::exchange(other.notify_fd_, -1);
        signal_fd_ = std::exchange(other.signal_fd_, -1);
    }
    return *this;
}

Channel::~Channel() {
    deregister_peer();
}

ChannelKind Channel::kind() const noexcept {
    return kind_;
}
ChannelOverflow Channel::overflow() const noexcept {
    return static_cast<ChannelOverflow>(header_->overflow);
}
std::size_t Channel::capacity() const noexcept {
    return header_->capacity;
}
std::size_t Channel::max_message() const noexcept {
    return header_->max_message;
}
std::chrono::nanoseconds Channel::spin() const noexcept {
    return std::chrono::nanoseconds(header_->spin_ns.load(std::memory_order_relaxed));
}
void Channel::set_spin(std::chrono::nanoseconds spin) noexcept {
    header_->spin_ns.store(std::max<std::int64_t>(0, spin.count()), std::memory_order_relaxed);
}

Channel::Slot& Channel::slot(std::uint64_t position) const noexcept {
    static_assert(sizeof(Slot) == kSlotHeaderBytes, "Slot layout is part of the format");
    return *reinterpret_cast<Slot*>(slots_ + (position & mask_) * stride_);
}

// A dead process's entry, or one being reused: its armed descriptor no
// longer counts and a PubSub subscriber's deliveries join the departed total.
// Called by whoever owns the entry now (after a successful token CAS).
static void retire_entry(ChannelPeer& p, std::atomic<std::uint64_t>& departed, bool subscriber,
                         std::atomic<std::uint64_t>& waiting) noexcept {
    if (p.armed.exchange(0, std::memory_order_seq_cst) != 0)
        waiting.fetch_sub(kArmedOne, std::memory_order_seq_cst);
    if (subscriber) departed.fetch_add(p.messages.load(std::memory_order_relaxed));
    p.messages.store(0, std::memory_order_relaxed);
    p.lost.store(0, std::memory_order_relaxed);
    p.intent.store(0, std::memory_order_seq_cst);  // a dead predecessor's claim is void
}

void Channel::register_peer() {
    const pid_t pid = ::getpid();
    const std::uint64_t ticks = sys::process_start_ticks(pid).value_or(0);
    token_ = role_bits(role_) << kRoleShift | (static_cast<std::uint64_t>(pid) & kPidMask) << 32 |
             (ticks & 0xffffffffU);
    const bool pubsub = kind_ == ChannelKind::PubSub;
    auto take = [&](unsigned index) {
        ChannelPeer& p = header_->peers[index];
        std::uint64_t old = p.token.load(std::memory_order_acquire);
        if (old != 0 && token_alive(old)) return false;
        if (!p.token.compare_exchange_strong(old, token_, std::memory_order_seq_cst)) return false;
        Wake& wake = token_role(old) == role_bits(ChannelRole::Producer) ? header_->space_wake
                                                                         : header_->data_wake;
        retire_entry(p, header_->departed,
                     pubsub && token_role(old) == role_bits(ChannelRole::Consumer), wake.waiting);
        peer_ = static_cast<int>(index);
        std::uint32_t limit = header_->peer_limit.load(std::memory_order_relaxed);
        while (limit < index + 1 &&
               !header_->peer_limit.compare_exchange_weak(limit, index + 1,
                                                          std::memory_order_seq_cst)) {
        }
        return true;
    };
    if (kind_ == ChannelKind::Spsc || (pubsub && role_ == ChannelRole::Producer)) {
        const bool producer = role_ == ChannelRole::Producer;
        if (!take(producer ? kProducerPeer : kSpscConsumerPeer))
            throw_error("open channel", segment_.name(), EBUSY,
                        std::string("a ") + channel_kind_name(kind_) + " channel has one " +
                            (producer ? (pubsub ? "publisher" : "producer") : "consumer") +
                            " and it is alive");
        if (producer) repair_producer();
        return;
    }
    for (unsigned i = pubsub ? 1 : 0; i < kMaxPeers; ++i)
        if (take(i)) {
            if (pubsub) {
                // Join at the publisher's position: the publisher either saw
                // this entry (and waits for it) or had not reached beyond it.
                ChannelPeer& me = header_->peers[peer_];
                cursor_ = header_->enqueue_pos.load(std::memory_order_seq_cst);
                me.cursor.store(cursor_, std::memory_order_seq_cst);
                // The publisher stores its position with release only and may
                // skip looking at the subscribers for a while (min_cursor_):
                // the fence makes its latest position visible to the re-read,
                // and every look it takes after it sees this cursor.
                (void)sys::heavy_fence();
                const std::uint64_t now = header_->enqueue_pos.load(std::memory_order_seq_cst);
                if (now > cursor_) {
                    cursor_ = now;
                    me.cursor.store(cursor_, std::memory_order_seq_cst);
                }
                // The entry's old cursor may have held the publisher back.
                notify(header_->space_wake);
            }
            return;
        }
    throw_error("open channel", segment_.name(), EUSERS,
                "all " + std::to_string(pubsub ? kMaxPeers - 1 : kMaxPeers) +
                    " peer entries are held by live processes");
}

void Channel::deregister_peer() noexcept {
    if (notify_fd_ >= 0) ::close(std::exchange(notify_fd_, -1));
    if (signal_fd_ >= 0) ::close(std::exchange(signal_fd_, -1));
    if (header_ == nullptr || peer_ < 0) return;
    ChannelPeer& p = header_->peers[peer_];
    Wake& wake = role_ == ChannelRole::Producer ? header_->space_wake : header_->data_wake;
    retire_entry(p, header_->departed, kind_ == ChannelKind::PubSub && role_ == ChannelRole::Consumer,
                 wake.waiting);
    std::uint64_t mine = token_;
    p.token.compare_exchange_strong(mine, 0, std::memory_order_seq_cst);
    peer_ = -1;
    // A publisher waiting for this subscriber (Block) may go on now.
    if (kind_ == ChannelKind::PubSub && role_ == ChannelRole::Consumer) notify(header_->space_wake);
}

// SPSC/PubSub publish ends with two stores (the slot's sequence, then the
// shared position); a predecessor killed between them left the position one
// step behind, which the slot's sequence tells. (A consumer's release is one
// store, nothing to repair.)
void Channel::repair_producer() noexcept {
    std::uint64_t t = header_->enqueue_pos.load(std::memory_order_acquire);
    if (slot(t).seq.load(std::memory_order_acquire) == t + 1) ++t;
    if (kind_ == ChannelKind::PubSub) min_cursor_ = 0;  // unknown: the first loan looks
    header_->enqueue_pos.store(t, std::memory_order_release);
}

ChannelStats Channel::stats() const noexcept {
    ChannelStats s;
    s.kind = kind_;
    s.overflow = overflow();
    s.capacity = header_->capacity;
    s.max_message = header_->max_message;
    const std::uint64_t enq = header_->enqueue_pos.load(std::memory_order_acquire);
    if (kind_ == ChannelKind::PubSub) {
        s.sent = enq;
        s.received = header_->departed.load(std::memory_order_relaxed);
        const std::uint64_t min = min_subscriber_cursor();
        s.depth = enq > min ? enq - min : 0;
    } else {
        const std::uint64_t deq = header_->dequeue_pos.load(std::memory_order_acquire);
        s.depth = enq > deq ? enq - deq : 0;
        if (kind_ == ChannelKind::Spsc) {  // the positions are exact, even across crashes
            s.sent = enq;
            s.received = deq;
        } else {
            s.sent = header_->sent.load(std::memory_order_relaxed);
            s.received = header_->received.load(std::memory_order_relaxed);
        }
    }
    s.abandoned = header_->abandoned.load(std::memory_order_relaxed);
    s.lost = header_->lost.load(std::memory_order_relaxed);
    for (const ChannelPeer& p : header_->peers) {
        std::uint64_t t = p.token.load(std::memory_order_acquire);
        if (t == 0) continue;
        if (kind_ == ChannelKind::PubSub && token_role(t) == role_bits(ChannelRole::Consumer))
            s.received += p.messages.load(std::memory_order_relaxed);
        if (!token_alive(t)) continue;
        if (token_role(t) == role_bits(ChannelRole::Producer)) ++s.producers;
        if (token_role(t) == role_bits(ChannelRole::Consumer)) ++s.consumers;
    }
    s.creator_pid = header_->creator_pid;
    return s;
}

std::vector<ChannelPeerInfo> Channel::peers() const {
    std::vector<ChannelPeerInfo> out;
    const std::uint64_t enq = header_->enqueue_pos.load(std::memory_order_acquire);
    for (unsigned i = 0; i < kMaxPeers; ++i) {
        const ChannelPeer& p = header_->peers[i];
        const std::uint64_t t = p.token.load(std::memory_order_acquire);
        if (t == 0) continue;
        ChannelPeerInfo info;
        info.index = i;
        info.role = token_role(t) == role_bits(ChannelRole::Producer) ? ChannelRole::Producer
                    : token_role(t) == role_bits(ChannelRole::Consumer) ? ChannelRole::Consumer
                                                                         : ChannelRole::Observer;
        info.pid = token_pid(t);
        info.alive = token_alive(t);
        info.messages = p.messages.load(std::memory_order_relaxed);
        if (kind_ == ChannelKind::PubSub && info.role == ChannelRole::Consumer) {
            const std::uint64_t c = p.cursor.load(std::memory_order_acquire);
            info.lag = enq > c ? enq - c : 0;
            info.lost = p.lost.load(std::memory_order_relaxed);
        }
        out.push_back(info);
    }
    return out;
}

// PubSub: the smallest read position of the registered subscribers (their
// liveness is not checked here: a dead one counts until it is reaped), or
// the publisher's position when there are none.
std::uint64_t Channel::min_subscriber_cursor() const noexcept {
    std::uint64_t min = header_->enqueue_pos.load(std::memory_order_seq_cst);
    const unsigned limit = std::min<unsigned>(kMaxPeers, header_->peer_limit.load(std::memory_order_seq_cst));
    for (unsigned i = 1; i < limit; ++i) {
        const ChannelPeer& p = header_->peers[i];
        if (token_role(p.token.load(std::memory_order_seq_cst)) != role_bits(ChannelRole::Consumer))
            continue;
        min = std::min(min, p.cursor.load(std::memory_order_seq_cst));
    }
    return min;
}

// ------------------------------------------------------------------ waiting

// The hot side of the Dekker handshake between a notifier and a waiter: the
// store that makes a message (or room) visible, ordered before notify()'s
// load of `waiting`. With the asymmetric fence a compiler barrier is enough
// here, because every waiter runs sys::heavy_fence() between announcing
// itself and re-checking; without it, a full fence. A full barrier per
// message would stall on every cross-core cache miss of the slot, which
// costs more than half the ring's throughput.
void Channel::store_visible(std::atomic<std::uint64_t>& word, std::uint64_t value) noexcept {
    word.store(value, std::memory_order_release);
    // The flag is read after the store, so that a cache miss on it cannot
    // hold the store back (a store becomes visible only after the loads
    // before it are done).
    if (!light_fence_ || header_->full_fences.load(std::memory_order_relaxed) != 0)
        std::atomic_thread_fence(std::memory_order_seq_cst);
    else
        std::atomic_signal_fence(std::memory_order_seq_cst);
}

// After the store that made something visible: a sleeper or an armed
// descriptor is told. The ordering against that store is the caller's:
// store_visible(), or a seq_cst store or read-modify-write (full barriers).
// The common case, nobody waiting, is this one load.
void Channel::notify(Wake& wake) noexcept {
    const std::uint64_t waiting = wake.waiting.load(std::memory_order_relaxed);
    if (waiting == 0) return;
    if ((waiting & kSleepersMask) != 0) {
        wake.seq.fetch_add(1, std::memory_order_seq_cst);
        sys::futex_wake(reinterpret_cast<const std::uint32_t*>(&wake.seq), INT_MAX);
    }
    if (waiting >= kArmedOne) notify_armed(wake);
}

// Signals every peer that armed its descriptor on `wake` (consumers on
// data_wake, producers on space_wake), once per arm.
void Channel::notify_armed(Wake& wake) noexcept {
    if (signal_fd_ < 0) {
        signal_fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (signal_fd_ < 0) return;  // the armed peers re-check within their poll timeout
    }
    const std::uint64_t wanted = &wake == &header_->data_wake ? role_bits(ChannelRole::Consumer)
                                                               : role_bits(ChannelRole::Producer);
    const unsigned limit =
        std::min<unsigned>(kMaxPeers, header_->peer_limit.load(std::memory_order_acquire));
    const std::uint64_t channel_id = header_->channel_id;
    for (unsigned i = 0; i < limit; ++i) {
        ChannelPeer& p = header_->peers[i];
        if (p.armed.load(std::memory_order_seq_cst) == 0) continue;
        const std::uint64_t t = p.token.load(std::memory_order_seq_cst);
        if (token_role(t) != wanted || p.armed.exchange(0, std::memory_order_seq_cst) == 0)
            continue;
        wake.waiting.fetch_sub(kArmedOne, std::memory_order_seq_cst);
        socklen_t length = 0;
        sockaddr_un addr = notify_address(channel_id, i, t, length);
        const char byte = 1;
        // EAGAIN: its queue is full, so it is readable already; ECONNREFUSED: it is gone.
        (void)::sendto(signal_fd_, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&addr), length);
    }
}

int Channel::notify_fd() {
    if (notify_fd_ >= 0) return notify_fd_;
    if (peer_ < 0)
        throw_error("channel notify descriptor", segment_.name(), EINVAL,
                    "only a producer or consumer handle can wait");
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_error("channel notify descriptor", segment_.name());
    socklen_t length = 0;
    sockaddr_un addr =
        notify_address(header_->channel_id, static_cast<unsigned>(peer_), token_, length);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), length) != 0) {
        int err = errno;
        ::close(fd);
        throw_error("channel notify descriptor", segment_.name(), err);
    }
    notify_fd_ = fd;
    return fd;
}

bool Channel::arm() noexcept {
    if (notify_fd_ < 0 || peer_ < 0) return false;
    char buffer[64];
    while (::recv(notify_fd_, buffer, sizeof buffer, MSG_DONTWAIT) > 0) {
    }
    Wake& wake = role_ == ChannelRole::Producer ? header_->space_wake : header_->data_wake;
    ChannelPeer& me = header_->peers[peer_];
    if (me.armed.exchange(1, std::memory_order_seq_cst) == 0)
        wake.waiting.fetch_add(kArmedOne, std::memory_order_seq_cst);
    (void)sys::heavy_fence();  // see store_visible()
    // Either this re-check sees what a peer made visible, or the peer sees
    // the armed flag after its store and signals the descriptor.
    return !ready();
}

bool Channel::ready() const noexcept {
    if (peer_ < 0) return false;
    if (role_ == ChannelRole::Consumer) {
        if (holding_) return true;
        const std::uint64_t pos = kind_ == ChannelKind::PubSub
                                      ? cursor_
                                      : header_->dequeue_pos.load(std::memory_order_seq_cst);
        const std::uint64_t seq = slot(pos).seq.load(std::memory_order_seq_cst);
        // PubSub: a message at the cursor, or a later one (the cursor's was overwritten).
        if (kind_ == ChannelKind::PubSub) return seq == pos + 1 || (seq & ~kMarkBit) > pos + 1;
        return (seq & ~kMarkBit) >= pos + 1;
    }
    if (holding_) return true;
    const std::uint64_t pos = header_->enqueue_pos.load(std::memory_order_seq_cst);
    if (kind_ == ChannelKind::PubSub) {
        if (pos < header_->capacity) return true;
        const std::uint64_t oldest = pos - header_->capacity;
        if (min_subscriber_cursor() > oldest) return true;
        if (overflow() == ChannelOverflow::Block) return false;
        return !viewed(oldest);
    }
    if (kind_ == ChannelKind::Spsc)
        return pos - header_->dequeue_pos.load(std::memory_order_seq_cst) < header_->capacity;
    return slot(pos).seq.load(std::memory_order_seq_cst) == pos;
}

// Retries `attempt` until it returns anything but `busy` or the timeout
// passes. BusyPoll polls; SpinThenSleep polls for spin() and then sleeps;
// Sleep sleeps at once. Sleeping: announce on `wake`, read its sequence,
// re-try, sleep while the sequence is unchanged (a notifier that made the
// re-try's miss visible bumps it). `on_stall` runs every kRecoverAfterNs.
template <class Attempt, class Stall>
ChannelStatus Channel::wait_until(Attempt attempt, Stall on_stall, ChannelStatus busy, Wake& wake,
                                  std::chrono::nanoseconds timeout, WaitMode mode) noexcept {
    ChannelStatus st = attempt();
    if (st != busy) return st;
    struct Waiting {  // try_* skip their own stall checks meanwhile (see stalled())
        bool& flag;
        explicit Waiting(bool& f) : flag(f) { flag = true; }
        ~Waiting() { flag = false; }
    } waiting_scope(waiting_);
    const std::int64_t start = sys::monotonic_ns();
    const std::int64_t wait_ns = std::max<std::int64_t>(0, timeout.count());
    const std::int64_t deadline = wait_ns >= INT64_MAX - start ? INT64_MAX : start + wait_ns;
    const std::int64_t spin_until = mode == WaitMode::BusyPoll ? INT64_MAX
                                    : mode == WaitMode::Sleep
                                        ? start
                                        : start + header_->spin_ns.load(std::memory_order_relaxed);
    std::int64_t next_stall = start + kRecoverAfterNs;
    for (;;) {
        const std::int64_t now = sys::monotonic_ns();
        if (now >= deadline) return ChannelStatus::TimedOut;
        if (now >= next_stall) {
            on_stall();
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

ChannelStatus Channel::loan(std::size_t size, ChannelLoan& l, std::chrono::nanoseconds timeout,
                            WaitMode mode) noexcept {
    return wait_until([&] { return try_loan(size, l); },
                      [&] {
                          if (kind_ == ChannelKind::PubSub)
                              reap_dead_subscribers();
                          else
                              recover_dead_consumer();
                      },
                      ChannelStatus::Full, header_->space_wake, timeout, mode);
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

ChannelStatus Channel::read(ChannelView& view, std::chrono::nanoseconds timeout,
                            WaitMode mode) noexcept {
    return wait_until(
        [&] { return try_read(view); },
        [&] {
            if (kind_ == ChannelKind::Mpmc)
                recover_abandoned(header_->dequeue_pos.load(std::memory_order_seq_cst));
        },
        ChannelStatus::Empty, header_->data_wake, timeout, mode);
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

ChannelStatus Channel::try_receive(std::span<std::byte> buffer, std::size_t& size) noexcept {
    ChannelView v;
    ChannelStatus st = try_read(v);
    if (st != ChannelStatus::Ok) return st;
    size = std::min(v.size, buffer.size());
    if (size != 0) std::memcpy(buffer.data(), v.data, size);
    release(v);
    return ChannelStatus::Ok;
}

ChannelStatus Channel::try_send(std::span<const std::byte> message) noexcept {
    ChannelLoan l;
    ChannelStatus st = try_loan(message.size(), l);
    if (st != ChannelStatus::Ok) return st;
    if (!message.empty()) std::memcpy(l.data, message.data(), message.size());
    publish(l);
    return ChannelStatus::Ok;
}

// ------------------------------------------------------------------ producer

ChannelStatus Channel::try_loan(std::size_t size, ChannelLoan& loan) noexcept {
    if (role_ != ChannelRole::Producer) return ChannelStatus::WrongRole;
    if (size > header_->max_message) return ChannelStatus::TooBig;
    // MPMC: the peer entry announces one claimed position; a second would hide the first.
    if (holding_) return ChannelStatus::Busy;
    std::uint64_t pos = header_->enqueue_pos.load(std::memory_order_relaxed);
    if (kind_ == ChannelKind::Spsc) {
        // The only producer: nothing shared changes until publish, so a
        // producer that dies holding this loan leaves no trace. Room is told
        // by the consumer's position, read only when the last value read
        // says the ring is full: the slots' cache lines then only ever move
        // from producer to consumer, and this loan reads none of them.
        if (pos - consumer_pos_ >= header_->capacity) {
            consumer_pos_ = header_->dequeue_pos.load(std::memory_order_acquire);
            if (pos - consumer_pos_ >= header_->capacity) return ChannelStatus::Full;
        }
    } else if (kind_ == ChannelKind::PubSub) {
        if (ChannelStatus st = try_loan_pubsub(pos); st != ChannelStatus::Ok) return st;
    } else {
        ChannelPeer& me = header_->peers[peer_];
        for (;;) {
            const std::uint64_t seq = slot(pos).seq.load(std::memory_order_acquire);
            const auto dif = static_cast<std::int64_t>(seq - pos);
            if (dif == 0) {
                // Announce the claim before making it (both seq_cst): a
                // consumer that sees the claim also sees who made it.
                me.intent.store(pos + 1, std::memory_order_seq_cst);
                if (header_->enqueue_pos.compare_exchange_weak(pos, pos + 1,
                                                               std::memory_order_seq_cst))
                    break;
                me.intent.store(0, std::memory_order_seq_cst);  // lost the race: not ours
            } else if (dif < 0) {
                // That slot still holds the previous lap's message; maybe a dead consumer's.
                if (stalled() && recover_dead_consumer()) continue;
                return ChannelStatus::Full;
            } else {
                pos = header_->enqueue_pos.load(std::memory_order_relaxed);  // another producer won
            }
        }
    }
    loan = {slot(pos).bytes(), size, pos};
    holding_ = true;
    stall_since_ns_ = 0;
    return ChannelStatus::Ok;
}

// PubSub: position `pos` reuses the slot of message pos - capacity. Block:
// only once every registered subscriber read it. Overwrite: at once, marking
// the slot first so no subscriber starts reading the old message, unless one
// holds a view of it right now.
ChannelStatus Channel::try_loan_pubsub(std::uint64_t pos) noexcept {
    const std::uint64_t cap = header_->capacity;
    if (pos < cap) return ChannelStatus::Ok;  // first lap: the slot never held a message
    const std::uint64_t oldest = pos - cap;
    if (oldest < min_cursor_) return ChannelStatus::Ok;  // every subscriber is past it
    min_cursor_ = min_subscriber_cursor();
    if (oldest < min_cursor_) return ChannelStatus::Ok;
    if (overflow() == ChannelOverflow::Overwrite) {
        // A subscriber announces its view (intent) and then re-checks the
        // sequence; here the mark comes first and then the intents (all
        // seq_cst): either it sees the mark and backs off, or this sees its intent.
        slot(pos).seq.store((pos + 1) | kMarkBit, std::memory_order_seq_cst);
        if (!viewed(oldest)) return ChannelStatus::Ok;
    }
    // Held back by a subscriber (its release wakes us), unless it died:
    // looked at every kRecoverAfter while stuck, so that a publisher polling
    // with try_loan (an epoll loop) gets past a dead subscriber too.
    if (stalled() && reap_dead_subscribers()) return try_loan_pubsub(pos);
    return ChannelStatus::Full;
}

// PubSub Overwrite: whether a registered subscriber holds a view of message `position`.
bool Channel::viewed(std::uint64_t position) const noexcept {
    const unsigned limit =
        std::min<unsigned>(kMaxPeers, header_->peer_limit.load(std::memory_order_seq_cst));
    for (unsigned i = 1; i < limit; ++i) {
        const ChannelPeer& p = header_->peers[i];
        if (p.intent.load(std::memory_order_seq_cst) == position + 1 &&
            token_role(p.token.load(std::memory_order_seq_cst)) ==
                role_bits(ChannelRole::Consumer))
            return true;
    }
    return false;
}

// True once every kRecoverAfter while a try_* call keeps failing (the first
// failure starts the clock; a success stops it, see try_loan/try_read).
bool Channel::stalled() noexcept {
    if (waiting_) return false;  // wait_until() recovers on its own schedule
    const std::int64_t now = sys::monotonic_ns();
    if (stall_since_ns_ == 0) {
        stall_since_ns_ = now;
        return false;
    }
    if (now - stall_since_ns_ < kRecoverAfterNs) return false;
    stall_since_ns_ = now;
    return true;
}

void Channel::publish(ChannelLoan& loan, std::size_t size) noexcept {
    Slot& s = slot(loan.position);
    s.size = static_cast<std::uint32_t>(std::min(size, loan.size));
    // The one store that makes the message visible, after all its bytes.
    store_visible(s.seq, loan.position + 1);
    if (kind_ == ChannelKind::Mpmc) {
        header_->peers[peer_].intent.store(0, std::memory_order_release);
        header_->sent.fetch_add(1, std::memory_order_relaxed);
    } else {
        header_->enqueue_pos.store(loan.position + 1, light_fence_ ? std::memory_order_release
                                                                    : std::memory_order_seq_cst);
    }
    header_->peers[peer_].messages.store(++messages_, std::memory_order_relaxed);
    loan = {};
    holding_ = false;
    notify(header_->data_wake);
}

void Channel::cancel(ChannelLoan& loan) noexcept {
    if (kind_ == ChannelKind::Mpmc) {
        // The position is claimed for good; consumers skip it.
        slot(loan.position).seq.store((loan.position + 1) | kMarkBit, std::memory_order_seq_cst);
        header_->peers[peer_].intent.store(0, std::memory_order_release);
        header_->abandoned.fetch_add(1, std::memory_order_relaxed);
        notify(header_->data_wake);
    }
    loan = {};
    holding_ = false;
}

// ------------------------------------------------------------------ consumer

ChannelStatus Channel::try_read(ChannelView& view) noexcept {
    if (role_ != ChannelRole::Consumer) return ChannelStatus::WrongRole;
    // SPSC takes the position only at release, so a second view would be the same message.
    if (holding_) return ChannelStatus::Busy;
    if (kind_ == ChannelKind::PubSub) return try_read_pubsub(view);
    std::uint64_t pos = header_->dequeue_pos.load(std::memory_order_relaxed);
    for (;;) {
        Slot& s = slot(pos);
        const std::uint64_t seq = s.seq.load(std::memory_order_acquire);
        const auto dif = static_cast<std::int64_t>((seq & ~kMarkBit) - (pos + 1));
        if (dif < 0) {  // not published yet; maybe claimed by a producer that died
            if (kind_ == ChannelKind::Mpmc && seq == pos && stalled() && recover_abandoned(pos))
                continue;
            return ChannelStatus::Empty;
        }
        if (dif > 0) {  // MPMC: already taken by another consumer (SPSC: cannot happen)
            pos = header_->dequeue_pos.load(std::memory_order_relaxed);
            continue;
        }
        if (kind_ == ChannelKind::Mpmc) {
            // As a producer's claim: announced first, so a producer that finds
            // this slot taken and never freed can tell whether we died.
            ChannelPeer& me = header_->peers[peer_];
            me.intent.store(pos + 1, std::memory_order_seq_cst);
            if (!header_->dequeue_pos.compare_exchange_weak(pos, pos + 1,
                                                            std::memory_order_seq_cst)) {
                me.intent.store(0, std::memory_order_seq_cst);
                continue;  // pos reloaded by the failed CAS
            }
        }
        if ((seq & kMarkBit) != 0) {  // a dead or cancelled producer's slot: skip it
            free_slot(pos);
            pos = header_->dequeue_pos.load(std::memory_order_relaxed);
            continue;
        }
        // A corrupt size must not make the view reach past the slot.
        view = {s.bytes(), std::min<std::size_t>(s.size, header_->max_message), pos, 0};
        holding_ = true;
        stall_since_ns_ = 0;
        return ChannelStatus::Ok;
    }
}

// PubSub: the message at this subscriber's cursor. A slot that already holds
// a later message (or is being rewritten) means the publisher overwrote what
// we had not read: skip to the oldest message still there and count the loss.
ChannelStatus Channel::try_read_pubsub(ChannelView& view) noexcept {
    const std::uint64_t cap = header_->capacity;
    const bool overwrite = overflow() == ChannelOverflow::Overwrite;
    ChannelPeer& me = header_->peers[peer_];
    for (;;) {
        const std::uint64_t c = cursor_;
        Slot& s = slot(c);
        std::uint64_t seq = s.seq.load(std::memory_order_acquire);
        if (seq == c + 1 && overwrite) {
            // Announce the view, then make sure the publisher has not started
            // rewriting the slot (it marks first, then looks at the intents).
            me.intent.store(c + 1, std::memory_order_seq_cst);
            seq = s.seq.load(std::memory_order_seq_cst);
            if (seq != c + 1) me.intent.store(0, std::memory_order_relaxed);
        }
        if (seq == c + 1) {
            view = {s.bytes(), std::min<std::size_t>(s.size, header_->max_message), c,
                    std::exchange(lost_pending_, 0)};
            holding_ = true;
            return ChannelStatus::Ok;
        }
        if ((seq & ~kMarkBit) <= c + 1) return ChannelStatus::Empty;  // not published yet
        const std::uint64_t w = header_->enqueue_pos.load(std::memory_order_acquire);
        const std::uint64_t next = std::max(c + 1, w >= cap ? w - cap + 1 : 0);
        const std::uint64_t missed = next - c;
        lost_ += missed;
        lost_pending_ += missed;
        cursor_ = next;
        me.cursor.store(next, std::memory_order_seq_cst);
        me.lost.store(lost_, std::memory_order_relaxed);
        header_->lost.fetch_add(missed, std::memory_order_relaxed);
    }
}

void Channel::release(ChannelView& view) noexcept {
    ChannelPeer& me = header_->peers[peer_];
    if (kind_ == ChannelKind::PubSub) {
        cursor_ = view.position + 1;
        // After every read of the view's bytes.
        store_visible(me.cursor, cursor_);
        if (overflow() == ChannelOverflow::Overwrite)
            me.intent.store(0, std::memory_order_seq_cst);
        me.messages.store(++messages_, std::memory_order_relaxed);
        view = {};
        holding_ = false;
        notify(header_->space_wake);
        return;
    }
    free_slot(view.position);
    if (kind_ == ChannelKind::Mpmc) header_->received.fetch_add(1, std::memory_order_relaxed);
    me.messages.store(++messages_, std::memory_order_relaxed);
    view = {};
    holding_ = false;
}

// SPSC/MPMC: hands the slot at `position` to the producer of the next lap.
void Channel::free_slot(std::uint64_t position) noexcept {
    if (kind_ == ChannelKind::Spsc) {
        // One store, after every read of the message: the producer reads
        // room from the position. SPSC takes the position only now, so a
        // consumer that dies holding a view leaves the message for its
        // successor (delivered at least once).
        store_visible(header_->dequeue_pos, position + 1);
    } else {
        store_visible(slot(position).seq, position + header_->capacity);
        header_->peers[peer_].intent.store(0, std::memory_order_release);
    }
    notify(header_->space_wake);
}

// ------------------------------------------------------------------ recovery

// MPMC: the slot at `position` is claimed (enqueue_pos is past it) but not
// published. If no live producer announces that position, its claimer died:
// mark the slot abandoned so consumers move on. Reads /proc, so only called
// after kRecoverAfterNs of waiting.
bool Channel::recover_abandoned(std::uint64_t position) noexcept {
    Slot& s = slot(position);
    std::uint64_t expected = position;
    if (s.seq.load(std::memory_order_seq_cst) != expected) return false;
    if (header_->enqueue_pos.load(std::memory_order_seq_cst) <= position)
        return false;  // unclaimed
    for (const ChannelPeer& p : header_->peers) {
        if (p.intent.load(std::memory_order_seq_cst) != position + 1) continue;
        if (token_alive(p.token.load(std::memory_order_seq_cst))) return false;  // still writing
    }
    if (!s.seq.compare_exchange_strong(expected, (position + 1) | kMarkBit,
                                       std::memory_order_seq_cst))
        return false;
    header_->abandoned.fetch_add(1, std::memory_order_relaxed);
    return true;
}

// MPMC: the ring is full at the producers' position because the slot there
// still holds the message of one lap earlier, which a consumer took
// (dequeue_pos is past it) but never released. If no live consumer announces
// that position, it died holding the message: the message is lost and the
// slot is freed for the producers. Reads /proc, so only called after
// kRecoverAfterNs of waiting.
bool Channel::recover_dead_consumer() noexcept {
    if (kind_ != ChannelKind::Mpmc) return false;
    const std::uint64_t pos = header_->enqueue_pos.load(std::memory_order_seq_cst);
    const std::uint64_t cap = header_->capacity;
    if (pos < cap) return false;
    const std::uint64_t taken = pos - cap;  // the consumer position occupying this slot
    Slot& s = slot(pos);
    std::uint64_t seq = s.seq.load(std::memory_order_seq_cst);
    if ((seq & ~kMarkBit) != taken + 1) return false;  // not a published, unreleased message
    if (header_->dequeue_pos.load(std::memory_order_seq_cst) <= taken) return false;  // merely full
    for (const ChannelPeer& p : header_->peers) {
        if (p.intent.load(std::memory_order_seq_cst) != taken + 1) continue;
        const std::uint64_t t = p.token.load(std::memory_order_seq_cst);
        if (token_role(t) == role_bits(ChannelRole::Consumer) && token_alive(t))
            return false;  // reading it
    }
    if (!s.seq.compare_exchange_strong(seq, pos, std::memory_order_seq_cst)) return false;
    header_->lost.fetch_add(1, std::memory_order_relaxed);
    notify(header_->space_wake);
    return true;
}

// PubSub: drops the entries of subscribers that died, so their read position
// (Block) or their view (Overwrite) no longer holds the publisher back.
// Reads /proc, so only called after kRecoverAfterNs of waiting.
bool Channel::reap_dead_subscribers() noexcept {
    bool reaped = false;
    const unsigned limit =
        std::min<unsigned>(kMaxPeers, header_->peer_limit.load(std::memory_order_seq_cst));
    for (unsigned i = 1; i < limit; ++i) {
        ChannelPeer& p = header_->peers[i];
        std::uint64_t t = p.token.load(std::memory_order_seq_cst);
        if (token_role(t) != role_bits(ChannelRole::Consumer) || token_alive(t)) continue;
        // Reserve the entry with our own token while clearing it, so a new
        // subscriber cannot take it half-cleared.
        if (!p.token.compare_exchange_strong(t, token_, std::memory_order_seq_cst)) continue;
        retire_entry(p, header_->departed, true, header_->data_wake.waiting);
        p.token.store(0, std::memory_order_seq_cst);
        reaped = true;
    }
    if (reaped) min_cursor_ = 0;
    return reaped;
}

}  // namespace pagewire
