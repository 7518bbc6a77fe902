// Linux system-call helpers used across pagewire's sources: EINTR retry and
// full-length (short-transfer) loops exist here once. Internal, not installed.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <pagewire/io.hpp>

namespace pagewire::sys {

// The EINTR and full-length loops are public (pagewire/io.hpp); the library
// calls them by these names too.
using pagewire::pread_full;
using pagewire::pwrite_full;
using pagewire::retry_eintr;
using pagewire::write_full;

// One wrapper per kernel transfer operation (EINTR retried, nothing else hidden):
// the same return value and errno as the system call. Offsets are in/out.
ssize_t sendfile(int out_fd, int in_fd, std::uint64_t* in_offset, std::size_t count) noexcept;
ssize_t splice(int in_fd, std::uint64_t* in_offset, int out_fd, std::uint64_t* out_offset,
               std::size_t count, unsigned flags) noexcept;
ssize_t copy_file_range(int in_fd, std::uint64_t* in_offset, int out_fd, std::uint64_t* out_offset,
                        std::size_t count) noexcept;
// Waits until fd has one of `events` (POLLIN, POLLOUT, ...) or an error;
// returns the revents, or -1 and errno.
int poll_one(int fd, short events, int timeout_ms = -1) noexcept;
// Direct-I/O alignment of an open file from statx(STATX_DIOALIGN): 0 and
// *mem_align == 0 when the filesystem reports none; -1 and errno on failure.
int statx_dio_align(int fd, std::uint32_t* mem_align, std::uint32_t* offset_align) noexcept;

// The one way pagewire reopens a file for direct I/O (transfer()'s Direct
// method and the server's direct path): checks statx(STATX_DIOALIGN) — a
// memory alignment within a page, so page-aligned buffers do — then opens a
// second open file description of `fd` through /proc/self/fd with
// O_RDONLY | O_DIRECT | O_CLOEXEC | extra_flags, so the caller's descriptor
// stays buffered. Two system calls.
enum class DirectOpen {
    Ready,        // *direct_fd (owned by the caller) and *offset_align are set
    NoAlignment,  // the filesystem reports no usable alignment (errno EOPNOTSUPP)
    Refused,      // open(O_DIRECT) said EINVAL: the filesystem does not do it
    StatxFailed,  // statx failed: errno
    OpenFailed,   // open failed otherwise: errno
};
DirectOpen open_direct(int fd, int extra_flags, int* direct_fd,
                       std::uint32_t* offset_align) noexcept;

std::size_t page_size() noexcept;

// Tells the CPU this is a spin-wait loop (PAUSE / YIELD): saves power and
// lets the sibling hyper-thread run while a peer's store is awaited.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}
inline std::uint64_t round_down(std::uint64_t v, std::uint64_t align) {
    return v & ~(align - 1);
}
inline std::uint64_t round_up(std::uint64_t v, std::uint64_t align) {
    return (v + align - 1) & ~(align - 1);
}

}  // namespace pagewire::sys
