// Linux system-call helpers for shared memory and process-shared
// synchronization: futex, SCM_RIGHTS descriptor passing, process identity
// (pid + start time + boot id). Kept next to sys.hpp, in one place, so the
// segment and synchronization sources read as policy. Internal, not installed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

namespace pagewire::sys {

// FUTEX_WAIT on a 32-bit word that may be shared between processes (no
// FUTEX_PRIVATE_FLAG: the kernel keys the wait queue on the physical page).
// Sleeps while *word == expected; `timeout` is relative (nullptr: forever).
// Returns 0 when woken (possibly spuriously), -1 and errno (EAGAIN: the word
// had changed; ETIMEDOUT; EINTR) otherwise.
int futex_wait(const std::uint32_t* word, std::uint32_t expected, const timespec* timeout) noexcept;
// FUTEX_WAKE: wakes up to `count` waiters on word; returns how many, or -1.
int futex_wake(const std::uint32_t* word, int count) noexcept;

// Asymmetric fences across processes (membarrier(2)): a hot path that
// stores X then loads Y needs only a compiler barrier between them when the
// rare path that stores Y and then loads X calls heavy_fence() in between;
// heavy_fence() makes every thread of every registered process run a full
// memory barrier. register_asymmetric_fence() registers this process (once;
// later calls return the first answer): false when the kernel lacks
// MEMBARRIER_CMD_GLOBAL_EXPEDITED, and then the hot path must use a real
// fence. heavy_fence() returns false if the barrier could not be run.
bool register_asymmetric_fence() noexcept;
bool heavy_fence() noexcept;

// CLOCK_MONOTONIC now, in nanoseconds.
std::int64_t monotonic_ns() noexcept;
// A count of nanoseconds (>= 0) as a timespec: a relative timeout, or an
// absolute CLOCK_MONOTONIC time from monotonic_ns().
timespec to_timespec(std::int64_t ns) noexcept;
// CLOCK_MONOTONIC now + timeout (negative counts as 0, saturating), for the
// *_clock* waits.
timespec monotonic_deadline(std::chrono::nanoseconds timeout) noexcept;

// Sends one descriptor over a connected Unix socket (SCM_RIGHTS) with a
// one-byte payload. Returns 0, or -1 and errno.
int send_fd(int socket, int fd) noexcept;
// Receives one descriptor sent by send_fd (O_CLOEXEC). Returns it, or -1 and
// errno (ECONNRESET when the peer closed without sending one).
int receive_fd(int socket) noexcept;

// Field 22 of /proc/PID/stat: the process's start time in clock ticks after
// boot. With the pid (and the boot id) it names a process unambiguously: a
// recycled pid has a later start time. nullopt when the process is gone.
std::optional<std::uint64_t> process_start_ticks(pid_t pid);
// The same start time as seconds since the epoch (btime + ticks / CLK_TCK).
std::optional<std::time_t> process_start_epoch(pid_t pid);
// /proc/sys/kernel/random/boot_id: 16 bytes that change at every boot, so a
// pid + start time recorded before a reboot is never mistaken for a live one.
std::string boot_id();

}  // namespace pagewire::sys
