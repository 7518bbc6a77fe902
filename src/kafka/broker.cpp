// pagewire::broker::run_broker (pagewire/broker.hpp): opens the topics,
// then runs the network core with one KafkaProtocol per worker. The shared
// state (topics, wakers) lives on this thread's stack and outlives the
// workers; its destructor closes every log cleanly after the last request.
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <pagewire/broker.hpp>
#include <pagewire/error.hpp>

#include "kafka/broker_state.hpp"
#include "kafka/session.hpp"
#include "net/access_log.hpp"
#include "net/server.hpp"

namespace pagewire::kafka {

void BrokerState::appended() noexcept {
    // Pairs with the waiting fetch's fetch_add before its second look at the log.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const std::uint64_t one = 1;
    for (const auto& w : wakers)
        if (w->waiting.load() > 0) (void)!::write(w->event_fd.get(), &one, sizeof one);
}

BrokerState::Waker& BrokerState::add_waker() {
    auto w = std::make_unique<Waker>();
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw_error("eventfd", "broker waker");
    w->event_fd = UniqueFd(fd);
    wakers.push_back(std::move(w));
    return *wakers.back();
}

void BrokerState::set_advertised(std::string host, std::int32_t port) {
    std::lock_guard lock(advertised_mutex_);
    host_ = std::move(host);
    port_ = port;
}

std::pair<std::string, std::int32_t> BrokerState::advertised() const {
    std::lock_guard lock(advertised_mutex_);
    return {host_, port_};
}

}  // namespace pagewire::kafka

namespace pagewire::broker {
namespace {

// HOST:PORT or [IPv6]:PORT into its parts; throws Error (EINVAL).
std::pair<std::string, std::int32_t> split_host_port(const std::string& text, const char* option) {
    const std::size_t colon = text.rfind(':');
    std::string host = colon == std::string::npos ? "" : text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    long port = -1;
    if (colon != std::string::npos && colon + 1 < text.size()) {
        char* end = nullptr;
        port = std::strtol(text.c_str() + colon + 1, &end, 10);
        if (*end != '\0') port = -1;
    }
    if (host.empty() || port < 0 || port > 65535)
        throw Error(option, text, EINVAL, "expected HOST:PORT");
    return {host, static_cast<std::int32_t>(port)};
}

}  // namespace

void run_broker(const BrokerConfig& config,
                const std::function<void(const std::string&, unsigned)>& on_listening) {
    net::ServerConfig core;
    core.name = "broker";
    net::parse_listen_address(config.listen, core);
    std::pair<std::string, std::int32_t> advertise;
    if (!config.advertise.empty()) advertise = split_host_port(config.advertise, "--advertise");
    LogOptions log;
    log.durability = config.durability;
    log.retention_bytes = config.retention_bytes;
    log.retention_age = std::chrono::milliseconds(config.retention_ms);
    log.segment_bytes = config.segment_bytes;
    kafka::BrokerState state(config, log);
    state.cluster_id = "pagewire";
    UniqueFd log_fd;
    if (!config.access_log.empty()) log_fd = net::open_access_log(config.access_log);

    core.workers = config.workers;
    core.max_connections = config.max_connections;
    core.max_frame_bytes = config.max_request_bytes + 4;
    // A client keeps its connection open between requests for long (Kafka's
    // connections.max.idle.ms is 10 minutes).
    core.idle_timeout_ms = 600'000;
    core.frame_timeout_ms = 60'000;
    core.access_log_fd = log_fd.get();
    bool first = true;
    net::run_server(
        core,
        [&](net::WorkerContext& context) {
            const bool housekeeping = first;
            first = false;
            return std::make_unique<kafka::KafkaProtocol>(state, context, housekeeping);
        },
        [&](const std::string& address, unsigned workers) {
            if (config.advertise.empty()) {
                advertise = split_host_port(address, "--listen");
            }
            state.set_advertised(advertise.first, advertise.second);
            on_listening(address, workers);
        });
}

}  // namespace pagewire::broker
