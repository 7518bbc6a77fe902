// Request framing and parsing: see http_request.hpp.
#include "http/http_request.hpp"

#include <strings.h>

#include <cstring>

namespace pagewire::http {
namespace {

// Where http_parser's callbacks put what they see; parser.data points here.
struct Collector {
    Request* request = nullptr;
    std::string_view* last_value = nullptr;  // the header value being collected, if wanted
    std::string_view field;                  // the last header name
    bool field_done = true;                  // a value followed the last name piece
    bool headers_complete = false;
    bool transfer_encoding = false;
    bool second_host = false;  // RFC 9112 3.2: more than one Host line is a 400
};

bool equals_nocase(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// Extends `view` to end at [at, at + n) (a callback may deliver a piece at
// a time; pieces of one element lie in order in the same buffer).
void extend(std::string_view& view, const char* at, std::size_t n) noexcept {
    if (view.data() == nullptr) {
        view = {at, n};
    } else {
        view = {view.data(), static_cast<std::size_t>(at + n - view.data())};
    }
}

int on_url(http_parser* p, const char* at, std::size_t n) {
    extend(static_cast<Collector*>(p->data)->request->target, at, n);
    return 0;
}

int on_header_field(http_parser* p, const char* at, std::size_t n) {
    auto* c = static_cast<Collector*>(p->data);
    if (c->field_done) c->field = {};
    extend(c->field, at, n);
    c->field_done = false;
    c->last_value = nullptr;
    return 0;
}

std::string_view* wanted_value(Collector& c) noexcept {
    Request& r = *c.request;
    struct Wanted {
        std::string_view name;
        std::string_view Request::*member;
    };
    static constexpr Wanted kWanted[] = {
        {"host", &Request::host},
        {"range", &Request::range},
        {"if-range", &Request::if_range},
        {"if-none-match", &Request::if_none_match},
        {"if-modified-since", &Request::if_modified_since},
        {"user-agent", &Request::user_agent},
        {"referer", &Request::referer},
    };
    if (equals_nocase(c.field, "host") && r.host.data() != nullptr) c.second_host = true;
    for (const Wanted& w : kWanted) {
        // The first occurrence counts; repeats are ignored.
        if (equals_nocase(c.field, w.name) && (r.*w.member).data() == nullptr)
            return &(r.*w.member);
    }
    return nullptr;
}

int on_header_value(http_parser* p, const char* at, std::size_t n) {
    auto* c = static_cast<Collector*>(p->data);
    if (!c->field_done) {
        c->field_done = true;
        if (equals_nocase(c->field, "transfer-encoding")) c->transfer_encoding = true;
        c->last_value = wanted_value(*c);
    }
    if (c->last_value != nullptr) extend(*c->last_value, at, n);
    return 0;
}

int on_headers_complete(http_parser* p) {
    auto* c = static_cast<Collector*>(p->data);
    c->headers_complete = true;
    Request& r = *c->request;
    r.has_body = (p->flags & F_CHUNKED) != 0 || c->transfer_encoding ||
                 ((p->flags & F_CONTENTLENGTH) != 0 && p->content_length > 0);
    r.keep_alive = http_should_keep_alive(p) != 0;
    r.http_major = p->http_major;
    r.http_minor = p->http_minor;
    // 1: no body follows as far as this parser is concerned (the head is
    // all it is given; a request with a body is refused by the caller).
    return 1;
}

const http_parser_settings kSettings = [] {
    http_parser_settings s{};
    s.on_url = on_url;
    s.on_header_field = on_header_field;
    s.on_header_value = on_header_value;
    s.on_headers_complete = on_headers_complete;
    return s;
}();

// "METHOD /target HTTP/1.x" whose method is a token of upper-case letters
// that http_parser does not know: answered 405 rather than 400.
bool looks_like_method(std::string_view line) noexcept {
    const std::size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string_view::npos || sp > 32) return false;
    for (std::size_t i = 0; i < sp; ++i) {
        if (line[i] < 'A' || line[i] > 'Z') return false;
    }
    const std::size_t sp2 = line.find(' ', sp + 1);
    if (sp2 == std::string_view::npos || sp2 == sp + 1 || line[sp + 1] != '/') return false;
    const std::string_view version = line.substr(sp2 + 1);
    return version == "HTTP/1.1" || version == "HTTP/1.0";
}

// The path of an origin-form ("/a?b") or absolute-form ("http://h/a") target.
bool target_path(std::string_view target, std::string_view& path) noexcept {
    if (!target.empty() && target[0] == '/') {
        path = target.substr(0, target.find_first_of("?#"));
        return true;
    }
    http_parser_url url;
    http_parser_url_init(&url);
    if (http_parser_parse_url(target.data(), target.size(), 0, &url) != 0) return false;
    if ((url.field_set & (1 << UF_SCHEMA)) == 0) return false;
    if ((url.field_set & (1 << UF_PATH)) == 0) {
        path = "/";
        return true;
    }
    path = target.substr(url.field_data[UF_PATH].off, url.field_data[UF_PATH].len);
    return true;
}

// A head over a limit (414, 431): all of the input is consumed.
ParseResult over_limit(int status, std::size_t size) noexcept {
    ParseResult result;
    result.kind = ParseResult::Kind::Error;
    result.status = status;
    result.consumed = size;
    return result;
}

}  // namespace

RequestReader::RequestReader() noexcept {
    reset();
}

void RequestReader::reset() noexcept {
    begin_ = scanned_ = line_start_ = line_end_ = header_lines_ = 0;
    started_ = false;
    folded_ = false;
}

ParseResult RequestReader::parse(const char* data, std::size_t size, Request& out) noexcept {
    ParseResult result;
    if (!started_) {
        // RFC 9112 2.2: empty lines before a request line are ignored.
        while (begin_ < size && (data[begin_] == '\r' || data[begin_] == '\n')) ++begin_;
        if (begin_ == size) return result;
        started_ = true;
        scanned_ = line_start_ = begin_;
    }
    while (scanned_ < size) {
        const void* nl = std::memchr(data + scanned_, '\n', size - scanned_);
        if (nl == nullptr) {
            scanned_ = size;
            break;
        }
        const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(nl) - data);
        scanned_ = at + 1;
        if (line_end_ == 0) {
            if (scanned_ - begin_ > kMaxRequestLineBytes) return over_limit(414, size);
            line_end_ = scanned_;
            line_start_ = scanned_;
            continue;
        }
        const std::size_t line_bytes = at - line_start_;
        const bool empty = line_bytes == 0 || (line_bytes == 1 && data[line_start_] == '\r');
        // obs-fold (RFC 9112 5.2), or whitespace before the first header
        // line (2.2): a line starting with SP or HTAB. http_parser would
        // join it to the previous value; refused instead.
        if (line_bytes > 0 && (data[line_start_] == ' ' || data[line_start_] == '\t'))
            folded_ = true;
        if (scanned_ - line_end_ > kMaxHeaderSectionBytes ||
            (!empty && ++header_lines_ > kMaxHeaderLines)) {
            return over_limit(431, size);
        }
        if (empty) return parse_head(data, scanned_, out);
        line_start_ = scanned_;
    }
    if (line_end_ == 0 && size - begin_ > kMaxRequestLineBytes) return over_limit(414, size);
    if (line_end_ != 0 && size - line_end_ > kMaxHeaderSectionBytes) return over_limit(431, size);
    return result;
}

