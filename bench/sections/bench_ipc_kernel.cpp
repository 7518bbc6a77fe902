// `pagewire bench ipc`: the kernel's IPC and the raw futex baseline, each a
// Method of bench_ipc.hpp. Pipe, Unix stream socket and TCP on 127.0.0.1 are
// byte streams framed by an 8-byte length prefix (StreamEndpoint); the POSIX
// message queue keeps message boundaries itself; "raw futex" is a one-message
// mailbox per direction in a shared anonymous mapping, woken by
// FUTEX_WAIT/FUTEX_WAKE with no spinning: the floor for a sleeping wait.
//
// Resources are made in prepare() (before the fork, so both processes inherit
// them); connect(side) closes the other side's descriptors in the calling
// process, so a peer that dies is seen as end of file instead of a hang.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <pagewire/error.hpp>
#include <pagewire/io.hpp>
#include <pagewire/unique_fd.hpp>
#include <vector>

#include "bench_ipc.hpp"
#include "bench_ipc_message.hpp"
#include "raw_futex.hpp"

namespace pagewire::bench::ipc {
namespace {

// A blocked call gives up after this long: the peer is taken for dead (the
// runner kills a hung pair anyway; this keeps a lone side from waiting long).
constexpr int kPeerTimeoutSeconds = 10;
// Stream receivers read ahead up to this many bytes beyond one message, so a
// burst of small messages costs one read().
constexpr std::size_t kReadAheadBytes = 256 * 1024;
// Stream framing: a native-endian 64-bit length before every message.
constexpr std::size_t kLengthPrefixBytes = sizeof(std::uint64_t);
// The kernel's hard ceiling on a POSIX queue's message size (HARD_MSGSIZEMAX).
constexpr long kMqHardMaxMessageBytes = 16L << 20;
constexpr long kMqDefaultMaxMessages = 10;  // /proc/sys/fs/mqueue/msg_max's default

long read_proc_long(const char* path, long fallback) {
    std::ifstream in(path);
    long value = 0;
    return in >> value ? value : fallback;
}

// One process's end of a byte-stream link: writes [length][message] with one
// write loop, reads ahead into a buffer and hands out whole messages from it.
class StreamEndpoint final : public Endpoint {
  public:
    StreamEndpoint(int in, int out, std::size_t max_message, std::string what)
        : in_(in),
          out_(out),
          max_message_(max_message),
          what_(std::move(what)),
          send_buffer_(kLengthPrefixBytes + max_message),
          receive_buffer_(kLengthPrefixBytes + max_message + kReadAheadBytes) {}

    void send(std::size_t size, const std::function<void(std::span<std::byte>)>& fill) override {
        const std::uint64_t length = size;
        std::memcpy(send_buffer_.data(), &length, sizeof length);
        fill(std::span(send_buffer_).subspan(kLengthPrefixBytes, size));
        if (write_full(out_, send_buffer_.data(), kLengthPrefixBytes + size) < 0)
            throw_error("write", what_);
    }

    void receive(const std::function<void(std::span<const std::byte>)>& on_message) override {
        for (;;) {
            const std::size_t available = end_ - begin_;
            std::size_t need = kLengthPrefixBytes;
            if (available >= kLengthPrefixBytes) {
                std::uint64_t length = 0;
                std::memcpy(&length, receive_buffer_.data() + begin_, sizeof length);
                if (length > max_message_)
                    throw_error("read", what_, EPROTO,
                                fmt::format("length prefix {} exceeds the largest message {}",
                                            length, max_message_));
                need += length;
                if (available >= need) {
                    const std::size_t at = begin_ + kLengthPrefixBytes;
                    begin_ += need;
                    if (begin_ == end_) begin_ = end_ = 0;
                    on_message(std::span<const std::byte>(receive_buffer_.data() + at, length));
                    return;
                }
            }
            // Make room for the whole message, then read what the kernel has.
            if (begin_ + need > receive_buffer_.size()) {
                std::memmove(receive_buffer_.data(), receive_buffer_.data() + begin_, available);
                begin_ = 0;
                end_ = available;
            }
            const ssize_t n = retry_eintr([&] {
                return ::read(in_, receive_buffer_.data() + end_, receive_buffer_.size() - end_);
            });
            if (n < 0) throw_error("read", what_);
            if (n == 0) throw_error("read", what_, ECONNRESET, "the peer closed the link");
            end_ += static_cast<std::size_t>(n);
        }
    }

  private:
    int in_;   // not owned (the Method holds it)
    int out_;  // not owned
    std::size_t max_message_;
    std::string what_;
    std::vector<std::byte> send_buffer_;     // [length prefix][message]
    std::vector<std::byte> receive_buffer_;  // [begin_, end_) read but not yet handed out
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

// Two descriptors per side (in, out) made by make_link(); side k uses in[k],
// out[k] and the other side's are closed in its process at connect().
class StreamMethod : public Method {
  public:
    void prepare(const LinkLimits& limits) override {
        limits_ = limits;
        make_link();
    }

