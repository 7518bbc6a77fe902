// pagewire::Event — futex-based wait/notify across processes, spin-then-sleep.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <pagewire/config.hpp>

namespace pagewire {

// A one-bit event on a 32-bit futex word in shared memory. Waiters first spin
// (reading the word, with a CPU pause) for a tunable time, then sleep in
// FUTEX_WAIT. set() issues FUTEX_WAKE only when someone sleeps, so a set()
// with no sleeper costs no system call. Shared futexes (no FUTEX_PRIVATE_FLAG):
// the kernel matches waiters by physical page, so the Event works in any
// memory several processes map. create_at() once, attach_at() elsewhere.
// Thread- and process-safe; neither copyable nor movable.
//
// Why spin: on a VM a cross-core wake-up from FUTEX_WAIT costs tens of
// microseconds; when the peer answers within the spin time the waiter never
// sleeps. Spinning burns its CPU, so keep it short (0 disables it).
class Event {
  public:
    enum class Mode : std::uint32_t {
        AutoReset,    // a successful wait consumes the signal; set() wakes one waiter
        ManualReset,  // stays set until reset(); set() wakes every waiter
    };
    enum class Status {
        Signaled,  // the event was set (and, for AutoReset, consumed by this wait)
        TimedOut,  // wait_for only
    };
    static constexpr std::chrono::nanoseconds kDefaultSpin = std::chrono::microseconds(50);

    static Event& create_at(void* where, Mode mode = Mode::AutoReset,
                            std::chrono::nanoseconds spin = kDefaultSpin);
    // The Event another process initialized at `where`; Error(EPROTO) if none.
    static Event& attach_at(void* where);

    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;

    void set() noexcept;
    void reset() noexcept;
    bool is_set() const noexcept { return word_.load(std::memory_order_acquire) != 0; }

    // Waits until set, spinning for spin() first.
    [[nodiscard]] Status wait() noexcept;
    // Waits at most `timeout` (CLOCK_MONOTONIC), spinning for min(spin, timeout) first.
    [[nodiscard]] Status wait_for(std::chrono::nanoseconds timeout) noexcept;
    // As wait_for, with this call's own spin time.
    [[nodiscard]] Status wait_for(std::chrono::nanoseconds timeout,
                                  std::chrono::nanoseconds spin) noexcept;

    // The spin time every process's waits use (stored in the shared memory).
    std::chrono::nanoseconds spin() const noexcept;
    void set_spin(std::chrono::nanoseconds spin) noexcept;

    static constexpr std::chrono::nanoseconds kForever = std::chrono::nanoseconds::max();

  private:
    Event() = default;
    bool try_consume() noexcept;

    std::atomic<std::uint32_t> word_{0};      // the futex word: 1 set, 0 clear
    std::atomic<std::uint32_t> sleepers_{0};  // waiters in (or entering) FUTEX_WAIT
    std::uint32_t mode_ = 0;                  // Mode
    std::uint32_t magic_ = 0;                 // kMagic once initialized
    std::atomic<std::int64_t> spin_ns_{0};
};

}  // namespace pagewire
