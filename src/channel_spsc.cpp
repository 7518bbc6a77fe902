// ChannelKind::Spsc: one producer and one consumer, each in a fixed peer
// entry. The producer writes slots and moves enqueue_pos at publish; the
// consumer reads the slot at dequeue_pos and moves it at release. Consumers
// never write to slots and the producer reads dequeue_pos only when the last
// value it read says the ring is full, so a message's cache lines only move
// from producer to consumer.
#include <pagewire/channel.hpp>

#include "channel_impl.hpp"

namespace pagewire::channel_detail {
namespace {

// Peer entries of the two roles: a second live producer or consumer fails its CAS.
constexpr int kProducerEntry = 0;
constexpr int kConsumerEntry = 1;

// The only producer: nothing shared changes until publish, so a producer
// that dies holding this loan leaves no trace.
ChannelStatus claim(ChannelCore& c, std::uint64_t& pos) noexcept {
    pos = c.header->enqueue_pos.load(std::memory_order_relaxed);
    if (pos - c.consumer_pos >= c.capacity) {
        c.consumer_pos = c.header->dequeue_pos.load(std::memory_order_acquire);
        if (pos - c.consumer_pos >= c.capacity) {
            // The consumer is never ahead of this producer's position (which
            // repair_producer() made whole at open), nor a lap behind it.
            if (c.consumer_pos > pos || pos - c.consumer_pos > c.capacity) [[unlikely]]
                if (ChannelStatus st = c.check_queue_positions(0); st != ChannelStatus::Ok)
                    return st;
            return ChannelStatus::Full;
        }
    }
    return ChannelStatus::Ok;
}

void published(ChannelCore& c, std::uint64_t pos) noexcept {
    c.header->enqueue_pos.store(
        pos + 1, c.light_fence ? std::memory_order_release : std::memory_order_seq_cst);
}

void cancel(ChannelCore&, std::uint64_t) noexcept {}  // a loan touched nothing shared

ChannelStatus try_read(ChannelCore& c, ChannelView& view) noexcept {
    const std::uint64_t pos = c.header->dequeue_pos.load(std::memory_order_relaxed);
    Slot& s = c.slot(pos);
    const std::uint64_t seq = s.seq.load(std::memory_order_acquire);
    if (seq == pos + 1) return c.view_of(s, pos, 0, view);
    // No message yet: the slot still holds the previous lap's (or its
    // initial sequence, pos, in the first lap). Anything else no producer wrote.
    if (seq > pos + 1) return c.sequence_ahead(pos, seq);
    if (seq + c.capacity < pos + 1) return c.sequence_behind(pos, seq);
    return ChannelStatus::Empty;
}

// The consumer's position may run one ahead of the producer's (a producer
// killed between its two stores of publish), never more, nor a ring behind;
// and a producer past this position has published the message there.
ChannelStatus check_consumer(ChannelCore& c) noexcept {
    if (ChannelStatus st = c.check_queue_positions(1); st != ChannelStatus::Ok) return st;
    const std::uint64_t pos = c.header->dequeue_pos.load(std::memory_order_acquire);
    if (c.header->enqueue_pos.load(std::memory_order_acquire) <= pos) return ChannelStatus::Ok;
    const std::uint64_t seq = c.slot(pos).seq.load(std::memory_order_acquire);
    if (seq != pos + 1) return c.sequence_behind(pos, seq);
    return ChannelStatus::Ok;
}

// One store, after every read of the message: the producer reads room from
// the position. SPSC takes the position only now, so a consumer that dies
// holding a view leaves the message for its successor (delivered at least once).
void release(ChannelCore& c, const ChannelView& view) noexcept {
    c.store_visible(c.header->dequeue_pos, view.position + 1);
}

bool readable(const ChannelCore& c) noexcept {
    const std::uint64_t pos = c.header->dequeue_pos.load(std::memory_order_seq_cst);
    return (c.slot(pos).seq.load(std::memory_order_seq_cst) & ~kMarkBit) >= pos + 1;
}

bool writable(const ChannelCore& c) noexcept {
    return c.header->enqueue_pos.load(std::memory_order_seq_cst) -
               c.header->dequeue_pos.load(std::memory_order_seq_cst) <
           c.capacity;
}

// Both roles are taken over at open; the producer checks the positions at every Full.
ChannelStatus nothing_to_recover(ChannelCore&) noexcept {
    return ChannelStatus::Ok;
}

void joined(ChannelCore& c) noexcept {
    if (c.role == ChannelRole::Producer) c.repair_producer();
}

// The positions are exact, even across crashes.
void totals(const ChannelCore& c, ChannelStats& s) noexcept {
    const std::uint64_t enq = c.header->enqueue_pos.load(std::memory_order_acquire);
    const std::uint64_t deq = c.header->dequeue_pos.load(std::memory_order_acquire);
    s.depth = enq > deq ? enq - deq : 0;
    s.sent = enq;
    s.received = deq;
}

// Slot i is free for position i: its sequence is below i + 1.
std::uint64_t initial_seq(std::uint64_t index) noexcept {
    return index;
}

}  // namespace

const ChannelOps kSpscOps = {
    .claim = claim,
    .published = published,
    .cancel = cancel,
    .try_read = try_read,
    .release = release,
    .readable = readable,
    .writable = writable,
    .loan_stalled = nothing_to_recover,
    .read_stalled = check_consumer,
    .joined = joined,
    .totals = totals,
    .initial_seq = initial_seq,
    .producer_entry = kProducerEntry,
    .consumer_entry = kConsumerEntry,
    .first_shared_entry = 0,
    .producer_noun = "producer",
    .subscriber_cursors = false,
};

}  // namespace pagewire::channel_detail
