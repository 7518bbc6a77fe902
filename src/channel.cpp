// pagewire::Channel: setup (create/open/validate/peer table) first, then the
// data path of one message, top to bottom: loan -> publish -> read -> release.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <new>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <pagewire/event.hpp>
#include <thread>

#include "sys.hpp"
#include "sys_ipc.hpp"

namespace pagewire {
namespace {

// "PWCHAN01" read as a little-endian integer.
constexpr std::uint64_t kMagic = 0x31304e4148435750ULL;
// Set in a slot's sequence instead of a message: a claimed position whose
// producer died or cancelled. Consumers skip it.
constexpr std::uint64_t kAbandonedBit = std::uint64_t{1} << 63;
constexpr std::size_t kCacheLine = 64;
constexpr std::size_t kSlotHeaderBytes = 16;  // Slot's fields before the message bytes
// How long an open waits for a creator that is still writing the header.
constexpr int kInitWaitMilliseconds = 1000;
// A waiting call sleeps at most this long between looks at the ring, so a
// lost wake-up or a dead peer costs latency, never a hang.
constexpr std::int64_t kMaxSleepNs = 20'000'000;
// How long an MPMC consumer waits on a claimed, unpublished slot before it
// asks the peer table whether the claimer is still alive (reads /proc).
constexpr std::int64_t kRecoverAfterNs = std::chrono::nanoseconds(Channel::kRecoverAfter).count();

// Peer table tokens: role in bits 62-63, pid in 32-61, low 32 bits of the
// process start time (clock ticks) in 0-31, so one CAS registers a process
// and a recycled pid never passes for the dead one.
constexpr unsigned kRoleShift = 62;
constexpr std::uint64_t kPidMask = (std::uint64_t{1} << 30) - 1;
// SPSC: the producer and the consumer each have one fixed entry, so a second
// live one fails its CAS.
constexpr unsigned kSpscProducerPeer = 0;
constexpr unsigned kSpscConsumerPeer = 1;

std::uint64_t role_bits(ChannelRole role) noexcept {
    return role == ChannelRole::Producer ? 1 : role == ChannelRole::Consumer ? 2 : 0;
}

std::uint64_t token_role(std::uint64_t token) noexcept {
    return token >> kRoleShift;
}

bool token_alive(std::uint64_t token) noexcept {
    if (token == 0) return false;
    auto pid = static_cast<pid_t>((token >> 32) & kPidMask);
    try {
        auto ticks = sys::process_start_ticks(pid);
        return ticks && (*ticks & 0xffffffffU) == (token & 0xffffffffU);
    } catch (...) {
        return true;  // cannot tell: assume alive, the safe side (never steal a live slot)
    }
}

std::string display_name(const std::string& name) {
    return name.starts_with('/') ? name : "/" + name;
}

}  // namespace

// One entry of the peer table.
struct ChannelPeer {
    std::atomic<std::uint64_t> token{0};  // 0: free; see kRoleShift
    // MPMC producer: position + 1 it is claiming or holds unpublished, 0 none.
    // Written before the claim, so a consumer can tell a dead claimer's slot.
    std::atomic<std::uint64_t> intent{0};
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
    std::uint32_t reserved0 = 0;
    std::uint64_t creator_start_ticks = 0;

