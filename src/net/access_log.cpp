// The access-log buffer: see access_log.hpp.
#include "net/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <pagewire/error.hpp>

#include "sys.hpp"

namespace pagewire::net {

UniqueFd open_access_log(const std::string& path) {
    const int fd = sys::retry_eintr(
        [&] { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644); });
    if (fd < 0) throw_error("open", path);
    return UniqueFd(fd);
}

void AccessLog::flush() noexcept {
    if (fd_ < 0 || buffer_.empty()) return;
    if (sys::write_full(fd_, buffer_.data(), buffer_.size()) < 0 && !reported_) {
        reported_ = true;
        std::fprintf(stderr, "pagewire %s: access log: %s\n", name_.c_str(), std::strerror(errno));
    }
    buffer_.clear();
}

}  // namespace pagewire::net
