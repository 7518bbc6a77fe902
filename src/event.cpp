#include <algorithm>
#include <cerrno>
#include <climits>
#include <ctime>
#include <new>
#include <pagewire/error.hpp>
#include <pagewire/event.hpp>

#include "sys.hpp"
#include "sys_ipc.hpp"

namespace pagewire {
namespace {

constexpr std::uint32_t kMagic = 0x54564557U;  // "WEVT"
constexpr const char* kName = "event";
// Clock reads during a spin: one per this many pauses (a pause is ~10-140 cycles).
constexpr int kPausesPerClockRead = 64;

static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
              "the futex word must be a plain 32-bit word");

const std::uint32_t* futex_word(const std::atomic<std::uint32_t>& word) noexcept {
    return reinterpret_cast<const std::uint32_t*>(&word);
}

}  // namespace

Event& Event::create_at(void* where, Mode mode, std::chrono::nanoseconds spin) {
    if (where == nullptr || reinterpret_cast<std::uintptr_t>(where) % alignof(Event) != 0)
        throw_error("create", kName, EINVAL, "null or misaligned address");
    auto* e = new (where) Event();
    e->mode_ = static_cast<std::uint32_t>(mode);
    e->spin_ns_.store(spin.count() < 0 ? 0 : spin.count(), std::memory_order_relaxed);
    std::atomic_ref<std::uint32_t>(e->magic_).store(kMagic, std::memory_order_release);
    return *e;
}

Event& Event::attach_at(void* where) {
    if (where == nullptr || reinterpret_cast<std::uintptr_t>(where) % alignof(Event) != 0)
        throw_error("attach", kName, EINVAL, "null or misaligned address");
    auto* e = static_cast<Event*>(where);
    if (std::atomic_ref<std::uint32_t>(e->magic_).load(std::memory_order_acquire) != kMagic)
        throw_error("attach", kName, EPROTO, "no initialized event at this address");
    return *e;
}

std::chrono::nanoseconds Event::spin() const noexcept {
    return std::chrono::nanoseconds(spin_ns_.load(std::memory_order_relaxed));
}

void Event::set_spin(std::chrono::nanoseconds spin) noexcept {
    spin_ns_.store(spin.count() < 0 ? 0 : spin.count(), std::memory_order_relaxed);
}

bool Event::try_consume() noexcept {
    if (mode_ == static_cast<std::uint32_t>(Mode::ManualReset))
        return word_.load(std::memory_order_seq_cst) != 0;
    std::uint32_t expected = 1;
    return word_.compare_exchange_strong(expected, 0, std::memory_order_seq_cst);
}

void Event::set() noexcept {
    word_.store(1, std::memory_order_seq_cst);
    // seq_cst pairs with the waiter's sleepers_ increment then word_ check:
    // either the waiter sees the 1 or this load sees the sleeper.
    if (sleepers_.load(std::memory_order_seq_cst) != 0) {
        bool all = mode_ == static_cast<std::uint32_t>(Mode::ManualReset);
        sys::futex_wake(futex_word(word_), all ? INT_MAX : 1);
    }
}

void Event::reset() noexcept {
    word_.store(0, std::memory_order_seq_cst);
}

Event::Status Event::wait() noexcept {
    return wait_for(kForever, spin());
}

Event::Status Event::wait_for(std::chrono::nanoseconds timeout) noexcept {
    return wait_for(timeout, spin());
}

Event::Status Event::wait_for(std::chrono::nanoseconds timeout,
                              std::chrono::nanoseconds spin) noexcept {
    if (try_consume()) return Status::Signaled;
    const bool forever = timeout == kForever;
    const std::int64_t start = sys::monotonic_ns();
    const std::int64_t deadline =
        forever ? INT64_MAX : start + std::max<std::int64_t>(0, timeout.count());
    // Spin phase: plain loads, no system call.
    if (spin.count() > 0) {
        const std::int64_t spin_end = std::min(deadline, start + spin.count());
        for (;;) {
            for (int i = 0; i < kPausesPerClockRead; ++i) {
                if (word_.load(std::memory_order_relaxed) != 0 && try_consume())
                    return Status::Signaled;
                sys::cpu_relax();
            }
            if (sys::monotonic_ns() >= spin_end) break;
        }
    }
    // Sleep phase.
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    Status result = Status::TimedOut;
    for (;;) {
        if (try_consume()) {
            result = Status::Signaled;
            break;
        }
        timespec relative{};
        const timespec* timeout_arg = nullptr;
        if (!forever) {
            std::int64_t left = deadline - sys::monotonic_ns();
            if (left <= 0) break;
            relative = sys::to_timespec(left);
            timeout_arg = &relative;
        }
        // Sleeps only while the word is still 0; EAGAIN means it changed.
        sys::futex_wait(futex_word(word_), 0, timeout_arg);
    }
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    return result;
}

}  // namespace pagewire
