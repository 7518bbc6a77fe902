// The Kafka protocol on the network core: see session.hpp.
#include "kafka/session.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <pagewire/error.hpp>

#include "log/wire.hpp"

namespace pagewire::kafka {
namespace {

constexpr std::size_t kSizeBytes = 4;
// api_key, api_version, correlation_id, client_id's length: the least a
// request header can be.
constexpr std::int32_t kMinRequestBytes = 10;
constexpr std::uint64_t kRetainEveryMs = 5'000;

}  // namespace

const char* api_name(std::int16_t key) noexcept {
    switch (static_cast<ApiKey>(key)) {
        case ApiKey::Produce:
            return "Produce";
        case ApiKey::Fetch:
            return "Fetch";
        case ApiKey::ListOffsets:
            return "ListOffsets";
        case ApiKey::Metadata:
            return "Metadata";
        case ApiKey::OffsetCommit:
            return "OffsetCommit";
        case ApiKey::OffsetFetch:
            return "OffsetFetch";
        case ApiKey::FindCoordinator:
            return "FindCoordinator";
        case ApiKey::JoinGroup:
            return "JoinGroup";
        case ApiKey::Heartbeat:
            return "Heartbeat";
        case ApiKey::LeaveGroup:
            return "LeaveGroup";
        case ApiKey::SyncGroup:
            return "SyncGroup";
        case ApiKey::DescribeGroups:
            return "DescribeGroups";
        case ApiKey::ListGroups:
            return "ListGroups";
        case ApiKey::ApiVersions:
            return "ApiVersions";
        case ApiKey::CreateTopics:
            return "CreateTopics";
        case ApiKey::DeleteTopics:
            return "DeleteTopics";
        case ApiKey::InitProducerId:
            return "InitProducerId";
    }
    return "Unknown";
}

class KafkaSession final : public net::Session {
  public:
    explicit KafkaSession(KafkaProtocol& protocol) noexcept : protocol_(protocol) {}

    void start(net::Link& link) override {
        ++protocol_.counts().connections;
        link_ = &link;
        response_.clear();
        slices_.clear();
        waiting_ = false;
    }

    net::Input on_input(const char* data, std::size_t size, bool stopping) override {
        net::Input in;
        if (size < kSizeBytes) return in;
        const auto n = wire::get_be<std::int32_t>(reinterpret_cast<const std::byte*>(data));
        const BrokerState& broker = protocol_.broker();
        if (n < kMinRequestBytes ||
            static_cast<std::uint64_t>(n) > broker.config.max_request_bytes) {
            // Kafka closes such a connection too: no header to answer to.
            log_line(std::string("bad frame size ") + std::to_string(n) + ": closing");
            response_.clear();
            response_.close = true;
            in.kind = net::Input::Kind::Error;
            in.response = &response_;
            return in;
        }
        if (size < kSizeBytes + static_cast<std::size_t>(n)) return in;
        in.consumed = kSizeBytes + static_cast<std::size_t>(n);
        in.response = &response_;
        in.kind = net::Input::Kind::Respond;
        if (!handle(data + kSizeBytes, static_cast<std::size_t>(n), stopping, in))
            in.kind = net::Input::Kind::Error;
        return in;
    }

    net::Response* on_input_limit(net::InputLimit why) override {
        log_line(why == net::InputLimit::Timeout ? "request timed out" : "request too large");
        response_.clear();
        return nullptr;
    }

    net::Response* on_resume(bool) override {
        if (ticket_ != 0) {
            protocol_.unwait_group(this);
            finish_group();
            return &response_;
        }
        if (waiting_) protocol_.unwait(this);
        answer_fetch();
        return &response_;
    }

    void on_sent(net::Response&, std::uint64_t body_sent, bool complete) override {
        protocol_.counts().bytes_out += header_bytes_ + body_sent;
        if (protocol_.context().access_log().enabled() && api_ >= 0) {
            log_line(std::string(api_name(api_)) + " v" + std::to_string(version_) +
                     " correlation=" + std::to_string(correlation_) + " bytes=" +
                     std::to_string(header_bytes_ + body_sent) + (complete ? "" : " incomplete"));
        }
        slices_.clear();  // the segment files may go now
    }

    void on_close() noexcept override {
        if (waiting_) protocol_.unwait(this);
        if (ticket_ != 0) {
            protocol_.unwait_group(this);
            protocol_.broker().groups->cancel(ticket_);
            ticket_ = 0;
        }
        response_.clear();
        slices_.clear();
        fetch_ = FetchRequest{};
        link_ = nullptr;
    }

    // A waiting fetch can be answered: its data came (KafkaProtocol::on_wake).
    bool fetch_due() const { return fetch_ready(fetch_); }
    void resume() noexcept {
        waiting_ = false;
        link_->resume();
    }
    void set_waiting(bool w) noexcept { waiting_ = w; }
    // The pending group request's ticket (0: none).
    std::uint64_t ticket() const noexcept { return ticket_; }
    void resume_group() noexcept { link_->resume(); }

