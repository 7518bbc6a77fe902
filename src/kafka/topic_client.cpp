// Topics through a running broker (pagewire/broker.hpp: list_topics_at,
// create_topic_at, delete_topic_at): a blocking Kafka client of four
// requests, so `pagewire topic --bootstrap` works against pagewire broker
// and a Kafka cluster alike. Versions are ones both speak: Metadata v12
// (topic ids, flexible), ListOffsets v1, CreateTopics v4, DeleteTopics v3
// (all kept by Kafka 4's protocol baseline).
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <pagewire/address.hpp>
#include <pagewire/broker.hpp>
#include <pagewire/error.hpp>
#include <string>
#include <vector>

#include "kafka/codec.hpp"
#include "kafka/topics.hpp"
#include "sys.hpp"

namespace pagewire::broker {
namespace {

using kafka::ApiKey;
using kafka::Decoder;
using kafka::Encoder;
using kafka::ErrorCode;

constexpr int kTimeoutSeconds = 30;          // per send and receive: never hang on a silent peer
constexpr std::int32_t kTimeoutMs = 30'000;  // what the broker may take for create/delete
constexpr std::size_t kMaxResponse = 64 << 20;

// Kafka's name of an error code, for messages.
std::string error_name(std::int16_t code) {
    switch (static_cast<ErrorCode>(code)) {
        case ErrorCode::UnknownTopicOrPartition:
            return "UNKNOWN_TOPIC_OR_PARTITION";
        case ErrorCode::InvalidTopicException:
            return "INVALID_TOPIC_EXCEPTION";
        case ErrorCode::UnsupportedVersion:
            return "UNSUPPORTED_VERSION";
        case ErrorCode::TopicAlreadyExists:
            return "TOPIC_ALREADY_EXISTS";
        case ErrorCode::InvalidPartitions:
            return "INVALID_PARTITIONS";
        case ErrorCode::InvalidReplicationFactor:
            return "INVALID_REPLICATION_FACTOR";
        case ErrorCode::InvalidRequest:
            return "INVALID_REQUEST";
        case ErrorCode::RequestTimedOut:
            return "REQUEST_TIMED_OUT";
        default:
            return "error " + std::to_string(code);
    }
}

int errno_of(std::int16_t code) {
    switch (static_cast<ErrorCode>(code)) {
        case ErrorCode::TopicAlreadyExists:
            return EEXIST;
        case ErrorCode::UnknownTopicOrPartition:
            return ENOENT;
        case ErrorCode::InvalidTopicException:
        case ErrorCode::InvalidPartitions:
        case ErrorCode::InvalidReplicationFactor:
        case ErrorCode::InvalidRequest:
            return EINVAL;
        case ErrorCode::UnsupportedVersion:
            return ENOTSUP;
        case ErrorCode::RequestTimedOut:
            return ETIMEDOUT;
        default:
            return EIO;
    }
}

[[noreturn]] void broker_error(const std::string& op, const std::string& name, std::int16_t code,
                               std::optional<std::string_view> message = std::nullopt) {
    std::string why = "the broker answered " + error_name(code);
    if (message && !message->empty()) why += ": " + std::string(*message);
    throw_error(op, name, errno_of(code), why);
}

// One connection to the broker; requests in turn, each answered before the next.
class Client {
  public:
    explicit Client(const std::string& address) : address_(address) {
        std::string reason;
        const auto where = split_host_port(address, &reason);
        if (!where) throw_error("connect", address, EINVAL, "not HOST:PORT: " + reason);
        fd_ = connect_tcp(*where);
        timeval tv{kTimeoutSeconds, 0};
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }

