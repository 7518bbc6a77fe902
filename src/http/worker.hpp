// pagewire serve: one worker — a thread with its own edge-triggered epoll
// loop, its own SO_REUSEPORT listening socket, open-file cache, responder,
// io_uring (direct path) and access-log buffer. Nothing on its loop blocks:
// sockets are non-blocking, bodies go out by transfer_step() (sendfile that
// returns when the socket is full) or by the direct path, and every
// connection is bounded by a timer, so a slow client only waits for itself.
// A Worker is built on the main thread and run() on its own.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <pagewire/serve.hpp>
#include <pagewire/unique_fd.hpp>
#include <vector>

#include "http/access_log.hpp"
#include "http/direct_io.hpp"
#include "http/file_cache.hpp"
#include "http/http_date.hpp"
#include "http/http_request.hpp"
#include "http/response.hpp"

namespace pagewire::http {

// What the workers of one server share. Read-only after start, except the
// atomic connection count.
struct WorkerShared {
    const serve::ServeConfig* config = nullptr;
    int root_fd = -1;
    int stop_fd = -1;                         // eventfd, written once to stop every worker
    int log_fd = -1;                          // access log (O_APPEND), or -1
    std::atomic<std::size_t> connections{0};  // open client connections, all workers
};

struct Connection;

class Worker {
  public:
    // Takes over the listening socket. Throws pagewire::Error (epoll).
    Worker(WorkerShared& shared, UniqueFd listen_fd);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // The event loop: until the stop eventfd fires and the in-flight
    // responses have finished (or the shutdown grace has passed).
    void run();

  private:
    enum TimerKind { kHeaderTimer, kKeepaliveTimer, kSendTimer, kLingerTimer, kTimerKinds };
    struct TimerList {
        Connection* head = nullptr;  // earliest deadline (all in a list share the timeout)
        Connection* tail = nullptr;
    };
    enum class SendStatus { Done, Blocked, Yield, Failed };

    void accept_all();
    void reject_over_limit(int fd, const char* client);
    void on_event(Connection& c, std::uint32_t events);
    void drive(Connection& c);
    SendStatus send_some(Connection& c);
    SendStatus send_direct(Connection& c, bool more, std::uint64_t& turn_bytes);
    // Counts n bytes of the current segment as sent (body bytes past the
    // header block, this turn's bytes) and restarts the send timer on progress.
    void note_sent(Connection& c, std::uint64_t n, std::uint64_t& turn_bytes);
    // One non-blocking send(2) of n bytes (MSG_MORE if more follows): Done
    // with `sent` (maybe short), Blocked on EAGAIN, Failed.
    SendStatus send_bytes(Connection& c, const char* data, std::size_t n, bool more,
                          std::size_t& sent);
    void start_response(Connection& c);
    void finish_response(Connection& c);
    void begin_close(Connection& c);
    void close(Connection& c);
    void log_response(Connection& c);
    void on_direct_completions();
    void post(Connection& c);
    void run_posted();
    void set_timer(Connection& c, TimerKind kind);
    void clear_timer(Connection& c);
    void expire_timers();
    int wait_timeout_ms() const;
    void begin_stop();
    Connection* get_connection();
    void release(Connection& c);

    WorkerShared& shared_;
    const serve::ServeConfig& config_;
    UniqueFd listen_fd_;
    UniqueFd epoll_fd_;
    ClockStrings clock_;
    OpenFileCache cache_;
    Responder responder_;
    AccessLogWriter log_;
    DirectRing ring_;
    bool ring_registered_ = false;  // the ring's eventfd is in our epoll set
    bool direct_failed_ = false;    // io_uring unusable here: sendfile for everything
    bool stopping_ = false;
    std::uint64_t stop_deadline_ms_ = 0;
    std::uint64_t accept_retry_ms_ = 0;  // accept paused (EMFILE) until then

    TimerList timers_[kTimerKinds];
    unsigned timeout_ms_[kTimerKinds];
    std::vector<std::unique_ptr<Connection>> all_;  // every connection object ever made
    std::vector<Connection*> free_;                 // reusable ones
    std::vector<Connection*> closed_;               // closed this turn: reusable next turn
    std::vector<Connection*> active_;               // open ones (Connection::active_index)
    std::vector<Connection*> posted_;               // to drive again without an event
    std::vector<Connection*> posted_batch_;         // the ones run_posted() is driving
    std::vector<char> drain_;                       // lingering close reads land here
};

}  // namespace pagewire::http