    std::unique_ptr<Endpoint> connect(int side) override {
        close_side(1 - side);
        return std::make_unique<StreamEndpoint>(in_[side].get(), out_[side].get(),
                                                limits_.max_message, name());
    }

    void cleanup() noexcept override {
        close_side(0);
        close_side(1);
    }

  protected:
    void close_side(int k) noexcept {
        // A socket is both in_ and out_ of its side: close it once.
        if (in_[k].get() == out_[k].get()) (void)in_[k].release();
        in_[k].reset();
        out_[k].reset();
    }

    virtual void make_link() = 0;
    LinkLimits limits_;
    UniqueFd in_[2];
    UniqueFd out_[2];
};

class PipeMethod final : public StreamMethod {
  public:
    std::string name() const override { return "pipe"; }

  private:
    void make_link() override {
        // As large as an unprivileged process may ask (root may go further,
        // but the row should show what any user gets).
        const long pipe_bytes = read_proc_long("/proc/sys/fs/pipe-max-size", 1 << 20);
        int ab[2], ba[2];
        if (::pipe2(ab, O_CLOEXEC) != 0) throw_error("pipe2", "pipe side 0 -> 1");
        in_[1].reset(ab[0]);
        out_[0].reset(ab[1]);
        if (::pipe2(ba, O_CLOEXEC) != 0) throw_error("pipe2", "pipe side 1 -> 0");
        in_[0].reset(ba[0]);
        out_[1].reset(ba[1]);
        for (int fd : {ab[1], ba[1]}) {
            if (::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(pipe_bytes)) < 0)
                throw_error("fcntl F_SETPIPE_SZ", fmt::format("pipe ({} bytes)", pipe_bytes));
        }
    }
};

class UnixSocketMethod final : public StreamMethod {
  public:
    std::string name() const override { return "unix socket"; }

  private:
    void make_link() override {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
            throw_error("socketpair", "AF_UNIX SOCK_STREAM");
        in_[0].reset(sv[0]);
        out_[0].reset(sv[0]);
        in_[1].reset(sv[1]);
        out_[1].reset(sv[1]);
    }
};

class TcpMethod final : public StreamMethod {
  public:
    std::string name() const override { return "tcp 127.0.0.1"; }

  private:
    void make_link() override {
        UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!listener) throw_error("socket", "127.0.0.1");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;  // any free port
        if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw_error("bind", "127.0.0.1:0");
        if (::listen(listener.get(), 1) != 0) throw_error("listen", "127.0.0.1");
        socklen_t len = sizeof addr;
        if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            throw_error("getsockname", "127.0.0.1");
        const std::string where = fmt::format("127.0.0.1:{}", ntohs(addr.sin_port));
        UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!client) throw_error("socket", where);
        // Loopback completes the handshake from the backlog: no thread needed.
        if (::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw_error("connect", where);
        UniqueFd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!server) throw_error("accept", where);
        const int one = 1;
        for (int fd : {client.get(), server.get()}) {
            if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
                throw_error("setsockopt TCP_NODELAY", where);
        }
        const int c = client.release();
        const int s = server.release();
        in_[0].reset(c);
        out_[0].reset(c);
        in_[1].reset(s);
        out_[1].reset(s);
    }
};

// ---- POSIX message queue ---------------------------------------------------

class MqEndpoint final : public Endpoint {
  public:
    MqEndpoint(mqd_t in, mqd_t out, std::size_t queue_message_bytes, std::string what)
        : in_(in),
          out_(out),
          what_(std::move(what)),
          send_buffer_(queue_message_bytes),
          receive_buffer_(queue_message_bytes) {}

    void send(std::size_t size, const std::function<void(std::span<std::byte>)>& fill) override {
        fill(std::span(send_buffer_).first(size));
        const timespec when = realtime_deadline();
        if (retry_eintr([&] {
                return ::mq_timedsend(out_, reinterpret_cast<const char*>(send_buffer_.data()),
                                      size, 0, &when);
            }) != 0)
            throw_error("mq_timedsend", what_);
    }

    void receive(const std::function<void(std::span<const std::byte>)>& on_message) override {
        const timespec when = realtime_deadline();
        const ssize_t n = retry_eintr([&] {
            return ::mq_timedreceive(in_, reinterpret_cast<char*>(receive_buffer_.data()),
                                     receive_buffer_.size(), nullptr, &when);
        });
        if (n < 0) throw_error("mq_timedreceive", what_);
        on_message(std::span<const std::byte>(receive_buffer_.data(), static_cast<std::size_t>(n)));
    }

