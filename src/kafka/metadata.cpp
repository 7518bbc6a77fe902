// Metadata (key 3), v1-12: the one broker (node 0, every partition's leader)
// and the topics asked for (all of them for a null list), auto-creating
// unknown names when the request and the broker allow it. Topic ids from
// v10, flexible from v9.
#include <climits>

#include "kafka/handlers.hpp"

namespace pagewire::kafka {
namespace {

constexpr std::int32_t kNoAuthorizedOperations = INT_MIN;  // Kafka's "not requested"

struct Asked {
    std::optional<std::string> name;
    Uuid id{};
};

void write_topic(Request& r, ErrorCode error, std::optional<std::string_view> name, const Uuid& id,
                 const Topic* topic) {
    Encoder& out = r.out;
    out.error(error);
    if (r.version >= 12)
        out.nullable_string(name);
    else
        out.string(name.value_or(std::string_view{}));
    if (r.version >= 10) out.uuid(topic != nullptr ? topic->id : id);
    out.boolean(false);  // is_internal
    const std::size_t n = topic != nullptr ? topic->partitions.size() : 0;
    out.array_length(static_cast<std::int64_t>(n));
    for (std::size_t p = 0; p < n; ++p) {
        out.error(ErrorCode::None);
        out.i32(static_cast<std::int32_t>(p));
        out.i32(r.broker.node_id);       // leader
        if (r.version >= 7) out.i32(0);  // leader_epoch
        out.array_length(1);             // replicas
        out.i32(r.broker.node_id);
        out.array_length(1);  // in-sync replicas
        out.i32(r.broker.node_id);
        if (r.version >= 5) out.array_length(0);  // offline replicas
        out.tagged_fields();
    }
    if (r.version >= 8) out.i32(kNoAuthorizedOperations);
    out.tagged_fields();
}

}  // namespace

void handle_metadata(Request& r) {
    Decoder& in = r.in;
    const std::int64_t count = in.array_length(r.version >= 10 ? 17 : 2);
    std::vector<Asked> asked;
    for (std::int64_t i = 0; i < count && in.ok(); ++i) {
        Asked a;
        if (r.version >= 10) {
            a.id = in.uuid();
            if (auto n = in.nullable_string()) a.name = std::string(*n);
        } else {
            a.name = std::string(in.string());
        }
        in.tagged_fields();
        asked.push_back(std::move(a));
    }
    bool allow_auto = true;
    if (r.version >= 4) allow_auto = in.boolean();
    if (r.version >= 8 && r.version <= 10) (void)in.boolean();  // cluster authorized operations
    if (r.version >= 8) (void)in.boolean();                     // topic authorized operations
    in.tagged_fields();
    if (!in.ok()) asked.clear();  // answered with no topics

    Encoder& out = r.out;
    if (r.version >= 3) out.i32(0);  // throttle_time_ms
    out.array_length(1);             // brokers
    const auto [host, port] = r.broker.advertised();
    out.i32(r.broker.node_id);
    out.string(host);
    out.i32(port);
    out.nullable_string(std::nullopt);  // rack
    out.tagged_fields();
    if (r.version >= 2) out.nullable_string(r.broker.cluster_id);
    out.i32(r.broker.node_id);  // controller

    if (count < 0 && in.ok()) {  // null: every topic
        const auto topics = r.broker.topics.list();
        out.array_length(static_cast<std::int64_t>(topics.size()));
        for (const auto& t : topics) write_topic(r, ErrorCode::None, t->name, t->id, t.get());
    } else {
        out.array_length(static_cast<std::int64_t>(asked.size()));
        for (const Asked& a : asked) {
            std::shared_ptr<Topic> t =
                a.name ? r.broker.topics.find(*a.name) : r.broker.topics.find(a.id);
            ErrorCode error = ErrorCode::None;
            if (!t && a.name && allow_auto && r.broker.config.auto_create) {
                std::string message;
                t = r.broker.topics.create(
                    *a.name, static_cast<std::int32_t>(r.broker.config.default_partitions), error,
                    message);
                if (error == ErrorCode::TopicAlreadyExists) error = ErrorCode::None;
            } else if (!t) {
                error = a.name ? ErrorCode::UnknownTopicOrPartition : ErrorCode::UnknownTopicId;
            }
            std::optional<std::string_view> name;
            if (t)
                name = t->name;
            else if (a.name)
                name = *a.name;
            write_topic(r, t ? ErrorCode::None : error, name, a.id, t.get());
        }
    }
    if (r.version >= 8 && r.version <= 10) out.i32(kNoAuthorizedOperations);
    out.tagged_fields();
}

}  // namespace pagewire::kafka
