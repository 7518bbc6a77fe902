// pagewire cache stat|evict|warm|lock PATH... — see and steer the page cache
// for files and directory trees (what vmtouch and fincore do), built on
// pagewire/page_cache.hpp.
//
// Trees are walked with openat/fdopendir relative to each directory's
// descriptor (no path lookups from the root per file), one open directory per
// level of depth, and hard-linked files are counted once. Errors on single
// files are reported and skipped; the exit status is 1 if any occurred, like du.
#include "commands.hpp"

#include <pagewire/error.hpp>
#include <pagewire/page_cache.hpp>

#include "sys.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <set>
#include <utility>
#include <vector>

namespace pagewire::cli {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr int kMapColumns = 60;  // width of a --map page map line
constexpr auto kProgressInterval = std::chrono::milliseconds(250);

enum class Action { Stat, Evict, Warm, Lock };

struct CacheArgs {
    Action action = Action::Stat;
    std::vector<std::string> paths;
    bool verbose = false;
    bool map = false;
    bool json = false;
    bool write_dirty = false;
    bool daemon = false;
};

std::string human(std::uint64_t bytes) {
    static const char* kUnits[] = {"B", "K", "M", "G", "T", "P"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        ++u;
    }
    return u == 0 ? fmt::format("{}{}", bytes, kUnits[0]) : fmt::format("{:.1f}{}", v, kUnits[u]);
}

std::string percent(std::uint64_t part, std::uint64_t whole) {
    return whole == 0 ? "-" : fmt::format("{:.1f}%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

// vmtouch -v style: each column stands for a bucket of pages; 'O' all
// resident, 'o' some, ' ' none.
std::string page_map(const std::vector<bool>& pages) {
    if (pages.empty()) return "[]";
    const std::size_t columns = std::min<std::size_t>(kMapColumns, pages.size());
    std::string line = "[";
    for (std::size_t c = 0; c < columns; ++c) {
        const std::size_t begin = pages.size() * c / columns;
        const std::size_t end = pages.size() * (c + 1) / columns;
        std::size_t in = 0;
        for (std::size_t i = begin; i < end; ++i) in += pages[i];
        line += in == 0 ? ' ' : in == end - begin ? 'O' : 'o';
    }
    return line + "]";
}

Json optional_json(const std::optional<std::uint64_t>& v) {
    return v ? Json(*v) : Json(nullptr);
}

Json stat_json(const CacheStat& s, std::uint64_t bytes) {
    return Json{{"bytes", bytes},
                {"pages", s.pages},
                {"cached", s.cached},
                {"dirty", optional_json(s.dirty)},
                {"writeback", optional_json(s.writeback)},
                {"evicted", optional_json(s.evicted)},
                {"recently_evicted", optional_json(s.recently_evicted)}};
}

// Walks the paths and applies the action to every regular file.
class Walker {
public:
    explicit Walker(const CacheArgs& args) : args_(args), start_(Clock::now()) {
        show_progress_ = !args.json && ::isatty(STDERR_FILENO);
    }

    void run() {
        for (const auto& path : args_.paths) top(path);
        if (show_progress_ && progress_shown_) fmt::print(stderr, "\r\033[K");
    }

    bool had_errors() const { return errors_ != 0; }
    std::vector<CacheLock>& locks() { return locks_; }

    void print_summary() const {
        const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
        const std::uint64_t page = Mapping::page_size();
        if (args_.json) {
            Json j{{"action", action_name()},
                   {"files", files_},
                   {"directories", directories_},
                   {"skipped", skipped_},
                   {"hidden", hidden_},
                   {"errors", errors_},
                   {"totals", stat_json(total_, bytes_)},
                   {"probe", kernel_has_cachestat() ? "cachestat" : "mincore"},
                   {"elapsed_seconds", elapsed}};
            if (args_.verbose || args_.map) j["files_detail"] = detail_;
            fmt::print("{}\n", j.dump(2));
            return;
        }
        fmt::print("{:>16}: {}\n", "Files", files_);
        fmt::print("{:>16}: {}\n", "Directories", directories_);
        if (skipped_ != 0) fmt::print("{:>16}: {}\n", "Skipped", skipped_);
        if (hidden_ != 0) {
            fmt::print(
                "{:>16}: {} (the kernel shows page-cache residency only to a file's owner or "
                "to users who may write it)\n",
                "Hidden", hidden_);
        }
        fmt::print("{:>16}: {}/{}  {}/{}  {}\n", "Resident pages", total_.cached, total_.pages,
                   human(total_.cached * page), human(total_.pages * page),
                   percent(total_.cached, total_.pages));
        if (total_.dirty) {
            fmt::print("{:>16}: {}  writeback {}  evicted {}  recently evicted {}\n", "Dirty pages",
                       *total_.dirty, total_.writeback.value_or(0), total_.evicted.value_or(0),
                       total_.recently_evicted.value_or(0));
        }
        fmt::print("{:>16}: {:.4f} seconds\n", "Elapsed", elapsed);
    }

private:
    const char* action_name() const {
        switch (args_.action) {
            case Action::Stat: return "stat";
            case Action::Evict: return "evict";
            case Action::Warm: return "warm";
            case Action::Lock: return "lock";
        }
        return "stat";
    }

    void report(const std::string& path, const std::string& what) {
        ++errors_;
        if (show_progress_ && progress_shown_) fmt::print(stderr, "\r\033[K");
        fmt::print(stderr, "pagewire: cache {} {}: {}\n", action_name(), path, what);
    }

    // A path named on the command line: symlinks are followed here (not in trees).
    void top(const std::string& path) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
            report(path, std::strerror(errno));
            return;
        }
        if (S_ISDIR(st.st_mode)) {
            int fd = sys::retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
            if (fd < 0) {
                report(path, std::strerror(errno));
                return;
            }
            directory(fd, path);
        } else if (S_ISREG(st.st_mode)) {
            file(AT_FDCWD, path.c_str(), path);
        } else {
            report(path, "not a regular file or directory");
        }
    }

    // Takes ownership of dir_fd.
    void directory(int dir_fd, const std::string& path) {
        DIR* dir = ::fdopendir(dir_fd);
        if (dir == nullptr) {
            ::close(dir_fd);
            report(path, std::strerror(errno));
            return;
        }
        ++directories_;
        std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, ::closedir);
        while (true) {
            errno = 0;
            const dirent* e = ::readdir(dir);
            if (e == nullptr) {
                if (errno != 0) report(path, std::strerror(errno));
                break;
            }
            const char* name = e->d_name;
            if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
            unsigned char type = e->d_type;
            if (type == DT_UNKNOWN) {
                struct stat st {};
                if (::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                    report(path + "/" + name, std::strerror(errno));
                    continue;
                }
                type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
            }
            if (type == DT_DIR) {
                int fd = sys::retry_eintr([&] {
                    return ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                });
                if (fd < 0) {
                    report(path + "/" + name, std::strerror(errno));
                    continue;
                }
                directory(fd, path + "/" + name);
            } else if (type == DT_REG) {
                file(dir_fd, name, path);
            } else {
                ++skipped_;  // symlinks, FIFOs, sockets, devices inside a tree
            }
        }
    }

