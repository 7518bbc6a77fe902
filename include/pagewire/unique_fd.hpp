// pagewire::UniqueFd — owns one file descriptor.
#pragma once
#include <pagewire/config.hpp>
#include <utility>

namespace pagewire {

// Owns a file descriptor and closes it on destruction. Move-only; not
// thread-safe (one owner at a time, like std::unique_ptr). -1 means empty.
class UniqueFd {
  public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept;
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    // Gives up ownership without closing; returns the descriptor.
    int release() noexcept { return std::exchange(fd_, -1); }
    // Closes the current descriptor (errors from close are ignored: the
    // descriptor is gone either way) and takes ownership of `fd`.
    void reset(int fd = -1) noexcept;

  private:
    int fd_ = -1;  // owned descriptor, or -1
};

}  // namespace pagewire
