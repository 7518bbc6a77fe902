// ChannelKind::Mpmc: Vyukov's bounded queue. Producers claim a position with
// a CAS on enqueue_pos, consumers with a CAS on dequeue_pos; a slot's
// sequence says whose turn it is (see Slot). Every claim is announced in the
// claimer's peer entry first (intent), which is how a peer waiting on a slot
// tells a dead claimer's slot from a slow one and recovers it.
#include <pagewire/channel.hpp>

#include "channel_impl.hpp"

namespace pagewire::channel_detail {
namespace {

// The slot at `position` is claimed (enqueue_pos is past it) but not
// published. If no live producer announces that position, its claimer died:
// mark the slot abandoned so consumers move on. Reads /proc, so only called
// after kRecoverAfterNs of waiting.
bool recover_abandoned(ChannelCore& c, std::uint64_t position) noexcept {
    Slot& s = c.slot(position);
    std::uint64_t expected = position;
    if (s.seq.load(std::memory_order_seq_cst) != expected) return false;
    if (c.header->enqueue_pos.load(std::memory_order_seq_cst) <= position)
        return false;  // unclaimed
    for (const Peer& p : c.header->peers) {
        if (p.intent.load(std::memory_order_seq_cst) != position + 1) continue;
        if (token_alive(p.token.load(std::memory_order_seq_cst))) return false;  // still writing
    }
    if (!s.seq.compare_exchange_strong(expected, (position + 1) | kMarkBit,
                                       std::memory_order_seq_cst))
        return false;
    c.header->abandoned.fetch_add(1, std::memory_order_relaxed);
    return true;
}

// The ring is full at the producers' position because the slot there still
// holds the message of one lap earlier, which a consumer took (dequeue_pos
// is past it) but never released. If no live consumer announces that
// position, it died holding the message: the message is lost and the slot is
// freed for the producers. Reads /proc, so only called after kRecoverAfterNs
// of waiting.
bool recover_dead_consumer(ChannelCore& c) noexcept {
    const std::uint64_t pos = c.header->enqueue_pos.load(std::memory_order_seq_cst);
    if (pos < c.capacity) return false;
    const std::uint64_t taken = pos - c.capacity;  // the consumer position occupying this slot
    Slot& s = c.slot(pos);
    std::uint64_t seq = s.seq.load(std::memory_order_seq_cst);
    if ((seq & ~kMarkBit) != taken + 1) return false;  // not a published, unreleased message
    if (c.header->dequeue_pos.load(std::memory_order_seq_cst) <= taken)
        return false;  // merely full
    for (const Peer& p : c.header->peers) {
        if (p.intent.load(std::memory_order_seq_cst) != taken + 1) continue;
        const std::uint64_t t = p.token.load(std::memory_order_seq_cst);
        if (is_consumer_token(t) && token_alive(t)) return false;  // reading it
    }
    if (!s.seq.compare_exchange_strong(seq, pos, std::memory_order_seq_cst)) return false;
    c.header->lost.fetch_add(1, std::memory_order_relaxed);
    c.notify(c.header->space_wake);
    return true;
}

// Hands the slot at `position` to the producer of the next lap.
void free_slot(ChannelCore& c, std::uint64_t position) noexcept {
    c.store_visible(c.slot(position).seq, position + c.capacity);
    c.me().intent.store(0, std::memory_order_release);
}

// The lowest sequence (mark bit cleared) the slot at `pos` can hold while
// the position is current: a producer's `pos`, the previous lap's claimed or
// published message for a producer (pos - capacity ...), and that message
// taken for a consumer (pos + 1 - capacity ...); slots start at their index.
std::uint64_t lowest_seq(const ChannelCore& c, std::uint64_t pos, std::uint64_t lap) noexcept {
    return pos >= c.capacity ? pos - lap : pos;
}

ChannelStatus claim(ChannelCore& c, std::uint64_t& pos) noexcept {
    Peer& me = c.me();
    pos = c.header->enqueue_pos.load(std::memory_order_relaxed);
    for (;;) {
        const std::uint64_t seq = c.slot(pos).seq.load(std::memory_order_acquire);
        if (seq == pos) {
            // Announce the claim before making it (both seq_cst): a consumer
            // that sees the claim also sees who made it.
            me.intent.store(pos + 1, std::memory_order_seq_cst);
            if (c.header->enqueue_pos.compare_exchange_weak(pos, pos + 1,
                                                            std::memory_order_seq_cst))
                return ChannelStatus::Ok;
            me.intent.store(0, std::memory_order_seq_cst);  // lost the race: not ours
            continue;
        }
        // Another producer claimed it meanwhile: a sequence past `pos` comes
        // with a position past it (the claim precedes the sequence's store).
        if (const std::uint64_t now = c.header->enqueue_pos.load(std::memory_order_relaxed);
            now != pos) {
            pos = now;
            continue;
        }
        const std::uint64_t seq_m = seq & ~kMarkBit;
        if (seq_m > pos) return c.sequence_ahead(pos, seq);
        if (seq_m < lowest_seq(c, pos, c.capacity)) return c.sequence_behind(pos, seq);
        // That slot still holds the previous lap's message; maybe a dead consumer's.
        if (c.stalled() && recover_dead_consumer(c)) continue;
        return ChannelStatus::Full;
    }
}

void published(ChannelCore& c, std::uint64_t) noexcept {
    c.me().intent.store(0, std::memory_order_release);
    c.header->sent.fetch_add(1, std::memory_order_relaxed);
}

// The position is claimed for good; consumers skip it.
void cancel(ChannelCore& c, std::uint64_t pos) noexcept {
    c.slot(pos).seq.store((pos + 1) | kMarkBit, std::memory_order_seq_cst);
    c.me().intent.store(0, std::memory_order_release);
    c.header->abandoned.fetch_add(1, std::memory_order_relaxed);
    c.notify(c.header->data_wake);
}

ChannelStatus try_read(ChannelCore& c, ChannelView& view) noexcept {
    std::uint64_t pos = c.header->dequeue_pos.load(std::memory_order_relaxed);
    for (;;) {
        Slot& s = c.slot(pos);
        const std::uint64_t seq = s.seq.load(std::memory_order_acquire);
        const std::uint64_t seq_m = seq & ~kMarkBit;
        if (seq_m != pos + 1) {
            // Taken by another consumer meanwhile: a sequence past the message
            // comes with a position past it (the take precedes the free).
            if (const std::uint64_t now = c.header->dequeue_pos.load(std::memory_order_relaxed);
                now != pos) {
                pos = now;
                continue;
            }
            if (seq_m > pos + 1) return c.sequence_ahead(pos, seq);
            if (seq_m < lowest_seq(c, pos, c.capacity - 1)) return c.sequence_behind(pos, seq);
            // Not published yet; maybe claimed by a producer that died.
            if (seq == pos && c.stalled()) {
                if (ChannelStatus st = c.check_queue_positions(0); st != ChannelStatus::Ok)
                    return st;
                if (recover_abandoned(c, pos)) continue;
            }
            return ChannelStatus::Empty;
        }
        // The size is checked before the take, so that a corrupt one takes
        // nothing; read after the sequence, it is the message's unless another
        // consumer took it meanwhile, which the position then says.
        const std::uint32_t size = s.size;
        const bool marked = (seq & kMarkBit) != 0;
        if (!marked && !c.size_ok(s, size, pos)) [[unlikely]] {
            if (const std::uint64_t now = c.header->dequeue_pos.load(std::memory_order_relaxed);
                now != pos) {
                pos = now;
                continue;
            }
            return c.bad_size(pos, size);
        }
        // As a producer's claim: announced first, so a producer that finds
        // this slot taken and never freed can tell whether we died.
        Peer& me = c.me();
        me.intent.store(pos + 1, std::memory_order_seq_cst);
        if (!c.header->dequeue_pos.compare_exchange_weak(pos, pos + 1, std::memory_order_seq_cst)) {
            me.intent.store(0, std::memory_order_seq_cst);
            continue;  // pos reloaded by the failed CAS
        }
        if (marked) {  // a dead or cancelled producer's slot: skip it
            free_slot(c, pos);
            c.notify(c.header->space_wake);
            pos = c.header->dequeue_pos.load(std::memory_order_relaxed);
            continue;
        }
        view = {s.bytes(), size, pos, 0};  // ours now: the size cannot have changed
        return ChannelStatus::Ok;
    }
}

void release(ChannelCore& c, const ChannelView& view) noexcept {
    free_slot(c, view.position);
    c.header->received.fetch_add(1, std::memory_order_relaxed);
}

bool readable(const ChannelCore& c) noexcept {
    const std::uint64_t pos = c.header->dequeue_pos.load(std::memory_order_seq_cst);
    return (c.slot(pos).seq.load(std::memory_order_seq_cst) & ~kMarkBit) >= pos + 1;
}

bool writable(const ChannelCore& c) noexcept {
    const std::uint64_t pos = c.header->enqueue_pos.load(std::memory_order_seq_cst);
    return c.slot(pos).seq.load(std::memory_order_seq_cst) == pos;
}

// A waiting loan()/send() is where a slot held by a dead consumer is freed.
ChannelStatus loan_stalled(ChannelCore& c) noexcept {
    if (ChannelStatus st = c.check_queue_positions(0); st != ChannelStatus::Ok) return st;
    (void)recover_dead_consumer(c);
    return ChannelStatus::Ok;
}

// A waiting read() is where a dead producer's claimed slot is skipped.
ChannelStatus read_stalled(ChannelCore& c) noexcept {
    if (ChannelStatus st = c.check_queue_positions(0); st != ChannelStatus::Ok) return st;
    (void)recover_abandoned(c, c.header->dequeue_pos.load(std::memory_order_seq_cst));
    return ChannelStatus::Ok;
}

void joined(ChannelCore&) noexcept {}  // claims of a dead predecessor were voided with its entry

// Counted at publish and release: one short per process killed right after.
void totals(const ChannelCore& c, ChannelStats& s) noexcept {
    const std::uint64_t enq = c.header->enqueue_pos.load(std::memory_order_acquire);
    const std::uint64_t deq = c.header->dequeue_pos.load(std::memory_order_acquire);
    s.depth = enq > deq ? enq - deq : 0;
    s.sent = c.header->sent.load(std::memory_order_relaxed);
    s.received = c.header->received.load(std::memory_order_relaxed);
}

// Slot i is free for the producer of position i.
std::uint64_t initial_seq(std::uint64_t index) noexcept {
    return index;
}

}  // namespace

const ChannelOps kMpmcOps = {
    .claim = claim,
    .published = published,
    .cancel = cancel,
    .try_read = try_read,
    .release = release,
    .readable = readable,
    .writable = writable,
    .loan_stalled = loan_stalled,
    .read_stalled = read_stalled,
    .joined = joined,
    .totals = totals,
    .initial_seq = initial_seq,
    .producer_entry = -1,
    .consumer_entry = -1,
    .first_shared_entry = 0,
    .producer_noun = "producer",
    .subscriber_cursors = false,
};

}  // namespace pagewire::channel_detail
