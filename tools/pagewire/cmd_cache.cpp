// pagewire cache stat|evict|warm|lock PATH... — see and steer the page cache
// for files and directory trees (what vmtouch and fincore do), built on
// pagewire/page_cache.hpp.
//
// Trees are walked by pagewire::walk_files (pagewire/file_tree.hpp); errors on
// single files are reported and skipped; the exit status is 1 if any
// occurred, like du.
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <pagewire/error.hpp>
#include <pagewire/file_tree.hpp>
#include <pagewire/io.hpp>
#include <pagewire/page_cache.hpp>
#include <pagewire/units.hpp>
#include <utility>
#include <vector>

#include "cli_util.hpp"
#include "commands.hpp"

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
    bool one_file_system = false;
};

std::string percent(std::uint64_t part, std::uint64_t whole) {
    return whole == 0 ? "-"
                      : fmt::format("{:.1f}%",
                                    100.0 * static_cast<double>(part) / static_cast<double>(whole));
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
class Walker final : public WalkVisitor {
  public:
    explicit Walker(const CacheArgs& args) : args_(args), start_(Clock::now()) {
        show_progress_ = !args.json && ::isatty(STDERR_FILENO);
    }

    void run() {
        WalkOptions options;
        options.one_file_system = args_.one_file_system;
        counts_ = walk_files(args_.paths, options, *this);
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
                   {"directories", counts_.directories},
                   {"skipped", counts_.skipped},
                   {"not_entered",
                    {{"pseudo_filesystems", counts_.pseudo_filesystems},
                     {"other_filesystems", counts_.other_filesystems}}},
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
        fmt::print("{:>16}: {}\n", "Directories", counts_.directories);
        // Entries of the trees that are not regular files or directories.
        if (counts_.skipped != 0) fmt::print("{:>16}: {}\n", "Skipped", counts_.skipped);
        if (counts_.pseudo_filesystems + counts_.other_filesystems != 0) {
            fmt::print(
                "{:>16}: {} directories ({} on pseudo filesystems, {} on other filesystems)\n",
                "Not entered", counts_.pseudo_filesystems + counts_.other_filesystems,
                counts_.pseudo_filesystems, counts_.other_filesystems);
        }
        if (hidden_ != 0) {
            fmt::print(
                "{:>16}: {} (the kernel shows page-cache residency only to a file's owner or "
                "to users who may write it)\n",
                "Hidden", hidden_);
        }
        fmt::print("{:>16}: {}/{}  {}/{}  {}\n", "Resident pages", total_.cached, total_.pages,
                   format_bytes_short(total_.cached * page),
                   format_bytes_short(total_.pages * page), percent(total_.cached, total_.pages));
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
            case Action::Stat:
                return "stat";
            case Action::Evict:
                return "evict";
            case Action::Warm:
                return "warm";
            case Action::Lock:
                return "lock";
        }
        return "stat";
    }

    void report(const std::string& path, const std::string& what) {
        ++errors_;
        if (show_progress_ && progress_shown_) fmt::print(stderr, "\r\033[K");
        fmt::print(stderr, "pagewire: cache {} {}: {}\n", action_name(), path, what);
    }

    void error(const std::string& path, std::string_view reason) override {
        report(path, std::string(reason));
    }

    void file(File& f, const std::string& path, const struct stat& st) override {
        const auto size = static_cast<std::uint64_t>(st.st_size);
        // EPERM while counting is the kernel hiding another user's file's
        // residency (see page_cache.cpp); the action itself was done.
        bool counting = args_.action != Action::Lock;
        try {
            CacheStat s;
            switch (args_.action) {
                case Action::Stat:
                    s = cache_stat_sized(f, size);  // the walk's stat: no second fstat
                    break;
                case Action::Evict:
                    s = evict(f, args_.write_dirty);
                    break;
                case Action::Warm:
                    s = warm(f);
                    break;
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
        fmt::print("{:>8} {:>7} {:>10} {}\n", format_bytes_short(size), "-", "hidden", path);
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
        fmt::print("{:>8} {:>7} {:>10} {}\n", format_bytes_short(size), percent(s.cached, s.pages),
                   fmt::format("{}/{}", s.cached, s.pages), path);
        if (args_.map) fmt::print("         {} {}/{}\n", page_map(pages), s.cached, s.pages);
    }

    void progress() {
        if (!show_progress_) return;
        const auto now = Clock::now();
        if (now - start_ < std::chrono::seconds(1) || now - last_progress_ < kProgressInterval)
            return;
        last_progress_ = now;
        progress_shown_ = true;
        fmt::print(stderr, "\r\033[K{}, {} resident of {} ...", counted(files_, "file"),
                   format_bytes_short(total_.cached * Mapping::page_size()),
                   format_bytes_short(total_.pages * Mapping::page_size()));
    }

    const CacheArgs& args_;
    Clock::time_point start_;
    Clock::time_point last_progress_{};
    bool show_progress_ = false;
    bool progress_shown_ = false;
    std::uint64_t files_ = 0;
    WalkCounts counts_;         // of the walk, once run() returns
    std::uint64_t hidden_ = 0;  // files whose residency the kernel hides from this user
    std::uint64_t errors_ = 0;
    std::uint64_t bytes_ = 0;
    CacheStat total_{.dirty = 0, .writeback = 0, .evicted = 0, .recently_evicted = 0};
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
            const ssize_t n = retry_eintr([&] { return ::read(fds[0], &status, 1); });
            if (n != 1 || status != 'Y')
                throw_error("cache lock", args.paths.front(), EIO,
                            "the locking daemon failed (see above)");
            fmt::print("pagewire: cache lock daemon {} holds the pages; stop it with kill {}\n",
                       pid, pid);
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
        write_full(fds[1], &status, 1);
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
        status("holding the pages in memory until interrupted (Ctrl-C or SIGTERM)\n");
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
    cmd->add_flag("-x,--one-file-system", args->one_file_system,
                  "Do not enter directories on other filesystems (pseudo filesystems such as "
                  "/proc and /sys are never entered inside a tree)");
    if (action == Action::Stat) {
        cmd->add_flag("--map", args->map,
                      "Page map per file, like vmtouch -v ('O' resident, 'o' partly, ' ' not)");
    }
    if (action == Action::Evict) {
        cmd->add_flag(
            "--write-dirty", args->write_dirty,
            "Write dirty pages back first so they can be evicted too (else they stay cached)");
    }
    if (action == Action::Lock) {
        cmd->add_flag("--daemon", args->daemon, "Hold the locks in a background process");
    }
    cmd->callback([args] { run_cache(*args); });
}

}  // namespace

void register_cache(CLI::App& app) {
    CLI::App* cache =
        app.add_subcommand("cache", "See and steer the page cache for files and trees");
    cache->require_subcommand(1);
    add_action(*cache, "stat", "How much of each file is in the page cache", Action::Stat);
    add_action(*cache, "evict", "Drop the files' pages from the page cache", Action::Evict);
    add_action(*cache, "warm", "Read the files into the page cache", Action::Warm);
    add_action(*cache, "lock", "Lock the files' pages in memory until interrupted", Action::Lock);
}

}  // namespace pagewire::cli
