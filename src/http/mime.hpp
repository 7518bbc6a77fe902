// pagewire serve: Content-Type by file name extension (nginx's mime.types,
// the common part). Thread-safe: a constant table.
#pragma once

#include <string_view>

namespace pagewire::http {

inline constexpr std::string_view kDefaultContentType = "application/octet-stream";

// The type for `name`'s extension (case-insensitive), or kDefaultContentType.
std::string_view content_type_for(std::string_view name) noexcept;

}  // namespace pagewire::http