ParseResult RequestReader::parse_head(const char* data, std::size_t head_end,
                                      Request& out) noexcept {
    out = Request{};
    std::size_t line_len = line_end_ - begin_ - 1;
    if (line_len > 0 && data[begin_ + line_len - 1] == '\r') --line_len;
    out.request_line = {data + begin_, line_len};

    Collector collector;
    collector.request = &out;
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = &collector;
    const std::size_t n = head_end - begin_;
    const std::size_t parsed = http_parser_execute(&parser_, &kSettings, data + begin_, n);
    const auto err = static_cast<http_errno>(parser_.http_errno);

    ParseResult result;
    result.consumed = head_end;
    result.kind = ParseResult::Kind::Error;
    if (err == HPE_INVALID_METHOD && looks_like_method(out.request_line)) {
        out.method_name = out.request_line.substr(0, out.request_line.find(' '));
        out.keep_alive = false;
        result.status = 405;
        return result;
    }
    if (err != HPE_OK || parsed != n || !collector.headers_complete || collector.second_host ||
        folded_) {
        result.status = 400;
        return result;
    }
    const auto method = static_cast<http_method>(parser_.method);
    out.method = method == HTTP_GET    ? Method::Get
                 : method == HTTP_HEAD ? Method::Head
                                       : Method::Other;
    out.method_name = http_method_str(method);
    // RFC 9110 2.5: a higher minor version is answered as 1.1 (http_parser
    // gives it 1.1's keep-alive rules); another major version is 505.
    if (out.http_major >= 2) {
        out.keep_alive = false;
        result.status = 505;
        return result;
    }
    if (out.http_major != 1 || !target_path(out.target, out.path)) {
        result.status = 400;
        return result;
    }
    result.kind = ParseResult::Kind::Ready;
    return result;
}

std::string_view status_text(int status) noexcept {
    switch (status) {
        case 200:
            return "OK";
        case 206:
            return "Partial Content";
        case 301:
            return "Moved Permanently";
        case 304:
            return "Not Modified";
        case 400:
            return "Bad Request";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 414:
            return "URI Too Long";
        case 416:
            return "Range Not Satisfiable";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Unknown";
    }
}

}  // namespace pagewire::http
