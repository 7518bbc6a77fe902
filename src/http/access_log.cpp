// The access log's line: see access_log.hpp.
#include "http/access_log.hpp"

#include <cstdio>

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

void append_log_line(std::string& out, std::string_view client, std::string_view time,
                     std::string_view request_line, int status, std::uint64_t body_bytes,
                     std::string_view referer, std::string_view user_agent) {
    out.append(client);
    out += " - - [";
    out.append(time);
    out += "] \"";
    append_escaped(out, request_line);
    char numbers[48];
    const int n = std::snprintf(numbers, sizeof numbers, "\" %d %llu \"", status,
                                static_cast<unsigned long long>(body_bytes));
    out.append(numbers, static_cast<std::size_t>(n));
    append_escaped(out, referer);
    out += "\" \"";
    append_escaped(out, user_agent);
    out += "\"\n";
}

}  // namespace pagewire::http