    // Sends body as request (key, version) and returns the response body
    // after its header; `flexible` for header v2 / response header v1.
    std::string call(ApiKey key, std::int16_t version, bool flexible, const std::string& body) {
        std::string frame;
        Encoder e(frame);
        const std::size_t at = e.reserve32();
        e.i16(static_cast<std::int16_t>(key));
        e.i16(version);
        e.i32(++correlation_);
        e.nullable_string("pagewire-topic");  // client_id: never compact, even in header v2
        if (flexible) e.uvarint(0);
        frame += body;
        e.patch32(at, static_cast<std::int32_t>(frame.size() - 4));
        send_all(frame);
        char size[4];
        receive(size, sizeof size);
        const auto n = wire::get_be<std::int32_t>(reinterpret_cast<const std::byte*>(size));
        if (n < 4 || static_cast<std::size_t>(n) > kMaxResponse)
            throw_error("receive", address_, EPROTO,
                        "response of " + std::to_string(n) + " bytes is not Kafka's");
        std::string response(static_cast<std::size_t>(n), '\0');
        receive(response.data(), response.size());
        Decoder d(response.data(), response.size(), true);
        if (d.i32() != correlation_)
            throw_error("receive", address_, EPROTO, "response to another request");
        if (flexible) d.tagged_fields();
        if (!d.ok()) throw_error("receive", address_, EPROTO, "truncated response header");
        return std::string(d.position(), d.remaining());
    }

    const std::string& address() const { return address_; }

