// pagewire::Channel — a bounded message channel between processes, in a POSIX
// shared memory segment, with a zero-copy loan API.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <pagewire/segment.hpp>
#include <span>
#include <string>

namespace pagewire {

class Event;

// How many producers and consumers a channel admits.
enum class ChannelKind : std::uint32_t {
    Spsc = 1,  // one producer, one consumer (at a time); a dead one's role can be taken over
    Mpmc = 2,  // any number of producers and consumers; each message goes to one consumer
};
const char* channel_kind_name(ChannelKind kind) noexcept;  // "spsc", "mpmc"

// What a handle does with the channel. Producer and Consumer register the
// process (pid + start time) in the channel header, which is how a dead peer
// is told from a live one; Observer only reads statistics.
enum class ChannelRole { Producer, Consumer, Observer };

// Outcome of a hot-path call; look at it.
enum class [[nodiscard]] ChannelStatus {
    Ok,
    Empty,      // nothing to receive now
    Full,       // no free slot now
    TooBig,     // the message is larger than max_message()
    TimedOut,   // a waiting call's timeout passed
    WrongRole,  // a consumer call on a producer handle, or the reverse
    Busy,       // this handle already holds a loan (producer) or a view (consumer):
                // publish/cancel or release it first
};
const char* channel_status_name(ChannelStatus status) noexcept;

// How waiting calls wait. All re-check the ring. BusyPoll never sleeps
// (lowest latency, one CPU at 100%); SpinThenSleep spins for the Event's spin
// time (50 us by default) and then sleeps on a futex in the header; Sleep
// goes to the futex at once (no CPU burnt, a wake-up costs a context switch).
enum class WaitMode { BusyPoll, SpinThenSleep, Sleep };

struct ChannelOptions {
    ChannelKind kind = ChannelKind::Spsc;
    std::size_t capacity = 1024;     // messages in flight; rounded up to a power of two
    std::size_t max_message = 4096;  // bytes; a bigger message is ChannelStatus::TooBig
    mode_t mode = 0600;              // of the segment
};

// A point-in-time view of the shared counters (each read separately, so the
// figures of a busy channel need not add up exactly). SPSC totals are exact;
// MPMC's can be one short per process killed right after a publish/release.
struct ChannelStats {
    ChannelKind kind = ChannelKind::Spsc;
    std::uint64_t capacity = 0;
    std::uint64_t max_message = 0;
    std::uint64_t depth = 0;      // messages claimed by producers and not yet taken by consumers
    std::uint64_t sent = 0;       // messages published, ever
    std::uint64_t received = 0;   // messages released by consumers, ever
    std::uint64_t abandoned = 0;  // slots claimed by a producer that died or cancelled (MPMC)
    std::uint64_t lost = 0;       // messages freed after the consumer holding them died (MPMC)
    unsigned producers = 0;       // registered producers still alive
    unsigned consumers = 0;       // registered consumers still alive
    pid_t creator_pid = 0;
};

// A slot lent to the producer: write up to `size` bytes at `data`, then
// publish() (or cancel()). Invalid after either.
struct ChannelLoan {
    std::byte* data = nullptr;
    std::size_t size = 0;
    std::uint64_t position = 0;  // internal: ring position of the slot
};

// A received message, in place in the segment, valid until release().
struct ChannelView {
    const std::byte* data = nullptr;
    std::size_t size = 0;
    std::uint64_t position = 0;  // internal: ring position of the slot
};

// One process's handle on a channel: the mapping plus its role. Move-only; not
// thread-safe (one handle per thread; several handles, in any processes, are
// fine as the kind allows). Destroying a Producer/Consumer handle deregisters
// it.
//
// Layout: a ChannelHeader (magic, layout version, kind, capacity, max message,
// creator pid + start time, positions, counters, futex events, peer table),
// then `capacity` slots of {sequence, size, bytes}. The data path is Vyukov's
// bounded queue: a slot's 64-bit sequence says whose turn it is; a message
// becomes visible only through one release-store of its sequence after its
// bytes are written, so a producer killed at any instruction never exposes a
// partial message.
//
// Crash safety:
// - SPSC: a loan does not touch shared state until publish, so a producer that
//   dies holding a loan leaves nothing behind; a new producer may open the
//   channel once the old one is dead (a second live producer is EBUSY) and
//   repairs the one step publish may have left half-done. Same for consumers:
//   the consumer's position moves only at release, so a message a dead
//   consumer was reading is read again by the next one (at least once).
// - MPMC: producers and consumers announce the position they are claiming in
//   their peer-table entry before claiming it. A consumer that waits on a slot
//   claimed but unpublished for a while checks the peer table; if no live
//   producer announces that position it marks the slot abandoned and moves on
//   (ChannelStats::abandoned). Likewise a producer that waits on a slot a
//   consumer took but never released frees it when no live consumer announces
//   it; that message is lost (ChannelStats::lost: at most once). So a dead
//   peer never wedges the others. Recovery runs in the waiting calls (loan,
//   send, read, receive), after kRecoverAfter of waiting; try_* never recover.
// - A live handle that never publishes/releases what it loaned/viewed blocks
//   the ring at that slot, as any bounded queue would.
// - "Dead" means /proc no longer shows the pid with the recorded start time;
//   a killed process that its parent has not reaped yet (a zombie) still
//   counts as alive until it is.
// - Waiting: every wait re-checks the ring at least every 20 ms, so a missed
//   wake-up or a dead peer costs latency, never a hang. No pollable fd yet.
class Channel {
  public:
    static constexpr std::uint32_t kLayoutVersion = 1;
    static constexpr std::size_t kMaxCapacity = std::size_t{1} << 24;      // slots
    static constexpr std::size_t kMaxMessage = std::size_t{64} << 20;      // bytes
    static constexpr std::size_t kMaxSegmentBytes = std::size_t{4} << 30;  // whole ring
    static constexpr unsigned kMaxPeers = 64;  // registered producers + consumers at a time
    // How long a waiting call waits on a stuck slot before it checks whether
    // the peer holding it is dead (which reads /proc).
    static constexpr std::chrono::milliseconds kRecoverAfter{20};

