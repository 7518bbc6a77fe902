// Request path decoding and normalization: see path.hpp.
#include "http/path.hpp"

#include <cstddef>

namespace pagewire::http {
namespace {

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

NormalizedPath normalize_path(std::string_view raw, bool show_dotfiles, std::string& relative) {
    NormalizedPath result;
    relative.clear();
    if (raw.empty() || raw[0] != '/') {
        result.status = 400;
        return result;
    }
    // Decode and normalize in one pass, straight into `relative`: the
    // current segment is relative[seg_start, end); at each '/' (decoded or
    // not: %2F separates, as in nginx) "." and ".." act on what is before it.
    std::size_t seg_start = 0;
    bool last_was_dir = true;  // the path so far names a directory
    auto finish_segment = [&]() -> bool {
        const std::string_view seg = std::string_view(relative).substr(seg_start);
        const std::size_t before = seg_start > 0 ? seg_start - 1 : 0;  // without our '/'
        if (seg.empty() || seg == ".") {
            relative.resize(before);
            last_was_dir = true;
        } else if (seg == "..") {
            relative.resize(before);
            if (relative.empty()) return false;  // above the root
            const std::size_t slash = relative.rfind('/');
            relative.resize(slash == std::string::npos ? 0 : slash);
            last_was_dir = true;
        } else {
            if (seg[0] == '.' && !show_dotfiles && result.status == 0) result.status = 404;
            last_was_dir = false;
        }
        if (!relative.empty()) relative += '/';
        seg_start = relative.size();
        return true;
    };
    for (std::size_t i = 1; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '%') {
            const int hi = i + 1 < raw.size() ? hex_value(raw[i + 1]) : -1;
            const int lo = i + 2 < raw.size() ? hex_value(raw[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                result.status = 400;
                return result;
            }
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') {
            result.status = 400;
            return result;
        }
        if (c == '/') {
            if (!finish_segment()) {
                result.status = 400;
                return result;
            }
        } else {
            relative += c;
        }
    }
    if (!finish_segment()) {
        result.status = 400;
        return result;
    }
    if (!relative.empty()) relative.pop_back();  // the '/' finish_segment added
    result.trailing_slash = last_was_dir;
    if (result.status != 0) relative.clear();
    return result;
}

std::string encode_path(std::string_view path) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(path.size());
    for (unsigned char c : path) {
        const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '/' || c == '-' || c == '_' || c == '.' ||
                          c == '~';
        if (keep) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

std::string escape_html(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

}  // namespace pagewire::http
