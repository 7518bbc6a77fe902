// Third-party peers of `pagewire bench ipc` (see bench_ipc.hpp): each library
// in the mode its users pick for speed.
//   - "boost message_queue": Boost.Interprocess message_queue, one queue per
//     direction, blocking send/receive (a copy in, a copy out).
//   - "zeromq ipc": libzmq ZMQ_PAIR sockets over ipc:// (a Unix socket),
//     zmq_msg_t messages filled in place, blocking receive.
//   - "iceoryx" and "iceoryx wait": iceoryx 2.0 untyped publish/subscribe,
//     zero-copy (the sender fills the loaned chunk, the receiver reads it in
//     place), one topic per direction, blocking-producer QoS so a stream never
//     loses a message. "iceoryx" busy-polls take() (its lowest latency);
//     "iceoryx wait" sleeps in a WaitSet until data arrives. The RouDi daemon
//     iceoryx needs is started by prepare() with a memory config sized for the
//     run and stopped by cleanup().
// Everything a run creates (queues in /dev/shm, scratch directories in /tmp)
// is named "pagewire-peers-<pid>-..." after the process that called prepare().
#include <pagewire/error.hpp>

#include "bench_ipc.hpp"

#if PAGEWIRE_BENCH_HAVE_BOOST
#include <boost/interprocess/ipc/message_queue.hpp>
#endif
#if PAGEWIRE_BENCH_HAVE_ICEORYX
#include <iceoryx_hoofs/log/logmanager.hpp>
#include <iceoryx_hoofs/platform/platform_settings.hpp>
#include <iceoryx_posh/internal/runtime/ipc_interface_base.hpp>
#include <iceoryx_posh/internal/runtime/ipc_message.hpp>
#include <iceoryx_posh/mepoo/chunk_header.hpp>
#include <iceoryx_posh/popo/untyped_publisher.hpp>
#include <iceoryx_posh/popo/untyped_subscriber.hpp>
#include <iceoryx_posh/popo/wait_set.hpp>
#include <iceoryx_posh/runtime/posh_runtime.hpp>
#endif
#if PAGEWIRE_BENCH_HAVE_ZMQ
#include <zmq.h>
#endif

#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

