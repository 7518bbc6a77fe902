// One worker's event loop: see worker.hpp. A connection's life, top to
// bottom: accept_all() -> drive() reads and hands the bytes to the session
// (take_input), which answers with a Response, defers it, or asks for more;
// send_some() sends the header block and the body (transfer_step = sendfile
// returning on a full socket; or the direct path); end_response() tells the
// session; then the next frame, or begin_close() (lingering, as nginx, so
// an error response is not lost to a reset).
#include "net/worker.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/transfer.hpp>

#include "sys.hpp"

namespace pagewire::net {

// One client connection. Owned by its worker (pooled: objects are reused,
// never freed while the worker runs, so io_uring tags stay valid).
struct Connection final : Link {
    enum class State { Reading, Sending, Waiting, Lingering, Closed };

    Worker* worker = nullptr;
    std::unique_ptr<Session> session;  // made once, start()ed per connection
    int fd = -1;
    State state = State::Closed;
    // Input: in[in_begin, in_end) holds bytes not yet consumed by a frame.
    std::unique_ptr<char[]> in;
    std::size_t in_cap = 0;
    std::size_t in_begin = 0;
    std::size_t in_end = 0;
    Response* response = nullptr;  // the one being sent (the session's), while Sending
    // Progress through response->segments.
    std::size_t seg = 0;
    std::uint64_t seg_done = 0;
    std::uint64_t body_sent = 0;
    bool responding = false;  // a response is under way (the session not yet told)
    // Edge-triggered readiness, as nginx's ready flags: set by events,
    // cleared when a call says EAGAIN.
    bool readable = false;
    bool writable = false;
    bool peer_eof = false;    // read() returned 0
    bool peer_rdhup = false;  // EPOLLRDHUP: a FIN is queued behind any data
    bool posted = false;
    bool releasing = false;  // closed with direct reads in flight
    // Waiting: the deferred response is due (resumed), and whether by its timer.
    bool resumed = false;
    bool defer_timed_out = false;
    DirectStream direct;
    std::size_t direct_seg = SIZE_MAX;  // the segment `direct` streams
    // Timer: one intrusive list per timeout kind.
    Connection* timer_prev = nullptr;
    Connection* timer_next = nullptr;
    int timer = -1;
    std::uint64_t deadline = 0;
    // A deferral's timer, when it has one.
    bool has_defer_timer = false;
    std::multimap<std::uint64_t, Connection*>::iterator defer_timer;
    std::size_t active_index = 0;
    char client_name[INET6_ADDRSTRLEN] = "-";

    void resume() noexcept override {
        if (state == State::Waiting) worker->resume(*this, false);
    }
    std::string_view client() const noexcept override { return client_name; }
};

namespace {

constexpr std::uint64_t kListenTag = 1;
constexpr std::uint64_t kStopTag = 2;
constexpr std::uint64_t kRingTag = 3;
// A Watch's epoll tag is its address with this bit set (Connections are
// aligned, so their addresses never have it).
constexpr std::uint64_t kWatchBit = 1;

constexpr int kMaxEvents = 256;
constexpr std::size_t kInputInitialBytes = 4096;
// Fairness: a connection yields to the others after this many pipelined
// frames or body bytes (nginx sendfile_max_chunk 2m) in one turn.
constexpr unsigned kFramesPerTurn = 16;
constexpr std::uint64_t kSendBytesPerTurn = 2 << 20;
constexpr std::size_t kDrainBytes = 16 * 1024;
constexpr unsigned kAcceptRetryMs = 100;  // accept paused this long after EMFILE
// The longest epoll_wait: protocols keep per-second clocks (on_turn), and accept retries.
constexpr std::uint64_t kMaxWaitMs = 1000;

void epoll_add(int epoll_fd, int fd, std::uint32_t events, std::uint64_t tag,
               const std::string& name) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) throw_error("epoll_ctl", name);
}

}  // namespace

Worker::Worker(WorkerShared& shared, UniqueFd listen_fd, const ProtocolFactory& factory)
    : shared_(shared),
      config_(*shared.config),
      listen_fd_(std::move(listen_fd)),
      log_(config_.access_log_fd, config_.name),
      timeout_ms_{config_.frame_timeout_ms, config_.idle_timeout_ms, config_.send_timeout_ms,
                  config_.linger_timeout_ms} {
    const int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw_error("epoll_create1", config_.name);
    epoll_fd_.reset(fd);
    epoll_add(fd, listen_fd_.get(), EPOLLIN | EPOLLET, kListenTag, config_.name);
    epoll_add(fd, shared.stop_fd, EPOLLIN | EPOLLET, kStopTag, config_.name);
    drain_.resize(kDrainBytes);
    update_clock();
    protocol_ = factory(*this);
}