  private:
    // mq_timed* take an absolute CLOCK_REALTIME deadline.
    static timespec realtime_deadline() noexcept {
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME, &now);
        now.tv_sec += kPeerTimeoutSeconds;
        return now;
    }

    mqd_t in_;
    mqd_t out_;
    std::string what_;
    std::vector<std::byte> send_buffer_;
    std::vector<std::byte> receive_buffer_;  // mq_msgsize bytes, as mq_receive requires
};

class MqMethod final : public Method {
  public:
    std::string name() const override { return "posix mq"; }

    std::optional<std::string> unavailable(const LinkLimits& limits) const override {
        // Probe with a queue of the size this run needs; the kernel decides.
        const std::string probe = fmt::format("/pagewire-bench-ipc-probe-{}", ::getpid());
        const mqd_t q = open_queue(probe, limits);
        if (q == static_cast<mqd_t>(-1)) {
            const int err = errno;
            return fmt::format(
                "mq_open of a queue of {}-byte messages failed: {} (fs.mqueue.msgsize_max = {}, "
                "RLIMIT_MSGQUEUE = {} bytes; root with CAP_SYS_RESOURCE may go up to {} bytes)",
                limits.max_message, std::strerror(err),
                read_proc_long("/proc/sys/fs/mqueue/msgsize_max", 0), rlimit_msgqueue(),
                kMqHardMaxMessageBytes);
        }
        ::mq_close(q);
        ::mq_unlink(probe.c_str());
        return std::nullopt;
    }

    void prepare(const LinkLimits& limits) override {
        static std::atomic<unsigned> counter{0};
        limits_ = limits;
        for (int k = 0; k < 2; ++k) {
            names_[k] = fmt::format("/pagewire-bench-ipc-{}-{}-{}", ::getpid(), counter++, k);
            queues_[k] = open_queue(names_[k], limits);
            if (queues_[k] == static_cast<mqd_t>(-1)) {
                const std::string failed = std::exchange(names_[k], std::string());
                throw_error("mq_open",
                            fmt::format("{} ({}-byte messages)", failed, limits.max_message));
            }
        }
    }

    std::unique_ptr<Endpoint> connect(int side) override {
        // queues_[0] carries side 0 -> 1, queues_[1] side 1 -> 0.
        return std::make_unique<MqEndpoint>(queues_[1 - side], queues_[side], limits_.max_message,
                                            names_[side]);
    }

    void cleanup() noexcept override {
        for (int k = 0; k < 2; ++k) {
            if (queues_[k] != static_cast<mqd_t>(-1)) ::mq_close(queues_[k]);
            queues_[k] = static_cast<mqd_t>(-1);
            if (!names_[k].empty()) ::mq_unlink(names_[k].c_str());
            names_[k].clear();
        }
    }

  private:
    static rlim_t rlimit_msgqueue() noexcept {
        rlimit r{};
        ::getrlimit(RLIMIT_MSGQUEUE, &r);
        return r.rlim_cur;
    }

    // Opens (creates) a queue for `limits`: as many messages as limits.depth
    // when the kernel allows (more than msg_max needs CAP_SYS_RESOURCE),
    // falling back to the default 10, then 1. Raises RLIMIT_MSGQUEUE first
    // when the process may (the queue's bytes count against it). -1 and errno
    // on failure.
    static mqd_t open_queue(const std::string& name, const LinkLimits& limits) noexcept {
        rlimit r{};
        if (::getrlimit(RLIMIT_MSGQUEUE, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
            rlimit wanted{RLIM_INFINITY, RLIM_INFINITY};
            if (::setrlimit(RLIMIT_MSGQUEUE, &wanted) != 0) {
                wanted = {r.rlim_max, r.rlim_max};
                (void)::setrlimit(RLIMIT_MSGQUEUE, &wanted);
            }
        }
        int err = 0;
        for (long want : {static_cast<long>(limits.depth), kMqDefaultMaxMessages, 1L}) {
            if (want <= 0) continue;
            mq_attr attr{};
            attr.mq_maxmsg = want;
            attr.mq_msgsize = static_cast<long>(limits.max_message);
            const mqd_t q =
                ::mq_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attr);
            if (q != static_cast<mqd_t>(-1)) return q;
            err = errno;
            if (err != EINVAL && err != EMFILE && err != ENOMEM) break;  // not a size problem
        }
        errno = err;
        return static_cast<mqd_t>(-1);
    }

    LinkLimits limits_;
    mqd_t queues_[2] = {static_cast<mqd_t>(-1), static_cast<mqd_t>(-1)};
    std::string names_[2];  // created by prepare(), unlinked by cleanup()
};

