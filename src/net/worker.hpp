// pagewire net: one worker — a thread with its own edge-triggered epoll
// loop, its own SO_REUSEPORT listening socket, its protocol object,
// io_uring (direct path) and access-log buffer. Nothing on its loop blocks:
// sockets are non-blocking, file ranges go out by transfer_step() (sendfile
// that returns when the socket is full) or by the direct path, and every
// connection is bounded by a timer, so a slow client only waits for itself.
// A Worker is built on the main thread and run() on its own; it is not
// thread-safe otherwise.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <pagewire/unique_fd.hpp>
#include <unordered_map>
#include <vector>

#include "net/access_log.hpp"
#include "net/direct_io.hpp"
#include "net/protocol.hpp"
#include "net/server.hpp"

namespace pagewire::net {

// What the workers of one server share. Read-only after start, except the
// atomic connection count.
struct WorkerShared {
    const ServerConfig* config = nullptr;
    int stop_fd = -1;                         // eventfd, written once to stop every worker
    std::atomic<std::size_t> connections{0};  // open client connections, all workers
};

struct Connection;

class Worker final : public WorkerContext {
  public:
    // Takes over the listening socket; makes its protocol with `factory`.
    // Throws pagewire::Error (epoll).
    Worker(WorkerShared& shared, UniqueFd listen_fd, const ProtocolFactory& factory);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // The event loop: until the stop eventfd fires and the in-flight
    // responses have finished (or the shutdown grace has passed).
    void run();

    AccessLog& access_log() noexcept override { return log_; }
    std::uint64_t now_ms() const noexcept override { return now_ms_; }
    void watch(int fd, std::function<void()> on_ready) override;
    void unwatch(int fd) noexcept override;

  private:
    friend struct Connection;  // Link::resume()

    enum TimerKind { kFrameTimer, kIdleTimer, kSendTimer, kLingerTimer, kTimerKinds };
    struct TimerList {
        Connection* head = nullptr;  // earliest deadline (all in a list share the timeout)
        Connection* tail = nullptr;
    };
    struct Watch {
        int fd;
        std::function<void()> on_ready;
    };
    enum class SendStatus { Done, Blocked, Yield, Failed };

    void update_clock() noexcept;
    void accept_all();
    void reject_over_limit(int fd, const char* client);
    void on_event(Connection& c, std::uint32_t events);
    void drive(Connection& c);
    // Reading: hands the buffered bytes to the session; false when drive() must return.
    bool take_input(Connection& c, unsigned& frames);
    SendStatus send_some(Connection& c);
    SendStatus send_direct(Connection& c, bool more, std::uint64_t& turn_bytes);
    // Counts n bytes of the current segment as sent (body bytes past the
    // header block, this turn's bytes) and restarts the send timer on progress.
    void note_sent(Connection& c, std::uint64_t n, std::uint64_t& turn_bytes);
    // One non-blocking send(2) of n bytes (MSG_MORE if more follows): Done
    // with `sent` (maybe short), Blocked on EAGAIN, Failed.
    SendStatus send_bytes(Connection& c, const char* data, std::size_t n, bool more,
                          std::size_t& sent);
    void start_response(Connection& c, Response& response);
    // The response under way has ended (complete or not): the session hears of it.
    void end_response(Connection& c, bool complete);
    void defer(Connection& c, unsigned timeout_ms);
    void resume(Connection& c, bool timed_out);
    void begin_close(Connection& c);
    void close(Connection& c);
    void release(Connection& c);
    void on_direct_completions();
    void post(Connection& c);
    void run_posted();
    void set_timer(Connection& c, TimerKind kind);
    void clear_timer(Connection& c);
    void clear_defer_timer(Connection& c);
    void expire_timers();
    int wait_timeout_ms() const;
    void begin_stop();
    Connection* get_connection();

    WorkerShared& shared_;
    const ServerConfig& config_;
    UniqueFd listen_fd_;
    UniqueFd epoll_fd_;
    AccessLog log_;
    std::unique_ptr<Protocol> protocol_;
    DirectRing ring_;
    std::uint64_t now_ms_ = 0;
    bool ring_registered_ = false;  // the ring's eventfd is in our epoll set
    bool direct_failed_ = false;    // io_uring unusable here: sendfile for everything
    bool stopping_ = false;
    std::uint64_t stop_deadline_ms_ = 0;
    std::uint64_t accept_retry_ms_ = 0;  // accept paused (EMFILE) until then

    TimerList timers_[kTimerKinds];
    unsigned timeout_ms_[kTimerKinds];
    // Deferred responses' timers: each its own timeout, so ordered by deadline.
    std::multimap<std::uint64_t, Connection*> defer_timers_;
    std::unordered_map<int, std::unique_ptr<Watch>> watches_;
    std::vector<std::unique_ptr<Watch>> unwatched_;  // freed after the turn that dropped them
    std::vector<std::unique_ptr<Connection>> all_;   // every connection object ever made
    std::vector<Connection*> free_;                  // reusable ones
    std::vector<Connection*> closed_;                // closed this turn: reusable next turn
    std::vector<Connection*> active_;                // open ones (Connection::active_index)
    std::vector<Connection*> posted_;                // to drive again without an event
    std::vector<Connection*> posted_batch_;          // the ones run_posted() is driving
    std::vector<char> drain_;                        // lingering close reads land here
};

}  // namespace pagewire::net
