// Helpers shared by pagewire's tests: temporary directories, whole-file I/O,
// running a program with its output captured (optionally as another user,
// always with a time limit), and running a function in a forked child.
// Everything here uses real files and real processes.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace testutil {

// Whether the test binary is built with AddressSanitizer / ThreadSanitizer:
// g++ defines __SANITIZE_*__, clang has __has_feature.
#if defined(__has_feature)
#define PAGEWIRE_TEST_HAS_FEATURE(x) __has_feature(x)
#else
#define PAGEWIRE_TEST_HAS_FEATURE(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || PAGEWIRE_TEST_HAS_FEATURE(address_sanitizer)
inline constexpr bool kAsan = true;
#else
inline constexpr bool kAsan = false;
#endif
#if defined(__SANITIZE_THREAD__) || PAGEWIRE_TEST_HAS_FEATURE(thread_sanitizer)
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif

// Throws "what: strerror(err)"; err defaults to errno, for calls that return
// their error (posix_fadvise) instead of setting errno.
[[noreturn]] inline void die(const std::string& what, int err = errno) {
    throw std::runtime_error(what + ": " + std::strerror(err));
}

inline std::size_t page_size() {
    return static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// A fresh directory (mkdtemp, mode 0700) made from `templ`, which ends in
// XXXXXX; removed with its contents on destruction.
class TempDir {
  public:
    explicit TempDir(std::string templ = "/tmp/pagewire-test-XXXXXX") {
        if (::mkdtemp(templ.data()) == nullptr) die("mkdtemp " + templ);
        path_ = std::move(templ);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

  private:
    std::string path_;
};

// A tmpfs of `size` (mount(2) option text, e.g. "1m") mounted on a fresh
// directory: a filesystem that fills up on cue. Needs CAP_SYS_ADMIN; when the
// mount fails, mounted() is false and why() says so (tests GTEST_SKIP).
// Unmounted (lazily, in case something still holds a file) on destruction.
class SmallTmpfs {
  public:
    explicit SmallTmpfs(const std::string& size) {
        const std::string options = "size=" + size + ",mode=0755";
        if (::mount("none", dir_.path().c_str(), "tmpfs", 0, options.c_str()) == 0) {
            mounted_ = true;
        } else {
            why_ = "mount -t tmpfs -o " + options + ": " + std::strerror(errno);
        }
    }
    ~SmallTmpfs() {
        if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
    }
    SmallTmpfs(const SmallTmpfs&) = delete;
    SmallTmpfs& operator=(const SmallTmpfs&) = delete;

    bool mounted() const { return mounted_; }
    const std::string& why() const { return why_; }
    std::string file(std::string_view name) const { return dir_.file(name); }

  private:
    TempDir dir_;
    bool mounted_ = false;
    std::string why_;
};

inline void write_file(const std::string& path, std::string_view content, mode_t mode = 0644) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) die("open " + path);
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            ::close(fd);
            die("write " + path);
        }
        done += static_cast<std::size_t>(n);
    }
    ::close(fd);
}

inline std::string read_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            ::close(fd);
            die("read " + path);
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

inline struct stat stat_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) die("stat " + path);
    return st;
}

inline std::uint64_t file_size(const std::string& path) {
    return static_cast<std::uint64_t>(stat_of(path).st_size);
}

// pread of exactly n bytes (fewer only at end of file).
inline std::string pread_file(const std::string& path, std::uint64_t offset, std::size_t n) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    std::string out(n, '\0');
    std::size_t done = 0;
    while (done < n) {
        ssize_t r = ::pread(fd, out.data() + done, n - done, static_cast<off_t>(offset + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            ::close(fd);
            die("pread " + path);
        }
        if (r == 0) break;
        done += static_cast<std::size_t>(r);
    }
    ::close(fd);
    out.resize(done);
    return out;
}

// Deterministic pseudo-random bytes.
inline std::string random_bytes(std::size_t n, std::uint32_t seed = 12345) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
}

// fsync the file, then drop its clean pages from the page cache.
inline void evict_from_page_cache(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    if (::fsync(fd) != 0) die("fsync " + path);
    if (::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) die("posix_fadvise " + path);
    ::close(fd);
}

struct RunResult {
    int status = -1;         // raw wait status
    std::string out;         // everything the program wrote to stdout
    std::string err;         // everything the program wrote to stderr
    bool timed_out = false;  // killed with SIGKILL after RunOptions::timeout