Worker::~Worker() = default;

void Worker::update_clock() noexcept {
    timespec mono{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &mono);
    now_ms_ = static_cast<std::uint64_t>(mono.tv_sec) * 1000 +
              static_cast<std::uint64_t>(mono.tv_nsec) / 1'000'000;
}

void Worker::watch(int fd, std::function<void()> on_ready) {
    auto w = std::make_unique<Watch>(Watch{fd, std::move(on_ready)});
    epoll_add(epoll_fd_.get(), fd, EPOLLIN | EPOLLET,
              reinterpret_cast<std::uint64_t>(w.get()) | kWatchBit, config_.name);
    watches_[fd] = std::move(w);
}

void Worker::unwatch(int fd) noexcept {
    auto it = watches_.find(fd);
    if (it == watches_.end()) return;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
    // Its event may still be in this turn's batch, or it is running now.
    it->second->on_ready = nullptr;
    unwatched_.push_back(std::move(it->second));
    watches_.erase(it);
}

void Worker::run() {
    epoll_event events[kMaxEvents];
    for (;;) {
        if (stopping_ && (active_.empty() || now_ms_ >= stop_deadline_ms_)) break;
        const int n = ::epoll_wait(epoll_fd_.get(), events, kMaxEvents, wait_timeout_ms());
        if (n < 0 && errno != EINTR) throw_error("epoll_wait", config_.name);
        update_clock();
        protocol_->on_turn();
        for (int i = 0; i < n; ++i) {
            const std::uint64_t tag = events[i].data.u64;
            if (tag == kListenTag) {
                if (!stopping_ && accept_retry_ms_ == 0) accept_all();
            } else if (tag == kStopTag) {
                begin_stop();
            } else if (tag == kRingTag) {
                on_direct_completions();
            } else if ((tag & kWatchBit) != 0) {
                Watch& w = *reinterpret_cast<Watch*>(tag & ~kWatchBit);
                if (w.on_ready) w.on_ready();
            } else {
                on_event(*reinterpret_cast<Connection*>(tag), events[i].events);
            }
        }
        run_posted();
        if (accept_retry_ms_ != 0 && now_ms_ >= accept_retry_ms_ && !stopping_) {
            accept_retry_ms_ = 0;
            accept_all();
        }
        expire_timers();
        log_.flush();
        for (Connection* c : closed_) free_.push_back(c);
        closed_.clear();
        unwatched_.clear();
    }
    // Past the grace period: what is left is closed unfinished.
    while (!active_.empty()) close(*active_.back());
    log_.flush();
    // The kernel may still be reading into buffers of closed connections.
    while (ring_.outstanding() > 0) {
        ring_.wait();
        on_direct_completions();
    }
}

int Worker::wait_timeout_ms() const {
    if (!posted_.empty()) return 0;
    const std::uint64_t now = now_ms_;
    auto until = [now](std::uint64_t deadline) { return deadline > now ? deadline - now : 0; };
    std::uint64_t wait = kMaxWaitMs;
    for (const TimerList& list : timers_) {
        if (list.head != nullptr) wait = std::min(wait, until(list.head->deadline));
    }
    if (!defer_timers_.empty()) wait = std::min(wait, until(defer_timers_.begin()->first));
    if (stopping_) wait = std::min(wait, until(stop_deadline_ms_));
    if (accept_retry_ms_ != 0) wait = std::min(wait, until(accept_retry_ms_));
    // COARSE clock ticks: wake a little after the deadline, not before it.
    return static_cast<int>(wait) + (wait > 0 ? 5 : 0);
}

Connection* Worker::get_connection() {
    if (free_.empty()) {
        all_.push_back(std::make_unique<Connection>());
        Connection* fresh = all_.back().get();
        fresh->worker = this;
        fresh->session = protocol_->make_session();
        free_.push_back(fresh);
    }
    Connection* c = free_.back();
    free_.pop_back();
    c->state = Connection::State::Reading;
    c->in_begin = c->in_end = 0;
    c->response = nullptr;
    c->seg = 0;
    c->seg_done = c->body_sent = 0;
    c->responding = c->peer_eof = c->peer_rdhup = c->posted = c->releasing = false;
    c->resumed = c->defer_timed_out = c->has_defer_timer = false;
    c->readable = c->writable = true;  // try at once; EAGAIN clears them
    c->direct_seg = SIZE_MAX;
    c->timer = -1;
    c->timer_prev = c->timer_next = nullptr;
    std::strcpy(c->client_name, "-");
    return c;
}

