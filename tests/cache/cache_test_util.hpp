// Helpers for the page-cache and process-maps tests: scratch directories on a
// disk filesystem (page-cache behaviour on tmpfs is not the real thing),
// files of known data, exact control of which pages are resident, running a
// program (optionally as another user) with its output captured and a time
// limit, and the counts that vmtouch and util-linux fincore report.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cachetest {

[[noreturn]] inline void die(const std::string& what, int err = errno) {
    throw std::runtime_error(what + ": " + std::strerror(err));
}

inline std::uint64_t page_size() {
    return static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

inline std::uint64_t pages_of(std::uint64_t bytes) {
    return (bytes + page_size() - 1) / page_size();
}

// A fresh directory under /var/tmp (mkdtemp, mode 0700), removed with its
// contents on destruction. Refuses a tmpfs /var/tmp: there every file page
// lives in the page cache until deleted, so eviction could not be tested.
class DiskDir {
public:
    DiskDir() {
        struct statfs fs {};
        if (::statfs("/var/tmp", &fs) != 0) die("statfs /var/tmp");
        if (fs.f_type == TMPFS_MAGIC) {
            throw std::runtime_error("/var/tmp is tmpfs: page-cache tests need a disk filesystem");
        }
        char pattern[] = "/var/tmp/pagewire-cache-test-XXXXXX";
        if (::mkdtemp(pattern) == nullptr) die("mkdtemp");
        path_ = pattern;
    }
    ~DiskDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    DiskDir(const DiskDir&) = delete;
    DiskDir& operator=(const DiskDir&) = delete;

    const std::string& path() const { return path_; }
    std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

private:
    std::string path_;
};

// Deterministic, non-zero-run bytes: page `i` of a file differs from page `j`.
inline void fill_pattern(std::vector<char>& buf, std::uint64_t offset, std::uint32_t seed) {
    std::uint64_t x = (offset / 8 + 1) * 0x9e3779b97f4a7c15ULL ^ seed;
    for (std::size_t i = 0; i < buf.size(); ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = static_cast<char>(x);
    }
}

// Creates (or replaces) a file of `size` bytes of data, written back to disk
// so that all its pages are clean.
inline void make_file(const std::string& path, std::uint64_t size, std::uint32_t seed = 1,
                      mode_t mode = 0644) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) die("open " + path);
    std::vector<char> buf(1 << 20);
    for (std::uint64_t off = 0; off < size; off += buf.size()) {
        fill_pattern(buf, off, seed);
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
        for (std::size_t done = 0; done < n;) {
            ssize_t w = ::pwrite(fd, buf.data() + done, n - done, static_cast<off_t>(off + done));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) die("pwrite " + path);
            done += static_cast<std::size_t>(w);
        }
    }
    if (::fdatasync(fd) != 0) die("fdatasync " + path);
    if (::fchmod(fd, mode) != 0) die("fchmod " + path);  // umask left out of it
    ::close(fd);
}

// Writes the file back and drops all its pages from the page cache (the
// test's own way, independent of pagewire::evict).
inline void drop_pages(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    if (::fdatasync(fd) != 0) die("fdatasync " + path);
    const int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
    if (err != 0) die("posix_fadvise " + path, err);
}

// Reads exactly the given pages with pread on a descriptor advised
// POSIX_FADV_RANDOM: no readahead, so afterwards these pages are resident
// and (after drop_pages) no others.
inline void read_pages(const std::string& path, const std::vector<std::uint64_t>& pages) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    const int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    if (err != 0) die("posix_fadvise RANDOM " + path, err);
    std::vector<char> buf(page_size());
    for (std::uint64_t p : pages) {
        if (::pread(fd, buf.data(), 1, static_cast<off_t>(p * page_size())) < 0)
            die("pread " + path);
    }
    ::close(fd);
}

// Per-page residency seen through mincore, independent of pagewire.
inline std::vector<bool> mincore_map(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    struct stat st {};
    ::fstat(fd, &st);
    const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    std::vector<bool> map;
    if (size != 0) {
        void* addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
        if (addr == MAP_FAILED) die("mmap " + path);
        std::vector<unsigned char> vec(pages_of(size));
        if (::mincore(addr, size, vec.data()) != 0) die("mincore " + path);
        ::munmap(addr, size);
        for (unsigned char v : vec) map.push_back((v & 1) != 0);
    }
    ::close(fd);
    return map;
}

inline std::vector<bool> map_with(std::uint64_t pages, const std::vector<std::uint64_t>& resident) {
    std::vector<bool> map(pages, false);
    for (std::uint64_t p : resident) map.at(p) = true;
    return map;
}

// ---- running programs --------------------------------------------------------

struct RunResult {
    int status = -1;  // raw wait status
    std::string out;
    std::string err;
    bool timed_out = false;  // killed with SIGKILL after the time limit

