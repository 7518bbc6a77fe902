// One worker's event loop: see worker.hpp. A connection's life, top to
// bottom: accept_all() -> drive() reads and parses (RequestReader), the
// Responder decides, send_some() sends the header block and the body
// (transfer_step = sendfile returning on a full socket; or the direct path),
// finish_response() logs, then keep-alive or begin_close() (lingering, as
// nginx, so an error page is not lost to a reset).
#include "http/worker.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/transfer.hpp>

#include "sys.hpp"

namespace pagewire::http {

// One client connection. Owned by its worker (pooled: objects are reused,
// never freed while the worker runs, so io_uring tags stay valid).
struct Connection {
    enum class State { Reading, Sending, Lingering, Closed };

    int fd = -1;
    State state = State::Closed;
    // Input: in[in_begin, in_end) holds bytes not yet consumed by a request.
    std::unique_ptr<char[]> in;
    std::size_t in_cap = 0;
    std::size_t in_begin = 0;
    std::size_t in_end = 0;
    RequestReader reader;
    Request request;
    Response response;
    // Progress through response.segments.
    std::size_t seg = 0;
    std::uint64_t seg_done = 0;
    std::uint64_t body_sent = 0;
    bool responding = false;  // a response is under way (not yet logged)
    // Edge-triggered readiness, as nginx's ready flags: set by events,
    // cleared when a call says EAGAIN.
    bool readable = false;
    bool writable = false;
    bool peer_eof = false;    // read() returned 0
    bool peer_rdhup = false;  // EPOLLRDHUP: a FIN is queued behind any data
    bool posted = false;
    bool releasing = false;  // closed with direct reads in flight
    DirectStream direct;
    std::size_t direct_seg = SIZE_MAX;  // the segment `direct` streams
    // Timer: one intrusive list per timeout kind.
    Connection* timer_prev = nullptr;
    Connection* timer_next = nullptr;
    int timer = -1;
    std::uint64_t deadline = 0;
    std::size_t active_index = 0;
    char client[INET6_ADDRSTRLEN] = "-";
};

namespace {

constexpr std::uint64_t kListenTag = 1;
constexpr std::uint64_t kStopTag = 2;
constexpr std::uint64_t kRingTag = 3;

constexpr int kMaxEvents = 256;
constexpr std::size_t kInputInitialBytes = 4096;
// The request line and header section at their limits, plus room for the
// framing to see that they are over.
constexpr std::size_t kInputMaxBytes = kMaxRequestLineBytes + kMaxHeaderSectionBytes + 1024;
// Fairness: a connection yields to the others after this many pipelined
// requests or body bytes (nginx sendfile_max_chunk 2m) in one turn.
constexpr unsigned kRequestsPerTurn = 16;
constexpr std::uint64_t kSendBytesPerTurn = 2 << 20;
constexpr std::size_t kDrainBytes = 16 * 1024;
constexpr unsigned kAcceptRetryMs = 100;  // accept paused this long after EMFILE

void epoll_add(int epoll_fd, int fd, std::uint32_t events, std::uint64_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) throw_error("epoll_ctl", "serve");
}

}  // namespace

Worker::Worker(WorkerShared& shared, UniqueFd listen_fd)
    : shared_(shared),
      config_(*shared.config),
      listen_fd_(std::move(listen_fd)),
      cache_(shared.root_fd, config_.follow_symlinks, config_.open_file_valid_ms),
      responder_(config_, cache_, clock_),
      log_(shared.log_fd),
      timeout_ms_{config_.header_timeout_ms, config_.keepalive_timeout_ms, config_.send_timeout_ms,
                  config_.linger_timeout_ms} {
    const int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw_error("epoll_create1", "serve");
    epoll_fd_.reset(fd);
    epoll_add(fd, listen_fd_.get(), EPOLLIN | EPOLLET, kListenTag);
    epoll_add(fd, shared.stop_fd, EPOLLIN | EPOLLET, kStopTag);
    drain_.resize(kDrainBytes);
    clock_.update();
}

Worker::~Worker() = default;

