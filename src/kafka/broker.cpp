// pagewire::broker::run_broker (pagewire/broker.hpp): opens the topics,
// then runs the network core with one KafkaProtocol per worker. The shared
// state (topics, wakers) lives on this thread's stack and outlives the
// workers; its destructor closes every log cleanly after the last request.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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

void BrokerState::wake_all() noexcept {
    const std::uint64_t one = 1;
    for (const auto& w : wakers) (void)!::write(w->event_fd.get(), &one, sizeof one);
}

BrokerState::Waker& BrokerState::add_waker() {
    auto w = std::make_unique<Waker>();
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw_error("eventfd", "broker waker");
    w->event_fd = UniqueFd(fd);
    wakers.push_back(std::move(w));
    return *wakers.back();
}

void BrokerState::Counts::add(const Counts& o) noexcept {
    for (std::size_t i = 0; i < requests.size(); ++i) requests[i] += o.requests[i];
    connections += o.connections;
    bytes_in += o.bytes_in;
    bytes_out += o.bytes_out;
}

void BrokerState::add_counts(const Counts& c) {
    std::lock_guard lock(counts_mutex_);
    counts_.add(c);
}

BrokerState::Counts BrokerState::counts() const {
    std::lock_guard lock(counts_mutex_);
    return counts_;
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

BrokerSummary run_broker(const BrokerConfig& config,
                         const std::function<void(const std::string&, unsigned)>& on_listening) {
    net::ServerConfig core;
    core.name = "broker";
    net::parse_listen_address(config.listen, core);
    std::pair<std::string, std::int32_t> advertise;
    if (!config.advertise.empty()) advertise = split_host_port(config.advertise, "--advertise");
    kafka::BrokerState state(config, kafka::log_options(config));
    state.cluster_id = "pagewire";
    // Producer ids unique across restarts too (the ms clock at start, scaled).
    state.next_producer_id = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count() *
                             1000;
    // Kafka's name for the offsets topic; not a topic here (no -meta.json).
    state.groups = std::make_unique<kafka::GroupCoordinator>(
        config.data_dir + "/__consumer_offsets", [&state] { state.wake_all(); });
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
    const auto started = std::chrono::steady_clock::now();
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
    state.groups->close();
    BrokerSummary summary;
    summary.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const kafka::BrokerState::Counts counts = state.counts();
    summary.connections = counts.connections;
    summary.bytes_in = counts.bytes_in;
    summary.bytes_out = counts.bytes_out;
    for (std::size_t key = 0; key < counts.requests.size(); ++key)
        if (counts.requests[key] != 0)
            summary.requests.emplace_back(key + 1 == counts.requests.size()
                                              ? "Unknown"
                                              : kafka::api_name(static_cast<std::int16_t>(key)),
                                          counts.requests[key]);
    std::stable_sort(summary.requests.begin(), summary.requests.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    return summary;
}

}  // namespace pagewire::broker