void Worker::accept_all() {
    for (;;) {
        sockaddr_storage addr{};
        socklen_t len = sizeof addr;
        const int fd = ::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                accept_retry_ms_ = now_ms_ + kAcceptRetryMs;
            }
            return;  // EAGAIN: all taken
        }
        char client[INET6_ADDRSTRLEN] = "-";
        if (addr.ss_family == AF_INET) {
            ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, client,
                        sizeof client);
        } else if (addr.ss_family == AF_INET6) {
            ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, client,
                        sizeof client);
        }
        if (shared_.connections.fetch_add(1, std::memory_order_relaxed) >=
            config_.max_connections) {
            shared_.connections.fetch_sub(1, std::memory_order_relaxed);
            reject_over_limit(fd, client);
            continue;
        }
        Connection* c = get_connection();
        c->fd = fd;
        std::memcpy(c->client_name, client, sizeof client);
        // The last segment of a response must not wait for an ACK (Nagle);
        // MSG_MORE still coalesces a header block with its body.
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = reinterpret_cast<std::uint64_t>(c);
        if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
            ::close(fd);
            c->fd = -1;
            c->state = Connection::State::Closed;
            shared_.connections.fetch_sub(1, std::memory_order_relaxed);
            closed_.push_back(c);
            continue;
        }
        c->active_index = active_.size();
        active_.push_back(c);
        c->session->start(*c);
        set_timer(*c, kFrameTimer);
        drive(*c);
    }
}

void Worker::reject_over_limit(int fd, const char* client) {
    if (const Response* response = protocol_->over_limit(client); response != nullptr) {
        (void)::send(fd, response->data.data(), response->data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    ::shutdown(fd, SHUT_WR);
    // Whatever the client already sent is read, so close() sends FIN, not a
    // reset that could destroy the response before the client reads it.
    while (::recv(fd, drain_.data(), drain_.size(), MSG_DONTWAIT) > 0) {
    }
    ::close(fd);
}

void Worker::on_event(Connection& c, std::uint32_t events) {
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) c.readable = true;
    if ((events & (EPOLLRDHUP | EPOLLHUP)) != 0) c.peer_rdhup = true;
    if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0) c.writable = true;
    drive(c);
}

bool Worker::take_input(Connection& c, unsigned& frames) {
    const std::size_t buffered = c.in_end - c.in_begin;
    if (buffered == 0) return true;
    const Input in = c.session->on_input(c.in.get() + c.in_begin, buffered, stopping_);
    switch (in.kind) {
        case Input::Kind::Respond:
            c.in_begin += in.consumed;
            start_response(c, *in.response);
            if (++frames >= kFramesPerTurn) {
                post(c);
                return false;
            }
            return true;
        case Input::Kind::Error:
            c.in_begin = c.in_end;
            start_response(c, *in.response);
            return true;
        case Input::Kind::Defer:
            c.in_begin += in.consumed;
            defer(c, in.defer_ms);
            return true;
        case Input::Kind::NeedMore:
            break;
    }
    if (buffered >= config_.max_frame_bytes) {
        c.in_begin = c.in_end;
        if (Response* r = c.session->on_input_limit(InputLimit::TooLarge); r != nullptr) {
            r->close = true;
            start_response(c, *r);
            return true;
        }
        close(c);
        return false;
    }
    return true;
}

