// The test message format shared by chan_helper and the thread-mode tests:
// a 24-byte head (producer, generation, sequence), a checksum, then a payload
// whose length and bytes follow from the head, so a message torn, mixed with
// another or read twice into the wrong place is detected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace chantest {

inline constexpr std::uint32_t kEndProducer = 0xffffffffU;  // the "stop" marker
inline constexpr std::size_t kHeadBytes = 24;               // producer, generation, seq, checksum

inline std::uint64_t mix(std::uint64_t x) {  // splitmix64
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

inline std::uint64_t fnv1a(std::span<const std::byte> bytes,
                           std::uint64_t h = 1469598103934665603ULL) {
    for (std::byte b : bytes) h = (h ^ static_cast<std::uint8_t>(b)) * 1099511628211ULL;
    return h;
}

// Length of the message for (producer, seq) in a buffer of `room` bytes.
inline std::size_t message_size(std::size_t room, std::uint32_t producer, std::uint64_t seq) {
    return kHeadBytes + mix(seq * 31 + producer) % (room - kHeadBytes + 1);
}

// Writes the message for (producer, generation, seq) filling all of `out`.
inline void write_message(std::span<std::byte> out, std::uint32_t producer,
                          std::uint32_t generation, std::uint64_t seq) {
    std::memcpy(out.data(), &producer, 4);
    std::memcpy(out.data() + 4, &generation, 4);
    std::memcpy(out.data() + 8, &seq, 8);
    const std::uint64_t seed =
        mix(seq ^ (std::uint64_t{producer} << 40) ^ (std::uint64_t{generation} << 20));
    for (std::size_t i = kHeadBytes; i < out.size(); ++i)
        out[i] = static_cast<std::byte>((seed >> (i % 57)) + i);
    std::uint64_t sum = fnv1a(out.subspan(kHeadBytes), fnv1a(out.first(16)));
    std::memcpy(out.data() + 16, &sum, 8);
}

// Writes the message into a buffer of `room` bytes; returns its size.
inline std::size_t make_message(std::span<std::byte> room, std::uint32_t producer,
                                std::uint32_t generation, std::uint64_t seq) {
    const std::size_t size = message_size(room.size(), producer, seq);
    write_message(room.first(size), producer, generation, seq);
    return size;
}

struct Parsed {
    std::uint32_t producer = 0, generation = 0;
    std::uint64_t seq = 0;
};

// "" if `m` is a whole, valid message, else why not.
inline std::string check_message(std::span<const std::byte> m, Parsed& p) {
    if (m.size() < kHeadBytes) return "short message of " + std::to_string(m.size()) + " bytes";
    std::uint64_t sum = 0;
    std::memcpy(&p.producer, m.data(), 4);
    std::memcpy(&p.generation, m.data() + 4, 4);
    std::memcpy(&p.seq, m.data() + 8, 8);
    std::memcpy(&sum, m.data() + 16, 8);
    if (fnv1a(m.subspan(kHeadBytes), fnv1a(m.first(16))) != sum) return "bad checksum";
    return {};
}

}  // namespace chantest
