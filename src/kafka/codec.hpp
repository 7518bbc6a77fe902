// pagewire kafka: the Kafka wire protocol's primitive types, read and
// written (https://kafka.apache.org/protocol#protocol_types): big-endian
// integers, (unsigned) varints, strings and byte arrays, arrays, and the
// flexible versions' compact forms and tagged fields. One Decoder per
// request body, one Encoder per response. Internal, not installed.
//
// A Decoder never reads past its end and never allocates for a length it
// has not checked against the bytes left: the first bad length or overrun
// sets ok() to false and every later read returns zero/empty, so a handler
// reads a whole request and checks ok() once (then answers with the API's
// error, or closes). Views returned point into the request buffer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "log/wire.hpp"

namespace pagewire::kafka {

// Error codes of the protocol (https://kafka.apache.org/protocol#protocol_error_codes).
enum class ErrorCode : std::int16_t {
    UnknownServerError = -1,
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    InvalidFetchSize = 4,
    LeaderNotAvailable = 5,
    NotLeaderOrFollower = 6,
    RequestTimedOut = 7,
    MessageTooLarge = 10,
    OffsetMetadataTooLarge = 12,
    CoordinatorLoadInProgress = 14,
    CoordinatorNotAvailable = 15,
    NotCoordinator = 16,
    InvalidTopicException = 17,
    RecordListTooLarge = 18,
    NotEnoughReplicas = 19,
    InvalidRequiredAcks = 21,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    InvalidCommitOffsetSize = 28,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidRequest = 42,
    UnsupportedForMessageFormat = 43,
    OutOfOrderSequenceNumber = 45,
    DuplicateSequenceNumber = 46,
    InvalidProducerEpoch = 47,
    InvalidRecord = 87,
    GroupIdNotFound = 69,
    MemberIdRequired = 79,
    FencedInstanceId = 82,
    UnknownProducerId = 59,
    UnknownTopicId = 100,
};

// A UUID (topic ids): 16 bytes; all zero means none.
using Uuid = std::array<std::byte, 16>;

// API keys (https://kafka.apache.org/protocol#protocol_api_keys).
enum class ApiKey : std::int16_t {
    Produce = 0,
    Fetch = 1,
    ListOffsets = 2,
    Metadata = 3,
    OffsetCommit = 8,
    OffsetFetch = 9,
    FindCoordinator = 10,
    JoinGroup = 11,
    Heartbeat = 12,
    LeaveGroup = 13,
    SyncGroup = 14,
    DescribeGroups = 15,
    ListGroups = 16,
    ApiVersions = 18,
    CreateTopics = 19,
    DeleteTopics = 20,
    InitProducerId = 22,
};

class Decoder {
  public:
    Decoder() = default;
    Decoder(const char* data, std::size_t size, bool flexible = false) noexcept
        : p_(reinterpret_cast<const std::byte*>(data)),
          end_(reinterpret_cast<const std::byte*>(data) + size),
          flexible_(flexible) {}

    bool ok() const noexcept { return ok_; }
    bool flexible() const noexcept { return flexible_; }
    void set_flexible(bool flexible) noexcept { flexible_ = flexible; }
    std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
    const char* position() const noexcept { return reinterpret_cast<const char*>(p_); }
    // Marks the request bad (a value out of its range, found by the caller).
    void fail() noexcept {
        ok_ = false;
        p_ = end_;
    }

    std::int8_t i8() noexcept { return fixed<std::int8_t>(); }
    std::int16_t i16() noexcept { return fixed<std::int16_t>(); }
    std::int32_t i32() noexcept { return fixed<std::int32_t>(); }
    std::int64_t i64() noexcept { return fixed<std::int64_t>(); }
    std::uint32_t u32() noexcept { return fixed<std::uint32_t>(); }
    bool boolean() noexcept { return i8() != 0; }

    std::uint64_t uvarint() noexcept {
        std::uint64_t v = 0;
        for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
            const auto b = static_cast<std::uint8_t>(*p_++);
            v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return v;
        }
        fail();
        return 0;
    }
    std::int64_t varint() noexcept {
        const std::uint64_t z = uvarint();
        return static_cast<std::int64_t>(z >> 1) ^ -static_cast<std::int64_t>(z & 1);
    }