void Worker::drive(Connection& c) {
    unsigned frames = 0;
    for (;;) {
        switch (c.state) {
            case Connection::State::Closed:
                return;

            case Connection::State::Reading: {
                if (!take_input(c, frames)) return;
                if (c.state != Connection::State::Reading) continue;
                if (c.peer_eof) {
                    close(c);
                    return;
                }
                if (!c.readable) return;
                if (c.in_end == c.in_cap) {
                    if (c.in_begin > 0) {
                        std::memmove(c.in.get(), c.in.get() + c.in_begin, c.in_end - c.in_begin);
                        c.in_end -= c.in_begin;
                        c.in_begin = 0;
                    } else {
                        // A full buffer of max_frame_bytes is over the limit (take_input).
                        const std::size_t max = config_.max_frame_bytes;
                        const std::size_t cap = c.in_cap == 0 ? std::min(kInputInitialBytes, max)
                                                              : std::min(c.in_cap * 2, max);
                        auto grown = std::make_unique<char[]>(cap);
                        if (c.in_end > 0) std::memcpy(grown.get(), c.in.get(), c.in_end);
                        c.in = std::move(grown);
                        c.in_cap = cap;
                    }
                }
                const std::size_t room = c.in_cap - c.in_end;
                const ssize_t n = ::recv(c.fd, c.in.get() + c.in_end, room, 0);
                if (n > 0) {
                    c.in_end += static_cast<std::size_t>(n);
                    // Short read: the socket is drained (the next byte brings an
                    // edge) — unless a FIN is queued, which brings no new edge.
                    if (static_cast<std::size_t>(n) < room && !c.peer_rdhup) c.readable = false;
                    if (c.timer == kIdleTimer) set_timer(c, kFrameTimer);
                } else if (n == 0) {
                    c.peer_eof = true;
                } else if (errno == EAGAIN) {
                    c.readable = false;
                } else if (errno != EINTR) {
                    close(c);
                    return;
                }
                continue;
            }

            case Connection::State::Waiting: {
                if (!c.resumed) return;
                c.resumed = false;
                clear_defer_timer(c);
                Response* r = c.session->on_resume(c.defer_timed_out);
                c.defer_timed_out = false;
                if (r == nullptr) {
                    close(c);
                    return;
                }
                start_response(c, *r);
                continue;
            }

            case Connection::State::Sending: {
                const SendStatus s = send_some(c);
                if (s == SendStatus::Blocked) return;
                if (s == SendStatus::Yield) {
                    post(c);
                    return;
                }
                if (s == SendStatus::Failed) {
                    close(c);
                    return;
                }
                const bool close_after = c.response->close;
                end_response(c, true);
                if (close_after || stopping_) {
                    begin_close(c);
                    continue;
                }
                c.state = Connection::State::Reading;
                set_timer(c, c.in_end > c.in_begin ? kFrameTimer : kIdleTimer);
                continue;
            }

            case Connection::State::Lingering: {
                if (!c.readable) return;
                const ssize_t n = ::recv(c.fd, drain_.data(), drain_.size(), 0);
                if (n > 0) continue;
                if (n < 0 && errno == EAGAIN) {
                    c.readable = false;
                    return;
                }
                if (n < 0 && errno == EINTR) continue;
                close(c);
                return;
            }
        }
    }
}

void Worker::start_response(Connection& c, Response& r) {
    c.state = Connection::State::Sending;
    c.response = &r;
    c.seg = 0;
    c.seg_done = 0;
    c.body_sent = 0;
    c.responding = true;
    c.direct_seg = SIZE_MAX;
    if (r.direct) {
        // Direct needs the ring (its eventfd in our epoll set) and a file
        // system that takes O_DIRECT; otherwise sendfile sends it.
        if (!direct_failed_ && !ring_registered_) {
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLET;
            ev.data.u64 = kRingTag;
            ring_registered_ = ring_.ready() && ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD,
                                                            ring_.event_fd(), &ev) == 0;
            direct_failed_ = !ring_registered_;
        }
        r.direct = !direct_failed_ && r.source != nullptr && prepare_direct(*r.source);
    }
    set_timer(c, kSendTimer);
}

Worker::SendStatus Worker::send_some(Connection& c) {
    Response& r = *c.response;
    std::uint64_t turn_bytes = 0;
    while (c.seg < r.segments.size()) {
        const Segment& s = r.segments[c.seg];
        const bool more = c.seg + 1 < r.segments.size();
        if (s.file && r.direct) {
            const SendStatus status = send_direct(c, more, turn_bytes);
            if (status != SendStatus::Done) return status;
            ++c.seg;
            c.seg_done = 0;
            continue;
        }
        if (!c.writable) return SendStatus::Blocked;
        if (turn_bytes >= kSendBytesPerTurn) return SendStatus::Yield;
        const std::uint64_t left = s.length - c.seg_done;
        if (!s.file) {
            std::size_t sent = 0;
            const SendStatus status = send_bytes(c, r.data.data() + s.offset + c.seg_done,
                                                 static_cast<std::size_t>(left), more, sent);
            if (status != SendStatus::Done) return status;
            note_sent(c, sent, turn_bytes);
        } else {
            const TransferStep step = transfer_step(
                s.fd >= 0 ? s.fd : r.source->fd.get(), c.fd, EndpointKind::Socket,
                s.offset + c.seg_done, std::min(left, kSendBytesPerTurn), TransferMethod::Sendfile);
            note_sent(c, step.bytes, turn_bytes);
            if (step.error != 0) return SendStatus::Failed;  // the header block is out: close
            if (step.would_block) c.writable = false;
        }
        if (c.seg_done == s.length) {
            ++c.seg;
            c.seg_done = 0;
        }
    }
    return SendStatus::Done;
}

