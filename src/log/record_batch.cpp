// Kafka RecordBatch v2 (magic 2) encoding and decoding, and CRC-32C.
#include <array>
#include <cstring>
#include <pagewire/log.hpp>

#include "log/wire.hpp"

namespace pagewire {
namespace {

constexpr std::uint32_t kCastagnoliReflected = 0x82F63B78;

struct CrcTable {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    CrcTable() {
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (kCastagnoliReflected & (0U - (c & 1U)));
            t[0][i] = c;
        }
        for (std::uint32_t i = 0; i < 256; ++i)
            for (std::size_t s = 1; s < 8; ++s)
                t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
};

// Slicing-by-8: the fallback for CPUs without the crc32 instruction.
std::uint32_t crc32c_table(const unsigned char* p, std::size_t n, std::uint32_t crc) noexcept {
    static const CrcTable table;
    const auto& t = table.t;
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        w ^= crc;
        crc = t[7][w & 0xFF] ^ t[6][(w >> 8) & 0xFF] ^ t[5][(w >> 16) & 0xFF] ^
              t[4][(w >> 24) & 0xFF] ^ t[3][(w >> 32) & 0xFF] ^ t[2][(w >> 40) & 0xFF] ^
              t[1][(w >> 48) & 0xFF] ^ t[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFF];
    return crc;
}

#if defined(__x86_64__)
// One dependent chain of crc32 instructions (latency 3 cycles, one issued per
// cycle) runs at a third of what the unit can do. So a long buffer is cut
// into three adjacent streams checksummed in one interleaved loop, and the
// three results are combined: the CRC is linear, so crc(A B) is crc(A)
// carried over |B| zero bytes, xor crc(B) started from 0. "Carried over L
// zero bytes" is a fixed 32x32 bit matrix, tabled per byte of the CRC.
template <std::size_t L>
struct ZeroShift {
    std::array<std::array<std::uint32_t, 256>, 4> t{};
    __attribute__((target("sse4.2"))) ZeroShift() {
        std::array<std::uint32_t, 32> basis{};
        for (int bit = 0; bit < 32; ++bit) {
            std::uint64_t c = 1ULL << bit;
            for (std::size_t i = 0; i < L / 8; ++i) c = __builtin_ia32_crc32di(c, 0);
            basis[bit] = static_cast<std::uint32_t>(c);
        }
        for (std::size_t k = 0; k < 4; ++k)
            for (std::uint32_t b = 0; b < 256; ++b) {
                std::uint32_t v = 0;
                for (int j = 0; j < 8; ++j)
                    if (b & (1U << j)) v ^= basis[8 * k + j];
                t[k][b] = v;
            }
    }
    std::uint32_t operator()(std::uint32_t c) const noexcept {
        return t[0][c & 0xFF] ^ t[1][(c >> 8) & 0xFF] ^ t[2][(c >> 16) & 0xFF] ^ t[3][c >> 24];
    }
};

// The streams' lengths: long ones for the bulk, short ones for the rest of a
// batch-sized buffer; each step must be worth its three table lookups.
constexpr std::size_t kLongStream = 8192, kShortStream = 256;

template <std::size_t L>
__attribute__((target("sse4.2"))) std::uint64_t crc32c_three_way(const unsigned char*& p,
                                                                 std::size_t& n, std::uint64_t c) {
    static const ZeroShift<L> shift;
    while (n >= 3 * L) {
        std::uint64_t c1 = 0, c2 = 0;
        for (std::size_t i = 0; i < L; i += 8) {
            std::uint64_t w0, w1, w2;
            std::memcpy(&w0, p + i, 8);
            std::memcpy(&w1, p + L + i, 8);
            std::memcpy(&w2, p + 2 * L + i, 8);
            c = __builtin_ia32_crc32di(c, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
        }
        c = shift(shift(static_cast<std::uint32_t>(c)) ^ static_cast<std::uint32_t>(c1)) ^
            static_cast<std::uint32_t>(c2);
        p += 3 * L;
        n -= 3 * L;
    }
    return c;
}

__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const unsigned char* p, std::size_t n,
                                                             std::uint32_t crc) noexcept {
    std::uint64_t c = crc;
    c = crc32c_three_way<kLongStream>(p, n, c);
    c = crc32c_three_way<kShortStream>(p, n, c);
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        n -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c);
    while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
bool detect_sse42() noexcept {
    return __builtin_cpu_supports("sse4.2");
}
#else
bool detect_sse42() noexcept {
    return false;
}
#endif

const bool kHardware = detect_sse42();

using wire::get_be;
using wire::put_be;

}  // namespace

std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    crc = ~crc;
#if defined(__x86_64__)
    if (kHardware) return ~crc32c_sse42(p, n, crc);
#endif
    return ~crc32c_table(p, n, crc);
}