    int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

inline std::ostream& operator<<(std::ostream& os, const RunResult& r) {
    os << (r.timed_out ? "TIMED OUT, " : "");
    if (WIFEXITED(r.status)) {
        os << "exit " << WEXITSTATUS(r.status);
    } else if (WIFSIGNALED(r.status)) {
        os << "signal " << WTERMSIG(r.status);
    }
    return os << "\n--- stdout ---\n"
              << (r.out.size() > 3000 ? r.out.substr(0, 3000) + "..." : r.out)
              << "\n--- stderr ---\n"
              << r.err;
}

struct User {
    uid_t uid;
    gid_t gid;
};

// The unprivileged account tests run commands as, when they run as root.
inline std::optional<User> nobody() {
    const passwd* pw = ::getpwnam("nobody");
    if (pw == nullptr) return std::nullopt;
    return User{pw->pw_uid, pw->pw_gid};
}

struct RunOptions {
    std::optional<User> as_user;  // setgid/setuid in the child before exec (needs root)
    std::chrono::milliseconds limit{20000};
};

// Runs argv (argv[0] a path or a name in PATH), stdin from /dev/null, with
// stdout and stderr captured. A program still running after the limit is
// killed and the result says timed_out, so a hang fails the test instead of
// stalling it.
inline RunResult run(const std::vector<std::string>& argv, const RunOptions& options = {}) {
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) die("pipe2");
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        const int null = ::open("/dev/null", O_RDONLY);
        ::dup2(null, STDIN_FILENO);
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        if (options.as_user) {
            if (::setgroups(0, nullptr) != 0 || ::setgid(options.as_user->gid) != 0 ||
                ::setuid(options.as_user->uid) != 0) {
                std::fprintf(stderr, "setuid: %s\n", std::strerror(errno));
                ::_exit(126);
            }
        }
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    RunResult result;
    const auto deadline = std::chrono::steady_clock::now() + options.limit;
    int fds[2] = {out_pipe[0], err_pipe[0]};
    std::string* sinks[2] = {&result.out, &result.err};
    char buf[65536];
    while (fds[0] >= 0 || fds[1] >= 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            result.timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        pollfd pfd[2];
        nfds_t n = 0;
        for (int fd : fds) {
            if (fd >= 0) pfd[n++] = {fd, POLLIN, 0};
        }
        const int r = ::poll(pfd, n, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) die("poll");
        for (nfds_t i = 0; i < n; ++i) {
            if (pfd[i].revents == 0) continue;
            const int k = pfd[i].fd == fds[0] ? 0 : 1;
            const ssize_t got = ::read(fds[k], buf, sizeof buf);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                ::close(fds[k]);
                fds[k] = -1;
            } else {
                sinks[k]->append(buf, static_cast<std::size_t>(got));
            }
        }
    }
    for (int fd : fds) {
        if (fd >= 0) ::close(fd);
    }
    while (::waitpid(pid, &result.status, 0) < 0) {
        if (errno != EINTR) die("waitpid");
    }
    return result;
}

inline std::size_t line_count(std::string_view s) {
    std::size_t n = 0;
    for (char c : s) n += c == '\n';
    return n + (!s.empty() && s.back() != '\n' ? 1 : 0);
}

inline bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// ---- the peers ---------------------------------------------------------------

// What `vmtouch PATH...` reports: "Resident Pages: a/b ...".
struct VmtouchCount {
    std::uint64_t resident = 0;
    std::uint64_t pages = 0;
};

inline VmtouchCount vmtouch_count(const std::vector<std::string>& paths) {
    std::vector<std::string> argv{PAGEWIRE_VMTOUCH};
    argv.insert(argv.end(), paths.begin(), paths.end());
    const RunResult r = run(argv);
    if (r.exit_code() != 0) {
        std::ostringstream os;
        os << "vmtouch failed: " << r;
        throw std::runtime_error(os.str());
    }
    const auto pos = r.out.find("Resident Pages:");
    VmtouchCount c;
    if (pos == std::string::npos ||
        std::sscanf(r.out.c_str() + pos, "Resident Pages: %lu/%lu", &c.resident, &c.pages) != 2) {
        throw std::runtime_error("no 'Resident Pages: a/b' line in vmtouch's output:\n" + r.out);
    }
    return c;
}

// Sum of `fincore`'s PAGES column over the files (fincore takes files only).
inline std::uint64_t fincore_pages(const std::vector<std::string>& files) {
    std::vector<std::string> argv{PAGEWIRE_FINCORE, "--bytes",  "--noheadings",
                                  "--raw",          "--output", "PAGES,RES,FILE"};
    argv.insert(argv.end(), files.begin(), files.end());
    const RunResult r = run(argv);
    if (r.exit_code() != 0) {
        std::ostringstream os;
        os << "fincore failed: " << r;
        throw std::runtime_error(os.str());
    }
    std::istringstream in(r.out);
    std::uint64_t total = 0;
    std::size_t lines = 0;
    for (std::string line; std::getline(in, line); ++lines) {
        std::uint64_t pages = 0, res = 0;
        if (std::sscanf(line.c_str(), "%lu %lu", &pages, &res) != 2 || res != pages * page_size()) {
            throw std::runtime_error("unexpected fincore line: " + line);
        }
        total += pages;
    }
    if (lines != files.size()) {
        throw std::runtime_error("fincore printed " + std::to_string(lines) + " lines for " +
                                 std::to_string(files.size()) + " files:\n" + r.out);
    }
    return total;
}

}  // namespace cachetest
