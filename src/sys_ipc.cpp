#include "sys_ipc.hpp"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

#include "sys.hpp"

namespace pagewire::sys {

constexpr std::int64_t kNanosecondsPerSecond = 1000000000;

int futex_wait(const std::uint32_t* word, std::uint32_t expected,
               const timespec* timeout) noexcept {
    return static_cast<int>(::syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout, nullptr, 0));
}

int futex_wake(const std::uint32_t* word, int count) noexcept {
    return static_cast<int>(::syscall(SYS_futex, word, FUTEX_WAKE, count, nullptr, nullptr, 0));
}

bool register_asymmetric_fence() noexcept {
    static const bool registered = [] {
        const long supported = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0);
        if (supported < 0 || (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0 ||
            (supported & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0)
            return false;
        return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0) == 0;
    }();
    return registered;
}

bool heavy_fence() noexcept {
    return ::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0) == 0;
}

std::int64_t monotonic_ns() noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::int64_t>(now.tv_sec) * kNanosecondsPerSecond + now.tv_nsec;
}

timespec to_timespec(std::int64_t ns) noexcept {
    timespec t{};
    t.tv_sec = static_cast<time_t>(ns / kNanosecondsPerSecond);
    t.tv_nsec = static_cast<long>(ns % kNanosecondsPerSecond);
    return t;
}

timespec monotonic_deadline(std::chrono::nanoseconds timeout) noexcept {
    const std::int64_t now = monotonic_ns();
    const std::int64_t total = std::max<std::int64_t>(0, timeout.count());
    // nanoseconds::max() means "practically never": ~292 years, no overflow.
    return to_timespec(total > INT64_MAX - now ? INT64_MAX : now + total);
}

namespace {

// The message send_fd and receive_fd exchange: a one-byte payload (a stream
// socket cannot carry control data alone) and room for one descriptor.
// msg points into the object itself, so it is neither copied nor moved.
struct FdMessage {
    explicit FdMessage(char byte) : payload(byte) {
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
    }
    FdMessage(const FdMessage&) = delete;
    FdMessage& operator=(const FdMessage&) = delete;

    char payload;
    iovec iov{&payload, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
};

}  // namespace

int send_fd(int socket, int fd) noexcept {
    FdMessage m('F');
    msghdr& msg = m.msg;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    ssize_t r = retry_eintr([&] { return ::sendmsg(socket, &msg, MSG_NOSIGNAL); });
    return r == 1 ? 0 : -1;
}

int receive_fd(int socket) noexcept {
    FdMessage m(0);
    msghdr& msg = m.msg;
    ssize_t r = retry_eintr([&] { return ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC); });
    if (r < 0) return -1;
    if (r == 0) {
        errno = ECONNRESET;
        return -1;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int))) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
            return fd;
        }
    }
    errno = (msg.msg_flags & MSG_CTRUNC) ? EMFILE : EBADMSG;  // truncated: no room for the fd
    return -1;
}

std::optional<std::uint64_t> process_start_ticks(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return std::nullopt;
    // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    auto close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(line.substr(close + 1));
    std::string field;
    for (int i = 3; i <= 22; ++i) {
        if (!(fields >> field)) return std::nullopt;
    }
    try {
        return std::stoull(field);
    } catch (...) {
        return std::nullopt;
    }
}

std::optional<std::time_t> process_start_epoch(pid_t pid) {
    auto ticks = process_start_ticks(pid);
    if (!ticks) return std::nullopt;
    static const std::time_t boot_time = [] {
        std::ifstream in("/proc/stat");
        std::string key;
        long long value = 0;
        while (in >> key) {
            if (key == "btime" && (in >> value)) return static_cast<std::time_t>(value);
            std::getline(in, key);
        }
        return static_cast<std::time_t>(0);
    }();
    static const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
    return boot_time +
           static_cast<std::time_t>(*ticks / static_cast<std::uint64_t>(ticks_per_second));
}

std::string boot_id() {
    static const std::string id = [] {
        std::ifstream in("/proc/sys/kernel/random/boot_id");
        std::string text;
        in >> text;
        return text;
    }();
    return id;
}

}  // namespace pagewire::sys
