// Topics on the data directory, offline (pagewire/broker.hpp: list_topics,
// create_topic, delete_topic): the registry the broker uses, so a topic made
// here is one the broker serves as it would have made it.
#include <cerrno>
#include <pagewire/broker.hpp>
#include <pagewire/error.hpp>

#include "kafka/broker_state.hpp"
#include "kafka/topics.hpp"

namespace pagewire::kafka {

LogOptions log_options(const broker::BrokerConfig& config) {
    LogOptions o;
    o.durability = config.durability;
    o.retention_bytes = config.retention_bytes;
    o.retention_age = std::chrono::milliseconds(config.retention_ms);
    o.segment_bytes = config.segment_bytes;
    return o;
}

}  // namespace pagewire::kafka

namespace pagewire::broker {
namespace {

TopicInfo info_of(const std::string& dir, const kafka::TopicMeta& meta) {
    TopicInfo t;
    t.name = meta.name;
    t.id = kafka::uuid_text(meta.id);
    LogOptions o;
    o.create = false;
    o.read_only = true;
    for (std::int32_t n = 0; n < meta.partitions; ++n) {
        const Log log = Log::open(kafka::partition_dir(dir, meta.name, n), o);
        TopicInfo::Partition p;
        p.index = n;
        p.start_offset = log.start_offset();
        p.end_offset = log.end_offset();
        for (const LogSegmentInfo& s : log.segments()) p.bytes += s.bytes;
        t.partitions.push_back(p);
    }
    return t;
}

}  // namespace

std::vector<TopicInfo> list_topics(const std::string& data_dir) {
    std::vector<TopicInfo> topics;
    for (const kafka::TopicMeta& m : kafka::read_topic_metas(data_dir))
        topics.push_back(info_of(data_dir, m));
    return topics;
}

TopicInfo create_topic(const BrokerConfig& config, const std::string& name,
                       std::int32_t partitions) {
    kafka::TopicRegistry topics(config.data_dir, kafka::log_options(config));
    kafka::ErrorCode error = kafka::ErrorCode::None;
    std::string message;
    const auto topic = topics.create(name, partitions, error, message);
    if (error == kafka::ErrorCode::TopicAlreadyExists)
        throw Error("create topic", name, EEXIST, "it exists");
    if (error != kafka::ErrorCode::None) throw Error("create topic", name, EINVAL, message);
    kafka::TopicMeta meta{topic->name, static_cast<std::int32_t>(topic->partitions.size()),
                          topic->id};
    TopicInfo info;
    info.name = meta.name;
    info.id = kafka::uuid_text(meta.id);
    for (std::int32_t n = 0; n < meta.partitions; ++n) info.partitions.push_back({n, 0, 0, 0});
    return info;
}

void delete_topic(const BrokerConfig& config, const std::string& name) {
    kafka::TopicRegistry topics(config.data_dir, kafka::log_options(config));
    if (topics.remove(name) != kafka::ErrorCode::None)
        throw Error("delete topic", name, ENOENT, "no such topic in " + config.data_dir);
}

}  // namespace pagewire::broker