    // Next position a producer claims / a consumer takes. Own cache lines:
    // producers and consumers must not false-share.
    alignas(kCacheLine) std::atomic<std::uint64_t> enqueue_pos{0};
    alignas(kCacheLine) std::atomic<std::uint64_t> dequeue_pos{0};
    // MPMC totals (SPSC's are the positions). A process killed between its
    // publish/release and the increment leaves them one short.
    alignas(kCacheLine) std::atomic<std::uint64_t> sent{0};
    alignas(kCacheLine) std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> abandoned{0};
    std::atomic<std::uint64_t> lost{0};  // MPMC: messages freed after their consumer died
    // Event objects (ManualReset): set after a publish / a release.
    alignas(kCacheLine) std::byte data_ready[sizeof(Event)];
    alignas(kCacheLine) std::byte space_ready[sizeof(Event)];
    alignas(kCacheLine) ChannelPeer peers[kMaxPeers];
};

// One ring slot. `seq` says whose turn it is (Vyukov): == position: free for
// the producer of that position; == position + 1: holds its message; ==
// position + capacity: taken, free for the next lap. The message bytes follow
// at kSlotHeaderBytes.
struct Channel::Slot {
    std::atomic<std::uint64_t> seq;
    std::uint32_t size;  // written before seq's release-store, read after its acquire-load
    std::uint32_t reserved;
    std::byte* bytes() noexcept { return reinterpret_cast<std::byte*>(this) + kSlotHeaderBytes; }
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

const char* channel_kind_name(ChannelKind kind) noexcept {
    switch (kind) {
        case ChannelKind::Spsc:
            return "spsc";
        case ChannelKind::Mpmc:
            return "mpmc";
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
    if (options.kind != ChannelKind::Spsc && options.kind != ChannelKind::Mpmc)
        throw_error("create channel", shown, EINVAL, "unknown channel kind");
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
        h->capacity = capacity;
        h->max_message = options.max_message;
        h->slot_stride = stride;
        h->header_size = sizeof(Header);
        h->creator_pid = ::getpid();
        h->creator_start_ticks = sys::process_start_ticks(::getpid()).value_or(0);
        Event::create_at(h->data_ready, Event::Mode::ManualReset);
        Event::create_at(h->space_ready, Event::Mode::ManualReset);
        std::byte* slots = segment.data() + sizeof(Header);
        for (std::size_t i = 0; i < capacity; ++i) new (slots + i * stride) Slot{{i}, 0, 0};
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

Channel Channel::open(const std::string& name, ChannelRole role,
                      std::optional<ChannelKind> expected_kind) {
    const std::string shown = display_name(name);
    Segment segment = Segment::open(Backend::Posix, name);
    auto refuse = [&](const std::string& why) { throw_error("open channel", shown, EPROTO, why); };
    if (segment.size() < sizeof(Header))
        refuse("not a pagewire channel (segment of " + std::to_string(segment.size()) +
               " bytes is smaller than a channel header)");
    auto* h = reinterpret_cast<Header*>(segment.data());
    std::uint64_t magic = h->magic.load(std::memory_order_acquire);
    for (int waited = 0; magic == 0 && waited < kInitWaitMilliseconds; ++waited) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a creator may be initializing
        magic = h->magic.load(std::memory_order_acquire);
    }
    if (magic != kMagic) refuse("not a pagewire channel (no channel header)");
    if (h->version != kLayoutVersion)
        refuse("channel layout version " + std::to_string(h->version) + ", this pagewire reads " +
               std::to_string(kLayoutVersion));
    if (h->kind != static_cast<std::uint32_t>(ChannelKind::Spsc) &&
        h->kind != static_cast<std::uint32_t>(ChannelKind::Mpmc))
        refuse("corrupt channel header (kind " + std::to_string(h->kind) + ")");
    const std::uint64_t cap = h->capacity;
    const bool sizes_ok =
        cap >= 2 && cap <= kMaxCapacity && std::has_single_bit(cap) && h->max_message >= 1 &&
        h->max_message <= kMaxMessage && h->header_size == sizeof(Header) &&
        h->slot_stride >= kSlotHeaderBytes + h->max_message && h->slot_stride % kCacheLine == 0 &&
        h->slot_stride <= (segment.size() - sizeof(Header)) / cap;
    if (!sizes_ok) refuse("corrupt channel header (sizes do not fit the segment)");
    auto kind = static_cast<ChannelKind>(h->kind);
    if (expected_kind && *expected_kind != kind)
        refuse(std::string("is an ") + channel_kind_name(kind) + " channel, not " +
               channel_kind_name(*expected_kind));
    return Channel(std::move(segment), role);
}

void Channel::remove(const std::string& name) {
    Segment::remove(Backend::Posix, name);
}

Channel::Channel(Segment segment, ChannelRole role) : segment_(std::move(segment)), role_(role) {
    header_ = reinterpret_cast<Header*>(segment_.data());
    slots_ = segment_.data() + header_->header_size;
    mask_ = header_->capacity - 1;
    stride_ = header_->slot_stride;
    data_ready_ = &Event::attach_at(header_->data_ready);  // throws if never initialized
    space_ready_ = &Event::attach_at(header_->space_ready);
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
        role_ = other.role_;
        peer_ = std::exchange(other.peer_, -1);
        token_ = std::exchange(other.token_, 0);
        data_ready_ = std::exchange(other.data_ready_, nullptr);
        space_ready_ = std::exchange(other.space_ready_, nullptr);
        holding_ = std::exchange(other.holding_, false);
    }
    return *this;
}

Channel::~Channel() {
    deregister_peer();
}

ChannelKind Channel::kind() const noexcept {
    return static_cast<ChannelKind>(header_->kind);
}
std::size_t Channel::capacity() const noexcept {
    return header_->capacity;
}
std::size_t Channel::max_message() const noexcept {
    return header_->max_message;
}

Channel::Slot& Channel::slot(std::uint64_t position) noexcept {
    static_assert(sizeof(Slot) == kSlotHeaderBytes, "Slot layout is part of the format");
    return *reinterpret_cast<Slot*>(slots_ + (position & mask_) * stride_);
}

void Channel::register_peer() {
    const pid_t pid = ::getpid();
    const std::uint64_t ticks = sys::process_start_ticks(pid).value_or(0);
    token_ = role_bits(role_) << kRoleShift | (static_cast<std::uint64_t>(pid) & kPidMask) << 32 |
             (ticks & 0xffffffffU);
    auto take = [&](unsigned index) {
        ChannelPeer& p = header_->peers[index];
        std::uint64_t old = p.token.load(std::memory_order_acquire);
        if (old != 0 && token_alive(old)) return false;
        if (!p.token.compare_exchange_strong(old, token_, std::memory_order_seq_cst)) return false;
        p.intent.store(0, std::memory_order_seq_cst);  // a dead predecessor's claim is void
        peer_ = static_cast<int>(index);
        return true;
    };
    if (kind() == ChannelKind::Spsc) {
        const bool producer = role_ == ChannelRole::Producer;
        if (!take(producer ? kSpscProducerPeer : kSpscConsumerPeer))
            throw_error("open channel", segment_.name(), EBUSY,
                        std::string("an spsc channel has one ") +
                            (producer ? "producer" : "consumer") + " and it is alive");
        repair_spsc();
        return;
    }
    for (unsigned i = 0; i < kMaxPeers; ++i)
        if (take(i)) return;
    throw_error("open channel", segment_.name(), EUSERS,
                "all " + std::to_string(kMaxPeers) + " peer entries are held by live processes");
}

void Channel::deregister_peer() noexcept {
    if (header_ == nullptr || peer_ < 0) return;
    ChannelPeer& p = header_->peers[peer_];
    p.intent.store(0, std::memory_order_seq_cst);
    std::uint64_t mine = token_;
    p.token.compare_exchange_strong(mine, 0, std::memory_order_seq_cst);
    peer_ = -1;
}

// SPSC publish and release each end with two stores (the slot's sequence,
// then the shared position); a predecessor killed between them left the
// position one step behind. The sequences say how far it really got: a slot
// past position p has sequence p + 1 once published and >= p + capacity once
// released (the peer may move it from one to the other meanwhile).
void Channel::repair_spsc() noexcept {
    const std::uint64_t cap = header_->capacity;
    if (role_ == ChannelRole::Producer) {
        std::uint64_t t = header_->enqueue_pos.load(std::memory_order_acquire);
        for (;; ++t) {
            const std::uint64_t seq = slot(t).seq.load(std::memory_order_acquire);
            if (seq != t + 1 && seq < t + cap) break;
        }
        header_->enqueue_pos.store(t, std::memory_order_release);
    } else if (role_ == ChannelRole::Consumer) {
        std::uint64_t h = header_->dequeue_pos.load(std::memory_order_acquire);
        while (slot(h).seq.load(std::memory_order_acquire) >= h + cap) ++h;
        header_->dequeue_pos.store(h, std::memory_order_release);
    }
}

ChannelStats Channel::stats() const noexcept {
    ChannelStats s;
    s.kind = kind();
    s.capacity = header_->capacity;
    s.max_message = header_->max_message;
    const std::uint64_t deq = header_->dequeue_pos.load(std::memory_order_acquire);
    const std::uint64_t enq = header_->enqueue_pos.load(std::memory_order_acquire);
    s.depth = enq > deq ? enq - deq : 0;
    if (s.kind == ChannelKind::Spsc) {  // the positions are exact, even across crashes
        s.sent = enq;
        s.received = deq;
    } else {
        s.sent = header_->sent.load(std::memory_order_relaxed);
        s.received = header_->received.load(std::memory_order_relaxed);
    }
    s.abandoned = header_->abandoned.load(std::memory_order_relaxed);
    s.lost = header_->lost.load(std::memory_order_relaxed);
    for (const ChannelPeer& p : header_->peers) {
        std::uint64_t t = p.token.load(std::memory_order_acquire);
        if (t == 0 || !token_alive(t)) continue;
        if (token_role(t) == role_bits(ChannelRole::Producer)) ++s.producers;
        if (token_role(t) == role_bits(ChannelRole::Consumer)) ++s.consumers;
    }
    s.creator_pid = header_->creator_pid;
    return s;
}

// ------------------------------------------------------------------ producer

ChannelStatus Channel::try_loan(std::size_t size, ChannelLoan& loan) noexcept {
    if (role_ != ChannelRole::Producer) return ChannelStatus::WrongRole;
    if (size > header_->max_message) return ChannelStatus::TooBig;
    // MPMC: the peer entry announces one claimed position; a second would hide the first.
    if (holding_) return ChannelStatus::Busy;
    std::uint64_t pos = header_->enqueue_pos.load(std::memory_order_relaxed);
    if (kind() == ChannelKind::Spsc) {
        // The only producer: nothing shared changes until publish, so a
        // producer that dies holding this loan leaves no trace.
        if (slot(pos).seq.load(std::memory_order_acquire) != pos) return ChannelStatus::Full;
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
                return ChannelStatus::Full;  // that slot still holds the previous lap's message
            } else {
                pos = header_->enqueue_pos.load(std::memory_order_relaxed);  // another producer won
            }
        }
    }
    loan = {slot(pos).bytes(), size, pos};
    holding_ = true;
    return ChannelStatus::Ok;
}

