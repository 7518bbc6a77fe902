#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <new>
#include <pagewire/error.hpp>
#include <pagewire/robust_mutex.hpp>

#include "sys_ipc.hpp"

namespace pagewire {
namespace {

constexpr std::uint32_t kMagic = 0x5257524dU;  // "MRWR"
constexpr const char* kName = "robust mutex";

void check_alignment(void* where, const char* operation) {
    if (where == nullptr) throw_error(operation, kName, EINVAL, "null address");
    if (reinterpret_cast<std::uintptr_t>(where) % alignof(RobustMutex) != 0)
        throw_error(operation, kName, EINVAL,
                    "address is not aligned to " + std::to_string(alignof(RobustMutex)) + " bytes");
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PAGEWIRE_TSAN 1
#endif
#endif

// pthread_mutex_clocklock on CLOCK_MONOTONIC. ThreadSanitizer (clang 14) does
// not intercept clocklock, so it would think the mutex unlocked and report the
// unlock; under TSan the same deadline is given to pthread_mutex_timedlock on
// CLOCK_REALTIME instead (exact unless the wall clock steps meanwhile).
int clock_lock(pthread_mutex_t* mutex, const timespec& monotonic_deadline) noexcept {
#ifdef PAGEWIRE_TSAN
    timespec mono{}, real{};
    ::clock_gettime(CLOCK_MONOTONIC, &mono);
    ::clock_gettime(CLOCK_REALTIME, &real);
    long long left = (monotonic_deadline.tv_sec - mono.tv_sec) * 1000000000LL +
                     (monotonic_deadline.tv_nsec - mono.tv_nsec);
    if (left < 0) left = 0;
    long long ns = real.tv_nsec + left % 1000000000LL;
    timespec deadline{real.tv_sec + static_cast<time_t>(left / 1000000000LL + ns / 1000000000LL),
                      static_cast<long>(ns % 1000000000LL)};
    return ::pthread_mutex_timedlock(mutex, &deadline);
#else
    return ::pthread_mutex_clocklock(mutex, CLOCK_MONOTONIC, &monotonic_deadline);
#endif
}

}  // namespace

RobustMutex& RobustMutex::create_at(void* where) {
    check_alignment(where, "create");
    auto* m = new (where) RobustMutex();
    pthread_mutexattr_t attr;
    int rc = ::pthread_mutexattr_init(&attr);
    if (rc == 0) rc = ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0) rc = ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    // Error-checking: relocking or a foreign unlock is reported, not undefined.
    if (rc == 0) rc = ::pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    if (rc == 0) rc = ::pthread_mutex_init(&m->mutex_, &attr);
    ::pthread_mutexattr_destroy(&attr);
    if (rc != 0) throw_error("create", kName, rc);
    std::atomic_ref<std::uint32_t>(m->magic_).store(kMagic, std::memory_order_release);
    return *m;
}

RobustMutex& RobustMutex::attach_at(void* where) {
    check_alignment(where, "attach");
    auto* m = static_cast<RobustMutex*>(where);
    if (std::atomic_ref<std::uint32_t>(m->magic_).load(std::memory_order_acquire) != kMagic)
        throw_error("attach", kName, EPROTO, "no initialized robust mutex at this address");
    return *m;
}

RobustMutex::Status RobustMutex::translate(int rc) noexcept {
    switch (rc) {
        case 0:
            return Status::Acquired;
        case EOWNERDEAD:
            return Status::OwnerDied;
        case EBUSY:
            return Status::Busy;
        case ETIMEDOUT:
            return Status::TimedOut;
        case EDEADLK:
            return Status::WouldDeadlock;
        default:
            return Status::NotRecoverable;  // ENOTRECOVERABLE (EINVAL: not a mutex at all)
    }
}

RobustMutex::Status RobustMutex::lock() noexcept {
    return translate(::pthread_mutex_lock(&mutex_));
}

RobustMutex::Status RobustMutex::try_lock() noexcept {
    // Not pthread_mutex_trylock: glibc's robust trylock returns ENOTRECOVERABLE
    // but leaves the lock word held by the caller, wedging the mutex for every
    // other process. A timed lock with a deadline already reached tries once
    // and releases correctly.
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    Status status = translate(clock_lock(&mutex_, now));
    return status == Status::TimedOut ? Status::Busy : status;
}

RobustMutex::Status RobustMutex::lock_for(std::chrono::nanoseconds timeout) noexcept {
    timespec deadline = sys::monotonic_deadline(timeout);
    // Monotonic: a wall-clock step must not stretch or cut the timeout.
    return translate(clock_lock(&mutex_, deadline));
}

void RobustMutex::mark_consistent() {
    int rc = ::pthread_mutex_consistent(&mutex_);
    if (rc != 0)
        throw_error("mark consistent", kName, rc, "the mutex is not held in the owner-died state");
}

void RobustMutex::unlock() {
    int rc = ::pthread_mutex_unlock(&mutex_);
    if (rc != 0) throw_error("unlock", kName, rc, "this thread does not hold the mutex");
}

const char* status_name(RobustMutex::Status status) noexcept {
    switch (status) {
        case RobustMutex::Status::Acquired:
            return "acquired";
        case RobustMutex::Status::OwnerDied:
            return "owner died";
        case RobustMutex::Status::Busy:
            return "busy";
        case RobustMutex::Status::TimedOut:
            return "timed out";
        case RobustMutex::Status::NotRecoverable:
            return "not recoverable";
        case RobustMutex::Status::WouldDeadlock:
            return "would deadlock";
    }
    return "?";
}

}  // namespace pagewire
