// The access log: see access_log.hpp.
#include "http/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <pagewire/error.hpp>

#include "sys.hpp"

namespace pagewire::http {
namespace {

// nginx's escaping of logged strings: '"', '\' and bytes outside printable
// ASCII become \xHH, so a line stays one line whatever a client sends.
void append_escaped(std::string& out, std::string_view text) {
    if (text.empty()) {
        out += '-';
        return;
    }
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (unsigned char c : text) {
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
}

}  // namespace

UniqueFd open_access_log(const std::string& path) {
    const int fd = sys::retry_eintr(
        [&] { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644); });
    if (fd < 0) throw_error("open", path);
    return UniqueFd(fd);
}

void AccessLogWriter::record(std::string_view client, std::string_view time,
                             std::string_view request_line, int status, std::uint64_t body_bytes,
                             std::string_view referer, std::string_view user_agent) {
    if (fd_ < 0) return;
    buffer_.append(client);
    buffer_ += " - - [";
    buffer_.append(time);
    buffer_ += "] \"";
    append_escaped(buffer_, request_line);
    char numbers[48];
    const int n = std::snprintf(numbers, sizeof numbers, "\" %d %llu \"", status,
                                static_cast<unsigned long long>(body_bytes));
    buffer_.append(numbers, static_cast<std::size_t>(n));
    append_escaped(buffer_, referer);
    buffer_ += "\" \"";
    append_escaped(buffer_, user_agent);
    buffer_ += "\"\n";
}

void AccessLogWriter::flush() noexcept {
    if (fd_ < 0 || buffer_.empty()) return;
    if (sys::write_full(fd_, buffer_.data(), buffer_.size()) < 0 && !reported_) {
        reported_ = true;
        std::fprintf(stderr, "pagewire serve: access log: %s\n", std::strerror(errno));
    }
    buffer_.clear();
}

}  // namespace pagewire::http