bool crc32c_hardware() noexcept {
    return kHardware;
}

// Header field offsets (Kafka's DefaultRecordBatch).
namespace {
constexpr std::size_t kLengthAt = 8, kEpochAt = 12, kMagicAt = 16, kCrcAt = 17, kAttrAt = 21,
                      kLastDeltaAt = 23, kBaseTsAt = 27, kMaxTsAt = 35, kPidAt = 43, kPepochAt = 51,
                      kBaseSeqAt = 53, kCountAt = 57;
}

std::int64_t BatchView::base_offset() const noexcept {
    return get_be<std::int64_t>(bytes_.data());
}
std::int32_t BatchView::batch_length() const noexcept {
    return get_be<std::int32_t>(bytes_.data() + kLengthAt);
}
std::int8_t BatchView::magic() const noexcept {
    return static_cast<std::int8_t>(bytes_[kMagicAt]);
}
std::uint32_t BatchView::crc() const noexcept {
    return get_be<std::uint32_t>(bytes_.data() + kCrcAt);
}
std::int16_t BatchView::attributes() const noexcept {
    return get_be<std::int16_t>(bytes_.data() + kAttrAt);
}
std::int32_t BatchView::last_offset_delta() const noexcept {
    return get_be<std::int32_t>(bytes_.data() + kLastDeltaAt);
}
std::int64_t BatchView::base_timestamp() const noexcept {
    return get_be<std::int64_t>(bytes_.data() + kBaseTsAt);
}
std::int64_t BatchView::max_timestamp() const noexcept {
    return get_be<std::int64_t>(bytes_.data() + kMaxTsAt);
}
std::int64_t BatchView::producer_id() const noexcept {
    return get_be<std::int64_t>(bytes_.data() + kPidAt);
}
std::int16_t BatchView::producer_epoch() const noexcept {
    return get_be<std::int16_t>(bytes_.data() + kPepochAt);
}
std::int32_t BatchView::base_sequence() const noexcept {
    return get_be<std::int32_t>(bytes_.data() + kBaseSeqAt);
}
std::int32_t BatchView::record_count() const noexcept {
    return get_be<std::int32_t>(bytes_.data() + kCountAt);
}

std::string BatchView::validate() const {
    if (bytes_.size() < kBatchHeaderSize)
        return wire::strf("truncated header (%zu of %zu bytes)", bytes_.size(), kBatchHeaderSize);
    auto length = batch_length();
    if (length < static_cast<std::int32_t>(kBatchHeaderSize - kBatchLogOverhead))
        return wire::strf("batch length %d is below the header's", length);
    if (static_cast<std::size_t>(length) + kBatchLogOverhead != bytes_.size())
        return wire::strf("batch length %d does not match the %zu bytes given", length,
                          bytes_.size() - kBatchLogOverhead);
    if (magic() != 2) return wire::strf("magic %d is not 2", magic());
    if (last_offset_delta() < 0 || record_count() < 0)
        return wire::strf("negative lastOffsetDelta %d or recordCount %d", last_offset_delta(),
                          record_count());
    std::uint32_t computed = crc32c(bytes_.data() + kBatchCrcStart, bytes_.size() - kBatchCrcStart);
    if (computed != crc())
        return wire::strf("crc mismatch: stored %08x, computed %08x", crc(), computed);
    return {};
}

bool BatchView::next_record(std::size_t* cursor, RecordView* out) const {
    if (*cursor == 0) {
        if (compression() != 0)
            throw Error("decode", "batch", EBADMSG,
                        wire::strf("batch at offset %lld is compressed (codec %d)",
                                   static_cast<long long>(base_offset()), compression()));
        *cursor = kBatchHeaderSize;
    }
    if (*cursor >= bytes_.size()) return false;
    wire::Reader r{bytes_.data() + *cursor, bytes_.data() + bytes_.size()};
    std::int64_t length = r.varint();
    const std::byte* body_end = r.p + length;
    if (!r.ok || length < 0 || body_end > r.end)
        throw Error("decode", "batch", EBADMSG,
                    wire::strf("record at byte %zu of batch %lld has a bad length", *cursor,
                               static_cast<long long>(base_offset())));
    r.end = body_end;
    r.skip(1);  // record attributes, unused in v2
    out->timestamp = base_timestamp() + r.varint();
    out->offset = base_offset() + r.varint();
    out->key = r.bytes();
    out->value = r.bytes();
    std::int64_t headers = r.varint();
    out->header_count = headers < 0 ? 0 : static_cast<std::uint32_t>(headers);
    out->headers = std::string_view(reinterpret_cast<const char*>(r.p),
                                    static_cast<std::size_t>(body_end - r.p));
    if (!r.ok || headers < 0)
        throw Error("decode", "batch", EBADMSG,
                    wire::strf("record at byte %zu of batch %lld is malformed", *cursor,
                               static_cast<long long>(base_offset())));
    *cursor = static_cast<std::size_t>(body_end - bytes_.data());
    return true;
}

