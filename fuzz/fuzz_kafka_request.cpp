// libFuzzer target: arbitrary bytes as one client connection's input to
// pagewire broker's Kafka sessions (issue 15) — the size framing, the
// request header, every API handler and the group coordinator run for real
// over a scratch data directory made afresh for each input (topic "t" with
// one batch in partition 0, topic "u" of two partitions), so a crash
// reproduces from its input alone. Frames are taken as the network core
// takes them (net/worker.cpp): pipelined, one at a time, the first half of
// the input arriving first; a deferred answer (a long-poll Fetch, a pending
// JoinGroup/SyncGroup) is resumed by the waker or by its timer on a fake
// clock before the next frame. The input's parity picks Fetch's copy or
// sendfile path. Beyond what ASan/UBSan/LSan catch, it checks that every
// response's size prefix equals the bytes that follow it and that its
// segments lie inside its memory or its file.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <pagewire/broker.hpp>
#include <pagewire/log.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kafka/broker_state.hpp"
#include "kafka/session.hpp"
#include "log/wire.hpp"
#include "net/access_log.hpp"
#include "net/protocol.hpp"

namespace kafka = pagewire::kafka;
namespace net = pagewire::net;

namespace {

// Frames per input: enough for a produce-fetch-commit conversation, few
// enough that one input stays fast.
constexpr int kMaxFrames = 32;
// Resumes of one deferred answer before it counts as a hang.
constexpr int kMaxResumeRounds = 64;

std::string g_base;  // the mkdtemp directory; each input's data dir is below it
int g_null_fd = -1;  // the access log's descriptor (/dev/null: lines built, not kept)

void remove_base() {
    std::error_code ec;
    std::filesystem::remove_all(g_base, ec);
}

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "invariant violated: %s\n", what);
        std::abort();
    }
}

class FakeContext final : public net::WorkerContext {
  public:
    net::AccessLog& access_log() noexcept override { return log_; }
    std::uint64_t now_ms() const noexcept override { return now_ms_; }
    void watch(int fd, std::function<void()> on_ready) override {
        fd_ = fd;
        on_ready_ = std::move(on_ready);
    }
    void unwatch(int fd) noexcept override {
        if (fd == fd_) {
            fd_ = -1;
            on_ready_ = nullptr;
        }
    }

    void advance(std::uint64_t ms) noexcept { now_ms_ += ms; }
    // As the worker's epoll: the watched eventfd's callback when it is readable.
    void poll_watched() {
        if (fd_ < 0 || !on_ready_) return;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0) on_ready_();
    }

  private:
    net::AccessLog log_{g_null_fd, "fuzz access log"};
    std::uint64_t now_ms_ = 1'000'000;
    int fd_ = -1;
    std::function<void()> on_ready_;
};

class FakeLink final : public net::Link {
  public:
    void resume() noexcept override { resumed = true; }
    std::string_view client() const noexcept override { return "127.0.0.1"; }
    bool resumed = false;
};

// A response as the core would send it: segment 0 in memory first, every
// segment inside its bytes, the size prefix counting all that follows it.
std::uint64_t verify(const net::Response& r) {
    check(!r.segments.empty() && !r.segments[0].file, "a header block first");
    check(r.segments[0].offset == 0 && r.segments[0].length >= 8, "header has size + id");
    std::uint64_t total = 0;
    std::uint64_t body = 0;
    for (std::size_t i = 0; i < r.segments.size(); ++i) {
        const net::Segment& s = r.segments[i];
        if (s.file) {
            check(s.fd >= 0, "file segment names a descriptor");
            struct stat st {};
            check(::fstat(s.fd, &st) == 0, "file segment's descriptor is open");
            check(s.offset + s.length <= static_cast<std::uint64_t>(st.st_size),
                  "file segment inside the file");
        } else {
            check(s.offset + s.length <= r.data.size(), "memory segment inside the data");
        }
        total += s.length;
        if (i > 0) body += s.length;
    }
    const auto size =
        pagewire::wire::get_be<std::int32_t>(reinterpret_cast<const std::byte*>(r.data.data()));
    check(size >= 4 && static_cast<std::uint64_t>(size) + 4 == total,
          "size prefix equals the bytes after it");
    return body;
}