// ---- raw futex -------------------------------------------------------------

// One direction: a one-message mailbox, its bytes in the cache lines after
// it. `full` is the futex word: 0 empty (the sender may write), 1 full (the
// receiver may read).
struct alignas(64) Mailbox {
    std::atomic<std::uint32_t> full{0};
    std::uint32_t size = 0;  // of the message in bytes()
    std::byte* bytes() noexcept { return reinterpret_cast<std::byte*>(this) + sizeof(Mailbox); }
};
static_assert(sizeof(Mailbox) == 64);

std::size_t mailbox_bytes(std::size_t max_message) {
    return (sizeof(Mailbox) + max_message + 63) / 64 * 64;
}

const std::uint32_t* word_of(const std::atomic<std::uint32_t>& word) noexcept {
    return reinterpret_cast<const std::uint32_t*>(&word);
}

// Sleeps in FUTEX_WAIT while `word` is `busy` (no spinning: this is the
// sleeping-wait baseline). Throws after kPeerTimeoutSeconds. Reads the clock
// only once it has to wait.
void futex_wait_while(const std::atomic<std::uint32_t>& word, std::uint32_t busy,
                      const char* what) {
    std::int64_t deadline = 0;
    while (word.load(std::memory_order_acquire) == busy) {
        const std::int64_t now = monotonic_now_ns();
        if (deadline == 0) deadline = now + std::int64_t{kPeerTimeoutSeconds} * 1'000'000'000;
        const std::int64_t left = deadline - now;
        if (left <= 0) throw_error("futex wait", what, ETIMEDOUT, "the peer did not answer");
        const timespec timeout{static_cast<std::time_t>(left / 1'000'000'000),
                               static_cast<long>(left % 1'000'000'000)};
        if (raw_futex_wait(word_of(word), busy, &timeout) != 0 && errno != EAGAIN &&
            errno != EINTR && errno != ETIMEDOUT)
            throw_error("futex wait", what);
    }
}

class FutexEndpoint final : public Endpoint {
  public:
    FutexEndpoint(Mailbox* in, Mailbox* out) : in_(in), out_(out) {}

    void send(std::size_t size, const std::function<void(std::span<std::byte>)>& fill) override {
        futex_wait_while(out_->full, 1, "raw futex mailbox");
        fill(std::span<std::byte>(out_->bytes(), size));
        out_->size = static_cast<std::uint32_t>(size);
        out_->full.store(1, std::memory_order_release);
        raw_futex_wake(word_of(out_->full), 1);
    }

    void receive(const std::function<void(std::span<const std::byte>)>& on_message) override {
        futex_wait_while(in_->full, 0, "raw futex mailbox");
        on_message(std::span<const std::byte>(in_->bytes(), in_->size));
        in_->full.store(0, std::memory_order_release);
        raw_futex_wake(word_of(in_->full), 1);
    }

  private:
    Mailbox* in_;  // in the Method's shared mapping
    Mailbox* out_;
};

class FutexMethod final : public Method {
  public:
    std::string name() const override { return "raw futex"; }

    void prepare(const LinkLimits& limits) override {
        stride_ = mailbox_bytes(limits.max_message);
        bytes_ = 2 * stride_;
        void* p =
            ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            throw_error("mmap", fmt::format("raw futex mailboxes ({} bytes)", bytes_));
        base_ = static_cast<std::byte*>(p);
        for (int k = 0; k < 2; ++k) new (base_ + k * stride_) Mailbox();
    }

    std::unique_ptr<Endpoint> connect(int side) override {
        // Mailbox 0 carries side 0 -> 1, mailbox 1 side 1 -> 0.
        auto box = [&](int k) {
            return std::launder(reinterpret_cast<Mailbox*>(base_ + k * stride_));
        };
        return std::make_unique<FutexEndpoint>(box(1 - side), box(side));
    }

    void cleanup() noexcept override {
        if (base_ != nullptr) ::munmap(base_, bytes_);
        base_ = nullptr;
    }

  private:
    std::byte* base_ = nullptr;  // MAP_SHARED | MAP_ANONYMOUS: inherited by both sides
    std::size_t stride_ = 0;
    std::size_t bytes_ = 0;
};

}  // namespace

std::vector<std::unique_ptr<Method>> kernel_methods() {
    std::vector<std::unique_ptr<Method>> methods;
    methods.push_back(std::make_unique<PipeMethod>());
    methods.push_back(std::make_unique<UnixSocketMethod>());
    methods.push_back(std::make_unique<TcpMethod>());
    methods.push_back(std::make_unique<MqMethod>());
    methods.push_back(std::make_unique<FutexMethod>());
    return methods;
}

}  // namespace pagewire::bench::ipc