void Worker::run() {
    epoll_event events[kMaxEvents];
    for (;;) {
        if (stopping_ && (active_.empty() || clock_.now_ms() >= stop_deadline_ms_)) break;
        const int n = ::epoll_wait(epoll_fd_.get(), events, kMaxEvents, wait_timeout_ms());
        if (n < 0 && errno != EINTR) throw_error("epoll_wait", "serve");
        clock_.update();
        for (int i = 0; i < n; ++i) {
            const std::uint64_t tag = events[i].data.u64;
            if (tag == kListenTag) {
                if (!stopping_ && accept_retry_ms_ == 0) accept_all();
            } else if (tag == kStopTag) {
                begin_stop();
            } else if (tag == kRingTag) {
                on_direct_completions();
            } else {
                on_event(*reinterpret_cast<Connection*>(tag), events[i].events);
            }
        }
        run_posted();
        if (accept_retry_ms_ != 0 && clock_.now_ms() >= accept_retry_ms_ && !stopping_) {
            accept_retry_ms_ = 0;
            accept_all();
        }
        expire_timers();
        log_.flush();
        for (Connection* c : closed_) free_.push_back(c);
        closed_.clear();
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
    const std::uint64_t now = clock_.now_ms();
    std::uint64_t wait = 1000;  // the Date header's second and the accept retry
    for (const TimerList& list : timers_) {
        if (list.head != nullptr) {
            wait = std::min(wait, list.head->deadline > now ? list.head->deadline - now : 0);
        }
    }
    if (stopping_) wait = std::min(wait, stop_deadline_ms_ > now ? stop_deadline_ms_ - now : 0);
    if (accept_retry_ms_ != 0)
        wait = std::min(wait, accept_retry_ms_ > now ? accept_retry_ms_ - now : 0);
    // COARSE clock ticks: wake a little after the deadline, not before it.
    return static_cast<int>(wait) + (wait > 0 ? 5 : 0);
}

Connection* Worker::get_connection() {
    if (free_.empty()) {
        all_.push_back(std::make_unique<Connection>());
        free_.push_back(all_.back().get());
    }
    Connection* c = free_.back();
    free_.pop_back();
    c->state = Connection::State::Reading;
    c->in_begin = c->in_end = 0;
    c->reader.reset();
    c->response.clear();
    c->seg = 0;
    c->seg_done = c->body_sent = 0;
    c->responding = c->peer_eof = c->peer_rdhup = c->posted = c->releasing = false;
    c->readable = c->writable = true;  // try at once; EAGAIN clears them
    c->direct_seg = SIZE_MAX;
    c->timer = -1;
    c->timer_prev = c->timer_next = nullptr;
    std::strcpy(c->client, "-");
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
                accept_retry_ms_ = clock_.now_ms() + kAcceptRetryMs;
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
        std::memcpy(c->client, client, sizeof client);
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
        set_timer(*c, kHeaderTimer);
        drive(*c);
    }
}

void Worker::reject_over_limit(int fd, const char* client) {
    Response response;
    responder_.respond_error(503, nullptr, response);
    (void)::send(fd, response.data.data(), response.data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_WR);
    // Whatever the client already sent is read, so close() sends FIN, not a
    // reset that could destroy the 503 before the client reads it.
    while (::recv(fd, drain_.data(), drain_.size(), MSG_DONTWAIT) > 0) {
    }
    ::close(fd);
    log_.record(client, clock_.log_time(), {}, 503, response.body_bytes, {}, {});
}

void Worker::on_event(Connection& c, std::uint32_t events) {
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) c.readable = true;
    if ((events & (EPOLLRDHUP | EPOLLHUP)) != 0) c.peer_rdhup = true;
    if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0) c.writable = true;
    drive(c);
}

