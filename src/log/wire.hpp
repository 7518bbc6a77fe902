// Kafka wire primitives the log needs: big-endian integers and zig-zag
// varints (protobuf's encoding, as RecordBatch v2 records use them).
// Internal, not installed.
#pragma once

#include <bit>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace pagewire::wire {

template <class U>
constexpr U byteswap(U v) noexcept {
    if constexpr (sizeof(U) == 2) return static_cast<U>(__builtin_bswap16(v));
    if constexpr (sizeof(U) == 4) return static_cast<U>(__builtin_bswap32(v));
    if constexpr (sizeof(U) == 8) return static_cast<U>(__builtin_bswap64(v));
}

template <class T>
T get_be(const std::byte* p) noexcept {
    using U = std::make_unsigned_t<T>;
    U v;
    std::memcpy(&v, p, sizeof v);
    if constexpr (sizeof(U) > 1 && std::endian::native == std::endian::little) v = byteswap(v);
    return static_cast<T>(v);
}

template <class T>
void put_be(std::byte* p, T value) noexcept {
    using U = std::make_unsigned_t<T>;
    auto v = static_cast<U>(value);
    if constexpr (sizeof(U) > 1 && std::endian::native == std::endian::little) v = byteswap(v);
    std::memcpy(p, &v, sizeof v);
}

inline std::size_t varint_size(std::int64_t v) noexcept {
    auto z = (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
    std::size_t n = 1;
    while (z >= 0x80) {
        z >>= 7;
        ++n;
    }
    return n;
}

inline std::byte* put_varint(std::byte* p, std::int64_t v) noexcept {
    auto z = (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
    while (z >= 0x80) {
        *p++ = static_cast<std::byte>(z | 0x80);
        z >>= 7;
    }
    *p++ = static_cast<std::byte>(z);
    return p;
}

// Bounds-checked reading; ok turns false on the first overrun and stays false.
struct Reader {
    const std::byte* p;
    const std::byte* end;
    bool ok = true;

    void skip(std::size_t n) noexcept {
        if (static_cast<std::size_t>(end - p) < n) {
            ok = false;
            p = end;
        } else {
            p += n;
        }
    }
    std::int64_t varint() noexcept {
        std::uint64_t z = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p >= end) break;
            auto b = static_cast<std::uint8_t>(*p++);
            z |= static_cast<std::uint64_t>(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
                return static_cast<std::int64_t>(z >> 1) ^ -static_cast<std::int64_t>(z & 1);
        }
        ok = false;
        return 0;
    }
    // A varint length then that many bytes; -1 is null.
    std::optional<std::string_view> bytes() noexcept {
        std::int64_t n = varint();
        if (n < 0 || !ok) return std::nullopt;
        if (static_cast<std::uint64_t>(end - p) < static_cast<std::uint64_t>(n)) {
            ok = false;
            return std::nullopt;
        }
        std::string_view s(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
        p += n;
        return s;
    }
};

// printf into a std::string, for error details.
__attribute__((format(printf, 1, 2))) inline std::string strf(const char* format, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, format);
    std::vsnprintf(buf, sizeof buf, format, ap);
    va_end(ap);
    return buf;
}

}  // namespace pagewire::wire
