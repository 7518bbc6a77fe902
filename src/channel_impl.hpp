// Internal to the channel implementation: the shared-memory layout of a
// channel, one handle's state (ChannelCore: peers, waiting, notification),
// and the table each channel kind implements its queue algorithm behind
// (channel_spsc.cpp, channel_mpmc.cpp, channel_pubsub.cpp). Not installed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <pagewire/channel.hpp>
#include <pagewire/segment.hpp>
#include <pagewire/unique_fd.hpp>
#include <string>

namespace pagewire::channel_detail {

// "PWCHAN01" read as a little-endian integer.
inline constexpr std::uint64_t kMagic = 0x31304e4148435750ULL;
// Set in a slot's sequence instead of a message. MPMC: a claimed position
// whose producer died or cancelled; consumers skip it. PubSub Overwrite: the
// publisher is rewriting the slot; its old message is gone.
inline constexpr std::uint64_t kMarkBit = std::uint64_t{1} << 63;
inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kSlotHeaderBytes = 16;  // Slot's fields before the message bytes
// How long a waiting call waits before it asks the peer table whether the
// peer it waits for is still alive (reads /proc).
inline constexpr std::int64_t kRecoverAfterNs =
    std::chrono::nanoseconds(Channel::kRecoverAfter).count();
// Wake::waiting: futex sleepers in the low half, armed descriptors in the high half.
inline constexpr std::uint64_t kArmedOne = std::uint64_t{1} << 32;
inline constexpr std::uint64_t kSleepersMask = kArmedOne - 1;

// Peer table tokens: role in bits 62-63, pid in 32-61, low 32 bits of the
// process start time (clock ticks) in 0-31, so one CAS registers a process
// and a recycled pid never passes for the dead one.
inline constexpr unsigned kRoleShift = 62;
inline constexpr std::uint64_t kPidMask = (std::uint64_t{1} << 30) - 1;

inline std::uint64_t role_bits(ChannelRole role) noexcept {
    return role == ChannelRole::Producer ? 1 : role == ChannelRole::Consumer ? 2 : 0;
}
inline std::uint64_t token_role(std::uint64_t token) noexcept {
    return token >> kRoleShift;
}
inline bool is_consumer_token(std::uint64_t token) noexcept {
    return token_role(token) == role_bits(ChannelRole::Consumer);
}
pid_t token_pid(std::uint64_t token) noexcept;
// Whether the registered process still runs (reads /proc; "cannot tell" is alive).
bool token_alive(std::uint64_t token) noexcept;

// One entry of the peer table: one cache line, written by its owner only
// (and by whoever reaps it after its owner died).
struct alignas(kCacheLine) Peer {
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
static_assert(sizeof(Peer) == kCacheLine);

// A futex eventcount: sleepers read `seq`, re-check, and sleep while it is
// unchanged; a notifier that sees `waiting` non-zero bumps it and wakes all.
struct Wake {
    std::atomic<std::uint32_t> seq{0};
    std::uint32_t reserved = 0;
    std::atomic<std::uint64_t> waiting{0};  // sleepers | armed descriptors << 32
};

// The channel header at the start of the segment's data. Read-only after
// creation except the atomics; magic is stored last (release).
struct Header {
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
    // then every notifier uses full fences (see ChannelCore::store_visible()).
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
    alignas(kCacheLine) Peer peers[Channel::kMaxPeers];
};

// One ring slot. MPMC: `seq` says whose turn it is (Vyukov): == position:
// free for the producer of that position; == position + 1: holds its
// message; == position + capacity: taken, free for the next lap. SPSC and
// PubSub: == position + 1 holds that message, anything smaller is no message
// yet; room for the producer is told by the consumers' positions instead, so
// consumers never write to slots. The message bytes follow at kSlotHeaderBytes.
// `size` and `check` are written before seq's release-store and read after its
// acquire-load; `check` echoes the size and the position (size_check()), so a
// changed size is told from the one written.
struct Slot {
    std::atomic<std::uint64_t> seq;
    std::uint32_t size;
    std::uint32_t check;
    std::byte* bytes() noexcept { return reinterpret_cast<std::byte*>(this) + kSlotHeaderBytes; }
};
static_assert(sizeof(Slot) == kSlotHeaderBytes, "Slot layout is part of the format");

// The check word of a message of `size` bytes at `position`; never that of
// a zeroed slot (size 0, check 0).
inline std::uint32_t size_check(std::uint32_t size, std::uint64_t position) noexcept {
    return ~size ^ static_cast<std::uint32_t>(position);
}
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

struct ChannelOps;

// One handle's state: the mapping, its registration in the peer table, and
// what the queue algorithm of its kind keeps per handle. Channel holds it
// through a unique_ptr, so moving a Channel moves one pointer. Not
// thread-safe. Destroying it deregisters the peer, then unmaps.
struct ChannelCore {
    ChannelCore(Segment segment, ChannelRole role);
    ~ChannelCore();
    ChannelCore(const ChannelCore&) = delete;
    ChannelCore& operator=(const ChannelCore&) = delete;