// One scratch broker: config, state, a protocol on the fake worker.
struct Broker {
    explicit Broker(const std::string& dir, bool fetch_copy) {
        config.data_dir = dir;
        config.default_partitions = 2;
        // Small segments: rolls happen, and thousands of partitions fit /tmp.
        config.segment_bytes = 16 * 1024;
        config.max_request_bytes = 1 << 20;
        config.fetch_copy = fetch_copy;
        state = std::make_unique<kafka::BrokerState>(config, kafka::log_options(config));
        state->cluster_id = "pagewire";
        state->next_producer_id = 1000;
        state->set_advertised("127.0.0.1", 9092);
        kafka::BrokerState* s = state.get();
        state->groups = std::make_unique<kafka::GroupCoordinator>(dir + "/__consumer_offsets",
                                                                  [s] { s->wake_all(); });
        kafka::ErrorCode error{};
        std::string message;
        auto t = state->topics.create("t", 1, error, message);
        if (!t) std::abort();
        const pagewire::Record records[] = {{"k0", "v0"}, {std::nullopt, "v1"}};
        t->partitions[0]->log.append(records, 1'700'000'000'000);
        if (!state->topics.create("u", 2, error, message)) std::abort();
        protocol = std::make_unique<kafka::KafkaProtocol>(*state, context, true);
    }
    ~Broker() {
        protocol.reset();
        state->groups->close();
        state.reset();
    }

    pagewire::broker::BrokerConfig config;
    FakeContext context;
    std::unique_ptr<kafka::BrokerState> state;
    std::unique_ptr<kafka::KafkaProtocol> protocol;
};

// The deferred answer: woken by data or the coordinator, else by its timer.
net::Response* resume(Broker& b, net::Session& session, FakeLink& link, unsigned defer_ms) {
    for (int round = 0; round < kMaxResumeRounds; ++round) {
        b.context.poll_watched();
        if (link.resumed) {
            link.resumed = false;
            return session.on_resume(false);
        }
        // Time passes in steps, so coordinator deadlines (the initial
        // rebalance delay, session timeouts) come due on their turn.
        const std::uint64_t step = std::min<std::uint64_t>(defer_ms, 100);
        b.context.advance(step);
        b.protocol->on_turn();
        if (static_cast<std::uint64_t>(round + 1) * step >= defer_ms) {
            b.context.poll_watched();
            const bool woken = link.resumed;
            link.resumed = false;
            return session.on_resume(!woken);
        }
    }
    return session.on_resume(true);
}

void run(Broker& b, const std::string& input) {
    std::unique_ptr<net::Session> session = b.protocol->make_session();
    FakeLink link;
    session->start(link);
    std::size_t start = 0;
    std::size_t available = input.size() / 2;
    for (int frames = 0; frames < kMaxFrames;) {
        const net::Input in = session->on_input(input.data() + start, available - start, false);
        if (in.kind == net::Input::Kind::NeedMore) {
            if (available == input.size()) break;
            available = input.size();
            continue;
        }
        ++frames;
        net::Response* response = in.response;
        if (in.kind == net::Input::Kind::Defer) {
            check(in.consumed > 0 && in.consumed <= available - start, "consumed within input");
            start += in.consumed;
            response = resume(b, *session, link, in.defer_ms);
            check(response != nullptr, "a resumed request is answered");
        } else if (in.kind == net::Input::Kind::Respond) {
            check(in.consumed > 0 && in.consumed <= available - start, "consumed within input");
            start += in.consumed;
        } else {
            start = available;  // an error drops what was buffered
        }
        check(response != nullptr, "a frame gets a response");
        std::uint64_t body = 0;
        // acks 0: a Produce answered by nothing.
        if (!response->segments.empty()) body = verify(*response);
        session->on_sent(*response, body, true);
        b.context.access_log().flush();
        if (in.kind == net::Input::Kind::Error || response->close) break;
        b.protocol->on_turn();
    }
    session->on_close();
    b.context.access_log().flush();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // tmpfs when there is one: the broker fsyncs its meta and offsets files,
    // which on a disk would make each input wait milliseconds for nothing.
    struct stat st {};
    const bool shm =
        ::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0;
    std::string templ = std::string(shm ? "/dev/shm" : "/tmp") + "/pagewire-fuzz-kafka-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    g_base = templ;
    std::atexit(remove_base);
    g_null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (g_null_fd < 0) std::abort();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    const std::string dir = g_base + "/data";
    {
        Broker broker(dir, (size & 1) != 0);
        run(broker, input);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) std::abort();
    return 0;
}
