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

namespace pagewire::broker {

struct BrokerConfig {
    std::string data_dir;  // created if missing
    std::string listen = "127.0.0.1:9092";
    std::string advertise;  // HOST:PORT given to clients (empty: the bound address)
    Durability durability = Durability::None;
    std::uint32_t default_partitions = 1;  // of an auto-created topic
    std::uint64_t retention_bytes = 0;     // per partition (0: unbounded)
    std::uint64_t retention_ms = 0;        // 0: unbounded
    std::uint64_t segment_bytes = 1ULL << 30;
    bool auto_create = true;  // Metadata and Produce create unknown topics
    bool fetch_copy = false;  // Fetch copies records through user space instead of sendfile
    unsigned workers = 0;     // 0: one per online CPU
    std::size_t max_connections = 10000;
    std::size_t max_request_bytes = 100 * 1024 * 1024;  // Kafka's socket.request.max.bytes
    std::size_t max_batch_bytes = 1048588;              // Kafka's message.max.bytes
    std::size_t max_fetch_bytes = 55 * 1024 * 1024;     // Kafka's fetch.max.bytes
    std::string access_log;  // one line per request to this file (empty: none)
};

// Runs the broker until SIGTERM / SIGINT, then finishes in-flight requests
// and closes every log cleanly. Calls on_listening(address, workers) once
// it serves. Throws pagewire::Error for what prevents starting.
void run_broker(
    const BrokerConfig& config,
    const std::function<void(const std::string& address, unsigned workers)>& on_listening);

}  // namespace pagewire::broker
