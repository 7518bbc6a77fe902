// pagewire serve: what to answer to a request — status, header block and
// the body as a list of segments (bytes in memory, ranges of the file) for
// the worker to send. Pure apart from opening files through the cache, so
// unit tests and the fuzzer call it without sockets. One per worker; not
// thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <pagewire/serve.hpp>
#include <string>
#include <vector>

#include "http/file_cache.hpp"
#include "http/http_date.hpp"
#include "http/http_request.hpp"
#include "http/range.hpp"
#include "net/protocol.hpp"

namespace pagewire::http {

using net::Segment;

// A net::Response (the header block, then in-memory body parts, in `data`;
// the segments; close) with what HTTP keeps of it.
struct Response : net::Response {
    int status = 0;
    std::shared_ptr<CachedFile> file;  // owns net::Response::source while the response is sent
    std::uint64_t body_bytes = 0;      // body bytes the segments carry (0 for HEAD, 304)
    bool http10_keep_alive = false;    // "Connection: keep-alive" sent to an HTTP/1.0 client
    // For the access log, copied from the request (only when logging).
    std::string log_request;
    std::string log_referer;
    std::string log_user_agent;

    // Empties it, keeping the capacity (no allocation per request).
    void clear() noexcept;
};

class Responder {
  public:
    // `root_fd` must outlive the responder (listings open beneath it through `cache`).
    Responder(const serve::ServeConfig& config, OpenFileCache& cache, const ClockStrings& clock);

    // The answer to a parsed request. keep_alive_allowed false (the server
    // is stopping) adds "Connection: close".
    void respond(const Request& request, Response& out, bool keep_alive_allowed = true);
    // An error with no request to answer, or one that ends the connection
    // (400, 405, 408, 414, 431, 500, 503, 505); the response closes it. `request`
    // may be null when nothing was parsed.
    void respond_error(int status, const Request* request, Response& out);

  private:
    void serve_file(const Request& request, const std::shared_ptr<CachedFile>& file, Response& out);
    void serve_listing(const Request& request, const CachedFile& dir, Response& out);
    void redirect_to_directory(const Request& request, Response& out);
    void simple(int status, const Request* request, Response& out, bool close);
    // Starts the header block: status line, Server, Date, Connection when needed.
    void begin_head(int status, Response& out) const;
    void end_head(Response& out) const;
    void add_body_memory(Response& out, std::size_t from) const;
    // Content-Type and Content-Length of `body`, the end of the header
    // block, then the body unless the request is HEAD.
    void end_with_body(const Request* request, Response& out, std::string_view type,
                       std::string_view body) const;
    void note_log(const Request* request, Response& out) const;
    bool not_modified(const Request& request, const CachedFile& file) const;
    bool if_range_allows(const Request& request, const CachedFile& file) const;
    int open_error_status(int err) const noexcept;

    const serve::ServeConfig& config_;
    OpenFileCache& cache_;
    const ClockStrings& clock_;
    std::string relative_;  // normalized path of the current request (reused)
    std::string scratch_;   // index path, listing body (reused)
    std::vector<ByteRange> ranges_;
    std::vector<std::size_t> part_ends_;  // multipart: end of each part header in scratch_
    std::uint64_t boundary_ = 0;          // multipart boundaries count up, as in nginx
};

}  // namespace pagewire::http
