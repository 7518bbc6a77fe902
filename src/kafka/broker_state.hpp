// pagewire kafka: what every worker of the broker shares — the config, the
// topics, the advertised address, the producer-id counter and the wakers
// that produce uses to end the long polls of waiting fetches. Thread-safe
// (the wakers are made before the workers start and not changed after).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <pagewire/broker.hpp>
#include <pagewire/unique_fd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "kafka/groups.hpp"
#include "kafka/topics.hpp"

namespace pagewire::kafka {

// The options of every partition's log, from the broker's config.
LogOptions log_options(const broker::BrokerConfig& config);

struct BrokerState {
    // One per worker: an eventfd its protocol watches, and how many of its
    // fetches wait (produce writes the eventfd only then).
    struct Waker {
        UniqueFd event_fd;
        std::atomic<unsigned> waiting{0};
    };

    BrokerState(const broker::BrokerConfig& c, LogOptions log_options)
        : config(c), topics(c.data_dir, log_options) {}

    // Wakes the workers that have fetches waiting (after an append).
    void appended() noexcept;
    // Wakes every worker (a pending group request became ready).
    void wake_all() noexcept;
    // A new waker for a worker (main thread, before the workers start).
    Waker& add_waker();

    // The address given to clients: known once the server has bound (port 0).
    void set_advertised(std::string host, std::int32_t port);
    std::pair<std::string, std::int32_t> advertised() const;

    // Traffic, added up from every worker's own counts when it stops.
    struct Counts {
        std::array<std::uint64_t, 32> requests{};  // by API key (larger keys in the last)
        std::uint64_t connections = 0, bytes_in = 0, bytes_out = 0;
        void add(const Counts& o) noexcept;
    };
    void add_counts(const Counts& c);
    Counts counts() const;

    const broker::BrokerConfig& config;
    TopicRegistry topics;
    std::int32_t node_id = 0;
    std::string cluster_id;
    std::atomic<std::int64_t> next_producer_id{0};
    std::vector<std::unique_ptr<Waker>> wakers;
    std::unique_ptr<GroupCoordinator> groups;  // consumer groups and committed offsets

  private:
    mutable std::mutex counts_mutex_;
    Counts counts_;
    mutable std::mutex advertised_mutex_;
    std::string host_;
    std::int32_t port_ = 0;
};

}  // namespace pagewire::kafka