void Channel::publish(ChannelLoan& loan, std::size_t size) noexcept {
    Slot& s = slot(loan.position);
    s.size = static_cast<std::uint32_t>(std::min(size, loan.size));
    // The one store that makes the message visible, after all its bytes.
    s.seq.store(loan.position + 1, std::memory_order_release);
    if (kind() == ChannelKind::Spsc) {
        header_->enqueue_pos.store(loan.position + 1, std::memory_order_release);
    } else {
        header_->peers[peer_].intent.store(0, std::memory_order_release);
        header_->sent.fetch_add(1, std::memory_order_relaxed);
    }
    loan = {};
    holding_ = false;
    data_ready_->set();
}

void Channel::cancel(ChannelLoan& loan) noexcept {
    if (kind() == ChannelKind::Mpmc) {
        // The position is claimed for good; consumers skip it.
        slot(loan.position)
            .seq.store((loan.position + 1) | kAbandonedBit, std::memory_order_release);
        header_->peers[peer_].intent.store(0, std::memory_order_release);
        header_->abandoned.fetch_add(1, std::memory_order_relaxed);
        data_ready_->set();
    }
    loan = {};
    holding_ = false;
}

ChannelStatus Channel::try_send(std::span<const std::byte> message) noexcept {
    ChannelLoan l;
    ChannelStatus st = try_loan(message.size(), l);
    if (st != ChannelStatus::Ok) return st;
    if (!message.empty()) std::memcpy(l.data, message.data(), message.size());
    publish(l);
    return ChannelStatus::Ok;
}