    Slot& slot(std::uint64_t position) const noexcept {
        return *reinterpret_cast<Slot*>(slots + (position & mask) * stride);
    }
    Peer& me() const noexcept { return header->peers[peer]; }
    // 1 + the highest peer entry in use, bounded by the table.
    unsigned peer_limit() const noexcept;

    // The store that makes a message (or room) visible, then the fence the
    // waiters' handshake needs (see channel.cpp).
    void store_visible(std::atomic<std::uint64_t>& word, std::uint64_t value) noexcept;
    // Wakes sleepers and armed descriptors on `wake`, if any (one load if none).
    void notify(Wake& wake) noexcept;
    void notify_armed(Wake& wake) noexcept;
    // True once every kRecoverAfter while a try_* call keeps failing.
    bool stalled() noexcept;
    // SPSC/PubSub: completes the publish a dead predecessor left half-done.
    void repair_producer() noexcept;

    // ---- corruption: each records what was found (Channel::corruption())
    // and returns ChannelStatus::Corrupt. Cold, out of line.
    ChannelStatus corrupt(const char* format, std::uint64_t a, std::uint64_t b,
                          std::uint64_t c = 0) noexcept;
    ChannelStatus sequence_ahead(std::uint64_t position, std::uint64_t seq) noexcept;
    ChannelStatus sequence_behind(std::uint64_t position, std::uint64_t seq) noexcept;
    // The view of the message at `position` in `s` once its sequence said it
    // is there; Corrupt if its size is beyond the slot or not the one written.
    ChannelStatus view_of(Slot& s, std::uint64_t position, std::uint64_t lost_before,
                          ChannelView& view) noexcept {
        const std::uint32_t size = s.size;
        if (!size_ok(s, size, position)) [[unlikely]]
            return bad_size(position, size);
        view = {s.bytes(), size, position, lost_before};
        return ChannelStatus::Ok;
    }
    bool size_ok(const Slot& s, std::uint32_t size, std::uint64_t position) const noexcept {
        return size <= max_message && s.check == size_check(size, position);
    }
    ChannelStatus bad_size(std::uint64_t position, std::uint32_t size) noexcept;
    // SPSC/MPMC: Corrupt unless dequeue_pos <= enqueue_pos + `slack` and
    // enqueue_pos - dequeue_pos <= capacity (`slack`: 1 where a consumer may
    // read a message before its producer moved the position, see SPSC).
    ChannelStatus check_queue_positions(std::uint64_t slack) noexcept;

