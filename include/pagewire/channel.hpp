// pagewire::Channel — a bounded message channel between processes, in a POSIX
// shared memory segment, with a zero-copy loan API.
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <pagewire/config.hpp>
#include <pagewire/segment.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pagewire {

namespace channel_detail {
struct ChannelCore;
struct Wake;
}  // namespace channel_detail

// How many producers and consumers a channel admits.
enum class ChannelKind : std::uint32_t {
    Spsc = 1,    // one producer, one consumer (at a time); a dead one's role can be taken over
    Mpmc = 2,    // any number of producers and consumers; each message goes to one consumer
    PubSub = 3,  // one publisher (at a time), up to kMaxPeers - 1 subscribers joining and
                 // leaving at any time; every subscriber sees every message published
                 // after it joined (see ChannelOverflow for slow subscribers)
};
const char* channel_kind_name(ChannelKind kind) noexcept;  // "spsc", "mpmc", "pubsub"
std::optional<ChannelKind> parse_channel_kind(std::string_view name) noexcept;

// PubSub: what the publisher does when a subscriber is a whole ring behind.
enum class ChannelOverflow : std::uint32_t {
    Block = 0,      // wait for the slowest live subscriber (no subscriber loses anything)
    Overwrite = 1,  // overwrite the oldest message; a subscriber that had not read it yet
                    // skips ahead and is told how many it lost (ChannelView::lost_before)
};
const char* channel_overflow_name(ChannelOverflow overflow) noexcept;  // "block", "overwrite"

// What a handle does with the channel. Producer (publisher) and Consumer
// (subscriber) register the process (pid + start time) in the channel
// header, which is how a dead peer is told from a live one; Observer only
// reads statistics.
enum class ChannelRole { Producer, Consumer, Observer };
const char* channel_role_name(ChannelRole role) noexcept;  // "producer", "consumer", "observer"

// Outcome of a hot-path call; look at it.
enum class [[nodiscard]] ChannelStatus{
    Ok,
    Empty,      // nothing to receive now
    Full,       // no free slot now
    TooBig,     // the message is larger than max_message()
    TimedOut,   // a waiting call's timeout passed
    WrongRole,  // a consumer call on a producer handle, or the reverse
    Busy,       // this handle already holds a loan (producer) or a view (consumer):
                // publish/cancel or release it first
    Corrupt,    // the shared state is one no peer can have written (a corrupted
                // segment): Channel::corruption() says what; drop the handle
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
    ChannelOverflow overflow = ChannelOverflow::Block;  // PubSub only (others: Block)
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
    // MPMC: messages freed after the consumer holding them died. PubSub
    // Overwrite: messages subscribers missed because they were overwritten.
    std::uint64_t lost = 0;
    unsigned producers = 0;  // registered producers (publishers) still alive
    unsigned consumers = 0;  // registered consumers (subscribers) still alive
    pid_t creator_pid = 0;
    ChannelOverflow overflow = ChannelOverflow::Block;
};

// One registered process (ChannelRole Producer or Consumer), as Channel::peers() lists them.
struct ChannelPeerInfo {
    unsigned index = 0;  // entry in the peer table
    ChannelRole role = ChannelRole::Observer;
    pid_t pid = 0;
    bool alive = false;          // the pid still runs with the start time it registered with
    std::uint64_t messages = 0;  // published (producer) or released (consumer) by it
    std::uint64_t lag = 0;       // PubSub subscriber: messages published it has not read yet
    std::uint64_t lost = 0;      // PubSub subscriber: messages it missed (Overwrite)
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
    std::uint64_t position = 0;     // ring position: a PubSub message's sequence number
    std::uint64_t lost_before = 0;  // PubSub Overwrite: messages missed just before this one
};