    void file(int dir_fd, const char* name, const std::string& parent) {
        auto full = [&] { return dir_fd == AT_FDCWD ? parent : parent + "/" + name; };
        // O_NONBLOCK: a FIFO swapped in after readdir must not block the walk.
        // Symlinks are followed only when named on the command line (dir_fd == AT_FDCWD).
        int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
        if (dir_fd != AT_FDCWD) flags |= O_NOFOLLOW;
        int fd = sys::retry_eintr([&] { return ::openat(dir_fd, name, flags | O_NOATIME); });
        if (fd < 0 && errno == EPERM) fd = sys::retry_eintr([&] { return ::openat(dir_fd, name, flags); });
        if (fd < 0) {
            report(full(), std::strerror(errno));
            return;
        }
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            ::close(fd);
            report(full(), "not a regular file");
            return;
        }
        if (st.st_nlink > 1 && !seen_.insert({st.st_dev, st.st_ino}).second) {
            ::close(fd);
            return;  // another name of a file already counted
        }
        const std::string path = full();
        const auto size = static_cast<std::uint64_t>(st.st_size);
        // EPERM while counting is the kernel hiding another user's file's
        // residency (see page_cache.cpp); the action itself was done.
        bool counting = args_.action != Action::Lock;
        try {
            File f = File::adopt(UniqueFd(fd), path, false);
            CacheStat s;
            switch (args_.action) {
                case Action::Stat: s = cache_stat(f); break;
                case Action::Evict: s = evict(f, args_.write_dirty); break;
                case Action::Warm: s = warm(f); break;
                case Action::Lock:
                    locks_.emplace_back(f);
                    counting = true;
                    s = cache_stat(f);
                    break;
            }
            ++files_;
            bytes_ += size;
            total_ += s;
            if (args_.verbose || args_.map) detail(f, path, s, size);
        } catch (const Error& e) {
            if (counting && e.error_number() == EPERM) {
                hidden(path, size);
            } else {
                report(path, e.what());
            }
        }
        progress();
    }

    // A file whose residency the kernel does not show to this user: not in
    // the totals, counted apart, listed with -v.
    void hidden(const std::string& path, std::uint64_t size) {
        ++hidden_;
        if (!args_.verbose && !args_.map) return;
        if (args_.json) {
            detail_.push_back(Json{{"path", path}, {"bytes", size}, {"hidden", true}});
            return;
        }
        if (show_progress_ && progress_shown_) fmt::print(stderr, "\r\033[K");
        fmt::print("{:>8} {:>7} {:>10} {}\n", human(size), "-", "hidden", path);
    }

    void detail(const File& f, const std::string& path, const CacheStat& s, std::uint64_t size) {
        std::vector<bool> pages;
        if (args_.map) pages = cache_map(f);
        if (args_.json) {
            Json j = stat_json(s, size);
            j["path"] = path;
            if (args_.map) {
                std::string bits;
                for (bool b : pages) bits += b ? '1' : '0';
                j["map"] = bits;
            }
            detail_.push_back(std::move(j));
            return;
        }
        if (show_progress_ && progress_shown_) fmt::print(stderr, "\r\033[K");
        fmt::print("{:>8} {:>7} {:>10} {}\n", human(size), percent(s.cached, s.pages),
                   fmt::format("{}/{}", s.cached, s.pages), path);
        if (args_.map) fmt::print("         {} {}/{}\n", page_map(pages), s.cached, s.pages);
    }

    void progress() {
        if (!show_progress_) return;
        const auto now = Clock::now();
        if (now - start_ < std::chrono::seconds(1) || now - last_progress_ < kProgressInterval) return;
        last_progress_ = now;
        progress_shown_ = true;
        fmt::print(stderr, "\r\033[K{} files, {} directories, {} resident of {} ...", files_, directories_,
                   human(total_.cached * Mapping::page_size()), human(total_.pages * Mapping::page_size()));
    }

    const CacheArgs& args_;
    Clock::time_point start_;
    Clock::time_point last_progress_{};
    bool show_progress_ = false;
    bool progress_shown_ = false;
    std::uint64_t files_ = 0;
    std::uint64_t directories_ = 0;
    std::uint64_t skipped_ = 0;
    std::uint64_t hidden_ = 0;  // files whose residency the kernel hides from this user
    std::uint64_t errors_ = 0;
    std::uint64_t bytes_ = 0;
    CacheStat total_{.dirty = 0, .writeback = 0, .evicted = 0, .recently_evicted = 0};
    std::set<std::pair<dev_t, ino_t>> seen_;  // multiply-linked files already counted
    Json detail_ = Json::array();
    std::vector<CacheLock> locks_;
};

