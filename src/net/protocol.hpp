// pagewire net: what a protocol plugs into the network core (Redpanda's
// model: the core accepts, reads frames, writes responses in order and
// enforces limits and timeouts; it knows nothing of HTTP or Kafka).
//
// One Protocol object per worker thread (made by the server's factory on
// the main thread, then used only on its worker's thread), one Session per
// connection. The core hands a session the bytes it has buffered; the
// session takes one frame at a time and answers with a Response (header
// bytes, in-memory parts, ranges of a file) that the core sends in order,
// surviving partial writes, or defers the answer (a long poll) until
// Link::resume() or a timer. Nothing here is thread-safe: every call comes
// from the worker's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <pagewire/unique_fd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace pagewire::net {

class AccessLog;

// A file responses send ranges of. Owned by the protocol (e.g. an open-file
// cache), which keeps it alive until the response that names it has ended
// (Session::on_sent, or Session::on_close for a connection cut short).
struct FileSource {
    UniqueFd fd;  // read by sendfile
    // Direct I/O: an O_DIRECT descriptor of the same file, made on first
    // need by prepare_direct() (net/direct_io.hpp).
    enum class Direct { Unknown, Ready, Unsupported };
    Direct direct = Direct::Unknown;
    UniqueFd direct_fd;
    std::uint32_t direct_align = 0;  // statx STATX_DIOALIGN offset alignment
};

// A piece of a response, in sending order: bytes [offset, offset+length) of
// Response::data, or of a file: `fd` when >= 0 (one response may send
// ranges of several files; the protocol keeps it open), else Response::source.
struct Segment {
    bool file = false;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    int fd = -1;
};

// One answer. Segment 0 is the header block; the bytes of the later
// segments are the "body" the core counts for on_sent().
struct Response {
    std::string data;               // the header block, then in-memory body parts
    std::vector<Segment> segments;  // in sending order
    FileSource* source = nullptr;   // of the file segments; borrowed (see FileSource)
    bool direct = false;            // file segments by O_DIRECT reads when the worker can
    bool close = false;             // close the connection after this response

    // Empties it, keeping the capacity (no allocation per request).
    void clear() noexcept;
    std::uint64_t total_bytes() const noexcept;
};

// The core's side of one connection, as its session sees it. Valid from
// Session::start() to Session::on_close().
class Link {
  public:
    // Ends a deferral (Input::Kind::Defer): the core calls
    // Session::on_resume(false) on this turn or the next. No effect when
    // nothing is deferred.
    virtual void resume() noexcept = 0;
    // The peer's address ("127.0.0.1", "::1").
    virtual std::string_view client() const noexcept = 0;

  protected:
    ~Link() = default;
};

// What a session did with the buffered bytes.
struct Input {
    enum class Kind {
        NeedMore,  // no whole frame yet: the core reads more (within its limits)
        Respond,   // a frame of `consumed` bytes, answered by *response
        Defer,     // a frame of `consumed` bytes, answered later (on_resume)
        Error,     // a bad frame: *response is sent, the rest of the input dropped
                   // (the connection stays open unless response->close)
    };
    Kind kind = Kind::NeedMore;
    std::size_t consumed = 0;
    Response* response = nullptr;  // Respond, Error; owned by the session
    unsigned defer_ms = 0;         // Defer: on_resume(true) after this long; 0: no timer
};

enum class InputLimit {
    Timeout,   // a frame did not complete within the frame timeout
    TooLarge,  // a frame is over ServerConfig::max_frame_bytes
};

class Session {
  public:
    virtual ~Session() = default;
    // A connection begins (sessions are pooled: start() also resets).
    virtual void start(Link& link) = 0;
    // [data, data + size) are the buffered bytes not consumed yet; they only
    // grow between NeedMore calls. Takes at most one frame. `stopping`: the
    // server is shutting down (answer, but do not invite more requests).
    virtual Input on_input(const char* data, std::size_t size, bool stopping) = 0;
    // The frame being read broke a limit: the response to send before the
    // connection closes (the core sets its `close`), or nullptr to close at
    // once.
    virtual Response* on_input_limit(InputLimit why) = 0;
    // A deferred frame is due: Link::resume() was called (timed_out false),
    // or its timer fired or the server is stopping (true). Returns the
    // response; nullptr closes the connection.
    virtual Response* on_resume(bool timed_out) = 0;
    // A response given to the core has ended: every byte sent (complete), or
    // the connection failed or timed out while sending. `body_sent`: bytes
    // sent past segment 0. The response may be reused from here on.
    virtual void on_sent(Response& response, std::uint64_t body_sent, bool complete) = 0;
    // The connection is closed (a deferral is cancelled). Release what the
    // session holds for it; the Link is gone.
    virtual void on_close() noexcept = 0;
};

// The core's services to a protocol, per worker.
class WorkerContext {
  public:
    // The worker's access-log buffer, written out once per event-loop turn.
    virtual AccessLog& access_log() noexcept = 0;
    // CLOCK_MONOTONIC_COARSE in ms, read once per turn.
    virtual std::uint64_t now_ms() const noexcept = 0;
    // Calls on_ready() on the worker's thread each time `fd` becomes
    // readable (edge-triggered: read it until EAGAIN), e.g. an eventfd that
    // new data wakes deferred responses with. Throws pagewire::Error.
    virtual void watch(int fd, std::function<void()> on_ready) = 0;
    virtual void unwatch(int fd) noexcept = 0;

  protected:
    ~WorkerContext() = default;
};

class Protocol {
  public:
    virtual ~Protocol() = default;
    virtual std::unique_ptr<Session> make_session() = 0;
    // Once per event-loop turn, after the core read the clock.
    virtual void on_turn() {}
    // A connection over ServerConfig::max_connections, from `client`: the
    // bytes to try once (best effort, never blocking) before closing it, or
    // nullptr. Valid until the next call.
    virtual const Response* over_limit(std::string_view client) = 0;
};

// Called once per worker, on the main thread, before the workers start.
using ProtocolFactory = std::function<std::unique_ptr<Protocol>(WorkerContext&)>;

}  // namespace pagewire::net
