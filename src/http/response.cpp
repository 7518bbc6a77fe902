// What to answer: see response.hpp. The order of the checks follows nginx's
// static module: method, body, path, open, directory, conditionals, range.
#include "http/response.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <pagewire/transfer.hpp>
#include <string_view>

#include "http/path.hpp"

namespace pagewire::http {
namespace {

void append(std::string& s, std::string_view v) {
    s.append(v.data(), v.size());
}

void append_number(std::string& s, std::uint64_t v) {
    char buf[24];
    char* end = buf + sizeof buf;
    char* p = end;
    do {
        *--p = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    s.append(p, static_cast<std::size_t>(end - p));
}

// "Content-Type: <type>\r\nContent-Length: <length>\r\n".
void append_content_headers(std::string& s, std::string_view type, std::uint64_t length) {
    append(s, "Content-Type: ");
    append(s, type);
    append(s, "\r\nContent-Length: ");
    append_number(s, length);
    append(s, "\r\n");
}

std::string_view trim(std::string_view v) noexcept {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

// If-None-Match: "*" or a list of entity tags, compared weakly (W/ ignored).
bool etag_list_matches(std::string_view list, std::string_view etag) noexcept {
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        std::string_view item = trim(list.substr(0, comma));
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        if (item == "*") return true;
        if (item.size() > 2 && item.substr(0, 2) == "W/") item.remove_prefix(2);
        if (item == etag) return true;
    }
    return false;
}

// nginx's page for a status: small enough to build every time (errors are cold).
std::string status_page(int status) {
    return fmt::format(
        "<html>\r\n<head><title>{0} {1}</title></head>\r\n<body>\r\n<center><h1>{0} {1}</h1>"
        "</center>\r\n<hr><center>pagewire</center>\r\n</body>\r\n</html>\r\n",
        status, status_text(status));
}

}  // namespace

void Response::clear() noexcept {
    net::Response::clear();
    status = 0;
    file.reset();
    body_bytes = 0;
    http10_keep_alive = false;
    log_request.clear();
    log_referer.clear();
    log_user_agent.clear();
}

Responder::Responder(const serve::ServeConfig& config, OpenFileCache& cache,
                     const ClockStrings& clock)
    : config_(config), cache_(cache), clock_(clock) {}

void Responder::begin_head(int status, Response& out) const {
    out.status = status;
    append(out.data, "HTTP/1.1 ");
    append_number(out.data, static_cast<std::uint64_t>(status));
    out.data += ' ';
    append(out.data, status_text(status));
    append(out.data, "\r\nServer: pagewire\r\nDate: ");
    append(out.data, clock_.http_date());
    append(out.data, "\r\n");
    if (out.close) {
        append(out.data, "Connection: close\r\n");
    } else if (out.http10_keep_alive) {
        append(out.data, "Connection: keep-alive\r\n");
    }
}

void Responder::end_head(Response& out) const {
    append(out.data, "\r\n");
    out.segments.push_back({false, 0, out.data.size()});
}

void Responder::add_body_memory(Response& out, std::size_t from) const {
    out.segments.push_back({false, from, out.data.size() - from});
    out.body_bytes += out.data.size() - from;
}

void Responder::end_with_body(const Request* request, Response& out, std::string_view type,
                              std::string_view body) const {
    append_content_headers(out.data, type, body.size());
    end_head(out);
    if (request == nullptr || request->method != Method::Head) {
        const std::size_t from = out.data.size();
        append(out.data, body);
        add_body_memory(out, from);
    }
}

void Responder::note_log(const Request* request, Response& out) const {
    if (config_.access_log.empty() || request == nullptr) return;
    out.log_request.assign(request->request_line);
    out.log_referer.assign(request->referer);
    out.log_user_agent.assign(request->user_agent);
}

void Responder::simple(int status, const Request* request, Response& out, bool close) {
    // The contract: after 400, 408, 414, 431, 500, 503 and 505 the connection ends.
    const bool fatal = status == 400 || status == 408 || status == 414 || status == 431 ||
                       status == 500 || status == 503 || status == 505;
    out.close = out.close || close || fatal;
    begin_head(status, out);
    if (status == 405) append(out.data, "Allow: GET, HEAD\r\n");
    end_with_body(request, out, "text/html", status_page(status));
}

void Responder::respond_error(int status, const Request* request, Response& out) {
    out.clear();
    note_log(request, out);
    simple(status, request, out, true);
}

int Responder::open_error_status(int err) const noexcept {
    switch (err) {
        case ENOENT:
        case ENOTDIR:
        case ENAMETOOLONG:
            return 404;
        case EACCES:
        case EPERM:
        case EXDEV:  // a symlink (or "..") leading out of the root
        case ELOOP:
            return 403;
        default:
            return 500;
    }
}

void Responder::respond(const Request& request, Response& out, bool keep_alive_allowed) {
    out.clear();
    note_log(&request, out);
    // A request body is never read: the connection ends after the answer.
    out.close = !request.keep_alive || request.has_body || !keep_alive_allowed;
    out.http10_keep_alive = !out.close && request.http_minor == 0;
    if (request.method == Method::Other) return simple(405, &request, out, false);
    if (request.has_body) return simple(400, &request, out, false);
    // RFC 9112 3.2: an HTTP/1.1 request without Host is a 400 (as nginx answers).
    if (request.http_major == 1 && request.http_minor >= 1 && request.host.data() == nullptr)
        return simple(400, &request, out, false);

    const NormalizedPath path = normalize_path(request.path, config_.show_dotfiles, relative_);
    if (path.status != 0) return simple(path.status, &request, out, false);

    const std::uint64_t now = clock_.now_ms();
    if (path.trailing_slash) {
        scratch_ = relative_;
        if (!scratch_.empty()) scratch_ += '/';
        scratch_ += "index.html";
        CacheLookup index = cache_.open(scratch_, now);
        if (index.file && !index.file->directory) return serve_file(request, index.file, out);
        if (!index.file && index.error != ENOENT) {
            return simple(open_error_status(index.error), &request, out, false);
        }
        CacheLookup dir = cache_.open(relative_, now);
        if (!dir.file) return simple(open_error_status(dir.error), &request, out, false);
        if (!dir.file->directory) return simple(404, &request, out, false);
        if (!config_.list_directories) return simple(403, &request, out, false);
        return serve_listing(request, *dir.file, out);
    }
    CacheLookup found = cache_.open(relative_, now);
    if (!found.file) return simple(open_error_status(found.error), &request, out, false);
    if (found.file->directory) return redirect_to_directory(request, out);
    serve_file(request, found.file, out);
}

void Responder::redirect_to_directory(const Request& request, Response& out) {
    begin_head(301, out);
    const std::string location = encode_path("/" + relative_ + "/");
    append(out.data, "Location: ");
    append(out.data, location);
    append(out.data, "\r\n");
    end_with_body(&request, out, "text/html", status_page(301));
}

bool Responder::not_modified(const Request& request, const CachedFile& file) const {
    if (request.if_none_match.data() != nullptr) {
        return etag_list_matches(request.if_none_match, file.etag);
    }
    if (request.if_modified_since.data() != nullptr) {
        const auto since = parse_http_date(trim(request.if_modified_since));
        return since && *since >= file.mtime;
    }
    return false;
}

bool Responder::if_range_allows(const Request& request, const CachedFile& file) const {
    if (request.if_range.data() == nullptr) return true;
    const std::string_view value = trim(request.if_range);
    if (!value.empty() && (value.front() == '"' || value.substr(0, 2) == "W/")) {
        return value == file.etag;  // strong comparison: a weak tag never matches
    }
    const auto date = parse_http_date(value);
    return date && *date == file.mtime;
}

void Responder::serve_file(const Request& request, const std::shared_ptr<CachedFile>& file,
                           Response& out) {
    const CachedFile& f = *file;
    const bool head = request.method == Method::Head;
    auto validators = [&] {
        append(out.data, "Last-Modified: ");
        append(out.data, f.last_modified);
        append(out.data, "\r\nETag: ");
        append(out.data, f.etag);
        append(out.data, "\r\n");
    };
    if (not_modified(request, f)) {
        begin_head(304, out);
        validators();
        end_head(out);
        return;
    }

    RangeStatus ranges = RangeStatus::Ignore;
    if (request.range.data() != nullptr && if_range_allows(request, f)) {
        ranges = parse_range(request.range, f.size, ranges_);
    }
    if (ranges == RangeStatus::Unsatisfiable) {
        begin_head(416, out);
        append(out.data, "Content-Range: bytes */");
        append_number(out.data, f.size);
        append(out.data, "\r\n");
        end_with_body(&request, out, "text/html", status_page(416));
        return;
    }

    // Several ranges: multipart even if they coalesce into one (the client
    // asked for parts), and the whole file if they add up to more than it.
    const bool multipart = ranges == RangeStatus::Satisfiable && ranges_.size() > 1;
    if (multipart && !coalesce_ranges(ranges_, f.size)) ranges = RangeStatus::Ignore;

    out.file = file;
    out.source = file.get();
    // The transfer policy decides, as for `pagewire send` (choose_method).
    TransferOptions policy;
    policy.direct_threshold = config_.direct_threshold;
    out.direct = choose_method(EndpointKind::RegularFile, EndpointKind::Socket, f.size, policy) ==
                 TransferMethod::Direct;
    auto add_file = [&](std::uint64_t offset, std::uint64_t length) {
        if (head || length == 0) return;
        out.segments.push_back({true, offset, length});
        out.body_bytes += length;
    };

    if (ranges == RangeStatus::Ignore) {
        begin_head(200, out);
        append_content_headers(out.data, f.content_type, f.size);
        validators();
        append(out.data, "Accept-Ranges: bytes\r\n");
        end_head(out);
        add_file(0, f.size);
        return;
    }

    if (!multipart) {
        const ByteRange& r = ranges_.front();
        begin_head(206, out);
        append_content_headers(out.data, f.content_type, r.length());
        append(out.data, "Content-Range: bytes ");
        append_number(out.data, r.first);
        out.data += '-';
        append_number(out.data, r.last);
        out.data += '/';
        append_number(out.data, f.size);
        append(out.data, "\r\n");
        validators();
        end_head(out);
        add_file(r.first, r.length());
        return;
    }

    // multipart/byteranges: the part headers are built first (in scratch_)
    // so that Content-Length is known before the header block.
    const std::string boundary = fmt::format("{:020}", ++boundary_);
    part_ends_.clear();
    scratch_.clear();
    std::uint64_t length = 0;
    for (const ByteRange& r : ranges_) {
        fmt::format_to(std::back_inserter(scratch_),
                       "\r\n--{}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                       boundary, f.content_type, r.first, r.last, f.size);
        part_ends_.push_back(scratch_.size());
        length += r.length();
    }
    fmt::format_to(std::back_inserter(scratch_), "\r\n--{}--\r\n", boundary);
    length += scratch_.size();

    begin_head(206, out);
    append(out.data, "Content-Type: multipart/byteranges; boundary=");
    append(out.data, boundary);
    append(out.data, "\r\nContent-Length: ");
    append_number(out.data, length);
    append(out.data, "\r\n");
    validators();
    end_head(out);
    if (head) return;
    const std::size_t base = out.data.size();
    append(out.data, scratch_);
    std::size_t from = 0;
    for (std::size_t i = 0; i < ranges_.size(); ++i) {
        out.segments.push_back({false, base + from, part_ends_[i] - from});
        out.body_bytes += part_ends_[i] - from;
        add_file(ranges_[i].first, ranges_[i].length());
        from = part_ends_[i];
    }
    out.segments.push_back({false, base + from, scratch_.size() - from});
    out.body_bytes += scratch_.size() - from;
}

void Responder::serve_listing(const Request& request, const CachedFile& dir, Response& out) {
    // A private descriptor for readdir: the cached one's file position is
    // shared by every duplicate.
    const int fd = ::openat(dir.fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
    if (d == nullptr) {
        if (fd >= 0) ::close(fd);
        return simple(403, &request, out, false);
    }
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(d)) {
        const std::string_view name = e->d_name;
        if (name == "." || name == "..") continue;
        if (name[0] == '.' && !config_.show_dotfiles) continue;
        bool is_dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
            struct stat st {};
            is_dir = ::fstatat(::dirfd(d), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        names.push_back(std::string(name) + (is_dir ? "/" : ""));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());

    const std::string title = escape_html("/" + relative_ + (relative_.empty() ? "" : "/"));
    scratch_.clear();
    fmt::format_to(
        std::back_inserter(scratch_),
        "<!DOCTYPE html>\r\n<html>\r\n<head><title>Index of {0}</title></head>\r\n<body>\r\n"
        "<h1>Index of {0}</h1><hr><pre><a href=\"../\">../</a>\r\n",
        title);
    for (const std::string& name : names) {
        fmt::format_to(std::back_inserter(scratch_), "<a href=\"{}\">{}</a>\r\n", encode_path(name),
                       escape_html(name));
    }
    append(scratch_, "</pre><hr></body>\r\n</html>\r\n");

    begin_head(200, out);
    end_with_body(&request, out, "text/html; charset=utf-8", scratch_);
}

}  // namespace pagewire::http
