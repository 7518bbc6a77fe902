// pagewire serve: the access log, one nginx "combined"-like line per
// response. One writer per worker, buffering lines and appending them with
// one write(2) per event-loop turn to a descriptor opened O_APPEND (so
// workers' lines never interleave within a line). Not thread-safe.
#pragma once

#include <cstdint>
#include <pagewire/unique_fd.hpp>
#include <string>
#include <string_view>

namespace pagewire::http {

// Opens (creates, appends to) the log file; throws pagewire::Error.
UniqueFd open_access_log(const std::string& path);

class AccessLogWriter {
  public:
    explicit AccessLogWriter(int fd) noexcept : fd_(fd) {}  // fd < 0: logging off
    bool enabled() const noexcept { return fd_ >= 0; }
    // `request_line`, `referer`, `user_agent` empty print as "-".
    void record(std::string_view client, std::string_view time, std::string_view request_line,
                int status, std::uint64_t body_bytes, std::string_view referer,
                std::string_view user_agent);
    // Writes the buffered lines; a failed write drops them (a log must not
    // stop the server) and is reported on stderr once.
    void flush() noexcept;

  private:
    int fd_;
    std::string buffer_;  // whole lines not yet written
    bool reported_ = false;
};

}  // namespace pagewire::http
