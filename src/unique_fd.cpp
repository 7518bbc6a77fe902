#include <unistd.h>

#include <pagewire/unique_fd.hpp>

namespace pagewire {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
}

void UniqueFd::reset(int fd) noexcept {
    // close() is not retried on EINTR: on Linux the descriptor is released
    // even then, and a retry could close a descriptor another thread just got.
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

}  // namespace pagewire
