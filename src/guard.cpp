// SIGBUS-to-error guard. See guard.hpp for the contract.
//
// Each thread keeps a stack of frames (one per active guard, innermost on
// top), each naming up to two address ranges and the sigjmp_buf to return to.
// The handler is synchronous (a SIGBUS from a fault is delivered to the
// faulting thread), so reading the thread-local top of stack from it is safe.
#include <atomic>
#include <csetjmp>
#include <csignal>
#include <cstring>
#include <mutex>
#include <pagewire/guard.hpp>

namespace pagewire {
namespace {

struct Range {
    const char* begin = nullptr;
    const char* end = nullptr;
    bool contains(const char* p) const noexcept { return p >= begin && p < end; }
};

struct Frame {
    Range ranges[2];
    Frame* outer = nullptr;
    sigjmp_buf jump;
    const char* volatile fault_address = nullptr;  // set by the handler before jumping
    volatile int fault_range = 0;                  // which of ranges[] held it
};

thread_local Frame* tl_top = nullptr;  // innermost active guard of this thread

struct sigaction g_previous;  // the disposition pagewire's handler replaced; written once
std::once_flag g_install_once;

void forward_to_previous(int sig, siginfo_t* info, void* context) {
    if (g_previous.sa_flags & SA_SIGINFO) {
        g_previous.sa_sigaction(sig, info, context);
        return;
    }
    if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
        g_previous.sa_handler(sig);
        return;
    }
    // Default action (or SIG_IGN, which cannot apply to a fault: returning would
    // fault again forever). Restore the default: a fault re-executes and kills
    // the process with the usual core dump; a signal sent by kill() is re-raised.
    if (g_previous.sa_handler == SIG_IGN && info != nullptr && info->si_code <= 0) return;
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGBUS, &dfl, nullptr);
    if (info == nullptr || info->si_code <= 0) ::raise(sig);
}

void on_sigbus(int sig, siginfo_t* info, void* context) {
    // Only faults raised by the kernel (si_code > 0) carry a meaningful si_addr;
    // kill(), raise() and sigqueue() use si_code <= 0 and are never ours.
    if (info != nullptr && info->si_code > 0) {
        const char* addr = static_cast<const char*>(info->si_addr);
        for (Frame* f = tl_top; f != nullptr; f = f->outer) {
            for (int i = 0; i < 2; ++i) {
                if (f->ranges[i].contains(addr)) {
                    f->fault_address = addr;
                    f->fault_range = i;
                    siglongjmp(f->jump, 1);
                }
            }
        }
    }
    forward_to_previous(sig, info, context);
}

void install_handler() {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sigemptyset(&sa.sa_mask);
    // SA_NODEFER: SIGBUS stays unblocked inside the handler, so jumping out of
    // it needs no saved signal mask and sigsetjmp(…, 0) avoids a system call
    // per guarded access.
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    ::sigaction(SIGBUS, &sa, &g_previous);
}

}  // namespace

std::string AccessResult::message() const {
    switch (error) {
        case 0:
            return {};
        case EFAULT:
            return "page not backed by the file (SIGBUS at offset " + std::to_string(fault_offset) +
                   ": past end of file, the file was truncated, or an I/O error)";
        case ERANGE:
            return "range outside the mapped view";
        default:
            return std::strerror(error);
    }
}

namespace {

// The guard proper: runs fn(arg) with faults in either range caught.
AccessResult run_with_frame(Range a, Range b, void (*fn)(void*), void* arg) noexcept {
    std::call_once(g_install_once, install_handler);
    Frame frame;
    frame.ranges[0] = a;
    frame.ranges[1] = b;
    frame.outer = tl_top;
    if (sigsetjmp(frame.jump, 0) != 0) {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        tl_top = frame.outer;
        const Range& r = frame.ranges[frame.fault_range];
        return {EFAULT, static_cast<std::size_t>(frame.fault_address - r.begin)};
    }
    tl_top = &frame;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    fn(arg);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    tl_top = frame.outer;
    return {};
}

struct CopyArgs {
    void* dst;
    const void* src;
    std::size_t n;
};

}  // namespace

AccessResult guarded_copy(void* dst, const void* src, std::size_t n) noexcept {
    if (n == 0) return {};  // memcpy's pointers must be valid even for 0 bytes
    CopyArgs args{dst, src, n};
    const char* s = static_cast<const char*>(src);
    const char* d = static_cast<const char*>(dst);
    return run_with_frame(
        {s, s + n}, {d, d + n},
        [](void* p) {
            auto* a = static_cast<CopyArgs*>(p);
            std::memcpy(a->dst, a->src, a->n);
        },
        &args);
}

AccessResult guarded_run(const void* base, std::size_t length, void (*fn)(void*),
                         void* arg) noexcept {
    const char* b = static_cast<const char*>(base);
    return run_with_frame({b, b + length}, {}, fn, arg);
}

}  // namespace pagewire