  private:
    // Answers one request of `n` bytes at `body` (after the size). False:
    // close the connection after the response (if any).
    bool handle(const char* body, std::size_t n, bool stopping, net::Input& in) {
        Decoder d(body, n);
        api_ = d.i16();
        version_ = d.i16();
        BrokerState::Counts& counts = protocol_.counts();
        ++counts.requests[std::min<std::size_t>(api_ < 0 ? counts.requests.size() - 1 : api_,
                                                counts.requests.size() - 1)];
        counts.bytes_in += kSizeBytes + n;
        const auto key = static_cast<ApiKey>(api_);
        const ApiRange* api = find_api(key);
        const bool supported = api != nullptr && version_ >= api->min && version_ <= api->max;
        const bool flexible = supported && version_ >= api->flexible_from;
        flexible_ = flexible;
        d = Decoder(body, n);
        const RequestHeader h = read_request_header(d, flexible);
        correlation_ = h.correlation_id;
        response_.clear();
        std::string& out = response_.data;
        out.append(kSizeBytes, '\0');
        // ApiVersions' response header is v0 at every version.
        Encoder header(out);
        write_response_header(header, h.correlation_id, flexible && key != ApiKey::ApiVersions);
        header_bytes_ = 0;
        if (!d.ok()) {
            log_line("request header does not decode: closing");
            response_.clear();
            response_.close = true;
            return false;
        }
        Encoder e(out, flexible);
        d.set_flexible(flexible);
        BrokerState& broker = protocol_.broker();
        Request r{broker, key, version_, d, e};
        if (!supported) {
            if (key == ApiKey::ApiVersions) {
                write_api_versions_unsupported(e);
                finish();
                return true;
            }
            // No body of an unknown version can be written: the error code
            // alone, then the connection closes (as Kafka closes it).
            log_line(std::string(api_name(api_)) + " v" + std::to_string(version_) +
                     " is not supported: closing");
            e.error(ErrorCode::UnsupportedVersion);
            finish();
            response_.close = true;
            return false;
        }
        if (GroupCoordinator::handles(key)) return start_group(r, h, in);
        switch (key) {
            case ApiKey::ApiVersions:
                handle_api_versions(r);
                break;
            case ApiKey::CreateTopics:
                handle_create_topics(r);
                break;
            case ApiKey::DeleteTopics:
                handle_delete_topics(r);
                break;
            case ApiKey::InitProducerId:
                handle_init_producer_id(r);
                break;
            case ApiKey::Metadata:
                handle_metadata(r);
                break;
            case ApiKey::ListOffsets:
                handle_list_offsets(r);
                break;
            case ApiKey::Produce:
                if (!handle_produce(r)) {
                    response_.clear();  // acks 0: nothing is sent
                    return true;
                }
                break;
            case ApiKey::Fetch:
                return start_fetch(d, stopping, in);
            default:
                break;
        }
        finish();
        return true;
    }

    bool start_fetch(Decoder& d, bool stopping, net::Input& in) {
        if (!decode_fetch(protocol_.broker(), version_, d, fetch_)) {
            fetch_.topics.clear();
            fetch_.error = ErrorCode::InvalidRequest;
        }
        if (!stopping && fetch_.max_wait_ms > 0 && fetch_.error == ErrorCode::None &&
            !fetch_ready(fetch_)) {
            // Registered before the second look, so an append between the
            // two wakes this worker (see BrokerState::appended).
            protocol_.wait(this);
            if (!fetch_ready(fetch_)) {
                in.kind = net::Input::Kind::Defer;
                in.defer_ms = static_cast<unsigned>(fetch_.max_wait_ms);
                in.response = nullptr;
                return true;
            }
            protocol_.unwait(this);
        }
        answer_fetch();
        return true;
    }

    bool start_group(Request& r, const RequestHeader& h, net::Input& in) {
        GroupCoordinator& groups = *r.broker.groups;
        const auto [host, port] = r.broker.advertised();
        GroupContext context;
        context.node_id = r.broker.node_id;
        context.host = host;
        context.port = port;
        context.client_id = h.client_id.value_or(std::string_view{});
        context.client_host = link_->client();
        context.now_ms = protocol_.context().now_ms();
        const GroupCoordinator::Outcome o = groups.handle(r.key, r.version, r.in, r.out, context);
        if (!o.pending) {
            finish();
            return true;
        }
        ticket_ = o.ticket;
        // Registered before the second look, so a wake between the two is not lost.
        protocol_.wait_group(this);
        if (groups.ready(ticket_)) {
            protocol_.unwait_group(this);
            finish_group();
            return true;
        }
        in.kind = net::Input::Kind::Defer;
        in.defer_ms = std::max(o.wait_ms, 1U);
        in.response = nullptr;
        return true;
    }

