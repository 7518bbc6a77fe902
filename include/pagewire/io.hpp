// Small, safe building blocks for file-descriptor I/O that every pagewire
// component (and most programs using it) needs: retrying a system call
// interrupted by a signal, and reads/writes that do not stop at a short count.
// They add no policy: the result and errno are the system call's.
// Thread-safe (they hold no state).
#pragma once
#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <pagewire/config.hpp>

namespace pagewire {

// Calls f() until it stops failing with EINTR; returns its last result.
// f returns -1 and sets errno on failure, as a system call does.
template <class F>
auto retry_eintr(F f) {
    decltype(f()) r;
    do {
        r = f();
    } while (r == -1 && errno == EINTR);
    return r;
}

// Reads up to n bytes at offset; fewer only at end of file. -1 and errno on failure.
ssize_t pread_full(int fd, void* buf, std::size_t n, std::uint64_t offset) noexcept;
// Writes all n bytes at offset. -1 and errno on failure (some bytes may be written).
ssize_t pwrite_full(int fd, const void* buf, std::size_t n, std::uint64_t offset) noexcept;
// Writes all n bytes at the current position (pipes, sockets, terminals): n, or
// -1 and errno on failure (some bytes may be written).
ssize_t write_full(int fd, const void* buf, std::size_t n) noexcept;

}  // namespace pagewire