// ------------------------------------------------------------------ waiting

namespace {

// Retries `attempt` until it returns anything but `busy` or the timeout
// passes; between tries it spins (BusyPoll) or sleeps on `event`
// (reset, re-try, then sleep, so a set() after the re-try is never lost).
// `on_stall` runs every kRecoverAfterNs of waiting.
template <class Attempt, class Stall>
ChannelStatus wait_until(Attempt attempt, Stall on_stall, ChannelStatus busy, Event& event,
                         std::chrono::nanoseconds timeout, WaitMode mode) noexcept {
    ChannelStatus st = attempt();
    if (st != busy) return st;
    const std::int64_t start = sys::monotonic_ns();
    const std::int64_t wait_ns = std::max<std::int64_t>(0, timeout.count());
    const std::int64_t deadline = wait_ns >= INT64_MAX - start ? INT64_MAX : start + wait_ns;
    std::int64_t next_stall = start + kRecoverAfterNs;
    for (;;) {
        const std::int64_t now = sys::monotonic_ns();
        if (now >= next_stall) {
            on_stall();
            next_stall = now + kRecoverAfterNs;
        }
        if (mode == WaitMode::BusyPoll) {
            sys::cpu_relax();
        } else {
            event.reset();
            // The reset must be ordered before the re-try's loads: a publish
            // the re-try misses then sets the event after it.
            std::atomic_thread_fence(std::memory_order_seq_cst);
            st = attempt();
            if (st != busy) return st;
            const std::int64_t sleep = std::min(kMaxSleepNs, deadline - now);
            if (sleep > 0) {
                if (mode == WaitMode::Sleep)
                    (void)event.wait_for(std::chrono::nanoseconds(sleep), std::chrono::nanoseconds(0));
                else
                    (void)event.wait_for(std::chrono::nanoseconds(sleep));
            }
        }
        st = attempt();
        if (st != busy) return st;
        if (sys::monotonic_ns() >= deadline) return ChannelStatus::TimedOut;
    }
}

}  // namespace