    // The pending group request's answer, after the header in response_.data.
    void finish_group() {
        Encoder e(response_.data, flexible_);
        protocol_.broker().groups->finish(ticket_, e, protocol_.context().now_ms());
        ticket_ = 0;
        finish();
    }

    // The header is in response_.data: the body and the segments.
    void answer_fetch() {
        write_fetch(fetch_, response_, version_ >= find_api(ApiKey::Fetch)->flexible_from,
                    protocol_.broker().config.fetch_copy, slices_);
        header_bytes_ = response_.segments.empty() ? 0 : response_.segments.front().length;
    }

    // The whole answer is in response_.data: its size, one segment.
    void finish() {
        std::string& out = response_.data;
        Encoder(out).patch32(0, static_cast<std::int32_t>(out.size() - kSizeBytes));
        response_.segments.push_back({false, 0, out.size(), -1});
        header_bytes_ = out.size();
    }

    void log_line(const std::string& what) {
        net::AccessLog& log = protocol_.context().access_log();
        if (!log.enabled()) return;
        char when[32];
        const std::time_t now = std::time(nullptr);
        std::tm tm{};
        ::gmtime_r(&now, &tm);
        std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        std::string& b = log.buffer();
        b.append(when).append(" ").append(link_ ? link_->client() : "-").append(" ");
        b.append(what).append("\n");
    }

    KafkaProtocol& protocol_;
    net::Link* link_ = nullptr;
    net::Response response_;        // the one answer in flight
    std::vector<LogSlice> slices_;  // the file segments of response_, kept open
    FetchRequest fetch_;            // the fetch being answered (or waiting)
    bool waiting_ = false;          // in the protocol's waiting list
    bool flexible_ = false;         // the request's version is flexible
    std::uint64_t ticket_ = 0;      // a pending group request (0: none)
    std::int16_t api_ = -1;
    std::int16_t version_ = 0;
    std::int32_t correlation_ = 0;
    std::uint64_t header_bytes_ = 0;  // segment 0, for the access log
};

KafkaProtocol::KafkaProtocol(BrokerState& broker, net::WorkerContext& context, bool housekeeping)
    : broker_(broker), context_(context), waker_(broker.add_waker()), housekeeping_(housekeeping) {
    context_.watch(waker_.event_fd.get(), [this] { on_wake(); });
}

KafkaProtocol::~KafkaProtocol() {
    context_.unwatch(waker_.event_fd.get());
    broker_.add_counts(counts_);
}

std::unique_ptr<net::Session> KafkaProtocol::make_session() {
    return std::make_unique<KafkaSession>(*this);
}

void KafkaProtocol::on_turn() {
    const std::uint64_t now = context_.now_ms();
    broker_.groups->tick(now);
    if (!housekeeping_) return;
    if (now < next_retain_ms_) return;
    next_retain_ms_ = now + kRetainEveryMs;
    if (broker_.config.retention_bytes > 0 || broker_.config.retention_ms > 0)
        broker_.topics.retain_all();
}

const net::Response* KafkaProtocol::over_limit(std::string_view) {
    return nullptr;
}

void KafkaProtocol::wait(KafkaSession* session) {
    waiting_.push_back(session);
    session->set_waiting(true);
    waker_.waiting.fetch_add(1);
}

void KafkaProtocol::unwait(KafkaSession* session) noexcept {
    const auto it = std::find(waiting_.begin(), waiting_.end(), session);
    if (it == waiting_.end()) return;
    waiting_.erase(it);
    session->set_waiting(false);
    waker_.waiting.fetch_sub(1);
}

void KafkaProtocol::wait_group(KafkaSession* session) {
    waiting_group_.push_back(session);
}

void KafkaProtocol::unwait_group(KafkaSession* session) noexcept {
    const auto it = std::find(waiting_group_.begin(), waiting_group_.end(), session);
    if (it != waiting_group_.end()) waiting_group_.erase(it);
}

void KafkaProtocol::on_wake() {
    std::uint64_t count = 0;
    while (::read(waker_.event_fd.get(), &count, sizeof count) > 0) {
    }
    for (std::size_t i = 0; i < waiting_group_.size();) {
        KafkaSession* s = waiting_group_[i];
        if (broker_.groups->ready(s->ticket())) {
            waiting_group_.erase(waiting_group_.begin() + static_cast<std::ptrdiff_t>(i));
            s->resume_group();
        } else {
            ++i;
        }
    }
    for (std::size_t i = 0; i < waiting_.size();) {
        KafkaSession* s = waiting_[i];
        if (s->fetch_due()) {
            waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
            waker_.waiting.fetch_sub(1);
            s->resume();
        } else {
            ++i;
        }
    }
}

}  // namespace pagewire::kafka
