#include "sys.hpp"

#include <unistd.h>

namespace pagewire::sys {

ssize_t pread_full(int fd, void* buf, std::size_t n, std::uint64_t offset) noexcept {
    auto* p = static_cast<char*>(buf);
    std::size_t done = 0;
    while (done < n) {
        ssize_t r = retry_eintr([&] { return ::pread(fd, p + done, n - done, offset + done); });
        if (r < 0) return -1;
        if (r == 0) break;  // end of file
        done += static_cast<std::size_t>(r);
    }
    return static_cast<ssize_t>(done);
}

ssize_t pwrite_full(int fd, const void* buf, std::size_t n, std::uint64_t offset) noexcept {
    const auto* p = static_cast<const char*>(buf);
    std::size_t done = 0;
    while (done < n) {
        ssize_t r = retry_eintr([&] { return ::pwrite(fd, p + done, n - done, offset + done); });
        if (r < 0) return -1;
        done += static_cast<std::size_t>(r);
    }
    return static_cast<ssize_t>(done);
}

ssize_t write_full(int fd, const void* buf, std::size_t n) noexcept {
    const auto* p = static_cast<const char*>(buf);
    std::size_t done = 0;
    while (done < n) {
        ssize_t r = retry_eintr([&] { return ::write(fd, p + done, n - done); });
        if (r < 0) return -1;
        done += static_cast<std::size_t>(r);
    }
    return static_cast<ssize_t>(done);
}

std::size_t page_size() noexcept {
    static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return size;
}

}  // namespace pagewire::sys