    Segment segment;
    Header* header = nullptr;    // in segment
    std::byte* slots = nullptr;  // in segment: capacity slots of stride bytes
    // Copied from the header once it was validated, so that a header changed
    // later cannot make this handle reach outside the segment.
    std::uint64_t capacity = 0;
    std::uint64_t mask = 0;  // capacity - 1
    std::size_t stride = 0;
    std::size_t max_message = 0;
    ChannelKind kind = ChannelKind::Spsc;
    ChannelOverflow overflow = ChannelOverflow::Block;
    const ChannelOps* ops = nullptr;  // the queue algorithm of `kind`
    bool light_fence = false;         // this process is registered for sys::heavy_fence()
    ChannelRole role = ChannelRole::Observer;
    int peer = -1;                   // this handle's entry in the peer table, or -1
    std::uint64_t token = 0;         // role, pid and start ticks (low 32 bits), as registered
    bool holding = false;            // a loan or view of this handle is outstanding
    std::uint64_t messages = 0;      // published or released by this handle (its entry's copy)
    std::uint64_t cursor = 0;        // PubSub subscriber: next position to read
    std::uint64_t lost = 0;          // PubSub subscriber: messages missed
    std::uint64_t lost_pending = 0;  // ... not yet reported in a view's lost_before
    std::uint64_t min_cursor = 0;    // PubSub publisher: a lower bound of every subscriber's cursor
    std::uint64_t consumer_pos = 0;  // SPSC producer: the consumer's position, as last read
    std::int64_t stall_since_ns = 0;  // when try_* began failing at one spot (0: not)
    bool waiting = false;             // inside Channel::wait_until()
    char corruption[160] = {};        // what the last Corrupt status found, or ""
    UniqueFd notify_fd;               // the pollable descriptor (consumer/producer), or empty
    UniqueFd signal_fd;               // the unbound datagram socket notifications are sent from

  private:
    void register_peer();
    void deregister_peer() noexcept;
};

// A channel kind's queue algorithm. Channel's entry points do what every
// kind shares (roles, one loan/view at a time, the slot's size, counters of
// the handle, waking) and call these for the rest; one indirect call per
// operation, no virtual dispatch through the handle.
struct ChannelOps {
    // Producer: the ring position the next loan writes, claimed (MPMC) or
    // reserved for this producer; Full when there is no room.
    ChannelStatus (*claim)(ChannelCore&, std::uint64_t& position) noexcept;
    // After the slot's sequence made the message visible: positions and totals.
    void (*published)(ChannelCore&, std::uint64_t position) noexcept;
    // A loan given back unpublished.
    void (*cancel)(ChannelCore&, std::uint64_t position) noexcept;
    // Consumer: the next message, or Empty.
    ChannelStatus (*try_read)(ChannelCore&, ChannelView&) noexcept;
    // Frees what the view held for the producers (the waking is shared).
    void (*release)(ChannelCore&, const ChannelView&) noexcept;
    // Whether try_read / try_loan would find something now.
    bool (*readable)(const ChannelCore&) noexcept;
    bool (*writable)(const ChannelCore&) noexcept;
    // Run every kRecoverAfter by a waiting loan() / read(): crash recovery
    // and the checks too costly for every poll. Ok, or Corrupt.
    ChannelStatus (*loan_stalled)(ChannelCore&) noexcept;
    ChannelStatus (*read_stalled)(ChannelCore&) noexcept;
    // After this handle took its peer entry (repairs, joining a position).
    void (*joined)(ChannelCore&) noexcept;
    // depth, sent and received.
    void (*totals)(const ChannelCore&, ChannelStats&) noexcept;
    // A slot's sequence at creation.
    std::uint64_t (*initial_seq)(std::uint64_t index) noexcept;
    // Peer entries: the fixed one of a role (-1: any free one from
    // first_shared_entry on), and what its producer is called.
    int producer_entry;
    int consumer_entry;
    unsigned first_shared_entry;
    const char* producer_noun;
    bool subscriber_cursors;  // consumers read at their own cursors (lag, lost per peer)
};

extern const ChannelOps kSpscOps;
extern const ChannelOps kMpmcOps;
extern const ChannelOps kPubSubOps;

const ChannelOps& channel_ops(ChannelKind kind) noexcept;

// A dead process's entry, or one being reused: its armed descriptor no
// longer counts and a consumer's deliveries join the departed total (PubSub
// reports them). Called by whoever owns the entry now (after a successful
// token CAS); `old_token` is the token it held.
void retire_entry(Peer& entry, Header& header, std::uint64_t old_token) noexcept;

}  // namespace pagewire::channel_detail
