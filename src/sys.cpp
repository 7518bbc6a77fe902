#include "sys.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace pagewire {

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

}  // namespace pagewire

namespace pagewire::sys {

ssize_t sendfile(int out_fd, int in_fd, std::uint64_t* in_offset, std::size_t count) noexcept {
    off_t off = static_cast<off_t>(*in_offset);
    ssize_t r = retry_eintr([&] { return ::sendfile(out_fd, in_fd, &off, count); });
    *in_offset = static_cast<std::uint64_t>(off);
    return r;
}

ssize_t splice(int in_fd, std::uint64_t* in_offset, int out_fd, std::uint64_t* out_offset,
               std::size_t count, unsigned flags) noexcept {
    loff_t in = in_offset ? static_cast<loff_t>(*in_offset) : 0;
    loff_t out = out_offset ? static_cast<loff_t>(*out_offset) : 0;
    ssize_t r = retry_eintr([&] {
        return ::splice(in_fd, in_offset ? &in : nullptr, out_fd, out_offset ? &out : nullptr,
                        count, flags);
    });
    if (in_offset) *in_offset = static_cast<std::uint64_t>(in);
    if (out_offset) *out_offset = static_cast<std::uint64_t>(out);
    return r;
}

ssize_t copy_file_range(int in_fd, std::uint64_t* in_offset, int out_fd, std::uint64_t* out_offset,
                        std::size_t count) noexcept {
    loff_t in = static_cast<loff_t>(*in_offset);
    loff_t out = static_cast<loff_t>(*out_offset);
    ssize_t r = retry_eintr([&] { return ::copy_file_range(in_fd, &in, out_fd, &out, count, 0); });
    *in_offset = static_cast<std::uint64_t>(in);
    *out_offset = static_cast<std::uint64_t>(out);
    return r;
}

int poll_one(int fd, short events, int timeout_ms) noexcept {
    pollfd p{fd, events, 0};
    int r = retry_eintr([&] { return ::poll(&p, 1, timeout_ms); });
    return r < 0 ? -1 : p.revents;
}

int statx_dio_align(int fd, std::uint32_t* mem_align, std::uint32_t* offset_align) noexcept {
    struct statx sx {};
    if (retry_eintr([&] { return ::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx); }) != 0) {
        return -1;
    }
    const bool reported = (sx.stx_mask & STATX_DIOALIGN) != 0;
    *mem_align = reported ? sx.stx_dio_mem_align : 0;
    *offset_align = reported ? sx.stx_dio_offset_align : 0;
    return 0;
}

DirectOpen open_direct(int fd, int extra_flags, int* direct_fd,
                       std::uint32_t* offset_align) noexcept {
    std::uint32_t mem_align = 0;
    std::uint32_t align = 0;
    if (statx_dio_align(fd, &mem_align, &align) != 0) return DirectOpen::StatxFailed;
    if (mem_align == 0 || align == 0 || mem_align > page_size()) {
        errno = EOPNOTSUPP;
        return DirectOpen::NoAlignment;
    }
    char self[32];
    std::snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    const int d =
        retry_eintr([&] { return ::open(self, O_RDONLY | O_DIRECT | O_CLOEXEC | extra_flags); });
    if (d < 0) return errno == EINVAL ? DirectOpen::Refused : DirectOpen::OpenFailed;
    *direct_fd = d;
    *offset_align = align;
    return DirectOpen::Ready;
}

std::size_t page_size() noexcept {
    static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return size;
}

}  // namespace pagewire::sys