void Worker::note_sent(Connection& c, std::uint64_t n, std::uint64_t& turn_bytes) {
    c.seg_done += n;
    if (c.seg > 0) c.body_sent += n;  // segment 0 is the header block
    turn_bytes += n;
    if (n > 0) set_timer(c, kSendTimer);
}

Worker::SendStatus Worker::send_bytes(Connection& c, const char* data, std::size_t n, bool more,
                                      std::size_t& sent) {
    sent = 0;
    const ssize_t w = sys::retry_eintr(
        [&] { return ::send(c.fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0)); });
    if (w < 0) {
        if (errno != EAGAIN) return SendStatus::Failed;
        c.writable = false;
        return SendStatus::Blocked;
    }
    sent = static_cast<std::size_t>(w);
    if (sent < n) c.writable = false;  // the socket buffer is full: wait for the edge
    return SendStatus::Done;
}

Worker::SendStatus Worker::send_direct(Connection& c, bool more, std::uint64_t& turn_bytes) {
    Response& r = *c.response;
    const Segment& s = r.segments[c.seg];
    const auto tag = reinterpret_cast<std::uint64_t>(&c);
    if (c.direct_seg != c.seg) {
        c.direct.start(r.source->direct_fd.get(), r.source->direct_align, s.offset,
                       s.offset + s.length);
        c.direct_seg = c.seg;
    }
    for (;;) {
        if (!c.direct.fill(ring_, tag)) return SendStatus::Failed;
        DirectBuffer* b = c.direct.front();
        if (b == nullptr) return SendStatus::Done;
        if (b->state == DirectBuffer::State::Reading)
            return SendStatus::Blocked;  // the ring wakes us
        if (b->error != 0) return SendStatus::Failed;
        if (!c.writable) return SendStatus::Blocked;
        if (turn_bytes >= kSendBytesPerTurn) return SendStatus::Yield;
        const std::size_t left = b->length - b->sent;
        const bool last = c.seg_done + left == s.length;
        std::size_t sent = 0;
        const SendStatus status =
            send_bytes(c, b->data + b->skip + b->sent, left, more || !last, sent);
        if (status != SendStatus::Done) return status;
        b->sent += sent;
        note_sent(c, sent, turn_bytes);
        if (b->sent == b->length) c.direct.pop();
    }
}

void Worker::on_direct_completions() {
    ring_.reap([&](std::uint64_t tag, int res) {
        auto* c = reinterpret_cast<Connection*>(tag & ~std::uint64_t{1});
        c->direct.complete(static_cast<unsigned>(tag & 1), res, ring_, tag & ~std::uint64_t{1});
        if (c->state == Connection::State::Closed) {
            if (c->releasing && c->direct.in_flight() == 0) {
                c->releasing = false;
                release(*c);
            }
            return;
        }
        post(*c);
    });
}

void Worker::end_response(Connection& c, bool complete) {
    if (!c.responding) return;
    c.responding = false;
    if (complete && c.direct_seg != SIZE_MAX) {
        c.direct.release(ring_);  // nothing in flight: every byte was read and sent
        c.direct_seg = SIZE_MAX;
    }
    c.session->on_sent(*c.response, c.body_sent, complete);
}

void Worker::defer(Connection& c, unsigned timeout_ms) {
    c.state = Connection::State::Waiting;
    c.resumed = c.defer_timed_out = false;
    clear_timer(c);
    if (timeout_ms > 0) {
        c.defer_timer = defer_timers_.emplace(now_ms_ + timeout_ms, &c);
        c.has_defer_timer = true;
    }
    if (stopping_) resume(c, true);  // finish now: no long poll outlives the server
}

void Worker::resume(Connection& c, bool timed_out) {
    if (c.resumed) return;
    c.resumed = true;
    c.defer_timed_out = timed_out;
    clear_defer_timer(c);
    post(c);
}

