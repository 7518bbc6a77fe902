// DeleteTopics (key 20), v0-6 (flexible from 4; by name or topic id from 6).
// A deleted topic's directories go once no request in flight uses them.
#include "kafka/handlers.hpp"

namespace pagewire::kafka {

void handle_delete_topics(Request& r) {
    Decoder& in = r.in;
    struct Asked {
        std::optional<std::string> name;
        Uuid id{};
    };
    std::vector<Asked> asked;
    const std::size_t n = in.count(r.version >= 6 ? 18 : 2);
    for (std::size_t i = 0; i < n && in.ok(); ++i) {
        Asked a;
        if (r.version >= 6) {
            if (auto name = in.nullable_string()) a.name = std::string(*name);
            a.id = in.uuid();
            in.tagged_fields();
        } else {
            a.name = std::string(in.string());
        }
        asked.push_back(std::move(a));
    }
    (void)in.i32();  // timeout_ms
    in.tagged_fields();
    if (!in.ok()) asked.clear();

    Encoder& out = r.out;
    if (r.version >= 1) out.i32(0);  // throttle_time_ms
    out.array_length(static_cast<std::int64_t>(asked.size()));
    for (const Asked& a : asked) {
        std::shared_ptr<Topic> topic =
            a.name ? r.broker.topics.find(*a.name) : r.broker.topics.find(a.id);
        ErrorCode error = ErrorCode::None;
        if (!topic)
            error = a.name ? ErrorCode::UnknownTopicOrPartition : ErrorCode::UnknownTopicId;
        else
            error = r.broker.topics.remove(topic->name);
        std::optional<std::string_view> name;
        if (topic)
            name = topic->name;
        else if (a.name)
            name = *a.name;
        if (r.version >= 6) {
            out.nullable_string(name);
            out.uuid(topic ? topic->id : a.id);
        } else {
            out.string(name.value_or(std::string_view{}));
        }
        out.error(error);
        if (r.version >= 5) out.nullable_string(std::nullopt);
        out.tagged_fields();
    }
    out.tagged_fields();
}

}  // namespace pagewire::kafka
