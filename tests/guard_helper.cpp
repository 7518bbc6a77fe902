// guard_helper SCENARIO — runs one SIGBUS-guard scenario in a fresh process,
// so the signal dispositions it sets up come before pagewire's first guard.
// test_guard.cpp runs it and checks how it ended:
//   chain-siginfo, chain-plain   exit 0 when every check passed, else a line
//                                on stderr and exit 1
//   unrelated-fault, raise-default, kill-default, outside-range, other-thread
//                                must die of SIGBUS; exit 3 means it survived
// Every scenario maps a 3-page file and truncates it to 100 bytes, so page 2
// of the view is no longer backed by the file.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pagewire/guard.hpp>
#include <pagewire/mapping.hpp>
#include <span>
#include <string>
#include <thread>

namespace {

constexpr int kExitSurvived = 3;

std::size_t page_size() {
    return static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// A 3-page file truncated to 100 bytes behind a read-write mapping of all 3 pages.
struct TruncatedMapping {
    std::string dir;
    pagewire::Mapping map;

    TruncatedMapping() {
        char templ[] = "/tmp/pagewire-guard-XXXXXX";
        if (mkdtemp(templ) == nullptr) {
            std::perror("mkdtemp");
            std::exit(2);
        }
        dir = templ;
        std::string path = dir + "/f";
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(3 * page_size())) != 0) {
            std::perror("create");
            std::exit(2);
        }
        ::close(fd);
        map = pagewire::Mapping::open(path, pagewire::Access::ReadWrite);
        if (::truncate(path.c_str(), 100) != 0) {
            std::perror("truncate");
            std::exit(2);
        }
        ::unlink(path.c_str());
        ::rmdir(dir.c_str());
    }
    std::byte* page(std::size_t n) { return map.data() + n * page_size(); }
};

bool failed = false;
void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "guard_helper: check failed: %s\n", what);
        failed = true;
    }
}

// What the test's own SIGBUS handler saw.
volatile sig_atomic_t handler_calls = 0;
volatile sig_atomic_t last_si_code = 0;
void* volatile last_si_addr = nullptr;
volatile sig_atomic_t jump_out = 0;  // 1: siglongjmp out (a real fault would repeat)
sigjmp_buf jump_env;

void siginfo_handler(int, siginfo_t* info, void*) {
    handler_calls = handler_calls + 1;
    last_si_code = info->si_code;
    last_si_addr = info->si_addr;
    if (jump_out) siglongjmp(jump_env, 1);
}

void plain_handler(int sig) {
    if (sig == SIGBUS) handler_calls = handler_calls + 1;
    if (jump_out) siglongjmp(jump_env, 1);
}

unsigned char raw_read(const std::byte* p) {
    return *reinterpret_cast<const volatile unsigned char*>(p);
}

// Uses a guard once so pagewire's handler is installed, and checks it works.
void use_guard_once(TruncatedMapping& t) {
    std::byte buf[16];
    auto ok = t.map.read(0, buf);
    check(ok.ok(), "guarded read of page 0");
    auto fault = t.map.read(2 * page_size(), buf);
    check(fault.error == EFAULT, "guarded read of page 2 is EFAULT");
}

int chain(bool siginfo) {
    struct sigaction sa {};
    if (siginfo) {
        sa.sa_sigaction = siginfo_handler;
        sa.sa_flags = SA_SIGINFO;
    } else {
        sa.sa_handler = plain_handler;
    }
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, nullptr) != 0) {
        std::perror("sigaction");
        return 2;
    }
    TruncatedMapping t;

    // 1. A guarded fault is pagewire's: our handler is not called.
    use_guard_once(t);
    check(handler_calls == 0, "a guarded fault must not reach the previous handler");

    // 2. raise(): not a fault in a guarded range, so it goes to our handler.
    raise(SIGBUS);
    check(handler_calls == 1, "raise(SIGBUS) must reach the previous handler");
    if (siginfo) check(last_si_code == SI_TKILL, "raise(SIGBUS) arrives with si_code SI_TKILL");

    // 3. kill(): likewise.
    kill(getpid(), SIGBUS);
    check(handler_calls == 2, "kill(getpid(), SIGBUS) must reach the previous handler");
    if (siginfo) check(last_si_code == SI_USER, "kill() arrives with si_code SI_USER");

    // 4. An unguarded raw access of the truncated page reaches our handler,
    //    with the faulting address when it asked for siginfo.
    const std::byte* target = t.page(2);
    jump_out = 1;
    if (sigsetjmp(jump_env, 1) == 0) {
        (void)raw_read(target);
        check(false, "raw read of a truncated page did not fault");
    }
    jump_out = 0;
    check(handler_calls == 3, "an unguarded fault must reach the previous handler");
    if (siginfo) {
        check(last_si_addr == static_cast<const void*>(target), "si_addr is the faulting page");
        check(last_si_code == BUS_ADRERR, "si_code is BUS_ADRERR");
    }

    // 5. pagewire still guards after all that, without calling our handler.
    use_guard_once(t);
    check(handler_calls == 3, "guarded fault after chaining must not reach the previous handler");

    // 6. A guarded access in one thread while another thread does not guard.
    std::thread other([&] { use_guard_once(t); });
    other.join();
    check(handler_calls == 3, "guarded fault in another thread stays pagewire's");
    return failed ? 1 : 0;
}

// The scenarios below must end in death by SIGBUS (the default action).

int unrelated_fault() {
    TruncatedMapping t;
    use_guard_once(t);
    (void)raw_read(t.page(2));
    return kExitSurvived;
}

int raise_default() {
    TruncatedMapping t;
    use_guard_once(t);
    raise(SIGBUS);
    return kExitSurvived;
}

int kill_default() {
    TruncatedMapping t;
    use_guard_once(t);
    kill(getpid(), SIGBUS);
    return kExitSurvived;
}

// The fault is outside the range the thread declared as guarded.
int outside_range() {
    TruncatedMapping t;
    use_guard_once(t);
    const std::byte* bad = t.page(2);
    auto r = pagewire::guarded(t.map.data(), 100, [bad] { (void)raw_read(bad); });
    std::fprintf(stderr, "guard_helper: guarded() returned error %d\n", r.error);
    return kExitSurvived;
}

// One thread guards the whole view and waits; another thread faults raw
// inside that range. The fault is not the guarding thread's: default action.
int other_thread() {
    TruncatedMapping t;
    use_guard_once(t);
    static std::atomic<bool> inside{false};
    static std::atomic<bool> release{false};
    std::thread guarder([&] {
        auto r = pagewire::guarded(t.map.data(), t.map.size(), [] {
            inside.store(true);
            while (!release.load()) {
            }
        });
        (void)r;
    });
    while (!inside.load()) {
    }
    (void)raw_read(t.page(2));
    release.store(true);
    guarder.join();
    return kExitSurvived;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: guard_helper SCENARIO\n");
        return 2;
    }
    rlimit no_core{0, 0};  // the default action of SIGBUS dumps core
    setrlimit(RLIMIT_CORE, &no_core);
    std::string s = argv[1];
    if (s == "chain-siginfo") return chain(true);
    if (s == "chain-plain") return chain(false);
    if (s == "unrelated-fault") return unrelated_fault();
    if (s == "raise-default") return raise_default();
    if (s == "kill-default") return kill_default();
    if (s == "outside-range") return outside_range();
    if (s == "other-thread") return other_thread();
    std::fprintf(stderr, "guard_helper: unknown scenario %s\n", argv[1]);
    return 2;
}