    // STRING / COMPACT_STRING (as the flexible flag says); null is refused.
    std::string_view string() noexcept {
        const auto s = nullable_string();
        if (!s) fail();
        return s.value_or(std::string_view{});
    }
    // NULLABLE_STRING / COMPACT_NULLABLE_STRING.
    std::optional<std::string_view> nullable_string() noexcept {
        const std::int64_t n = flexible_ ? static_cast<std::int64_t>(uvarint()) - 1 : i16();
        return view(n);
    }
    // BYTES / COMPACT_BYTES / their nullable forms (nullopt for null).
    std::optional<std::string_view> nullable_bytes() noexcept {
        const std::int64_t n = flexible_ ? static_cast<std::int64_t>(uvarint()) - 1 : i32();
        return view(n);
    }
    std::string_view bytes() noexcept { return nullable_bytes().value_or(std::string_view{}); }
    // UUID: 16 raw bytes (a topic id); zeros when short.
    Uuid uuid() noexcept {
        Uuid id{};
        if (remaining() < id.size()) {
            fail();
            return id;
        }
        std::memcpy(id.data(), p_, id.size());
        p_ += id.size();
        return id;
    }

    // ARRAY / COMPACT_ARRAY length: -1 for null, else a count that the
    // remaining bytes can hold at `min_element_bytes` each (else fail()).
    std::int64_t array_length(std::size_t min_element_bytes = 1) noexcept {
        const std::int64_t n = flexible_ ? static_cast<std::int64_t>(uvarint()) - 1 : i32();
        if (!ok_ || n < -1) {
            fail();
            return 0;
        }
        if (n > 0 && static_cast<std::uint64_t>(n) * (min_element_bytes ? min_element_bytes : 1) >
                         remaining()) {
            fail();
            return 0;
        }
        return n;
    }
    // A count for a loop: null is 0.
    std::size_t count(std::size_t min_element_bytes = 1) noexcept {
        const std::int64_t n = array_length(min_element_bytes);
        return n > 0 ? static_cast<std::size_t>(n) : 0;
    }

    // Tagged fields of a flexible version: skipped (none are understood).
    void tagged_fields() noexcept {
        if (!flexible_) return;
        const std::uint64_t n = uvarint();
        if (n > remaining()) {
            fail();
            return;
        }
        for (std::uint64_t i = 0; i < n && ok_; ++i) {
            (void)uvarint();  // tag
            skip(uvarint());
        }
    }
    void skip(std::uint64_t n) noexcept {
        if (n > remaining()) {
            fail();
            return;
        }
        p_ += n;
    }

  private:
    template <class T>
    T fixed() noexcept {
        if (remaining() < sizeof(T)) {
            fail();
            return 0;
        }
        const T v = wire::get_be<T>(p_);
        p_ += sizeof(T);
        return v;
    }
    std::optional<std::string_view> view(std::int64_t n) noexcept {
        if (!ok_ || n < -1) {
            fail();
            return std::nullopt;
        }
        if (n == -1) return std::nullopt;
        if (static_cast<std::uint64_t>(n) > remaining()) {
            fail();
            return std::nullopt;
        }
        std::string_view s(reinterpret_cast<const char*>(p_), static_cast<std::size_t>(n));
        p_ += n;
        return s;
    }

    const std::byte* p_ = nullptr;
    const std::byte* end_ = nullptr;
    bool ok_ = true;
    bool flexible_ = false;
};

// Appends to a response buffer (kept by the session and reused).
class Encoder {
  public:
    explicit Encoder(std::string& out, bool flexible = false) noexcept
        : out_(out), flexible_(flexible) {}

    bool flexible() const noexcept { return flexible_; }
    void set_flexible(bool flexible) noexcept { flexible_ = flexible; }
    std::string& buffer() noexcept { return out_; }
    std::size_t size() const noexcept { return out_.size(); }

