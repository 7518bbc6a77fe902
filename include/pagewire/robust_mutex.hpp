// pagewire::RobustMutex — a mutex in shared memory that survives its owner dying.
#pragma once
#include <pthread.h>

#include <chrono>
#include <cstdint>
#include <pagewire/config.hpp>

namespace pagewire {

// A process-shared, robust, error-checking pthread mutex that lives inside
// shared memory (a Segment, a shared Mapping). Construct it once with
// create_at() in memory every process maps; the others use attach_at().
// Neither copyable nor movable: its address is its identity.
//
// When the owner dies holding it (kill -9 included), the kernel hands it to
// the next locker, which is told so: lock() returns Status::OwnerDied. The
// caller then owns the mutex, must bring the protected data back to a
// consistent state, call mark_consistent(), and unlock(). Unlocking without
// mark_consistent() makes the mutex permanently NotRecoverable (every lock
// says so), which is how a caller that cannot repair the data says so.
class RobustMutex {
  public:
    enum class Status {
        Acquired,   // locked, the data is as the last owner left it
        OwnerDied,  // locked, but the previous owner died holding it: repair, mark_consistent()
        Busy,       // try_lock only: someone else holds it
        TimedOut,   // lock_for only: not acquired within the timeout
        NotRecoverable,  // an OwnerDied lock was released unrepaired; the mutex is unusable
        WouldDeadlock,   // this thread already holds it
    };

    // Initializes a mutex in `where` (sizeof(RobustMutex) bytes, alignof(RobustMutex)
    // aligned, writable). Throws Error when the memory is misaligned or pthread refuses.
    static RobustMutex& create_at(void* where);
    // The mutex another process initialized at `where`. Throws Error(EPROTO)
    // when `where` holds no initialized RobustMutex (wrong offset, foreign data).
    static RobustMutex& attach_at(void* where);

    RobustMutex(const RobustMutex&) = delete;
    RobustMutex& operator=(const RobustMutex&) = delete;

    // Blocks until acquired: Acquired, OwnerDied, NotRecoverable or WouldDeadlock.
    [[nodiscard]] Status lock() noexcept;
    // Never blocks: Acquired, OwnerDied, Busy, NotRecoverable or WouldDeadlock.
    [[nodiscard]] Status try_lock() noexcept;
    // Blocks at most `timeout` (CLOCK_MONOTONIC): as lock(), or TimedOut.
    [[nodiscard]] Status lock_for(std::chrono::nanoseconds timeout) noexcept;
    // After OwnerDied, once the data is repaired: the mutex is healthy again.
    // Throws Error(EINVAL) when the mutex is not in the owner-died state.
    void mark_consistent();
    // Throws Error(EPERM) when this thread does not hold the mutex.
    void unlock();

  private:
    RobustMutex() = default;
    Status translate(int rc) noexcept;

    std::uint32_t magic_ = 0;  // kMagic once initialized
    pthread_mutex_t mutex_;    // PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST, ERRORCHECK
};

const char* status_name(RobustMutex::Status status) noexcept;

}  // namespace pagewire
