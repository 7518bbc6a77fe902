// The raw futex the benchmarks' "raw futex" baselines are built on: the
// system call itself, with none of pagewire's waiting policy, so a row that
// uses it measures the kernel's cost and nothing of the library's.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <ctime>  // timespec

namespace pagewire::bench {

// FUTEX_WAIT (not private: the word may be in shared memory of two processes).
// 0, or -1 and errno (EAGAIN: *word != expected; ETIMEDOUT; EINTR).
inline int raw_futex_wait(const std::uint32_t* word, std::uint32_t expected,
                          const timespec* timeout) noexcept {
    return static_cast<int>(::syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout, nullptr, 0));
}

// FUTEX_WAKE of at most `count` waiters; the number woken, or -1 and errno.
inline int raw_futex_wake(const std::uint32_t* word, int count) noexcept {
    return static_cast<int>(::syscall(SYS_futex, word, FUTEX_WAKE, count, nullptr, nullptr, 0));
}

}  // namespace pagewire::bench