ChannelStatus Channel::loan(std::size_t size, ChannelLoan& l, std::chrono::nanoseconds timeout,
                            WaitMode mode) noexcept {
    return wait_until([&] { return try_loan(size, l); }, [&] { recover_dead_consumer(); },
                      ChannelStatus::Full, *space_ready_, timeout, mode);
}

ChannelStatus Channel::send(std::span<const std::byte> message, std::chrono::nanoseconds timeout,
                            WaitMode mode) noexcept {
    return wait_until([&] { return try_send(message); }, [&] { recover_dead_consumer(); },
                      ChannelStatus::Full, *space_ready_, timeout, mode);
}

ChannelStatus Channel::read(ChannelView& view, std::chrono::nanoseconds timeout,
                            WaitMode mode) noexcept {
    return wait_until(
        [&] { return try_read(view); },
        [&] {
            if (kind() == ChannelKind::Mpmc)
                recover_abandoned(header_->dequeue_pos.load(std::memory_order_seq_cst));
        },
        ChannelStatus::Empty, *data_ready_, timeout, mode);
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

// ------------------------------------------------------------------ consumer

ChannelStatus Channel::try_read(ChannelView& view) noexcept {
    if (role_ != ChannelRole::Consumer) return ChannelStatus::WrongRole;
    // SPSC takes the position only at release, so a second view would be the same message.
    if (holding_) return ChannelStatus::Busy;
    std::uint64_t pos = header_->dequeue_pos.load(std::memory_order_relaxed);
    for (;;) {
        Slot& s = slot(pos);
        const std::uint64_t seq = s.seq.load(std::memory_order_acquire);
        const auto dif = static_cast<std::int64_t>((seq & ~kAbandonedBit) - (pos + 1));
        if (dif < 0) return ChannelStatus::Empty;  // not published yet
        if (dif > 0) {  // already taken: by another consumer (MPMC) or a dead predecessor (SPSC)
            if (kind() == ChannelKind::Spsc)
                header_->dequeue_pos.store(++pos, std::memory_order_release);
            else
                pos = header_->dequeue_pos.load(std::memory_order_relaxed);
            continue;
        }
        if (kind() == ChannelKind::Mpmc) {
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
        if ((seq & kAbandonedBit) != 0) {  // a dead or cancelled producer's slot: skip it
            free_slot(pos);
            pos = header_->dequeue_pos.load(std::memory_order_relaxed);
            continue;
        }
        // A corrupt size must not make the view reach past the slot.
        view = {s.bytes(), std::min<std::size_t>(s.size, header_->max_message), pos};
        holding_ = true;
        return ChannelStatus::Ok;
    }
}

void Channel::release(ChannelView& view) noexcept {
    free_slot(view.position);
    if (kind() == ChannelKind::Mpmc) header_->received.fetch_add(1, std::memory_order_relaxed);
    view = {};
    holding_ = false;
}

// Hands the slot at `position` to the producer of the next lap.
void Channel::free_slot(std::uint64_t position) noexcept {
    slot(position).seq.store(position + header_->capacity, std::memory_order_release);
    if (kind() == ChannelKind::Mpmc)
        header_->peers[peer_].intent.store(0, std::memory_order_release);
    // SPSC takes the position only now: a consumer that dies holding a view
    // leaves the message for its successor (delivered at least once).
    if (kind() == ChannelKind::Spsc)
        header_->dequeue_pos.store(position + 1, std::memory_order_release);
    space_ready_->set();
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
    if (!s.seq.compare_exchange_strong(expected, (position + 1) | kAbandonedBit,
                                       std::memory_order_seq_cst))
        return false;
    header_->abandoned.fetch_add(1, std::memory_order_relaxed);
    return true;
}

}  // namespace pagewire

namespace pagewire {

// MPMC: the ring is full at the producers' position because the slot there
// still holds the message of one lap earlier, which a consumer took
// (dequeue_pos is past it) but never released. If no live consumer announces
// that position, it died holding the message: the message is lost and the
// slot is freed for the producers. Reads /proc, so only called after
// kRecoverAfterNs of waiting.
bool Channel::recover_dead_consumer() noexcept {
    if (kind() != ChannelKind::Mpmc) return false;
    const std::uint64_t pos = header_->enqueue_pos.load(std::memory_order_seq_cst);
    const std::uint64_t cap = header_->capacity;
    if (pos < cap) return false;
    const std::uint64_t taken = pos - cap;  // the consumer position occupying this slot
    Slot& s = slot(pos);
    std::uint64_t seq = s.seq.load(std::memory_order_seq_cst);
    if ((seq & ~kAbandonedBit) != taken + 1) return false;  // not a published, unreleased message
    if (header_->dequeue_pos.load(std::memory_order_seq_cst) <= taken) return false;  // merely full
    for (const ChannelPeer& p : header_->peers) {
        if (p.intent.load(std::memory_order_seq_cst) != taken + 1) continue;
        const std::uint64_t t = p.token.load(std::memory_order_seq_cst);
        if (token_role(t) == role_bits(ChannelRole::Consumer) && token_alive(t))
            return false;  // reading it
    }
    if (!s.seq.compare_exchange_strong(seq, pos, std::memory_order_seq_cst)) return false;
    header_->lost.fetch_add(1, std::memory_order_relaxed);
    space_ready_->set();
    return true;
}

}  // namespace pagewire
