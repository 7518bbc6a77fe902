// ChannelKind::PubSub: one publisher (fixed peer entry 0) and subscribers in
// the other entries, each reading at its own cursor (published in its entry).
// Slots are never freed by subscribers: the publisher reuses the slot of
// message pos - capacity once every registered subscriber read it (Block),
// or at once, marking it first (Overwrite), unless a subscriber holds a view
// of it right now; a subscriber that finds a later message at its cursor
// skips ahead and counts what it lost.
#include <pagewire/channel.hpp>

#include "channel_impl.hpp"
#include "sys_ipc.hpp"

namespace pagewire::channel_detail {
namespace {

constexpr int kPublisherEntry = 0;
constexpr unsigned kFirstSubscriberEntry = 1;

// The smallest read position of the registered subscribers (their liveness
// is not checked here: a dead one counts until it is reaped), or the
// publisher's position when there are none.
std::uint64_t min_subscriber_cursor(const ChannelCore& c) noexcept {
    std::uint64_t min = c.header->enqueue_pos.load(std::memory_order_seq_cst);
    const unsigned limit = c.peer_limit();
    for (unsigned i = kFirstSubscriberEntry; i < limit; ++i) {
        const Peer& p = c.header->peers[i];
        if (!is_consumer_token(p.token.load(std::memory_order_seq_cst))) continue;
        min = std::min(min, p.cursor.load(std::memory_order_seq_cst));
    }
    return min;
}

// Overwrite: whether a registered subscriber holds a view of message `position`.
bool viewed(const ChannelCore& c, std::uint64_t position) noexcept {
    const unsigned limit = c.peer_limit();
    for (unsigned i = kFirstSubscriberEntry; i < limit; ++i) {
        const Peer& p = c.header->peers[i];
        if (p.intent.load(std::memory_order_seq_cst) == position + 1 &&
            is_consumer_token(p.token.load(std::memory_order_seq_cst)))
            return true;
    }
    return false;
}

// Drops the entries of subscribers that died, so their read position
// (Block) or their view (Overwrite) no longer holds the publisher back.
// Reads /proc, so only called after kRecoverAfterNs of waiting.
bool reap_dead_subscribers(ChannelCore& c) noexcept {
    bool reaped = false;
    const unsigned limit = c.peer_limit();
    for (unsigned i = kFirstSubscriberEntry; i < limit; ++i) {
        Peer& p = c.header->peers[i];
        std::uint64_t t = p.token.load(std::memory_order_seq_cst);
        if (!is_consumer_token(t) || token_alive(t)) continue;
        // Reserve the entry with our own token while clearing it, so a new
        // subscriber cannot take it half-cleared.
        if (!p.token.compare_exchange_strong(t, c.token, std::memory_order_seq_cst)) continue;
        retire_entry(p, *c.header, t);
        p.token.store(0, std::memory_order_seq_cst);
        reaped = true;
    }
    if (reaped) c.min_cursor = 0;
    return reaped;
}

// Position `pos` reuses the slot of message pos - capacity. Block: only once
// every registered subscriber read it. Overwrite: at once, marking the slot
// first so no subscriber starts reading the old message, unless one holds a
// view of it right now.
ChannelStatus claim_at(ChannelCore& c, std::uint64_t pos) noexcept {
    if (pos < c.capacity) return ChannelStatus::Ok;  // first lap: the slot never held a message
    const std::uint64_t oldest = pos - c.capacity;
    if (oldest < c.min_cursor) return ChannelStatus::Ok;  // every subscriber is past it
    c.min_cursor = min_subscriber_cursor(c);
    if (oldest < c.min_cursor) return ChannelStatus::Ok;
    if (c.overflow == ChannelOverflow::Overwrite) {
        // A subscriber announces its view (intent) and then re-checks the
        // sequence; here the mark comes first and then the intents (all
        // seq_cst): either it sees the mark and backs off, or this sees its intent.
        c.slot(pos).seq.store((pos + 1) | kMarkBit, std::memory_order_seq_cst);
        if (!viewed(c, oldest)) return ChannelStatus::Ok;
    }
    // Held back by a subscriber (its release wakes us), unless it died:
    // looked at every kRecoverAfter while stuck, so that a publisher polling
    // with try_loan (an epoll loop) gets past a dead subscriber too.
    if (c.stalled() && reap_dead_subscribers(c)) return claim_at(c, pos);
    return ChannelStatus::Full;
}

ChannelStatus claim(ChannelCore& c, std::uint64_t& pos) noexcept {
    pos = c.header->enqueue_pos.load(std::memory_order_relaxed);
    return claim_at(c, pos);
}

void published(ChannelCore& c, std::uint64_t pos) noexcept {
    c.header->enqueue_pos.store(
        pos + 1, c.light_fence ? std::memory_order_release : std::memory_order_seq_cst);
}

// Nothing shared changed (Overwrite: the old message the slot held is gone all the same).
void cancel(ChannelCore&, std::uint64_t) noexcept {}

// The message at this subscriber's cursor. A slot that already holds a later
// message (or is being rewritten) means the publisher overwrote what we had
// not read: skip to the oldest message still there and count the loss.
ChannelStatus try_read(ChannelCore& c, ChannelView& view) noexcept {
    const bool overwrite = c.overflow == ChannelOverflow::Overwrite;
    Peer& me = c.me();
    for (;;) {
        const std::uint64_t cur = c.cursor;
        Slot& s = c.slot(cur);
        std::uint64_t seq = s.seq.load(std::memory_order_acquire);
        if (seq == cur + 1 && overwrite) {
            // Announce the view, then make sure the publisher has not started
            // rewriting the slot (it marks first, then looks at the intents).
            me.intent.store(cur + 1, std::memory_order_seq_cst);
            seq = s.seq.load(std::memory_order_seq_cst);
            if (seq != cur + 1) me.intent.store(0, std::memory_order_relaxed);
        }
        if (seq == cur + 1) {
            const ChannelStatus st = c.view_of(s, cur, c.lost_pending, view);
            if (st == ChannelStatus::Ok)
                c.lost_pending = 0;
            else if (overwrite)
                me.intent.store(0, std::memory_order_relaxed);  // no view after all
            return st;
        }
        const std::uint64_t seq_m = seq & ~kMarkBit;
        if (seq_m <= cur + 1) {  // not published yet (or being rewritten for this position)
            // The slot holds the previous lap's message, or none in the first lap.
            if (seq_m + c.capacity < cur + 1 && !(seq_m == 0 && cur < c.capacity))
                return c.sequence_behind(cur, seq);
            return ChannelStatus::Empty;
        }
        // A later message: Block never overwrites one a registered subscriber
        // has not read, and Overwrite's is one of this slot, published or
        // being written at the publisher's position at most.
        if (!overwrite) return c.sequence_ahead(cur, seq);
        const std::uint64_t w = c.header->enqueue_pos.load(std::memory_order_acquire);
        if (((seq_m - 1 - cur) & c.mask) != 0 || seq_m - 1 > w) return c.sequence_ahead(cur, seq);
        const std::uint64_t next = std::max(cur + 1, w >= c.capacity ? w - c.capacity + 1 : 0);
        const std::uint64_t missed = next - cur;
        c.lost += missed;
        c.lost_pending += missed;
        c.cursor = next;
        me.cursor.store(next, std::memory_order_seq_cst);
        me.lost.store(c.lost, std::memory_order_relaxed);
        c.header->lost.fetch_add(missed, std::memory_order_relaxed);
    }
}

void release(ChannelCore& c, const ChannelView& view) noexcept {
    Peer& me = c.me();
    c.cursor = view.position + 1;
    // After every read of the view's bytes.
    c.store_visible(me.cursor, c.cursor);
    if (c.overflow == ChannelOverflow::Overwrite) me.intent.store(0, std::memory_order_seq_cst);
}

// A message at the cursor, or a later one (the cursor's was overwritten).
bool readable(const ChannelCore& c) noexcept {
    const std::uint64_t seq = c.slot(c.cursor).seq.load(std::memory_order_seq_cst);
    return seq == c.cursor + 1 || (seq & ~kMarkBit) > c.cursor + 1;
}

bool writable(const ChannelCore& c) noexcept {
    const std::uint64_t pos = c.header->enqueue_pos.load(std::memory_order_seq_cst);
    if (pos < c.capacity) return true;
    const std::uint64_t oldest = pos - c.capacity;
    if (min_subscriber_cursor(c) > oldest) return true;
    if (c.overflow == ChannelOverflow::Block) return false;
    return !viewed(c, oldest);
}

// Every subscriber's cursor was taken from the publisher's position (or is
// one past a message read, which may run one ahead of a publisher killed
// between its two stores).
ChannelStatus check_cursors(ChannelCore& c) noexcept {
    const std::uint64_t enq = c.header->enqueue_pos.load(std::memory_order_seq_cst);
    const unsigned limit = c.peer_limit();
    for (unsigned i = kFirstSubscriberEntry; i < limit; ++i) {
        const Peer& p = c.header->peers[i];
        if (!is_consumer_token(p.token.load(std::memory_order_seq_cst))) continue;
        if (const std::uint64_t cur = p.cursor.load(std::memory_order_seq_cst); cur > enq + 1)
            return c.corrupt("subscriber %llu position %llu is ahead of publisher position %llu", i,
                             cur, enq);
    }
    return ChannelStatus::Ok;
}

ChannelStatus loan_stalled(ChannelCore& c) noexcept {
    if (ChannelStatus st = check_cursors(c); st != ChannelStatus::Ok) return st;
    (void)reap_dead_subscribers(c);
    return ChannelStatus::Ok;
}

// This subscriber's cursor against the publisher's position, as above.
ChannelStatus check_own_cursor(ChannelCore& c) noexcept {
    const std::uint64_t enq = c.header->enqueue_pos.load(std::memory_order_seq_cst);
    if (c.cursor > enq + 1)
        return c.corrupt("publisher position %llu is behind subscriber position %llu", enq,
                         c.cursor);
    return ChannelStatus::Ok;
}

void joined(ChannelCore& c) noexcept {
    if (c.role == ChannelRole::Producer) {
        c.repair_producer();
        return;
    }
    // Join at the publisher's position: the publisher either saw this entry
    // (and waits for it) or had not reached beyond it.
    Peer& me = c.me();
    c.cursor = c.header->enqueue_pos.load(std::memory_order_seq_cst);
    me.cursor.store(c.cursor, std::memory_order_seq_cst);
    // The publisher stores its position with release only and may skip
    // looking at the subscribers for a while (min_cursor): the fence makes
    // its latest position visible to the re-read, and every look it takes
    // after it sees this cursor.
    (void)sys::heavy_fence();
    const std::uint64_t now = c.header->enqueue_pos.load(std::memory_order_seq_cst);
    if (now > c.cursor) {
        c.cursor = now;
        me.cursor.store(c.cursor, std::memory_order_seq_cst);
    }
    // The entry's old cursor may have held the publisher back.
    c.notify(c.header->space_wake);
}

// Sent: the publisher's position. Received: what every subscriber released,
// the registered ones' from their entries, the departed ones' in the header.
void totals(const ChannelCore& c, ChannelStats& s) noexcept {
    const std::uint64_t enq = c.header->enqueue_pos.load(std::memory_order_acquire);
    s.sent = enq;
    s.received = c.header->departed.load(std::memory_order_relaxed);
    for (const Peer& p : c.header->peers)
        if (is_consumer_token(p.token.load(std::memory_order_acquire)))
            s.received += p.messages.load(std::memory_order_relaxed);
    const std::uint64_t min = min_subscriber_cursor(c);
    s.depth = enq > min ? enq - min : 0;
}

// No message yet: 0 is below every position + 1.
std::uint64_t initial_seq(std::uint64_t) noexcept {
    return 0;
}

}  // namespace

const ChannelOps kPubSubOps = {
    .claim = claim,
    .published = published,
    .cancel = cancel,
    .try_read = try_read,
    .release = release,
    .readable = readable,
    .writable = writable,
    .loan_stalled = loan_stalled,
    .read_stalled = check_own_cursor,
    .joined = joined,
    .totals = totals,
    .initial_seq = initial_seq,
    .producer_entry = kPublisherEntry,
    .consumer_entry = -1,
    .first_shared_entry = kFirstSubscriberEntry,
    .producer_noun = "publisher",
    .subscriber_cursors = true,
};

}  // namespace pagewire::channel_detail