  private:
    void send_all(const std::string& bytes) {
        for (std::size_t done = 0; done < bytes.size();) {
            const ssize_t n = sys::retry_eintr([&] {
                return ::send(fd_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
            });
            if (n < 0) throw_error("send", address_);
            done += static_cast<std::size_t>(n);
        }
    }
    void receive(char* p, std::size_t n) {
        while (n > 0) {
            const ssize_t r = sys::retry_eintr([&] { return ::recv(fd_.get(), p, n, 0); });
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                throw_error("receive", address_, ETIMEDOUT,
                            "no answer in " + std::to_string(kTimeoutSeconds) + " s");
            if (r < 0) throw_error("receive", address_);
            if (r == 0)
                throw_error("receive", address_, ECONNRESET,
                            "the broker closed the connection (not a Kafka broker, or it "
                            "refused the request)");
            p += r;
            n -= static_cast<std::size_t>(r);
        }
    }

    std::string address_;
    UniqueFd fd_;
    std::int32_t correlation_ = 0;
};

void check_decoded(const Decoder& d, const Client& c, const char* what) {
    if (!d.ok()) throw_error("receive", c.address(), EPROTO, std::string("malformed ") + what);
}

// Metadata v12 of every topic (names empty) or of the named ones.
std::vector<TopicInfo> metadata(Client& c, const std::vector<std::string>& names) {
    std::string body;
    Encoder e(body, true);
    if (names.empty()) {
        e.uvarint(0);  // null: every topic
    } else {
        e.array_length(static_cast<std::int64_t>(names.size()));
        for (const auto& n : names) {
            e.uuid(kafka::Uuid{});
            e.nullable_string(n);
            e.tagged_fields();
        }
    }
    e.boolean(false);  // allow_auto_topic_creation
    e.boolean(false);  // include_topic_authorized_operations
    e.tagged_fields();
    const std::string r = c.call(ApiKey::Metadata, 12, true, body);
    Decoder d(r.data(), r.size(), true);
    d.i32();  // throttle_time_ms
    for (std::size_t b = d.count(); b > 0 && d.ok(); --b) {
        d.i32();
        d.string();
        d.i32();
        d.nullable_string();
        d.tagged_fields();
    }
    d.nullable_string();  // cluster_id
    d.i32();              // controller_id
    std::vector<TopicInfo> topics;
    for (std::size_t t = d.count(); t > 0 && d.ok(); --t) {
        const std::int16_t error = d.i16();
        TopicInfo info;
        info.name = std::string(d.nullable_string().value_or(""));
        info.id = kafka::uuid_text(d.uuid());
        const bool internal = d.boolean();
        for (std::size_t p = d.count(); p > 0 && d.ok(); --p) {
            d.i16();
            TopicInfo::Partition part;
            part.index = d.i32();
            d.i32();  // leader
            d.i32();  // leader epoch
            for (int list = 0; list < 3; ++list)
                for (std::size_t n = d.count(4); n > 0 && d.ok(); --n) d.i32();
            d.tagged_fields();
            info.partitions.push_back(part);
        }
        d.i32();  // topic_authorized_operations
        d.tagged_fields();
        if (error != 0) {
            if (!names.empty()) broker_error("describe topic", info.name, error);
            continue;
        }
        if (!internal) topics.push_back(std::move(info));
    }
    d.tagged_fields();
    check_decoded(d, c, "Metadata response");
    return topics;
}

// Start and end offsets of every partition (ListOffsets v1, earliest and latest).
void fill_offsets(Client& c, std::vector<TopicInfo>& topics) {
    for (const std::int64_t which : {-2LL, -1LL}) {
        std::string body;
        Encoder e(body);
        e.i32(-1);  // replica_id: a consumer
        e.array_length(static_cast<std::int64_t>(topics.size()));
        for (const auto& t : topics) {
            e.string(t.name);
            e.array_length(static_cast<std::int64_t>(t.partitions.size()));
            for (const auto& p : t.partitions) {
                e.i32(p.index);
                e.i64(which);
            }
        }
        const std::string r = c.call(ApiKey::ListOffsets, 1, false, body);
        Decoder d(r.data(), r.size());
        for (std::size_t t = d.count(); t > 0 && d.ok(); --t) {
            const std::string name(d.string());
            for (std::size_t p = d.count(); p > 0 && d.ok(); --p) {
                const std::int32_t index = d.i32();
                const std::int16_t error = d.i16();
                d.i64();  // timestamp
                const std::int64_t offset = d.i64();
                if (error != 0) broker_error("list offsets", name, error);
                for (auto& topic : topics)
                    if (topic.name == name)
                        for (auto& part : topic.partitions)
                            if (part.index == index)
                                (which == -2 ? part.start_offset : part.end_offset) = offset;
            }
        }
        check_decoded(d, c, "ListOffsets response");
    }
}

// CreateTopics v4 / DeleteTopics v3 responses: throttle time, then per
// topic its name and error code (CreateTopics adds a message); the first
// error is thrown.
void check_topic_results(const Client& c, const std::string& r, const std::string& op,
                         bool with_message) {
    Decoder d(r.data(), r.size());
    d.i32();  // throttle_time_ms
    for (std::size_t t = d.count(); t > 0 && d.ok(); --t) {
        const std::string got(d.string());
        const std::int16_t error = d.i16();
        const auto message = with_message ? d.nullable_string() : std::nullopt;
        if (d.ok() && error != 0) broker_error(op, got, error, message);
    }
    check_decoded(d, c, (op + " response").c_str());
}

}  // namespace

std::vector<TopicInfo> list_topics_at(const std::string& address) {
    Client c(address);
    std::vector<TopicInfo> topics = metadata(c, {});
    if (!topics.empty()) fill_offsets(c, topics);
    std::sort(topics.begin(), topics.end(),
              [](const TopicInfo& a, const TopicInfo& b) { return a.name < b.name; });
    for (auto& t : topics)
        std::sort(t.partitions.begin(), t.partitions.end(),
                  [](const auto& a, const auto& b) { return a.index < b.index; });
    return topics;
}

TopicInfo create_topic_at(const std::string& address, const std::string& name,
                          std::int32_t partitions) {
    Client c(address);
    std::string body;
    Encoder e(body);
    e.array_length(1);
    e.string(name);
    e.i32(partitions);
    e.i16(1);  // replication_factor (a cluster takes its default with -1; 1 is valid anywhere)
    e.array_length(0);  // assignments
    e.array_length(0);  // configs
    e.i32(kTimeoutMs);
    e.boolean(false);  // validate_only
    check_topic_results(c, c.call(ApiKey::CreateTopics, 4, false, body), "create topic", true);
    std::vector<TopicInfo> made = metadata(c, {name});
    if (made.empty())
        throw_error("create topic", name, EIO, "created, but the broker does not list it");
    fill_offsets(c, made);
    return made.front();
}

void delete_topic_at(const std::string& address, const std::string& name) {
    Client c(address);
    std::string body;
    Encoder e(body);
    e.array_length(1);
    e.string(name);
    e.i32(kTimeoutMs);
    check_topic_results(c, c.call(ApiKey::DeleteTopics, 3, false, body), "delete topic", false);
}

}  // namespace pagewire::broker
