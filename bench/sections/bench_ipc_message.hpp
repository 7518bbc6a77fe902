// The messages of `pagewire bench ipc`: every message starts with a
// MessageHeader {sequence, send time, size, flags, checksum}, and its payload
// is a pattern seeded by the sequence, so a lost, repeated, torn or stale
// message is caught on receipt. Header-only (the unit test includes it).
//
// Cost matters: the 64 B rows stream over 10 million messages a second, and
// the 1 MiB rows must not be dominated by verification. write_message fills
// the payload and sums it in one pass; payload_checksum is four independent
// 64-bit sums (the CPU overlaps them), a few cycles per word.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <span>

namespace pagewire::bench::ipc {

static_assert(std::endian::native == std::endian::little,
              "the payload's zero-padded last word assumes little-endian");

enum MessageFlags : std::uint32_t {
    kLastMessage = 1,  // the final message of a throughput stream
};

// At the start of every message (copied in and out with memcpy: a stream
// method may deliver a message at any alignment).
struct MessageHeader {
    std::uint64_t sequence = 0;  // per direction, from 0, +1 per message
    std::int64_t sent_ns = 0;    // CLOCK_MONOTONIC right before the send call; 0 when not timed
    std::uint32_t size = 0;      // of the whole message, header included, bytes
    std::uint32_t flags = 0;     // MessageFlags
    std::uint64_t checksum = 0;  // message_checksum(payload sum, sequence, size, flags)
};
static_assert(sizeof(MessageHeader) == 32);
inline constexpr std::size_t kMinMessageBytes = sizeof(MessageHeader);

inline std::int64_t monotonic_now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace detail {
constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
constexpr std::uint64_t kOdd = 0xd6e8feb86659fd93ULL;
// splitmix64's finalizer: every input bit affects every output bit.
constexpr std::uint64_t mix(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
}  // namespace detail

// Sum (mod 2^64) of the payload read as little-endian 64-bit words, the last
// partial word zero-padded.
inline std::uint64_t payload_sum(const std::byte* data, std::size_t size) noexcept {
    std::uint64_t a = 0, b = 0, c = 0, d = 0;
    std::size_t i = 0;
    for (; i + 32 <= size; i += 32) {
        std::uint64_t w[4];
        std::memcpy(w, data + i, sizeof w);
        a += w[0];
        b += w[1];
        c += w[2];
        d += w[3];
    }
    for (; i + 8 <= size; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, data + i, 8);
        a += w;
    }
    if (i < size) {
        std::uint64_t w = 0;
        std::memcpy(&w, data + i, size - i);
        a += w;
    }
    return a + b + c + d;
}

// Binds the payload's sum to the header fields, so a header of one message
// on the payload of another does not pass either. One mix: it is on the
// per-message path of both sides.
constexpr std::uint64_t message_checksum(std::uint64_t sum, std::uint64_t sequence,
                                         std::uint32_t size, std::uint32_t flags) noexcept {
    return detail::mix(sum + sequence * detail::kGolden +
                       (std::uint64_t{size} << 32 | flags) * detail::kOdd);
}

// Writes a whole message into `out` (size >= kMinMessageBytes): the payload
// pattern of `sequence`, then the header, last, with the send time when
// `stamp` (so the time is taken after the payload is written).
inline void write_message(std::span<std::byte> out, std::uint64_t sequence, std::uint32_t flags,
                          bool stamp) noexcept {
    std::byte* payload = out.data() + sizeof(MessageHeader);
    const std::size_t n = out.size() - sizeof(MessageHeader);
    // Consecutive sequences differ in every word: stale bytes never pass.
    const std::uint64_t seed = (sequence + 1) * detail::kOdd;
    std::uint64_t sum = 0;
    std::size_t words = n / 8;
    for (std::size_t i = 0; i < words; ++i) {
        const std::uint64_t w = seed + i * detail::kGolden;
        std::memcpy(payload + 8 * i, &w, 8);
        sum += w;
    }
    if (const std::size_t tail = n % 8; tail != 0) {
        const std::uint64_t w =
            (seed + words * detail::kGolden) & ((std::uint64_t{1} << (8 * tail)) - 1);
        std::memcpy(payload + 8 * words, &w, tail);
        sum += w;
    }
    MessageHeader h;
    h.sequence = sequence;
    h.size = static_cast<std::uint32_t>(out.size());
    h.flags = flags;
    h.checksum = message_checksum(sum, sequence, h.size, flags);
    if (stamp) {
        // The payload is written when its stores have left the store buffer
        // (a 1 MiB fill leaves dozens in flight): drain them before the clock
        // is read, so their cost is not charged to the transfer.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        h.sent_ns = monotonic_now_ns();
    }
    std::memcpy(out.data(), &h, sizeof h);
}

// The header of a message as received (no checks).
inline MessageHeader read_header(std::span<const std::byte> message) noexcept {
    MessageHeader h;
    if (message.size() >= sizeof h) std::memcpy(&h, message.data(), sizeof h);
    return h;
}

// Checks a direction's messages in arrival order: size and checksum, and the
// sequence against the one expected next. Not thread-safe; one per direction.
class SequenceChecker {
  public:
    enum class Verdict { Ok, Lost, Duplicate, Corrupt };

    // `expected` is the sequence of the first message.
    explicit SequenceChecker(std::uint64_t expected = 0) noexcept : expected_(expected) {}

    Verdict check(std::span<const std::byte> message) noexcept {
        ++received_;
        if (message.size() < sizeof(MessageHeader)) {
            ++corrupt_;
            ++expected_;  // it took the place of the expected one
            return Verdict::Corrupt;
        }
        const MessageHeader h = read_header(message);
        const std::uint64_t sum = payload_sum(message.data() + sizeof h, message.size() - sizeof h);
        if (h.size != message.size() ||
            h.checksum != message_checksum(sum, h.sequence, h.size, h.flags)) {
            ++corrupt_;
            ++expected_;
            return Verdict::Corrupt;
        }
        if (h.sequence == expected_) {
            ++expected_;
            return Verdict::Ok;
        }
        if (h.sequence > expected_) {
            lost_ += h.sequence - expected_;
            expected_ = h.sequence + 1;
            return Verdict::Lost;
        }
        ++duplicated_;
        return Verdict::Duplicate;
    }

    std::uint64_t expected() const noexcept { return expected_; }
    std::uint64_t received() const noexcept { return received_; }
    std::uint64_t lost() const noexcept { return lost_; }
    std::uint64_t duplicated() const noexcept { return duplicated_; }
    std::uint64_t corrupt() const noexcept { return corrupt_; }

  private:
    std::uint64_t expected_;  // sequence of the next message in order
    std::uint64_t received_ = 0;
    std::uint64_t lost_ = 0;        // sequences skipped over
    std::uint64_t duplicated_ = 0;  // sequences seen before
    std::uint64_t corrupt_ = 0;     // wrong size or checksum
};

}  // namespace pagewire::bench::ipc
