#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <ctime>
#include <new>
#include <pagewire/error.hpp>
#include <pagewire/semaphore.hpp>
#include <utility>

#include "sys.hpp"
#include "sys_ipc.hpp"

namespace pagewire {
namespace {

constexpr std::uint32_t kMagic = 0x4d455357U;  // "WSEM"
constexpr const char* kName = "semaphore";

// The waits shared by both kinds of semaphore.
SemaphoreStatus do_wait(sem_t* sem) noexcept {
    sys::retry_eintr([&] { return ::sem_wait(sem); });  // fails only with EINTR or EINVAL
    return SemaphoreStatus::Acquired;
}

SemaphoreStatus do_try_wait(sem_t* sem) noexcept {
    return sys::retry_eintr([&] { return ::sem_trywait(sem); }) == 0 ? SemaphoreStatus::Acquired
                                                                     : SemaphoreStatus::Busy;
}

SemaphoreStatus do_wait_for(sem_t* sem, std::chrono::nanoseconds timeout) noexcept {
    timespec deadline = sys::monotonic_deadline(timeout);
    int r = sys::retry_eintr([&] { return ::sem_clockwait(sem, CLOCK_MONOTONIC, &deadline); });
    return r == 0 ? SemaphoreStatus::Acquired : SemaphoreStatus::TimedOut;
}

void do_post(sem_t* sem, const std::string& name) {
    if (::sem_post(sem) != 0) {
        int err = errno;
        if (err == EOVERFLOW) throw_error("post", name, err, "count would exceed SEM_VALUE_MAX");
        throw_error("post", name, err);
    }
}

int do_value(sem_t* sem) noexcept {
    int value = 0;
    ::sem_getvalue(sem, &value);
    return value;
}

std::string semaphore_name(const std::string& name, const char* operation) {
    std::string bare = name;
    if (!bare.empty() && bare[0] == '/') bare.erase(0, 1);
    // sem_open adds "sem." in /dev/shm: 251 bytes are left of NAME_MAX.
    if (bare.empty() || bare.size() > NAME_MAX - 4 || bare.find('/') != std::string::npos ||
        bare == "." || bare == "..")
        throw_error(operation, name.empty() ? "\"\"" : name, EINVAL,
                    "a semaphore name is 1 to 251 bytes without '/' after the first character");
    return "/" + bare;
}

}  // namespace

Semaphore& Semaphore::create_at(void* where, unsigned initial) {
    if (where == nullptr || reinterpret_cast<std::uintptr_t>(where) % alignof(Semaphore) != 0)
        throw_error("create", kName, EINVAL, "null or misaligned address");
    if (initial > SEM_VALUE_MAX)
        throw_error("create", kName, EINVAL, "initial count exceeds SEM_VALUE_MAX");
    auto* s = new (where) Semaphore();
    if (::sem_init(&s->sem_, 1, initial) != 0) throw_error("create", kName);
    std::atomic_ref<std::uint32_t>(s->magic_).store(kMagic, std::memory_order_release);
    return *s;
}

Semaphore& Semaphore::attach_at(void* where) {
    if (where == nullptr || reinterpret_cast<std::uintptr_t>(where) % alignof(Semaphore) != 0)
        throw_error("attach", kName, EINVAL, "null or misaligned address");
    auto* s = static_cast<Semaphore*>(where);
    if (std::atomic_ref<std::uint32_t>(s->magic_).load(std::memory_order_acquire) != kMagic)
        throw_error("attach", kName, EPROTO, "no initialized semaphore at this address");
    return *s;
}

void Semaphore::post() {
    do_post(&sem_, kName);
}
SemaphoreStatus Semaphore::wait() noexcept {
    return do_wait(&sem_);
}
SemaphoreStatus Semaphore::try_wait() noexcept {
    return do_try_wait(&sem_);
}
SemaphoreStatus Semaphore::wait_for(std::chrono::nanoseconds timeout) noexcept {
    return do_wait_for(&sem_, timeout);
}
int Semaphore::value() const noexcept {
    return do_value(&sem_);
}

NamedSemaphore NamedSemaphore::create(const std::string& name, unsigned initial, mode_t mode) {
    std::string canonical = semaphore_name(name, "create");
    sem_t* sem = ::sem_open(canonical.c_str(), O_CREAT | O_EXCL, mode, initial);
    if (sem == SEM_FAILED) throw_error("create", canonical);
    // Exactly the mode asked for, as for segments (sem_open applies the umask).
    std::string path = "/dev/shm/sem." + canonical.substr(1);
    ::chmod(path.c_str(), mode);
    return NamedSemaphore(sem, canonical);
}

NamedSemaphore NamedSemaphore::open(const std::string& name) {
    std::string canonical = semaphore_name(name, "open");
    sem_t* sem = ::sem_open(canonical.c_str(), 0);
    if (sem == SEM_FAILED) throw_error("open", canonical);
    return NamedSemaphore(sem, canonical);
}

NamedSemaphore NamedSemaphore::open_or_create(const std::string& name, unsigned initial,
                                              mode_t mode) {
    std::string canonical = semaphore_name(name, "create");
    sem_t* sem = ::sem_open(canonical.c_str(), O_CREAT, mode, initial);
    if (sem == SEM_FAILED) throw_error("create", canonical);
    return NamedSemaphore(sem, canonical);
}

void NamedSemaphore::remove(const std::string& name) {
    std::string canonical = semaphore_name(name, "remove");
    if (::sem_unlink(canonical.c_str()) != 0) throw_error("remove", canonical);
}

NamedSemaphore::NamedSemaphore(NamedSemaphore&& other) noexcept
    : sem_(std::exchange(other.sem_, nullptr)), name_(std::move(other.name_)) {}

NamedSemaphore& NamedSemaphore::operator=(NamedSemaphore&& other) noexcept {
    if (this != &other) {
        if (sem_ != nullptr) ::sem_close(sem_);
        sem_ = std::exchange(other.sem_, nullptr);
        name_ = std::move(other.name_);
    }
    return *this;
}

NamedSemaphore::~NamedSemaphore() {
    if (sem_ != nullptr) ::sem_close(sem_);
}

void NamedSemaphore::post() {
    do_post(sem_, name_);
}
SemaphoreStatus NamedSemaphore::wait() noexcept {
    return do_wait(sem_);
}
SemaphoreStatus NamedSemaphore::try_wait() noexcept {
    return do_try_wait(sem_);
}
SemaphoreStatus NamedSemaphore::wait_for(std::chrono::nanoseconds timeout) noexcept {
    return do_wait_for(sem_, timeout);
}
int NamedSemaphore::value() const noexcept {
    return do_value(sem_);
}

}  // namespace pagewire