namespace pagewire::bench::ipc {
namespace {

namespace fs = std::filesystem;
#if PAGEWIRE_BENCH_HAVE_BOOST
namespace bip = boost::interprocess;
#endif
using Clock = std::chrono::steady_clock;

// Memory one direction of a link may hold in queued messages: the depth a
// run asks for is cut to what fits (64 × 1 MiB), never below kMinDepth.
[[maybe_unused]] constexpr std::size_t kLinkBudgetBytes = 64 * 1024 * 1024;
[[maybe_unused]] constexpr std::size_t kMinDepth = 2;
// How long a receive or a blocked send waits for the peer before it reports
// the peer as gone (the runner's messages follow each other within ms).
[[maybe_unused]] constexpr auto kStallTimeout = std::chrono::seconds(30);
// How long both ends of a link wait for each other to connect.
[[maybe_unused]] constexpr auto kConnectTimeout = std::chrono::seconds(10);

// Messages a link holds per direction for `limits`.
[[maybe_unused]] std::size_t link_depth(const LinkLimits& limits) {
    const std::size_t fit = kLinkBudgetBytes / std::max<std::size_t>(limits.max_message, 1);
    return std::max(kMinDepth, std::min(limits.depth, fit));
}

// "pagewire-peers-<pid>-<n>": unique among the links this process prepares
// and among processes running at once.
[[maybe_unused]] std::string unique_tag() {
    static std::atomic<unsigned> counter{0};
    return "pagewire-peers-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// A fresh private directory /tmp/<tag>-XXXXXX.
[[maybe_unused]] fs::path make_scratch_dir(const std::string& tag) {
    std::string path = (fs::temp_directory_path() / (tag + "-XXXXXX")).string();
    if (::mkdtemp(path.data()) == nullptr) throw_error("mkdtemp", path);
    return path;
}

[[maybe_unused]] void remove_scratch_dir(const fs::path& dir) noexcept {
    std::error_code ignored;
    if (!dir.empty()) fs::remove_all(dir, ignored);
}

// A peer this build was configured without: its rows say which package to
// install, and nothing else of it runs.
class MissingPeer final : public Method {
  public:
    MissingPeer(std::string name, std::string package)
        : name_(std::move(name)), package_(std::move(package)) {}
    std::string name() const override { return name_; }
    std::optional<std::string> unavailable(const LinkLimits& /*limits*/) const override {
        return "not built in: install the Debian package " + package_ + " and reconfigure";
    }
    void prepare(const LinkLimits& /*limits*/) override {}
    std::unique_ptr<Endpoint> connect(int /*side*/) override { return nullptr; }
    void cleanup() noexcept override {}

  private:
    std::string name_;
    std::string package_;
};

#if PAGEWIRE_BENCH_HAVE_BOOST
// ---------------------------------------------------------------------------
// Boost.Interprocess message_queue

// One process's end: the queue it sends on and the queue it receives from,
// each opened from the names prepare() created. Owns two message-sized
// buffers: boost copies a message in from one and out into the other.
class BoostQueueEndpoint final : public Endpoint {
  public:
    BoostQueueEndpoint(const std::string& out_name, const std::string& in_name,
                       std::size_t max_message)
        : out_name_(out_name),
          in_name_(in_name),
          out_(open(out_name)),
          in_(open(in_name)),
          send_buffer_(max_message),
          receive_buffer_(max_message) {}

    void send(std::size_t size, const std::function<void(std::span<std::byte>)>& fill) override {
        if (size > send_buffer_.size()) {
            throw_error("send", out_name_, EMSGSIZE,
                        std::to_string(size) + " bytes is above the queue's message size " +
                            std::to_string(send_buffer_.size()));
        }
        fill(std::span(send_buffer_.data(), size));
        try {
            out_->send(send_buffer_.data(), size, 0);
        } catch (const bip::interprocess_exception& e) {
            throw_error("send", out_name_, native_error(e), e.what());
        }
    }

    void receive(const std::function<void(std::span<const std::byte>)>& on_message) override {
        bip::message_queue::size_type received = 0;
        unsigned int priority = 0;
        try {
            in_->receive(receive_buffer_.data(), receive_buffer_.size(), received, priority);
        } catch (const bip::interprocess_exception& e) {
            throw_error("receive", in_name_, native_error(e), e.what());
        }
        on_message(std::span<const std::byte>(receive_buffer_.data(), received));
    }

    static int native_error(const bip::interprocess_exception& e) {
        return e.get_native_error() != 0 ? e.get_native_error() : EIO;
    }

  private:
    static std::unique_ptr<bip::message_queue> open(const std::string& name) {
        try {
            return std::make_unique<bip::message_queue>(bip::open_only, name.c_str());
        } catch (const bip::interprocess_exception& e) {
            throw_error("open message_queue", name, native_error(e), e.what());
        }
    }

    std::string out_name_;
    std::string in_name_;
    std::unique_ptr<bip::message_queue> out_;
    std::unique_ptr<bip::message_queue> in_;
    std::vector<std::byte> send_buffer_;
    std::vector<std::byte> receive_buffer_;
};

// Owns the two queues (shared memory objects /dev/shm/<tag>-a2b and -b2a)
// from prepare() to cleanup().
class BoostQueueMethod final : public Method {
  public:
    std::string name() const override { return "boost message_queue"; }

    void prepare(const LinkLimits& limits) override {
        cleanup();
        owner_ = ::getpid();
        max_message_ = std::max<std::size_t>(limits.max_message, 1);
        const std::string tag = unique_tag();
        names_ = {tag + "-a2b", tag + "-b2a"};
        for (const std::string& queue : names_) {
            try {
                bip::message_queue created(bip::create_only, queue.c_str(), link_depth(limits),
                                           max_message_);
            } catch (const bip::interprocess_exception& e) {
                cleanup();
                throw_error("create message_queue", queue, BoostQueueEndpoint::native_error(e),
                            e.what());
            }
        }
    }

    std::unique_ptr<Endpoint> connect(int side) override {
        return std::make_unique<BoostQueueEndpoint>(names_.at(side), names_.at(1 - side),
                                                    max_message_);
    }

    void cleanup() noexcept override {
        // A forked child that destroys its copy must not remove the peer's queues.
        if (owner_ != ::getpid()) return;
        for (const std::string& queue : names_) bip::message_queue::remove(queue.c_str());
        names_.clear();
    }

    ~BoostQueueMethod() override { cleanup(); }

  private:
    // names_[s]: the queue side s sends on (empty when nothing is prepared).
    std::vector<std::string> names_;
    std::size_t max_message_ = 0;
    pid_t owner_ = -1;  // the process that called prepare()
};

#endif  // PAGEWIRE_BENCH_HAVE_BOOST

#if PAGEWIRE_BENCH_HAVE_ZMQ
// ---------------------------------------------------------------------------
// ZeroMQ

struct ZmqContextCloser {
    void operator()(void* context) const noexcept {
        while (zmq_ctx_term(context) != 0 && zmq_errno() == EINTR) {
        }
    }
};
struct ZmqSocketCloser {
    void operator()(void* socket) const noexcept { zmq_close(socket); }
};

// Unread zmq_msg_t, closed on every path out of receive().
struct ZmqMessage {
    zmq_msg_t msg;
    ZmqMessage() { zmq_msg_init(&msg); }
    ~ZmqMessage() { zmq_msg_close(&msg); }
    ZmqMessage(const ZmqMessage&) = delete;
    ZmqMessage& operator=(const ZmqMessage&) = delete;
};

// One process's ZeroMQ context and PAIR socket (side 0 binds, side 1
// connects). The context is created here, after fork: a context must not
// cross a fork. Messages are zmq_msg_t: the sender fills the message's own
// buffer, the receiver reads the buffer libzmq received into.
class ZmqEndpoint final : public Endpoint {
  public:
    ZmqEndpoint(const std::string& address, int side, int high_water_mark)
        : address_(address), context_(zmq_ctx_new()) {
        if (!context_) throw_error("zmq_ctx_new", address_, zmq_errno());
        socket_.reset(zmq_socket(context_.get(), ZMQ_PAIR));
        if (!socket_) throw_error("zmq_socket", address_, zmq_errno());
        const int stall_ms = static_cast<int>(std::chrono::milliseconds(kStallTimeout).count());
        set_option(ZMQ_SNDHWM, high_water_mark, "ZMQ_SNDHWM");
        set_option(ZMQ_RCVHWM, high_water_mark, "ZMQ_RCVHWM");
        set_option(ZMQ_SNDTIMEO, stall_ms, "ZMQ_SNDTIMEO");
        set_option(ZMQ_RCVTIMEO, stall_ms, "ZMQ_RCVTIMEO");
        // Bounds the wait in zmq_ctx_term for messages a dead peer never takes.
        set_option(ZMQ_LINGER, stall_ms, "ZMQ_LINGER");
        // Side 1 may connect before side 0 binds: retry soon, not after 100 ms.
        set_option(ZMQ_RECONNECT_IVL, kReconnectMs, "ZMQ_RECONNECT_IVL");
        const int rc = side == 0 ? zmq_bind(socket_.get(), address_.c_str())
                                 : zmq_connect(socket_.get(), address_.c_str());
        if (rc != 0) throw_error(side == 0 ? "zmq_bind" : "zmq_connect", address_, zmq_errno());
    }

    void send(std::size_t size, const std::function<void(std::span<std::byte>)>& fill) override {
        zmq_msg_t msg;
        if (zmq_msg_init_size(&msg, size) != 0)
            throw_error("zmq_msg_init_size", address_, zmq_errno());
        try {
            fill(std::span(static_cast<std::byte*>(zmq_msg_data(&msg)), size));
        } catch (...) {
            zmq_msg_close(&msg);
            throw;
        }
        // On success libzmq owns the message (and empties msg).
        while (zmq_msg_send(&msg, socket_.get(), 0) < 0) {
            const int err = zmq_errno();
            if (err == EINTR) continue;
            zmq_msg_close(&msg);
            throw_error("zmq_msg_send", address_, err,
                        err == EAGAIN ? "peer took nothing for 30 s" : zmq_strerror(err));
        }
    }

    void receive(const std::function<void(std::span<const std::byte>)>& on_message) override {
        ZmqMessage message;
        while (zmq_msg_recv(&message.msg, socket_.get(), 0) < 0) {
            const int err = zmq_errno();
            if (err == EINTR) continue;
            throw_error("zmq_msg_recv", address_, err,
                        err == EAGAIN ? "no message for 30 s" : zmq_strerror(err));
        }
        on_message(std::span(static_cast<const std::byte*>(zmq_msg_data(&message.msg)),
                             zmq_msg_size(&message.msg)));
    }

  private:
    static constexpr int kReconnectMs = 5;

    void set_option(int option, int value, const char* option_name) {
        if (zmq_setsockopt(socket_.get(), option, &value, sizeof value) != 0) {
            throw_error(std::string("zmq_setsockopt ") + option_name, address_, zmq_errno());
        }
    }

    std::string address_;
    // Declared before socket_: the socket closes before the context ends.
    std::unique_ptr<void, ZmqContextCloser> context_;
    std::unique_ptr<void, ZmqSocketCloser> socket_;
};

// Owns the scratch directory that holds the ipc:// socket file.
class ZmqMethod final : public Method {
  public:
    std::string name() const override { return "zeromq ipc"; }

    std::optional<std::string> unavailable(const LinkLimits& limits) const override {
        if (limits.max_message > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
            return "zeromq ipc: messages above 2 GiB";
        }
        return std::nullopt;
    }

    void prepare(const LinkLimits& limits) override {
        cleanup();
        owner_ = ::getpid();
        dir_ = make_scratch_dir(unique_tag() + "-zmq");
        address_ = "ipc://" + (dir_ / "link").string();
        // zmq's high-water marks count messages; 1000 is its default.
        high_water_mark_ = static_cast<int>(std::clamp<std::size_t>(limits.depth, 1000, 1 << 20));
    }

    std::unique_ptr<Endpoint> connect(int side) override {
        return std::make_unique<ZmqEndpoint>(address_, side, high_water_mark_);
    }

    void cleanup() noexcept override {
        // A forked child that destroys its copy must not remove the socket.
        if (owner_ != ::getpid()) return;
        remove_scratch_dir(dir_);
        dir_.clear();
    }

    ~ZmqMethod() override { cleanup(); }

  private:
    fs::path dir_;  // empty when nothing is prepared
    std::string address_;
    int high_water_mark_ = 1000;
    pid_t owner_ = -1;  // the process that called prepare()
};

#endif  // PAGEWIRE_BENCH_HAVE_ZMQ

#if PAGEWIRE_BENCH_HAVE_ICEORYX
// ---------------------------------------------------------------------------
// iceoryx: the RouDi daemon

constexpr const char* kRoudiPath = "/usr/bin/iox-roudi";
constexpr const char* kRoudiLock = "/tmp/roudi.lock";        // RouDi flock()s it while it runs
constexpr const char* kRoudiManagementShm = "iceoryx_mgmt";  // + a segment named after the user
// What else a RouDi that did not end by itself leaves (a clean exit removes them).
constexpr const char* kRoudiFiles[] = {"/tmp/roudi", "/tmp/roudi.lock",
                                       "/tmp/iox-unique-roudi.lock"};
constexpr const char* kRoudiReadyLine = "RouDi is ready for clients";
constexpr auto kRoudiStartTimeout = std::chrono::seconds(10);
constexpr auto kRoudiStopTimeout = std::chrono::seconds(5);
// Seconds RouDi gives still-registered applications between SIGTERM and SIGKILL
// when it stops (ours have exited by then).
constexpr const char* kRoudiKillDelaySeconds = "2";

// Whether a RouDi runs that this process did not start: RouDi flock()s its
// lock file while it runs. A lock file we may not open is another user's.
bool roudi_lock_held() {
    const int fd = ::open(kRoudiLock, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == EACCES;
    const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);  // also drops the lock if we got it
    return held;
}

// The first "[ Fatal ]" or "[ Error ]" line of a RouDi log, without colour
// codes and timestamp, or the last line when there is none.
std::string roudi_failure(const fs::path& log) {
    std::ifstream in(log);
    std::string line;
    std::string last;
    while (std::getline(in, line)) {
        std::string plain;
        for (std::size_t i = 0; i < line.size(); ++i) {
            if (line[i] == '\x1b') {
                while (i < line.size() && line[i] != 'm') ++i;
                continue;
            }
            plain += line[i];
        }
        if (plain.empty()) continue;
        last = plain;
        if (plain.find("[ Fatal ]") != std::string::npos ||
            plain.find("[ Error ]") != std::string::npos) {
            const std::size_t text = plain.find("]: ");
            return text == std::string::npos ? plain : plain.substr(text + 3);
        }
    }
    return last.empty() ? "no output" : last;
}

// The RouDi this process started, shared by the iceoryx methods: started by
// the first prepare() that needs it with a mempool of `chunks` chunks of
// `chunk_size` bytes, stopped by the last cleanup() (SIGTERM, then SIGKILL
// after kRoudiStopTimeout) and, failing that, by the exit of the process that
// started it. Owns its scratch directory (config and log). Not thread-safe.
class Roudi {
  public:
    static Roudi& instance() {
        static Roudi roudi;
        return roudi;
    }

    bool running() const { return pid_ > 0 && owner_ == ::getpid(); }

    void acquire(std::uint32_t chunk_size, std::uint32_t chunks) {
        if (running() && (chunk_size > chunk_size_ || chunks > chunks_)) {
            if (users_ > 0) {
                throw_error("start", kRoudiPath, EBUSY,
                            "RouDi already runs for another link with a smaller mempool");
            }
            stop();
        }
        if (!running()) start(chunk_size, chunks);
        ++users_;
    }

    void release() noexcept {
        if (users_ > 0 && --users_ == 0) stop();
    }

    Roudi(const Roudi&) = delete;
    Roudi& operator=(const Roudi&) = delete;
    // Children forked after start() hold a copy; only the starter stops RouDi.
    ~Roudi() { stop(); }

  private:
    Roudi() = default;

    void start(std::uint32_t chunk_size, std::uint32_t chunks) {
        if (roudi_lock_held()) {
            throw_error("start", kRoudiPath, EBUSY,
                        std::string("another RouDi is running (it holds ") + kRoudiLock +
                            "); stop it first");
        }
        dir_ = make_scratch_dir(unique_tag() + "-roudi");
        const fs::path config = dir_ / "roudi.toml";
        const fs::path log = dir_ / "roudi.log";
        {
            std::ofstream out(config);
            out << "[general]\nversion = 1\n\n[[segment]]\n\n[[segment.mempool]]\n"
                << "size = " << chunk_size << "\ncount = " << chunks << "\n";
            if (!out.flush()) {
                remove_scratch_dir(dir_);
                throw_error("write", config.string(), EIO, "cannot write the RouDi config");
            }
        }
        const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (log_fd < 0) {
            const int err = errno;
            remove_scratch_dir(dir_);
            throw_error("open", log.string(), err);
        }
        // Built before fork: the child only makes system calls until exec.
        const std::string config_arg = config.string();
        const char* const argv[] = {"iox-roudi", "-c", config_arg.c_str(),     "-l",
                                    "warning",   "-k", kRoudiKillDelaySeconds, nullptr};
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid < 0) {
            const int err = errno;
            ::close(log_fd);
            remove_scratch_dir(dir_);
            throw_error("fork", kRoudiPath, err);
        }
        if (pid == 0) {
            // RouDi must not outlive a benchmark that crashed, and its
            // assertion failures should not leave core files behind.
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(127);
            const rlimit no_core{0, 0};
            ::setrlimit(RLIMIT_CORE, &no_core);
            const int null_fd = ::open("/dev/null", O_RDONLY);
            if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
            ::dup2(log_fd, STDOUT_FILENO);
            ::dup2(log_fd, STDERR_FILENO);
            ::execv(kRoudiPath, const_cast<char* const*>(argv));
            ::_exit(127);
        }
        ::close(log_fd);
        pid_ = pid;
        owner_ = parent;
        chunk_size_ = chunk_size;
        chunks_ = chunks;

        const auto deadline = Clock::now() + kRoudiStartTimeout;
        for (;;) {
            std::ifstream in(log);
            const std::string text{std::istreambuf_iterator<char>(in),
                                   std::istreambuf_iterator<char>()};
            if (text.find(kRoudiReadyLine) != std::string::npos) return;
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                const std::string reason = roudi_failure(log);
                remove_scratch_dir(dir_);
                // Another RouDi took the lock since roudi_lock_held() looked.
                if (reason.find("Could not acquire lock") != std::string::npos) {
                    throw_error("start", kRoudiPath, EBUSY,
                                std::string("another RouDi is running (it holds ") + kRoudiLock +
                                    "); stop it first");
                }
                throw_error("start", kRoudiPath, ECHILD, "RouDi exited: " + reason);
            }
            if (Clock::now() > deadline) {
                const std::string reason = roudi_failure(log);
                stop();
                throw_error("start", kRoudiPath, ETIMEDOUT,
                            "RouDi not ready after 10 s (last output: " + reason + ")");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }

    void stop() noexcept {
        if (!running()) return;
        ::kill(pid_, SIGTERM);
        const auto deadline = Clock::now() + kRoudiStopTimeout;
        int status = 0;
        bool exited = false;
        while (!exited && Clock::now() < deadline) {
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            exited = r == pid_ || (r < 0 && errno != EINTR);
            if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        if (!exited) {
            ::kill(pid_, SIGKILL);
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
        }
        if (WIFSIGNALED(status)) {
            // RouDi ends by itself on SIGTERM, removing its segments and
            // files; a killed or crashed one (it aborts when a registered
            // process died without deregistering) leaves them. Ours held the
            // lock, so no other RouDi uses these names.
            ::shm_unlink(kRoudiManagementShm);
            if (const passwd* user = ::getpwuid(::geteuid())) ::shm_unlink(user->pw_name);
            for (const char* file : kRoudiFiles) ::unlink(file);
        }
        pid_ = -1;
        users_ = 0;
        remove_scratch_dir(dir_);
        dir_.clear();
    }

    pid_t pid_ = -1;    // RouDi, a child of owner_; -1 when none runs
    pid_t owner_ = -1;  // the process that started it
    int users_ = 0;     // prepared links using it
    std::uint32_t chunk_size_ = 0;
    std::uint32_t chunks_ = 0;
    fs::path dir_;
};

// ---------------------------------------------------------------------------
// iceoryx: the link

// A mempool's size in RouDi's config is the payload a chunk holds (RouDi adds
// its 40-byte ChunkHeader); it must be a multiple of 8 bytes.
constexpr std::uint32_t kChunkAlignment = 8;
// Chunks of one direction outside the subscriber's queue: the publisher's
// loan, a publish blocked on the full queue, the chunk the receiver reads.
constexpr std::uint32_t kChunksOutsideQueue = 4;
constexpr std::uint32_t kSpareChunks = 8;
constexpr std::uint64_t kMaxQueue = iox::popo::SubscriberChunkQueueData_t::MAX_CAPACITY;

enum class IceoryxWait { kBusyPoll, kWaitSet };

iox::capro::ServiceDescription topic(const std::string& instance, int direction) {
    return {"pagewire", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, instance.c_str()),
            direction == 0 ? "a2b" : "b2a"};
}

// This process's registration with RouDi (its iceoryx runtime), made once
// per process. The runtime deregisters only in its static destructor, which
// the runner's children skip (they _exit); RouDi aborts on stop when a
// registered process is gone, so the destructor deregisters the way the
// runtime's own destructor does. The runtime cannot register again after.
class RuntimeRegistration {
  public:
    explicit RuntimeRegistration(const std::string& name) {
        // iceoryx logs every registration otherwise.
        iox::log::LogManager::GetLogManager().SetDefaultLogLevel(
            iox::log::LogLevel::kWarn, iox::log::LogLevelOutput::kHideLogLevel);
        iox::runtime::PoshRuntime::initRuntime(
            iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
    }

    ~RuntimeRegistration() {
        iox::runtime::PoshRuntime& runtime = iox::runtime::PoshRuntime::getInstance();
        iox::runtime::IpcMessage request;
        request << iox::runtime::IpcMessageTypeToString(iox::runtime::IpcMessageType::TERMINATION)
                << runtime.getInstanceName();
        iox::runtime::IpcMessage answer;
        runtime.sendRequestToRouDi(request, answer);
    }

    RuntimeRegistration(const RuntimeRegistration&) = delete;
    RuntimeRegistration& operator=(const RuntimeRegistration&) = delete;
};

// One process's publisher (on the topic of its direction) and subscriber (on
// the other), both with blocking-producer QoS, and for IceoryxWait::kWaitSet a
// WaitSet the receiver sleeps in. Messages are chunks in RouDi's shared
// memory: send() fills the loan, receive() reads the chunk it took.
class IceoryxEndpoint final : public Endpoint {
  public:
    IceoryxEndpoint(const std::string& runtime, const std::string& instance, int side,
                    std::uint64_t queue_capacity, IceoryxWait wait)
        : registration_(runtime),
          name_(instance + (side == 0 ? "-a2b" : "-b2a")),
          publisher_(topic(instance, side), publisher_options()),
          subscriber_(topic(instance, 1 - side), subscriber_options(queue_capacity)) {
        if (wait == IceoryxWait::kWaitSet) {
            waitset_.emplace();
            if (waitset_->attachState(subscriber_, iox::popo::SubscriberState::HAS_DATA)
                    .has_error()) {
                throw_error("attach WaitSet", name_, EIO, "cannot attach the subscriber");
            }
        }
        const auto deadline = Clock::now() + kConnectTimeout;
        while (subscriber_.getSubscriptionState() != iox::SubscribeState::SUBSCRIBED ||
               !publisher_.hasSubscribers()) {
            if (Clock::now() > deadline) {
                throw_error("connect", name_, ETIMEDOUT, "the peer did not subscribe within 10 s");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }

    void send(std::size_t size, const std::function<void(std::span<std::byte>)>& fill) override {
        std::optional<Clock::time_point> deadline;  // read the clock only when out of chunks
        for (;;) {
            auto loan = publisher_.loan(static_cast<std::uint32_t>(size));
            if (!loan.has_error()) {
                void* chunk = loan.value();
                try {
                    fill(std::span(static_cast<std::byte*>(chunk), size));
                } catch (...) {
                    publisher_.release(chunk);
                    throw;
                }
                publisher_.publish(chunk);  // blocks while the subscriber's queue is full
                return;
            }
            const iox::popo::AllocationError error = loan.get_error();
            // Out of chunks only while the receiver still holds the ones it took.
            if (!deadline) deadline = Clock::now() + kStallTimeout;
            if (error != iox::popo::AllocationError::RUNNING_OUT_OF_CHUNKS ||
                Clock::now() > *deadline) {
                throw_error("loan", name_, ENOMEM, iox::popo::asStringLiteral(error));
            }
            ::sched_yield();
        }
    }

    void receive(const std::function<void(std::span<const std::byte>)>& on_message) override {
        std::optional<Clock::time_point> deadline;  // read the clock only while idle
        for (std::uint32_t polls = 0;; ++polls) {
            auto taken = subscriber_.take();
            if (!taken.has_error()) {
                const void* chunk = taken.value();
                const std::uint32_t size =
                    iox::mepoo::ChunkHeader::fromUserPayload(chunk)->userPayloadSize();
                try {
                    on_message(std::span(static_cast<const std::byte*>(chunk), size));
                } catch (...) {
                    subscriber_.release(chunk);
                    throw;
                }
                subscriber_.release(chunk);
                return;
            }
            if (taken.get_error() != iox::popo::ChunkReceiveResult::NO_CHUNK_AVAILABLE) {
                throw_error("take", name_, EIO, "too many chunks held");
            }
            if (waitset_) {
                waitset_->timedWait(iox::units::Duration::fromMilliseconds(100));
            }
            // Reading the clock every poll would slow the busy poll down.
            if (waitset_ || polls % 4096 == 0) {
                if (!deadline) {
                    deadline = Clock::now() + kStallTimeout;
                } else if (Clock::now() > *deadline) {
                    throw_error("take", name_, ETIMEDOUT, "no message for 30 s");
                }
            }
        }
    }

  private:
    static iox::popo::PublisherOptions publisher_options() {
        iox::popo::PublisherOptions options;
        options.historyCapacity = 0;  // both ends connect before the first message
        options.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
        return options;
    }

    static iox::popo::SubscriberOptions subscriber_options(std::uint64_t queue_capacity) {
        iox::popo::SubscriberOptions options;
        options.queueCapacity = queue_capacity;
        options.historyRequest = 0;
        options.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
        return options;
    }

    // First: deregisters after the ports and the WaitSet are gone.
    RuntimeRegistration registration_;
    std::string name_;
    iox::popo::UntypedPublisher publisher_;
    iox::popo::UntypedSubscriber subscriber_;
    // Declared after subscriber_: detaches before the subscriber goes.
    std::optional<iox::popo::WaitSet<1>> waitset_;
};

// Holds RouDi (shared with the other iceoryx method) from prepare() to
// cleanup(); the topics belong to the endpoints.
class IceoryxMethod final : public Method {
  public:
    explicit IceoryxMethod(IceoryxWait wait) : wait_(wait) {}

    std::string name() const override {
        return wait_ == IceoryxWait::kBusyPoll ? "iceoryx" : "iceoryx wait";
    }

    std::optional<std::string> unavailable(const LinkLimits& limits) const override {
        if (::access(kRoudiPath, X_OK) != 0) {
            return std::string(kRoudiPath) + " not found (Debian package iceoryx)";
        }
        if (limits.max_message > std::numeric_limits<std::uint32_t>::max() / 2) {
            return "iceoryx chunks hold at most 2 GiB";
        }
        if (!Roudi::instance().running() && roudi_lock_held()) {
            return std::string("another RouDi is running (it holds ") + kRoudiLock + ")";
        }
        return std::nullopt;
    }

    void prepare(const LinkLimits& limits) override {
        cleanup();
        queue_capacity_ = std::min<std::uint64_t>(link_depth(limits), kMaxQueue);
        const std::size_t payload = std::max<std::size_t>(limits.max_message, 1);
        const auto chunk_size = static_cast<std::uint32_t>((payload + kChunkAlignment - 1) /
                                                           kChunkAlignment * kChunkAlignment);
        const auto chunks =
            static_cast<std::uint32_t>(2 * (queue_capacity_ + kChunksOutsideQueue) + kSpareChunks);
        Roudi::instance().acquire(chunk_size, chunks);
        holds_roudi_ = true;
        owner_ = ::getpid();
        instance_ = unique_tag();
    }

    std::unique_ptr<Endpoint> connect(int side) override {
        return std::make_unique<IceoryxEndpoint>(runtime_name(side), instance_, side,
                                                 queue_capacity_, wait_);
    }

    void cleanup() noexcept override {
        if (!holds_roudi_) return;
        // A runtime removes its socket and lock file in /tmp when its process
        // exits normally; the runner's children _exit or are killed.
        if (owner_ == ::getpid()) {
            for (int side = 0; side < 2; ++side) {
                const std::string socket =
                    iox::platform::IOX_UDS_SOCKET_PATH_PREFIX + runtime_name(side);
                ::unlink(socket.c_str());
                const std::string lock =
                    iox::platform::IOX_LOCK_FILE_PATH_PREFIX + runtime_name(side) + ".lock";
                ::unlink(lock.c_str());
            }
        }
        Roudi::instance().release();
        holds_roudi_ = false;
    }

    ~IceoryxMethod() override { cleanup(); }

  private:
    std::string runtime_name(int side) const { return instance_ + "-side" + std::to_string(side); }

    IceoryxWait wait_;
    bool holds_roudi_ = false;
    pid_t owner_ = -1;  // the process that called prepare()
    std::uint64_t queue_capacity_ = 1;
    std::string instance_;
};

#endif  // PAGEWIRE_BENCH_HAVE_ICEORYX

}  // namespace

std::vector<std::unique_ptr<Method>> peer_methods() {
    std::vector<std::unique_ptr<Method>> methods;
#if PAGEWIRE_BENCH_HAVE_BOOST
    methods.push_back(std::make_unique<BoostQueueMethod>());
#else
    methods.push_back(std::make_unique<MissingPeer>("boost message_queue", "libboost-dev"));
#endif
#if PAGEWIRE_BENCH_HAVE_ZMQ
    methods.push_back(std::make_unique<ZmqMethod>());
#else
    methods.push_back(std::make_unique<MissingPeer>("zeromq ipc", "libzmq3-dev"));
#endif
#if PAGEWIRE_BENCH_HAVE_ICEORYX
    methods.push_back(std::make_unique<IceoryxMethod>(IceoryxWait::kBusyPoll));
    methods.push_back(std::make_unique<IceoryxMethod>(IceoryxWait::kWaitSet));
#else
    methods.push_back(std::make_unique<MissingPeer>("iceoryx", "libiceoryx-posh-dev iceoryx"));
    methods.push_back(std::make_unique<MissingPeer>("iceoryx wait", "libiceoryx-posh-dev iceoryx"));
#endif
    return methods;
}

}  // namespace pagewire::bench::ipc
