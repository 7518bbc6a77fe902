// Content-Type table: see mime.hpp.
#include "http/mime.hpp"

#include <strings.h>

namespace pagewire::http {
namespace {

struct MimeType {
    std::string_view extension;
    std::string_view type;
};

constexpr MimeType kTypes[] = {
    {"html", "text/html"},
    {"htm", "text/html"},
    {"css", "text/css"},
    {"js", "application/javascript"},
    {"mjs", "application/javascript"},
    {"json", "application/json"},
    {"txt", "text/plain"},
    {"md", "text/markdown"},
    {"csv", "text/csv"},
    {"xml", "text/xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"svgz", "image/svg+xml"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"bmp", "image/x-ms-bmp"},
    {"avif", "image/avif"},
    {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mpeg", "video/mpeg"},
    {"mov", "video/quicktime"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
};

}  // namespace

std::string_view content_type_for(std::string_view name) noexcept {
    const std::size_t dot = name.rfind('.');
    const std::size_t slash = name.rfind('/');
    if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) {
        return kDefaultContentType;
    }
    const std::string_view ext = name.substr(dot + 1);
    for (const MimeType& m : kTypes) {
        if (m.extension.size() == ext.size() &&
            ::strncasecmp(m.extension.data(), ext.data(), ext.size()) == 0) {
            return m.type;
        }
    }
    return kDefaultContentType;
}

}  // namespace pagewire::http
