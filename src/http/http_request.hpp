// pagewire serve: reading one HTTP/1.x request head out of a connection's
// buffered bytes. Framing (where the head ends, the 414/431 limits) is a scan
// for line ends; the head itself is parsed by http_parser (Debian
// libhttp-parser-dev). Pure: no sockets, so tests and the fuzzer drive it
// with plain bytes. Not thread-safe; one reader per connection.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pagewire::http {

// Limits of the contract; 414 / 431 above them.
inline constexpr std::size_t kMaxRequestLineBytes = 8 * 1024;
inline constexpr std::size_t kMaxHeaderSectionBytes = 16 * 1024;
inline constexpr std::size_t kMaxHeaderLines = 100;

enum class Method { Get, Head, Other };

// One parsed request head. Every view points into the bytes given to
// RequestReader::parse and is valid until the caller discards them.
struct Request {
    Method method = Method::Other;
    std::string_view method_name;   // "GET", "POST", ...
    std::string_view request_line;  // without its line end, for the access log
    std::string_view target;        // the request-target as sent
    std::string_view path;          // the target's path, still percent-encoded
    unsigned http_major = 1;
    unsigned http_minor = 1;
    bool keep_alive = true;  // http_should_keep_alive: version and Connection
    bool has_body = false;   // Content-Length > 0 or Transfer-Encoding
    std::string_view host;
    std::string_view range;
    std::string_view if_range;
    std::string_view if_none_match;
    std::string_view if_modified_since;
    std::string_view user_agent;
    std::string_view referer;
};

struct ParseResult {
    enum class Kind { NeedMore, Ready, Error };
    Kind kind = Kind::NeedMore;
    int status = 0;            // Error: 400, 405, 414, 431 or 505
    std::size_t consumed = 0;  // Ready / Error: bytes of the head, leading empty lines included
};

class RequestReader {
  public:
    RequestReader() noexcept;
    // Looks at [data, data + size): the buffered bytes of the current
    // request, which only grow between calls until Ready or Error (then
    // call reset() and pass the bytes after `consumed`). Scans only bytes
    // it has not seen, so a byte-at-a-time client costs linear time.
    ParseResult parse(const char* data, std::size_t size, Request& out) noexcept;
    void reset() noexcept;
    // Whether a byte of a request (not a leading empty line) has been seen.
    bool started() const noexcept { return started_; }

  private:
    ParseResult parse_head(const char* data, std::size_t head_end, Request& out) noexcept;

    // Framing state over the current request's bytes; positions are offsets
    // from the start of the bytes given to parse().
    std::size_t begin_ = 0;       // first byte after leading CR / LF
    std::size_t scanned_ = 0;     // bytes examined for line ends
    std::size_t line_start_ = 0;  // start of the line being scanned
    std::size_t line_end_ = 0;    // end of the request line (after its LF), 0 until seen
    std::size_t header_lines_ = 0;
    bool started_ = false;
    bool folded_ = false;  // a header line starts with SP / HTAB: 400
    http_parser parser_{};
};

// The reason phrase of a status code ("Not Found").
std::string_view status_text(int status) noexcept;

}  // namespace pagewire::http