// One process's handle on a channel: the mapping plus its role. Move-only; not
// thread-safe (one handle per thread; several handles, in any processes, are
// fine as the kind allows). Destroying a Producer/Consumer handle deregisters
// it.
//
// Layout (version 3): a header (magic, layout version, kind, overflow policy,
// capacity, max message, creator pid + start time, positions, counters, two
// wait words, a peer table of one cache line per registered process), then
// `capacity` slots of {sequence, size, size check, bytes}. A slot's 64-bit sequence says
// whose turn it is (Vyukov's bounded queue); a message becomes visible only
// through one store of its sequence after its bytes are written, so a
// producer killed at any instruction never exposes a partial message.
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
//   it; that message is lost (ChannelStats::lost: at most once).
// - PubSub: the publisher is taken over as in SPSC. Each subscriber's entry
//   holds its read position; Block waits for the slowest registered one, and
//   a subscriber that died is dropped from the table by the waiting publisher
//   once /proc says so. Overwrite never waits for a backlog, only for a
//   subscriber that holds a view of the very slot it is about to reuse (the
//   view stays intact until release); a dead viewer is dropped the same way.
// - Recovery runs once a call has been held up by the same peer for
//   kRecoverAfter: in the waiting calls (loan, send, read, receive), and in
//   try_loan/try_read called repeatedly (a poll loop). A live handle that never
//   publishes/releases what it loaned/viewed blocks the ring at that slot, as
//   any bounded queue would.
// - "Dead" means /proc no longer shows the pid with the recorded start time;
//   a killed process that its parent has not reaped yet (a zombie) still
//   counts as alive until it is.
//
// Waiting: BusyPoll, SpinThenSleep or Sleep (WaitMode) in the waiting calls,
// or a pollable descriptor for an epoll loop (notify_fd() + arm()). Sleepers
// wait on a futex sequence word (an eventcount), so any number of them are
// woken without lost wake-ups; a publish or release makes a system call only
// when someone sleeps or armed a descriptor. Every wait re-checks the ring at
// least every 20 ms, so a dead peer costs latency, never a hang.
//
// Corruption: calls check what they read against what a peer can have
// written (a slot's sequence against its position, a message's size against
// the slot and against the size echo stored with it, the positions against
// each other; waiting calls look at the positions every kRecoverAfter) and
// return ChannelStatus::Corrupt rather than spin or hand out a bad view.
// Message bytes carry no checksum: a changed payload byte goes unnoticed.
class Channel {
  public:
    static constexpr std::uint32_t kLayoutVersion = 3;
    static constexpr std::size_t kMaxCapacity = std::size_t{1} << 24;      // slots
    static constexpr std::size_t kMaxMessage = std::size_t{64} << 20;      // bytes
    static constexpr std::size_t kMaxSegmentBytes = std::size_t{4} << 30;  // whole ring
    static constexpr unsigned kMaxPeers = 64;  // registered producers + consumers at a time
    // How long a waiting call waits on a stuck slot before it checks whether
    // the peer holding it is dead (which reads /proc).
    static constexpr std::chrono::milliseconds kRecoverAfter{20};
    // SpinThenSleep's spin before sleeping, unless set_spin() changed it.
    static constexpr std::chrono::nanoseconds kDefaultSpin = std::chrono::microseconds(50);

    // Creates the channel's POSIX segment "/NAME" (EEXIST if taken) and opens
    // it in `role`. Bad capacities or sizes are Error(EINVAL).
    static Channel create(const std::string& name, const ChannelOptions& options,
                          ChannelRole role = ChannelRole::Observer);
    // Opens an existing channel. A segment that is not a pagewire channel, of
    // another layout version, corrupt, or (when expected_kind is given) of
    // another kind is Error(EPROTO) saying which. EBUSY: the SPSC producer or
    // consumer, or the PubSub publisher, is a live process; EUSERS: the peer
    // table is full. A PubSub subscriber receives what is published after
    // it opened.
    static Channel open(const std::string& name, ChannelRole role,
                        std::optional<ChannelKind> expected_kind = std::nullopt);
    // The statistics of the POSIX segment "/NAME" if it is a channel this
    // pagewire reads, nullopt if it is some other segment (no waiting, read
    // only). Error when the segment cannot be opened.
    static std::optional<ChannelStats> inspect(const std::string& name);
    // Removes the channel's segment name (handles stay valid until closed).
    static void remove(const std::string& name);

