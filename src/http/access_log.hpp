// pagewire serve: the access log's line, nginx's "combined" format
// (without the user fields): the network core buffers and writes the lines
// (net/access_log.hpp). Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pagewire::http {

// Appends one line ('\n' included) to `out`. `request_line`, `referer`,
// `user_agent` are escaped (one line whatever a client sends); empty ones
// print as "-".
void append_log_line(std::string& out, std::string_view client, std::string_view time,
                     std::string_view request_line, int status, std::uint64_t body_bytes,
                     std::string_view referer, std::string_view user_agent);

}  // namespace pagewire::http
