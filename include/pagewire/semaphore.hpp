// pagewire::Semaphore, NamedSemaphore — process-shared counting semaphores.
#pragma once
#include <semaphore.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <pagewire/config.hpp>
#include <string>

namespace pagewire {

// Result of a semaphore wait.
enum class SemaphoreStatus {
    Acquired,  // the count was decremented
    Busy,      // try_wait only: the count was zero
    TimedOut,  // wait_for only: still zero after the timeout
};

// An unnamed POSIX semaphore (sem_init with pshared = 1) living inside shared
// memory. create_at() once, attach_at() everywhere else; neither copyable nor
// movable. Waits retry on EINTR. Thread- and process-safe.
class Semaphore {
  public:
    // Initializes a semaphore with count `initial` in `where` (writable, aligned).
    static Semaphore& create_at(void* where, unsigned initial);
    // The semaphore another process initialized at `where`; Error(EPROTO) if none.
    static Semaphore& attach_at(void* where);

    Semaphore(const Semaphore&) = delete;
    Semaphore& operator=(const Semaphore&) = delete;

    // Increments the count, waking one waiter. Throws Error(EOVERFLOW) at SEM_VALUE_MAX.
    void post();
    [[nodiscard]] SemaphoreStatus wait() noexcept;      // Acquired
    [[nodiscard]] SemaphoreStatus try_wait() noexcept;  // Acquired or Busy
    // Acquired or TimedOut; the timeout runs on CLOCK_MONOTONIC.
    [[nodiscard]] SemaphoreStatus wait_for(std::chrono::nanoseconds timeout) noexcept;
    int value() const noexcept;  // the count now (a snapshot)

  private:
    Semaphore() = default;

    std::uint32_t magic_ = 0;  // kMagic once initialized
    mutable sem_t sem_;
};

// A named POSIX semaphore (sem_open, "/name" in /dev/shm as sem.name): any
// process that knows the name can open it. Owns its sem_close; move-only.
class NamedSemaphore {
  public:
    // Creates a new semaphore (EEXIST if the name is taken). Mode exact (no umask).
    static NamedSemaphore create(const std::string& name, unsigned initial, mode_t mode = 0600);
    static NamedSemaphore open(const std::string& name);  // ENOENT if there is none
    static NamedSemaphore open_or_create(const std::string& name, unsigned initial,
                                         mode_t mode = 0600);
    // sem_unlink: the name goes now, the semaphore when the last process closes it.
    static void remove(const std::string& name);

    NamedSemaphore(NamedSemaphore&& other) noexcept;
    NamedSemaphore& operator=(NamedSemaphore&& other) noexcept;
    NamedSemaphore(const NamedSemaphore&) = delete;
    NamedSemaphore& operator=(const NamedSemaphore&) = delete;
    ~NamedSemaphore();

    const std::string& name() const noexcept { return name_; }
    void post();
    [[nodiscard]] SemaphoreStatus wait() noexcept;
    [[nodiscard]] SemaphoreStatus try_wait() noexcept;
    [[nodiscard]] SemaphoreStatus wait_for(std::chrono::nanoseconds timeout) noexcept;
    int value() const noexcept;

  private:
    NamedSemaphore(sem_t* sem, std::string name) noexcept : sem_(sem), name_(std::move(name)) {}

    sem_t* sem_ = nullptr;  // from sem_open, sem_close'd on destruction; null when moved from
    std::string name_;      // "/name"
};

}  // namespace pagewire