    Channel() noexcept;
    Channel(Channel&& other) noexcept;
    Channel& operator=(Channel&& other) noexcept;
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;
    ~Channel();

    ChannelKind kind() const noexcept;
    ChannelOverflow overflow() const noexcept;
    std::size_t capacity() const noexcept;
    std::size_t max_message() const noexcept;
    ChannelRole role() const noexcept;  // Observer for a moved-from handle
    const Segment& segment() const noexcept;
    ChannelStats stats() const noexcept;
    // The registered producers and consumers (alive or not yet found dead).
    std::vector<ChannelPeerInfo> peers() const;
    // PubSub subscriber: messages this handle missed (Overwrite), in all.
    std::uint64_t lost() const noexcept;
    // What the last ChannelStatus::Corrupt of this handle found, e.g. "slot 5
    // sequence 77 is ahead of position 5"; "" if none.
    std::string corruption() const;

    // SpinThenSleep's spin time, for every process using the channel.
    std::chrono::nanoseconds spin() const noexcept;
    void set_spin(std::chrono::nanoseconds spin) noexcept;

    // ---- producer (hot paths; noexcept, look at the status)
    // Lends a slot for a message of `size` bytes (<= max_message()). One loan
    // at a time per handle (Busy otherwise).
    ChannelStatus try_loan(std::size_t size, ChannelLoan& loan) noexcept;
    ChannelStatus loan(std::size_t size, ChannelLoan& loan, std::chrono::nanoseconds timeout,
                       WaitMode mode = WaitMode::SpinThenSleep) noexcept;
    // Makes the loaned message visible (one store) and wakes sleeping consumers.
    // `size` may shrink the loan's size; larger is clamped to it.
    void publish(ChannelLoan& loan, std::size_t size) noexcept;
    void publish(ChannelLoan& loan) noexcept { publish(loan, loan.size); }
    // Gives a loan back unpublished (MPMC: the slot is skipped as abandoned;
    // PubSub Overwrite: the message the slot held is gone all the same).
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

    // ---- pollable waiting (producer and consumer handles)
    // A descriptor, owned by the handle, that becomes readable when the
    // channel may have something for this handle (a message for a consumer,
    // room for a producer) after arm(). Put it in epoll/poll for reading.
    // Created on the first call (Error on failure); a Unix datagram socket in
    // the abstract namespace, so nothing is left behind by a crash.
    int notify_fd();
    // Call before sleeping in epoll/poll: empties the descriptor, asks the
    // peers to signal it on their next publish/release, and re-checks.
    // Returns false when there is already something to do (don't sleep: call
    // try_read/try_loan); true when it is safe to sleep on notify_fd().
    // A peer that dies sends nothing: poll with a timeout (kRecoverAfter is
    // a good one) and call try_* again, which is where dead peers are found.
    bool arm() noexcept;
    // Whether try_read (consumer) or try_loan of a max-size message
    // (producer) would find something now, without taking it.
    bool ready() const noexcept;

    static constexpr std::chrono::nanoseconds kForever = std::chrono::nanoseconds::max();

  private:
    explicit Channel(std::unique_ptr<channel_detail::ChannelCore> core) noexcept;
    template <class Attempt, class Stall>
    ChannelStatus wait_until(Attempt attempt, Stall on_stall, ChannelStatus busy,
                             channel_detail::Wake& wake, std::chrono::nanoseconds timeout,
                             WaitMode mode) noexcept;

    // Everything a handle holds (mapping, registration, per-kind positions);
    // null in a default-constructed or moved-from handle.
    std::unique_ptr<channel_detail::ChannelCore> core_;
};

}  // namespace pagewire