namespace {

std::size_t bytes_size(const std::optional<std::string_view>& b) noexcept {
    return b ? wire::varint_size(static_cast<std::int64_t>(b->size())) + b->size()
             : wire::varint_size(-1);
}

// The record's bytes after its length prefix.
std::size_t record_body_size(const Record& r, std::int32_t offset_delta) noexcept {
    std::size_t n = 1 + wire::varint_size(0) + wire::varint_size(offset_delta) + bytes_size(r.key) +
                    bytes_size(r.value) +
                    wire::varint_size(static_cast<std::int64_t>(r.headers.size()));
    for (const auto& h : r.headers) n += bytes_size(h.key) + bytes_size(h.value);
    return n;
}

std::byte* put_bytes(std::byte* p, const std::optional<std::string_view>& b) noexcept {
    if (!b) return wire::put_varint(p, -1);
    p = wire::put_varint(p, static_cast<std::int64_t>(b->size()));
    if (!b->empty()) std::memcpy(p, b->data(), b->size());
    return p + b->size();
}

}  // namespace

std::size_t encoded_batch_size(std::span<const Record> records) noexcept {
    std::size_t n = kBatchHeaderSize;
    for (std::size_t i = 0; i < records.size(); ++i) {
        std::size_t body = record_body_size(records[i], static_cast<std::int32_t>(i));
        n += wire::varint_size(static_cast<std::int64_t>(body)) + body;
    }
    return n;
}

std::size_t encode_batch(std::span<std::byte> out, std::int64_t base_offset,
                         std::int64_t timestamp_ms, std::span<const Record> records) noexcept {
    std::byte* start = out.data();
    std::byte* p = start + kBatchHeaderSize;
    for (std::size_t i = 0; i < records.size(); ++i) {
        const Record& r = records[i];
        auto delta = static_cast<std::int32_t>(i);
        p = wire::put_varint(p, static_cast<std::int64_t>(record_body_size(r, delta)));
        *p++ = std::byte{0};
        p = wire::put_varint(p, 0);
        p = wire::put_varint(p, delta);
        p = put_bytes(p, r.key);
        p = put_bytes(p, r.value);
        p = wire::put_varint(p, static_cast<std::int64_t>(r.headers.size()));
        for (const auto& h : r.headers) {
            p = put_bytes(p, h.key);
            p = put_bytes(p, h.value);
        }
    }
    auto size = static_cast<std::size_t>(p - start);
    auto last_delta = static_cast<std::int32_t>(records.empty() ? 0 : records.size() - 1);
    put_be<std::int64_t>(start, base_offset);
    put_be<std::int32_t>(start + kLengthAt, static_cast<std::int32_t>(size - kBatchLogOverhead));
    put_be<std::int32_t>(start + kEpochAt, 0);
    start[kMagicAt] = std::byte{2};
    put_be<std::int16_t>(start + kAttrAt, 0);
    put_be<std::int32_t>(start + kLastDeltaAt, last_delta);
    put_be<std::int64_t>(start + kBaseTsAt, timestamp_ms);
    put_be<std::int64_t>(start + kMaxTsAt, timestamp_ms);
    put_be<std::int64_t>(start + kPidAt, -1);
    put_be<std::int16_t>(start + kPepochAt, -1);
    put_be<std::int32_t>(start + kBaseSeqAt, -1);
    put_be<std::int32_t>(start + kCountAt, static_cast<std::int32_t>(records.size()));
    put_be<std::uint32_t>(start + kCrcAt, crc32c(start + kBatchCrcStart, size - kBatchCrcStart));
    return size;
}

bool LogSlice::next_batch(std::size_t* cursor, BatchView* out) const noexcept {
    if (*cursor + kBatchLogOverhead > bytes.size()) return false;
    BatchView head(bytes.subspan(*cursor));
    auto total = static_cast<std::size_t>(head.batch_length()) + kBatchLogOverhead;
    if (*cursor + total > bytes.size()) return false;
    *out = BatchView(bytes.subspan(*cursor, total));
    *cursor += total;
    return true;
}

}  // namespace pagewire