    void i8(std::int8_t v) { fixed(v); }
    void i16(std::int16_t v) { fixed(v); }
    void i32(std::int32_t v) { fixed(v); }
    void i64(std::int64_t v) { fixed(v); }
    void u32(std::uint32_t v) { fixed(v); }
    void boolean(bool v) { i8(v ? 1 : 0); }
    void error(ErrorCode e) { i16(static_cast<std::int16_t>(e)); }

    void uvarint(std::uint64_t v) {
        while (v >= 0x80) {
            out_.push_back(static_cast<char>(v | 0x80));
            v >>= 7;
        }
        out_.push_back(static_cast<char>(v));
    }
    void varint(std::int64_t v) {
        uvarint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
    }

    void string(std::string_view s) {
        length16(static_cast<std::int64_t>(s.size()));
        out_.append(s);
    }
    void nullable_string(std::optional<std::string_view> s) {
        if (!s) return length16(-1);
        string(*s);
    }
    void bytes(std::string_view s) {
        length32(static_cast<std::int64_t>(s.size()));
        out_.append(s);
    }
    void nullable_bytes(std::optional<std::string_view> s) {
        if (!s) return length32(-1);
        bytes(*s);
    }
    // ARRAY / COMPACT_ARRAY length (-1: null); the elements follow.
    void array_length(std::int64_t n) { length32(n); }
    // BYTES / COMPACT_BYTES length (-1: null) of bytes sent apart (Fetch's records).
    void bytes_length(std::int64_t n) { length32(n); }
    void uuid(const Uuid& id) { out_.append(reinterpret_cast<const char*>(id.data()), id.size()); }
    // An empty tagged-field section of a flexible version.
    void tagged_fields() {
        if (flexible_) out_.push_back('\0');
    }

    // A 4-byte big-endian value to fill in later (a length or a count):
    // returns where it is.
    std::size_t reserve32() {
        const std::size_t at = out_.size();
        out_.append(4, '\0');
        return at;
    }
    void patch32(std::size_t at, std::int32_t v) noexcept {
        wire::put_be(reinterpret_cast<std::byte*>(out_.data() + at), v);
    }

  private:
    template <class T>
    void fixed(T v) {
        char b[sizeof(T)];
        wire::put_be(reinterpret_cast<std::byte*>(b), v);
        out_.append(b, sizeof b);
    }
    void length16(std::int64_t n) {
        if (flexible_) return uvarint(static_cast<std::uint64_t>(n + 1));
        i16(static_cast<std::int16_t>(n));
    }
    void length32(std::int64_t n) {
        if (flexible_) return uvarint(static_cast<std::uint64_t>(n + 1));
        i32(static_cast<std::int32_t>(n));
    }

    std::string& out_;
    bool flexible_ = false;
};

// The request header (v1, or v2 with tagged fields for flexible versions)
// after the 4-byte size.
struct RequestHeader {
    std::int16_t api_key = 0;
    std::int16_t api_version = 0;
    std::int32_t correlation_id = 0;
    std::optional<std::string_view> client_id;
};

// Reads the header of a request whose body is flexible or not (decided by
// the caller from api_key/api_version, which it reads first with
// peek_api()). ApiVersions' header is v2 from its v3, but its response
// header is always v0 (the client cannot know the broker's versions yet).
inline RequestHeader read_request_header(Decoder& d, bool flexible_header) noexcept {
    RequestHeader h;
    const bool was = d.flexible();
    d.set_flexible(false);
    h.api_key = d.i16();
    h.api_version = d.i16();
    h.correlation_id = d.i32();
    h.client_id = d.nullable_string();  // always the classic NULLABLE_STRING
    d.set_flexible(true);
    if (flexible_header) d.tagged_fields();
    d.set_flexible(was);
    return h;
}

// Response header: correlation id, then (v1, flexible responses other than
// ApiVersions) an empty tagged-field section.
inline void write_response_header(Encoder& e, std::int32_t correlation_id, bool flexible_header) {
    e.i32(correlation_id);
    if (flexible_header) e.buffer().push_back('\0');
}

}  // namespace pagewire::kafka
