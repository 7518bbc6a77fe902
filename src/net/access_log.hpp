// pagewire net: a worker's access-log buffer. The protocol appends whole
// lines; the worker writes them with one write(2) per event-loop turn to a
// descriptor opened O_APPEND, so the lines of several workers never
// interleave within a line. Not thread-safe: one per worker.
#pragma once

#include <pagewire/unique_fd.hpp>
#include <string>
#include <utility>

namespace pagewire::net {

// Opens (creates, appends to) a log file; throws pagewire::Error ("open").
UniqueFd open_access_log(const std::string& path);

class AccessLog {
  public:
    // fd < 0: logging off. `name` prefixes the one report of a failed write.
    AccessLog(int fd, std::string name) noexcept : fd_(fd), name_(std::move(name)) {}
    bool enabled() const noexcept { return fd_ >= 0; }
    // Where to append whole lines ('\n' included) until the next flush().
    std::string& buffer() noexcept { return buffer_; }
    // Writes the buffered lines; a failed write drops them (a log must not
    // stop the server) and is reported on stderr once.
    void flush() noexcept;

  private:
    int fd_;
    std::string name_;
    std::string buffer_;  // whole lines not yet written
    bool reported_ = false;
};

}  // namespace pagewire::net