    bool exited() const { return WIFEXITED(status); }
    int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
    bool signaled() const { return WIFSIGNALED(status); }
    int term_signal() const { return WIFSIGNALED(status) ? WTERMSIG(status) : 0; }
};

inline std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

inline std::ostream& operator<<(std::ostream& os, const RunResult& r) {
    return os << (r.timed_out ? "TIMED OUT, " : "") << describe_status(r.status) << "\n--- stdout ("
              << r.out.size() << " bytes) ---\n"
              << (r.out.size() > 2000 ? r.out.substr(0, 2000) + "..." : r.out)
              << "\n--- stderr ---\n"
              << r.err;
}

inline int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) die("waitpid");
    }
    return status;
}

// An account a child switches to before it execs or runs its function.
struct User {
    uid_t uid;
    gid_t gid;
};

// The unprivileged account tests run things as, when they run as root.
inline std::optional<User> nobody() {
    const passwd* pw = ::getpwnam("nobody");
    if (pw == nullptr) return std::nullopt;
    return User{pw->pw_uid, pw->pw_gid};
}

// In a child: drops supplementary groups, then setgid, then setuid (needs
// root). False, errno set, when one of them fails.
inline bool become(const User& user) {
    return ::setgroups(0, nullptr) == 0 && ::setgid(user.gid) == 0 && ::setuid(user.uid) == 0;
}

// Seconds run() lets a program take by default before it kills it with
// SIGKILL (which, unlike SIGTERM, a program cannot hold off).
inline constexpr int kRunTimeoutSeconds = 90;

struct RunOptions {
    std::string input;                   // written to stdin, then EOF (empty: EOF at once)
    std::vector<std::string> extra_env;  // "NAME=value" added to the environment
    std::optional<User> as_user;         // become() in the child before exec
    // setrlimit(resource, {value, value}) in the child before exec (RLIMIT_FSIZE
    // for `ulimit -f`); signal dispositions are left as the test has them.
    std::vector<std::pair<int, rlim_t>> limits;
    std::chrono::milliseconds timeout{std::chrono::seconds(kRunTimeoutSeconds)};
};

// Runs argv[0] (a path, or a name searched in PATH) with stdin fed from
// options.input, capturing stdout and stderr. The pipes are drained with poll
// so neither side can block the other. A program still running after
// options.timeout is killed with SIGKILL and the result says timed_out, so a
// hang fails the test instead of stalling it.
inline RunResult run(const std::vector<std::string>& argv, const RunOptions& options) {
    int out_pipe[2], err_pipe[2], in_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
        ::pipe2(in_pipe, O_CLOEXEC) != 0)
        die("pipe2");
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        ::dup2(in_pipe[0], STDIN_FILENO);
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        for (const auto& e : options.extra_env) ::putenv(const_cast<char*>(e.c_str()));
        for (const auto& [resource, value] : options.limits) {
            const rlimit limit{value, value};
            if (::setrlimit(resource, &limit) != 0) {
                std::fprintf(stderr, "setrlimit: %s\n", std::strerror(errno));
                ::_exit(126);
            }
        }
        if (options.as_user && !become(*options.as_user)) {
            std::fprintf(stderr, "setuid: %s\n", std::strerror(errno));
            ::_exit(126);
        }
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    ::close(in_pipe[0]);

    RunResult result;
    const std::string_view input = options.input;
    std::size_t in_done = 0;
    int in_fd = in_pipe[1];
    if (input.empty()) {
        ::close(in_fd);
        in_fd = -1;
    } else {
        ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
    }
    int out_fd = out_pipe[0], err_fd = err_pipe[0];
    char buf[65536];
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    while (out_fd >= 0 || err_fd >= 0 || in_fd >= 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            // Not waiting for the pipes to close: a grandchild may hold them.
            ::kill(pid, SIGKILL);
            result.timed_out = true;
            result.err += "[testutil::run: killed after " +
                          std::to_string(options.timeout.count()) + " ms]\n";
            break;
        }
        pollfd fds[3];
        int n = 0;
        if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
        if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
        if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
        int ready = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(left.count()));
        if (ready < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        for (int i = 0; i < n; ++i) {
            if (fds[i].revents == 0) continue;
            if (fds[i].fd == in_fd) {
                ssize_t w = ::write(in_fd, input.data() + in_done, input.size() - in_done);
                if (w > 0) in_done += static_cast<std::size_t>(w);
                if (w < 0 && errno != EAGAIN && errno != EINTR) in_done = input.size();
                if (in_done == input.size()) {
                    ::close(in_fd);
                    in_fd = -1;
                }
                continue;
            }
            ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                ::close(fds[i].fd);
                (fds[i].fd == out_fd ? out_fd : err_fd) = -1;
                continue;
            }
            (fds[i].fd == out_fd ? result.out : result.err)
                .append(buf, static_cast<std::size_t>(r));
        }
    }
    for (int fd : {out_fd, err_fd, in_fd}) {
        if (fd >= 0) ::close(fd);
    }
    result.status = wait_for(pid);
    return result;
}