// Deep trees keep one directory open per level: allow as many as we may.
void raise_open_file_limit() {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

// SIGINT, SIGTERM and SIGHUP end a lock. They are blocked before the lock is
// announced, so one sent right after the announcement is taken by sigwait
// (a clean exit) instead of killing the process with the locks held.
sigset_t block_stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, sig);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    return set;
}

// Blocks until one of the signals in `set` (blocked already) arrives.
void wait_for_stop_signal(const sigset_t& set) {
    int sig = 0;
    sigwait(&set, &sig);
}

void run_cache(const CacheArgs& args) {
    raise_open_file_limit();
    if (args.action == Action::Lock && args.daemon) {
        // Lock in a detached child; the parent reports once the pages are held.
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw_error("cache lock", "pipe");
        const pid_t pid = ::fork();
        if (pid < 0) throw_error("cache lock", "fork");
        if (pid > 0) {
            ::close(fds[1]);
            char status = 0;
            const ssize_t n = sys::retry_eintr([&] { return ::read(fds[0], &status, 1); });
            if (n != 1 || status != 'Y') throw_error("cache lock", args.paths.front(), EIO, "the locking daemon failed (see above)");
            fmt::print("pagewire: cache lock daemon {} holds the pages; stop it with kill {}\n", pid, pid);
            return;
        }
        ::close(fds[0]);
        ::setsid();
        const sigset_t stop = block_stop_signals();
        Walker walker(args);
        walker.run();
        walker.print_summary();
        std::fflush(stdout);
        const char status = walker.had_errors() && walker.locks().empty() ? 'N' : 'Y';
        sys::write_full(fds[1], &status, 1);
        ::close(fds[1]);
        const int null = ::open("/dev/null", O_RDWR);
        for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) ::dup2(null, fd);
        if (status == 'Y') wait_for_stop_signal(stop);
        std::_Exit(status == 'Y' ? 0 : 1);
    }
    Walker walker(args);
    walker.run();
    walker.print_summary();
    if (args.action == Action::Lock && !walker.locks().empty()) {
        const sigset_t stop = block_stop_signals();
        fmt::print("holding the pages in memory until interrupted (Ctrl-C or SIGTERM)\n");
        std::fflush(stdout);
        wait_for_stop_signal(stop);
    }
    if (walker.had_errors()) {
        throw Error("cache", args.paths.size() == 1 ? args.paths.front() : "", EIO,
                    "some paths could not be processed (reported above)");
    }
}

