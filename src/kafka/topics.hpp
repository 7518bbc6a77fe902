// pagewire kafka: the broker's topics. A topic is N partitions, each a
// pagewire::Log in DIR/<topic>-<n> (Kafka's layout), and a meta file
// DIR/<topic>-meta.json holding its partition count and topic id. The
// registry is thread-safe (every worker looks topics up); a partition's
// appends are serialized by its mutex, reads need no lock (Log::read is
// safe beside the writer).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <pagewire/log.hpp>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kafka/codec.hpp"

namespace pagewire::kafka {

// A producer's last accepted batches on a partition (idempotent produce):
// as Kafka, the last 5, so a retried batch of those in flight is answered
// with its offset instead of being appended twice.
struct ProducerState {
    struct Batch {
        std::int32_t base_sequence = 0;
        std::int32_t last_sequence = 0;
        std::int64_t base_offset = 0;
    };
    static constexpr std::size_t kBatchesKept = 5;
    std::int16_t epoch = -1;
    std::vector<Batch> batches;  // oldest first, at most kBatchesKept
};

struct Partition {
    std::mutex append_mutex;  // held for every append and for `producers`
    Log log;
    std::map<std::int64_t, ProducerState> producers;  // by producer id; under append_mutex

    explicit Partition(Log l) : log(std::move(l)) {}
    // Records an idempotent producer's batch that went to base_offset
    // (under append_mutex).
    void remember(const BatchView& batch, std::int64_t base_offset);
    // Rebuilds `producers` from the batches of the last segment, so that a
    // producer's retry after a broker restart is still seen as a duplicate.
    void recover_producers();
};

struct Topic {
    std::string name;
    Uuid id{};
    std::vector<std::unique_ptr<Partition>> partitions;
    std::string dir;                   // the data directory
    std::atomic<bool> deleted{false};  // its files go when the last user lets go

    ~Topic();
};

// Kafka's rule for topic names: 1 to 249 of [a-zA-Z0-9._-], not "." or "..".
// Empty when valid, else why not.
std::string topic_name_problem(std::string_view name);

// A topic's meta file (DIR/<topic>-meta.json).
struct TopicMeta {
    std::string name;
    std::int32_t partitions = 0;
    Uuid id{};
};
// Every topic meta file in `dir`, by name. Throws pagewire::Error (EBADMSG
// for a file that is not one).
std::vector<TopicMeta> read_topic_metas(const std::string& dir);
// DIR/<topic>-<n>.
std::string partition_dir(const std::string& dir, std::string_view name, std::int32_t n);
// 32 lowercase hex digits.
std::string uuid_text(const Uuid& id);

class TopicRegistry {
  public:
    // Opens every topic found in `dir` (created if missing) with `options`
    // for its logs; create() refuses to hold more than `max_partitions` in
    // all. Throws pagewire::Error.
    TopicRegistry(std::string dir, LogOptions options,
                  std::int32_t max_partitions = kMaxBrokerPartitions);
    ~TopicRegistry();

    std::shared_ptr<Topic> find(std::string_view name) const;
    std::shared_ptr<Topic> find(const Uuid& id) const;
    std::vector<std::shared_ptr<Topic>> list() const;

    // Creates a topic of `partitions` partitions (or returns an existing one,
    // `error` TopicAlreadyExists). `error` is InvalidTopicException or
    // InvalidPartitions for a bad request, UnknownServerError when the disk
    // fails (then `message` says why).
    std::shared_ptr<Topic> create(std::string_view name, std::int32_t partitions, ErrorCode& error,
                                  std::string& message);
    // Forgets the topic; its directories are deleted once no request uses it.
    ErrorCode remove(std::string_view name);
    // Flushes every partition (a clean stop closes them in the destructor).
    void flush_all();
    // Applies retention to every partition.
    void retain_all();

    static constexpr std::int32_t kMaxPartitions = 10000;
    // Of all topics together: each partition holds a few memory maps and
    // descriptors, and one request naming many topics must not spend the
    // process's (vm.max_map_count is 65530) or fill the disk with segments.
    static constexpr std::int32_t kMaxBrokerPartitions = 10000;

  private:
    std::shared_ptr<Topic> open_topic(const std::string& name, std::int32_t partitions,
                                      const Uuid& id, bool create);

    std::string dir_;
    LogOptions options_;
    std::int32_t max_partitions_;
    mutable std::shared_mutex mutex_;
    std::map<std::string, std::shared_ptr<Topic>, std::less<>> topics_;
    std::mutex create_mutex_;  // one creation or deletion at a time
};

}  // namespace pagewire::kafka
