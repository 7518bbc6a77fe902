// pagewire::broker — a single-node Kafka-protocol broker over pagewire::Log
// (issue 15): each topic partition is a Log in DATA_DIR/<topic>-<n>, Kafka's
// layout, so unmodified Kafka clients produce to and fetch from the same
// files `pagewire log` reads. Fetch sends records by sendfile(2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <pagewire/log.hpp>
#include <string>
#include <utility>
#include <vector>

namespace pagewire::broker {

struct BrokerConfig {
    std::string data_dir;  // created if missing
    std::string listen = "127.0.0.1:9092";
    std::string advertise;  // HOST:PORT given to clients (empty: the bound address)
    Durability durability = Durability::None;
    std::uint32_t default_partitions = 1;  // of an auto-created topic
    std::uint64_t retention_bytes = 0;     // per partition (0: unbounded)
    std::uint64_t retention_ms = 0;        // 0: unbounded
    // Each partition's active segment is preallocated to this: smaller than
    // Kafka's 1 GiB so that many partitions fit a small disk.
    std::uint64_t segment_bytes = 64ULL << 20;
    bool auto_create = true;  // Metadata and Produce create unknown topics
    bool fetch_copy = false;  // Fetch copies records through user space instead of sendfile
    unsigned workers = 0;     // 0: one per online CPU
    std::size_t max_connections = 10000;
    std::size_t max_request_bytes = 100 * 1024 * 1024;  // Kafka's socket.request.max.bytes
    std::size_t max_batch_bytes = 1048588;              // Kafka's message.max.bytes
    std::size_t max_fetch_bytes = 55 * 1024 * 1024;     // Kafka's fetch.max.bytes
    std::string access_log;  // one line per request to this file (empty: none)
};

// What a broker did between start and stop (its summary line).
struct BrokerSummary {
    double seconds = 0;
    std::uint64_t connections = 0;
    std::uint64_t bytes_in = 0;   // requests, with their size fields
    std::uint64_t bytes_out = 0;  // responses, records sent by sendfile included
    std::vector<std::pair<std::string, std::uint64_t>> requests;  // by API name, most first
};

// Runs the broker until SIGTERM / SIGINT, then finishes in-flight requests
// and closes every log cleanly. Calls on_listening(address, workers) once
// it serves. Throws pagewire::Error for what prevents starting.
BrokerSummary run_broker(
    const BrokerConfig& config,
    const std::function<void(const std::string& address, unsigned workers)>& on_listening);

// ---- Topics on the data directory (`pagewire topic`) ---------------------

struct TopicInfo {
    struct Partition {
        std::int32_t index = 0;
        std::int64_t start_offset = 0;
        std::int64_t end_offset = 0;  // high watermark
        std::uint64_t bytes = 0;      // of its segments
    };
    std::string name;
    std::string id;  // topic id, 32 hex digits
    std::vector<Partition> partitions;
};

// The topics of a data directory, by name; reads only, so it works beside a
// running broker. Throws pagewire::Error.
std::vector<TopicInfo> list_topics(const std::string& data_dir);
// Creates a topic of `partitions` partitions (config: logs' options).
// Offline: fails with EWOULDBLOCK while a broker serves the directory;
// EEXIST, EINVAL for a name or count Kafka refuses.
TopicInfo create_topic(const BrokerConfig& config, const std::string& name,
                       std::int32_t partitions);
// Deletes a topic and its partitions' directories (offline as create_topic;
// ENOENT for an unknown topic).
void delete_topic(const BrokerConfig& config, const std::string& name);

// ---- Topics through a running broker (`pagewire topic --bootstrap`) -----

// The same over the Kafka protocol, to the broker at `address` (HOST:PORT):
// pagewire broker or a Kafka cluster (3.1 or later: Metadata v12,
// ListOffsets v1, CreateTopics v4, DeleteTopics v3). Partition bytes stay 0
// (not asked). Throws pagewire::Error: unreachable, no answer in 30 s, or
// the broker's error by Kafka's name, as EEXIST, ENOENT or EINVAL where one fits.
std::vector<TopicInfo> list_topics_at(const std::string& address);
TopicInfo create_topic_at(const std::string& address, const std::string& name,
                          std::int32_t partitions);
void delete_topic_at(const std::string& address, const std::string& name);

}  // namespace pagewire::broker
