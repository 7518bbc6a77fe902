// CreateTopics (key 19), v0-7 (flexible from 5, topic ids from 7): topics
// of N partitions on the one broker (replication factor 1; -1 takes the
// defaults from v4). validate_only (v1+) checks without creating. Topic
// configs are accepted and not applied (the broker's retention holds).
#include "kafka/handlers.hpp"

namespace pagewire::kafka {

void handle_create_topics(Request& r) {
    Decoder& in = r.in;
    struct Asked {
        std::string_view name;
        std::int32_t partitions = -1;
        std::int16_t replication = -1;
        std::size_t assignments = 0;
    };
    std::vector<Asked> asked;
    const std::size_t n = in.count(8);
    for (std::size_t i = 0; i < n && in.ok(); ++i) {
        Asked a;
        a.name = in.string();
        a.partitions = in.i32();
        a.replication = in.i16();
        a.assignments = in.count(5);
        for (std::size_t p = 0; p < a.assignments && in.ok(); ++p) {
            (void)in.i32();  // partition index
            const std::size_t brokers = in.count(4);
            for (std::size_t b = 0; b < brokers && in.ok(); ++b) (void)in.i32();
            in.tagged_fields();
        }
        const std::size_t configs = in.count(2);
        for (std::size_t c = 0; c < configs && in.ok(); ++c) {
            (void)in.string();
            (void)in.nullable_string();
            in.tagged_fields();
        }
        in.tagged_fields();
        asked.push_back(a);
    }
    (void)in.i32();  // timeout_ms
    const bool validate_only = r.version >= 1 && in.boolean();
    in.tagged_fields();
    if (!in.ok()) asked.clear();

    Encoder& out = r.out;
    if (r.version >= 2) out.i32(0);  // throttle_time_ms
    out.array_length(static_cast<std::int64_t>(asked.size()));
    for (const Asked& a : asked) {
        ErrorCode error = ErrorCode::None;
        std::string message;
        std::int32_t partitions =
            a.assignments > 0 ? static_cast<std::int32_t>(a.assignments) : a.partitions;
        if (partitions == -1)
            partitions = static_cast<std::int32_t>(r.broker.config.default_partitions);
        std::shared_ptr<Topic> topic;
        if (a.replication != -1 && a.replication != 1) {
            error = ErrorCode::InvalidReplicationFactor;
            message = "replication factor " + std::to_string(a.replication) +
                      " is more than the 1 broker there is";
        } else if (validate_only) {
            message = topic_name_problem(a.name);
            if (!message.empty())
                error = ErrorCode::InvalidTopicException;
            else if (partitions < 1 || partitions > TopicRegistry::kMaxPartitions)
                error = ErrorCode::InvalidPartitions;
            else if (r.broker.topics.find(a.name))
                error = ErrorCode::TopicAlreadyExists;
        } else {
            topic = r.broker.topics.create(a.name, partitions, error, message);
        }
        out.string(a.name);
        if (r.version >= 7) out.uuid(topic && error == ErrorCode::None ? topic->id : Uuid{});
        out.error(error);
        if (r.version >= 1)
            out.nullable_string(message.empty() || error == ErrorCode::None
                                    ? std::nullopt
                                    : std::optional<std::string_view>(message));
        if (r.version >= 5) {
            out.i32(error == ErrorCode::None ? partitions : -1);
            out.i16(error == ErrorCode::None ? 1 : -1);
            out.array_length(-1);  // configs: not reported
        }
        out.tagged_fields();
    }
    out.tagged_fields();
}

}  // namespace pagewire::kafka