    // Creates the channel's POSIX segment "/NAME" (EEXIST if taken) and opens
    // it in `role`. Bad capacities or sizes are Error(EINVAL).
    static Channel create(const std::string& name, const ChannelOptions& options,
                          ChannelRole role = ChannelRole::Observer);
    // Opens an existing channel. A segment that is not a pagewire channel, of
    // another layout version, corrupt, or (when expected_kind is given) of
    // another kind is Error(EPROTO) saying which. EBUSY: the SPSC role is held
    // by a live process; EUSERS: the peer table is full.
    static Channel open(const std::string& name, ChannelRole role,
                        std::optional<ChannelKind> expected_kind = std::nullopt);
    // Removes the channel's segment name (handles stay valid until closed).
    static void remove(const std::string& name);

    Channel() noexcept = default;
    Channel(Channel&& other) noexcept;
    Channel& operator=(Channel&& other) noexcept;
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;
    ~Channel();

    ChannelKind kind() const noexcept;
    std::size_t capacity() const noexcept;
    std::size_t max_message() const noexcept;
    ChannelRole role() const noexcept { return role_; }
    const Segment& segment() const noexcept { return segment_; }
    ChannelStats stats() const noexcept;

    // ---- producer (hot paths; noexcept, look at the status)
    // Lends a slot for a message of `size` bytes (<= max_message()). One loan
    // at a time per handle (Busy otherwise).
    ChannelStatus try_loan(std::size_t size, ChannelLoan& loan) noexcept;
    ChannelStatus loan(std::size_t size, ChannelLoan& loan, std::chrono::nanoseconds timeout,
                       WaitMode mode = WaitMode::SpinThenSleep) noexcept;
    // Makes the loaned message visible (one release-store) and wakes a sleeping consumer.
    // `size` may shrink the loan's size; larger is clamped to it.
    void publish(ChannelLoan& loan, std::size_t size) noexcept;
    void publish(ChannelLoan& loan) noexcept { publish(loan, loan.size); }
    // Gives a loan back unpublished (MPMC: the slot is skipped as abandoned).
    void cancel(ChannelLoan& loan) noexcept;
    // Copying conveniences on top of the loan. MPMC: a waiting loan()/send()
    // is where a slot held by a dead consumer is found and freed.
    ChannelStatus try_send(std::span<const std::byte> message) noexcept;
    ChannelStatus send(std::span<const std::byte> message, std::chrono::nanoseconds timeout,
                       WaitMode mode = WaitMode::SpinThenSleep) noexcept;

    // ---- consumer
    // The next message, in place; release() it when done. One view at a time
    // per handle (Busy otherwise). MPMC: a waiting read() is also where a dead
    // producer's claimed slot is detected and skipped.
    ChannelStatus try_read(ChannelView& view) noexcept;
    ChannelStatus read(ChannelView& view, std::chrono::nanoseconds timeout,
                       WaitMode mode = WaitMode::SpinThenSleep) noexcept;
    // Frees the slot for producers and wakes a sleeping one.
    void release(ChannelView& view) noexcept;
    // Copies the next message into `buffer` (at least max_message() bytes, or
    // the message is cut to fit), its length into `size`.
    ChannelStatus try_receive(std::span<std::byte> buffer, std::size_t& size) noexcept;
    ChannelStatus receive(std::span<std::byte> buffer, std::size_t& size,
                          std::chrono::nanoseconds timeout,
                          WaitMode mode = WaitMode::SpinThenSleep) noexcept;

    static constexpr std::chrono::nanoseconds kForever = std::chrono::nanoseconds::max();

  private:
    struct Header;
    struct Slot;
    Channel(Segment segment, ChannelRole role);
    Slot& slot(std::uint64_t position) noexcept;
    void register_peer();
    void deregister_peer() noexcept;
    void repair_spsc() noexcept;
    bool recover_abandoned(std::uint64_t position) noexcept;
    bool recover_dead_consumer() noexcept;
    void free_slot(std::uint64_t position) noexcept;

    Segment segment_;
    Header* header_ = nullptr;    // in segment_
    std::byte* slots_ = nullptr;  // in segment_: capacity slots of header_->slot_stride bytes
    std::uint64_t mask_ = 0;      // capacity - 1
    std::size_t stride_ = 0;
    ChannelRole role_ = ChannelRole::Observer;
    int peer_ = -1;                 // this handle's entry in the peer table, or -1
    std::uint64_t token_ = 0;       // role, pid and start ticks (low 32 bits), as registered
    Event* data_ready_ = nullptr;   // in header_: set after each publish
    Event* space_ready_ = nullptr;  // in header_: set after each release
    bool holding_ = false;          // a loan or view of this handle is outstanding
};

}  // namespace pagewire