void Worker::begin_close(Connection& c) {
    if (c.peer_eof) {
        close(c);
        return;
    }
    // Lingering close: FIN now, then read and discard until the client
    // closes too (or the linger timer), so unread input cannot turn our
    // close into a reset that destroys the response in the client's buffer.
    ::shutdown(c.fd, SHUT_WR);
    c.state = Connection::State::Lingering;
    set_timer(c, kLingerTimer);
}

void Worker::close(Connection& c) {
    if (c.state == Connection::State::Closed) return;
    end_response(c, false);
    clear_timer(c);
    clear_defer_timer(c);
    ::close(c.fd);  // also leaves the epoll set
    c.fd = -1;
    c.state = Connection::State::Closed;
    shared_.connections.fetch_sub(1, std::memory_order_relaxed);
    Connection* last = active_.back();
    active_[c.active_index] = last;
    last->active_index = c.active_index;
    active_.pop_back();
    if (c.direct.in_flight() > 0) {
        c.releasing = true;  // on_direct_completions finishes the job
        return;
    }
    release(c);
}

void Worker::release(Connection& c) {
    if (c.direct_seg != SIZE_MAX) c.direct.release(ring_);
    c.direct_seg = SIZE_MAX;
    c.response = nullptr;
    // Only now: a response's file must stay open while direct reads of it run.
    c.session->on_close();
    closed_.push_back(&c);
}

void Worker::post(Connection& c) {
    if (c.posted) return;
    c.posted = true;
    posted_.push_back(&c);
}

void Worker::run_posted() {
    if (posted_.empty()) return;
    // Connections posted while these run wait for the next turn. The two
    // vectors trade places, so neither is reallocated turn after turn.
    posted_batch_.swap(posted_);
    for (Connection* c : posted_batch_) {
        c->posted = false;
        drive(*c);
    }
    posted_batch_.clear();
}

void Worker::set_timer(Connection& c, TimerKind kind) {
    clear_timer(c);
    TimerList& list = timers_[kind];
    c.timer = kind;
    c.deadline = now_ms_ + timeout_ms_[kind];
    c.timer_prev = list.tail;
    c.timer_next = nullptr;
    if (list.tail != nullptr) {
        list.tail->timer_next = &c;
    } else {
        list.head = &c;
    }
    list.tail = &c;
}

void Worker::clear_timer(Connection& c) {
    if (c.timer < 0) return;
    TimerList& list = timers_[c.timer];
    if (c.timer_prev != nullptr) {
        c.timer_prev->timer_next = c.timer_next;
    } else {
        list.head = c.timer_next;
    }
    if (c.timer_next != nullptr) {
        c.timer_next->timer_prev = c.timer_prev;
    } else {
        list.tail = c.timer_prev;
    }
    c.timer_prev = c.timer_next = nullptr;
    c.timer = -1;
}

void Worker::clear_defer_timer(Connection& c) {
    if (!c.has_defer_timer) return;
    defer_timers_.erase(c.defer_timer);
    c.has_defer_timer = false;
}

void Worker::expire_timers() {
    const std::uint64_t now = now_ms_;
    while (!defer_timers_.empty() && defer_timers_.begin()->first <= now) {
        Connection& c = *defer_timers_.begin()->second;
        resume(c, true);  // clears the timer; drives on the next turn (posted)
    }
    for (int kind = 0; kind < kTimerKinds; ++kind) {
        while (timers_[kind].head != nullptr && timers_[kind].head->deadline <= now) {
            Connection& c = *timers_[kind].head;
            clear_timer(c);
            if (kind == kFrameTimer && c.state == Connection::State::Reading) {
                // The session's answer, then close: nothing of a response was sent yet.
                c.in_begin = c.in_end;
                Response* r = c.session->on_input_limit(InputLimit::Timeout);
                if (r == nullptr) {
                    close(c);
                    continue;
                }
                r->close = true;
                start_response(c, *r);
                drive(c);
            } else {
                close(c);
            }
        }
    }
}

void Worker::begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ms_ = now_ms_ + config_.shutdown_grace_ms;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listen_fd_.get(), nullptr);
    listen_fd_.reset();
    // Connections between responses are closed; responses under way finish
    // (and then close, since stopping_ refuses keep-alive); deferred ones
    // are answered now, as if their time were up.
    std::vector<Connection*> idle;
    for (Connection* c : active_) {
        if (c->state == Connection::State::Reading) idle.push_back(c);
        if (c->state == Connection::State::Waiting) resume(*c, true);
    }
    for (Connection* c : idle) close(*c);
}

}  // namespace pagewire::net