void Worker::drive(Connection& c) {
    unsigned requests = 0;
    for (;;) {
        switch (c.state) {
            case Connection::State::Closed:
                return;

            case Connection::State::Reading: {
                const std::size_t buffered = c.in_end - c.in_begin;
                if (buffered > 0) {
                    const ParseResult r =
                        c.reader.parse(c.in.get() + c.in_begin, buffered, c.request);
                    if (r.kind == ParseResult::Kind::Ready) {
                        responder_.respond(c.request, c.response, !stopping_);
                        c.in_begin += r.consumed;
                        c.reader.reset();
                        start_response(c);
                        if (++requests >= kRequestsPerTurn) {
                            post(c);
                            return;
                        }
                        continue;
                    }
                    if (r.kind == ParseResult::Kind::Error || buffered >= kInputMaxBytes) {
                        const int status = r.kind == ParseResult::Kind::Error ? r.status : 400;
                        responder_.respond_error(status, status == 405 ? &c.request : nullptr,
                                                 c.response);
                        c.in_begin = c.in_end;
                        c.reader.reset();
                        start_response(c);
                        continue;
                    }
                }
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
                        const std::size_t cap = c.in_cap == 0
                                                    ? kInputInitialBytes
                                                    : std::min(c.in_cap * 2, kInputMaxBytes);
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
                    if (c.timer == kKeepaliveTimer) set_timer(c, kHeaderTimer);
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

            case Connection::State::Sending: {
                const SendStatus s = send_some(c);
                if (s == SendStatus::Blocked) return;
                if (s == SendStatus::Yield) {
                    post(c);
                    return;
                }
                if (s == SendStatus::Failed) {
                    log_response(c);
                    close(c);
                    return;
                }
                finish_response(c);
                if (c.response.close || stopping_) {
                    begin_close(c);
                    continue;
                }
                c.state = Connection::State::Reading;
                set_timer(c, c.in_end > c.in_begin ? kHeaderTimer : kKeepaliveTimer);
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

void Worker::start_response(Connection& c) {
    c.state = Connection::State::Sending;
    c.seg = 0;
    c.seg_done = 0;
    c.body_sent = 0;
    c.responding = true;
    c.direct_seg = SIZE_MAX;
    Response& r = c.response;
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
        r.direct = !direct_failed_ && prepare_direct(*r.file);
    }
    set_timer(c, kSendTimer);
}

Worker::SendStatus Worker::send_some(Connection& c) {
    Response& r = c.response;
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
            const TransferStep step =
                transfer_step(r.file->fd.get(), c.fd, EndpointKind::Socket, s.offset + c.seg_done,
                              std::min(left, kSendBytesPerTurn), TransferMethod::Sendfile);
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
    Response& r = c.response;
    const Segment& s = r.segments[c.seg];
    const auto tag = reinterpret_cast<std::uint64_t>(&c);
    if (c.direct_seg != c.seg) {
        c.direct.start(r.file->direct_fd.get(), r.file->direct_align, s.offset,
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
                c->direct.release(ring_);
                c->response.clear();
                closed_.push_back(c);
            }
            return;
        }
        post(*c);
    });
}

void Worker::finish_response(Connection& c) {
    log_response(c);
    if (c.direct_seg != SIZE_MAX) {
        c.direct.release(ring_);  // nothing in flight: every byte was read and sent
        c.direct_seg = SIZE_MAX;
    }
    c.response.file.reset();  // the cache may close it when it is evicted
}

void Worker::log_response(Connection& c) {
    if (!c.responding) return;
    c.responding = false;
    if (!log_.enabled()) return;
    log_.record(c.client, clock_.log_time(), c.response.log_request, c.response.status, c.body_sent,
                c.response.log_referer, c.response.log_user_agent);
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
    clear_timer(c);
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
    if (c.direct_seg != SIZE_MAX) c.direct.release(ring_);
    c.response.clear();
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
    c.deadline = clock_.now_ms() + timeout_ms_[kind];
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

void Worker::expire_timers() {
    const std::uint64_t now = clock_.now_ms();
    for (int kind = 0; kind < kTimerKinds; ++kind) {
        while (timers_[kind].head != nullptr && timers_[kind].head->deadline <= now) {
            Connection& c = *timers_[kind].head;
            clear_timer(c);
            if (kind == kHeaderTimer && c.state == Connection::State::Reading) {
                // 408, then close: nothing of a response was sent yet.
                responder_.respond_error(408, nullptr, c.response);
                c.in_begin = c.in_end;
                c.reader.reset();
                start_response(c);
                drive(c);
            } else {
                if (kind == kSendTimer) log_response(c);
                close(c);
            }
        }
    }
}

void Worker::begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ms_ = clock_.now_ms() + config_.shutdown_grace_ms;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listen_fd_.get(), nullptr);
    listen_fd_.reset();
    // Connections between responses are closed; responses under way finish
    // (and then close, since stopping_ refuses keep-alive).
    std::vector<Connection*> idle;
    for (Connection* c : active_) {
        if (c->state == Connection::State::Reading) idle.push_back(c);
    }
    for (Connection* c : idle) close(*c);
}

}  // namespace pagewire::http