void add_action(CLI::App& cache, const char* name, const char* help, Action action) {
    auto args = std::make_shared<CacheArgs>();
    args->action = action;
    CLI::App* cmd = cache.add_subcommand(name, help);
    cmd->add_option("PATH", args->paths, "Files and directories (walked recursively)")->required();
    cmd->add_flag("-v,--verbose", args->verbose, "One line per file");
    cmd->add_flag("--json", args->json, "Print JSON instead of text");
    if (action == Action::Stat) {
        cmd->add_flag("--map", args->map, "Page map per file, like vmtouch -v ('O' resident, 'o' partly, ' ' not)");
    }
    if (action == Action::Evict) {
        cmd->add_flag("--write-dirty", args->write_dirty,
                      "Write dirty pages back first so they can be evicted too (else they stay cached)");
    }
    if (action == Action::Lock) {
        cmd->add_flag("--daemon", args->daemon, "Hold the locks in a background process");
    }
    cmd->callback([args] { run_cache(*args); });
}

}  // namespace

void register_cache(CLI::App& app) {
    CLI::App* cache = app.add_subcommand("cache", "See and steer the page cache for files and trees");
    cache->require_subcommand(1);
    add_action(*cache, "stat", "How much of each file is in the page cache", Action::Stat);
    add_action(*cache, "evict", "Drop the files' pages from the page cache", Action::Evict);
    add_action(*cache, "warm", "Read the files into the page cache", Action::Warm);
    add_action(*cache, "lock", "Lock the files' pages in memory until interrupted", Action::Lock);
}

}  // namespace pagewire::cli
