// pagewire kafka: the Kafka protocol on the network core (net/). One
// KafkaProtocol per worker: the broker state, the worker's waker (an
// eventfd that produce writes when this worker has fetches waiting) and its
// waiting fetches. One KafkaSession per connection: 4-byte size framing
// (the size checked before anything is buffered), the request header v1/v2
// as the API's version says, one handler per API, responses in order. Not
// thread-safe: everything runs on its worker's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kafka/broker_state.hpp"
#include "kafka/handlers.hpp"
#include "net/access_log.hpp"
#include "net/protocol.hpp"

namespace pagewire::kafka {

class KafkaSession;

class KafkaProtocol final : public net::Protocol {
  public:
    // `housekeeping`: this worker applies retention now and then (one does).
    KafkaProtocol(BrokerState& broker, net::WorkerContext& context, bool housekeeping);
    ~KafkaProtocol() override;

    std::unique_ptr<net::Session> make_session() override;
    void on_turn() override;
    const net::Response* over_limit(std::string_view client) override;

    BrokerState& broker() noexcept { return broker_; }
    // This worker's traffic, added to the broker's when it stops.
    BrokerState::Counts& counts() noexcept { return counts_; }
    net::WorkerContext& context() noexcept { return context_; }
    // A fetch starts or stops waiting for data; a group request for the
    // coordinator (GroupCoordinator::ready).
    void wait(KafkaSession* session);
    void unwait(KafkaSession* session) noexcept;
    void wait_group(KafkaSession* session);
    void unwait_group(KafkaSession* session) noexcept;

  private:
    void on_wake();

    BrokerState& broker_;
    net::WorkerContext& context_;
    BrokerState::Waker& waker_;
    std::vector<KafkaSession*> waiting_;        // fetches
    std::vector<KafkaSession*> waiting_group_;  // group requests
    bool housekeeping_;
    std::uint64_t next_retain_ms_ = 0;
    BrokerState::Counts counts_;
};

// Kafka's name of an API key ("Produce", ...; "Unknown" for others).
const char* api_name(std::int16_t key) noexcept;

}  // namespace pagewire::kafka