// The short form: stdin data and extra environment, the default time limit.
inline RunResult run(const std::vector<std::string>& argv, std::string_view input = {},
                     const std::vector<std::string>& extra_env = {}) {
    RunOptions options;
    options.input = std::string(input);
    options.extra_env = extra_env;
    return run(argv, options);
}

// Runs fn in a forked child and returns the child's raw wait status. The child
// ends with _exit(fn()) (no atexit handlers, no gtest teardown); an exception
// escaping fn ends it with 99. Core dumps are disabled in the child, since
// several tests expect it to die of a signal.
inline int run_in_child(const std::function<int()>& fn) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        rlimit no_core{0, 0};
        ::setrlimit(RLIMIT_CORE, &no_core);
        int code = 99;
        try {
            code = fn();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: exception: %s\n", e.what());
        } catch (...) {
            std::fprintf(stderr, "child: unknown exception\n");
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    return wait_for(pid);
}

// Runs fn and returns the E it threw, or nullopt if it returned normally.
// Any other exception propagates (and fails the test).
template <class E, class F>
std::optional<E> catch_as(F&& fn) {
    try {
        fn();
    } catch (const E& e) {
        return e;
    }
    return std::nullopt;
}

// Counts the lines of s (a last line without '\n' counts too).
inline std::size_t line_count(std::string_view s) {
    std::size_t n = 0;
    for (char c : s)
        if (c == '\n') ++n;
    if (!s.empty() && s.back() != '\n') ++n;
    return n;
}

inline bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// The VmFlags line of the /proc/self/smaps entry containing addr, e.g.
// "rd wr mr mw me ac sd", or "" if no mapping contains it.
inline std::string vm_flags_of(const void* addr) {
    std::string smaps = read_file("/proc/self/smaps");
    auto a = reinterpret_cast<std::uintptr_t>(addr);
    std::size_t pos = 0;
    bool inside = false;
    while (pos < smaps.size()) {
        std::size_t eol = smaps.find('\n', pos);
        if (eol == std::string::npos) eol = smaps.size();
        std::string line = smaps.substr(pos, eol - pos);
        pos = eol + 1;
        std::uintptr_t lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find('-') < 17) {
            inside = lo <= a && a < hi;
            continue;
        }
        if (inside && line.rfind("VmFlags:", 0) == 0) return line.substr(8) + " ";
    }
    return "";
}

inline bool has_vm_flag(const void* addr, std::string_view flag) {
    // Appended, not `" " + std::string(flag)`: GCC 12 at -O3 warns falsely
    // (-Wrestrict, GCC bug 105329) about operator+(const char*, std::string&&).
    std::string needle = " ";
    needle += flag;
    needle += ' ';
    return contains(vm_flags_of(addr), needle);
}

// "VmLck:" of /proc/self/status, in kB.
inline long vm_locked_kb() {
    std::string status = read_file("/proc/self/status");
    auto pos = status.find("VmLck:");
    if (pos == std::string::npos) return -1;
    return std::strtol(status.c_str() + pos + 6, nullptr, 10);
}

#ifdef PAGEWIRE_CLI
// Runs the pagewire command this tree built (PAGEWIRE_CLI) with `args`.
inline RunResult run_pagewire(std::vector<std::string> args, const RunOptions& options) {
    args.insert(args.begin(), PAGEWIRE_CLI);
    return run(args, options);
}
inline RunResult run_pagewire(std::vector<std::string> args, std::string_view input = {}) {
    RunOptions options;
    options.input = std::string(input);
    return run_pagewire(std::move(args), options);
}
#endif

// prefix followed by n in decimal ("k" + 7 = "k7"), built by appending: g++ 12
// at -O3 warns falsely (-Wrestrict, GCC bug 105651) on a one-letter literal +
// std::to_string.
inline std::string numbered(std::string prefix, long long n) {
    prefix += std::to_string(n);
    return prefix;
}

}  // namespace testutil
