// Section "cache" of pagewire bench: `pagewire cache stat DIR` against the
// tools operators use for the same question, `vmtouch DIR` and util-linux
// `fincore FILE...`, over a tree of 10 000 files totalling 10 GiB (issue 7;
// S17). Target: pagewire at least 2x faster than vmtouch, with the same
// numbers.
//
// The tree has files of sizes spread over three decades in 100 directories,
// and a realistic mix of residency: half the files evicted, a quarter fully
// cached, the rest partly (the first third, or every seventh page). Each
// repetition runs each tool as a new process (so start-up counts alike), with
// its output sent to /dev/null; rounds are interleaved. fincore does not walk
// directories: it is given the file list in argv chunks of at most 128 KiB,
// as `find DIR -type f | xargs fincore` would (the listing is not timed).
//
// Before and after the timing, the counts are compared: pagewire's resident
// pages (--json) must equal vmtouch's "Resident Pages" and the sum of
// fincore's PAGES column, from runs back to back; pagewire runs again after
// the peers, which shows they left the residency as it was. A mismatch is
// reported in the section's notes and summary, and the target is then not met.
//
// Tree creation writes real data (no fallocate) and takes a while at full
// size; with --dir the tree is kept (DIR/cache-tree) and reused by the next
// run when its manifest matches, else it is removed at the end of the
// section. If the run is interrupted (SIGINT, SIGTERM, SIGHUP), the signal
// is held until the tree is removed, then delivered.
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/io.hpp>
#include <pagewire/mapping.hpp>
#include <pagewire/page_cache.hpp>
#include <pagewire/unique_fd.hpp>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bench_common.hpp"

extern char** environ;

namespace pagewire::bench {
namespace {

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr std::size_t kFullFiles = 10000;
constexpr std::uint64_t kFullTreeBytes = 10 * kGiB;
constexpr std::size_t kQuickFiles = 2000;
constexpr std::uint64_t kQuickTreeBytes = 1 * kGiB;
constexpr std::size_t kSubdirectories = 100;
constexpr double kSizeSpread = 1000;                 // largest / smallest file weight (log-uniform)
constexpr std::size_t kFillBlockBytes = 1 << 20;     // one pwrite while creating files
constexpr std::size_t kArgvChunkBytes = 128 * 1024;  // xargs' default command-line size
constexpr std::uint64_t kScatterStride = 7;          // "every seventh page" files
constexpr int kFullRounds = 15;
constexpr int kQuickRounds = 9;
constexpr int kWarmupRounds = 1;
constexpr int kSnapshotAttempts = 3;  // retries when the residency moved during a comparison
constexpr double kTargetRatioToVmtouch = 2.0;
constexpr const char* kTreeVersion = "pagewire bench cache tree v1";

// ---- signals -----------------------------------------------------------------

struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("interrupted") {}
};

// Holds SIGINT, SIGTERM and SIGHUP while the tree exists in an unfinished or
// owned state: a 10 GiB tree cannot be removed from a signal handler, so the
// section polls for them (check()), removes the tree, and lets the signal be
// delivered when this object ends (ScratchDir's handler then finishes the
// cleanup and ends the process the way the signal would have).
class HeldSignals {
  public:
    HeldSignals() {
        sigemptyset(&held_);
        for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&held_, sig);
        pthread_sigmask(SIG_BLOCK, &held_, &previous_);
    }
    ~HeldSignals() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
    HeldSignals(const HeldSignals&) = delete;
    HeldSignals& operator=(const HeldSignals&) = delete;

    // Throws Interrupted when one of the signals is pending. A blocked
    // signal stays pending even when ignored (nohup, a background job's
    // SIGINT); those are left to be discarded when unblocked.
    void check() const {
        sigset_t pending;
        sigpending(&pending);
        for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
            if (!sigismember(&pending, sig) || sigismember(&previous_, sig)) continue;
            struct sigaction action {};
            if (::sigaction(sig, nullptr, &action) == 0 && action.sa_handler == SIG_IGN) continue;
            throw Interrupted();
        }
    }
    // The mask children start with: the one before this object held anything.
    const sigset_t& previous() const noexcept { return previous_; }

  private:
    sigset_t held_;
    sigset_t previous_;
};

// ---- running the tools -------------------------------------------------------

struct ProgramRun {
    int status = 0;
    std::string out;  // empty unless captured
    std::string err;
    double seconds = 0;  // spawn to exit, output drained
};

std::string join(const std::vector<std::string>& argv, std::size_t max_words = 8) {
    std::string text;
    for (std::size_t i = 0; i < argv.size() && i < max_words; ++i) text += (i ? " " : "") + argv[i];
    if (argv.size() > max_words) text += fmt::format(" ... ({} arguments)", argv.size());
    return text;
}

// Runs argv[0] (searched in PATH) with stdin from /dev/null, stdout captured
// or sent to /dev/null, stderr captured. Throws unless it exits with 0.
ProgramRun run_program(const std::vector<std::string>& argv, bool capture,
                       const HeldSignals& signals) {
    int out_pipe[2] = {-1, -1};
    int err_pipe[2];
    if (capture && ::pipe2(out_pipe, O_CLOEXEC) != 0) throw_error("pipe", argv[0]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw_error("pipe", argv[0]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (capture) {
        posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    } else {
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    }
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setsigmask(&attr, &signals.previous());
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    ProgramRun run;
    const auto start = Clock::now();
    pid_t pid = -1;
    const int spawn_error = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (capture) ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (spawn_error != 0) {
        if (capture) ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        throw_error("run", argv[0], spawn_error);
    }
    int fds[2] = {capture ? out_pipe[0] : -1, err_pipe[0]};
    std::string* sinks[2] = {&run.out, &run.err};
    char buf[65536];
    while (fds[0] >= 0 || fds[1] >= 0) {
        pollfd pfd[2];
        nfds_t n = 0;
        for (int fd : fds) {
            if (fd >= 0) pfd[n++] = {fd, POLLIN, 0};
        }
        if (::poll(pfd, n, -1) < 0) {
            if (errno == EINTR) continue;
            throw_error("poll", argv[0]);
        }
        for (nfds_t i = 0; i < n; ++i) {
            if (pfd[i].revents == 0) continue;
            const int k = pfd[i].fd == fds[0] ? 0 : 1;
            const ssize_t got = retry_eintr([&] { return ::read(fds[k], buf, sizeof buf); });
            if (got <= 0) {
                ::close(fds[k]);
                fds[k] = -1;
            } else {
                sinks[k]->append(buf, static_cast<std::size_t>(got));
            }
        }
    }
    while (::waitpid(pid, &run.status, 0) < 0) {
        if (errno != EINTR) throw_error("waitpid", argv[0]);
    }
    run.seconds = seconds_since(start);
    signals.check();  // a Ctrl-C reaches the tool too: report the interruption, not its death
    if (!WIFEXITED(run.status) || WEXITSTATUS(run.status) != 0) {
        const std::string first_line = run.err.substr(0, run.err.find('\n'));
        throw_error(
            "bench cache", join(argv), EIO,
            WIFEXITED(run.status)
                ? fmt::format("exited with status {}: {}", WEXITSTATUS(run.status), first_line)
                : fmt::format("killed by signal {}", WTERMSIG(run.status)));
    }
    return run;
}

// ---- the tree ------------------------------------------------------------------

struct TreeSpec {
    std::size_t files = 0;
    std::uint64_t bytes = 0;
    std::vector<std::string> names;  // relative to the tree's root, "d07/f000107"
    std::vector<std::uint64_t> sizes;
};

// Sizes log-uniform over kSizeSpread, scaled so they add up to `bytes`
// exactly (the rounding remainder goes one byte each to the first files).
TreeSpec make_spec(std::size_t files, std::uint64_t bytes) {
    TreeSpec spec;
    spec.files = files;
    spec.bytes = bytes;
    SplitMix64 random{0x63616368652d7472ULL};  // "cache-tr"
    std::vector<double> weights(files);
    double sum = 0;
    for (double& w : weights) {
        w = std::exp(random.uniform() * std::log(kSizeSpread));
        sum += w;
    }
    std::uint64_t assigned = 0;
    for (std::size_t i = 0; i < files; ++i) {
        spec.sizes.push_back(std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(static_cast<double>(bytes) * weights[i] / sum)));
        assigned += spec.sizes.back();
        spec.names.push_back(fmt::format("d{:02}/f{:06}", i % kSubdirectories, i));
    }
    // Rounding down leaves fewer than `files` bytes over; the max(1, ...)
    // can add a few. Either way the difference is spread one byte at a time.
    for (std::size_t i = 0; assigned != bytes; i = (i + 1) % files) {
        if (assigned < bytes) {
            ++spec.sizes[i];
            ++assigned;
        } else if (spec.sizes[i] > 1) {
            --spec.sizes[i];
            --assigned;
        }
    }
    return spec;
}

std::string manifest_text(const TreeSpec& spec) {
    return fmt::format("{}\nfiles {}\nbytes {}\ndirectories {}\n", kTreeVersion, spec.files,
                       spec.bytes, kSubdirectories);
}

// The tree at `root` is the one `spec` describes: its manifest matches and
// every file has its size.
bool tree_matches(const std::string& root, const std::string& manifest, const TreeSpec& spec) {
    std::ifstream in(manifest);
    std::stringstream text;
    text << in.rdbuf();
    if (!in || text.str() != manifest_text(spec)) return false;
    for (std::size_t i = 0; i < spec.files; ++i) {
        struct stat st {};
        if (::stat((root + "/" + spec.names[i]).c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
            static_cast<std::uint64_t>(st.st_size) != spec.sizes[i]) {
            return false;
        }
    }
    return true;
}

void create_tree(const std::string& root, const TreeSpec& spec, const Context& ctx,
                 const HeldSignals& signals) {
    for (std::size_t d = 0; d < kSubdirectories; ++d) {
        std::filesystem::create_directories(fmt::format("{}/d{:02}", root, d));
    }
    // One block of pseudo-random data, written again and again with a
    // per-file word in front so no two files are alike.
    std::vector<std::uint64_t> block(kFillBlockBytes / sizeof(std::uint64_t));
    SplitMix64 random{0x70616765636163ULL};
    for (std::uint64_t& w : block) w = random.next();
    const auto start = Clock::now();
    std::uint64_t written = 0;
    int reported = 0;
    for (std::size_t i = 0; i < spec.files; ++i) {
        signals.check();
        const std::string path = root + "/" + spec.names[i];
        File f = File::create(path, CreateMode::Truncate, 0644);
        block[0] = i;
        for (std::uint64_t off = 0; off < spec.sizes[i]; off += kFillBlockBytes) {
            const std::size_t n = static_cast<std::size_t>(
                std::min<std::uint64_t>(kFillBlockBytes, spec.sizes[i] - off));
            f.write_at(off, std::as_bytes(std::span(block)).first(n));
        }
        written += spec.sizes[i];
        const int tenth = static_cast<int>(10 * written / spec.bytes);
        if (tenth > reported) {
            reported = tenth;
            ctx.progress(
                fmt::format("writing the tree: {}% ({:.1f} s)", 10 * tenth, seconds_since(start)));
        }
    }
}

// Writes everything back (so eviction can drop it), then sets each file's
// residency by its index: 4 of 8 evicted, 2 of 8 fully cached, 1 of 8 the
// first third, 1 of 8 every seventh page (read without readahead).
void set_residency(const std::string& root, const TreeSpec& spec, const HeldSignals& signals) {
    {
        File dir = File::adopt(UniqueFd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)),
                               root, false);
        if (::syncfs(dir.fd()) != 0) throw_error("syncfs", root);
    }
    const std::uint64_t page = Mapping::page_size();
    std::vector<char> buf(page);
    for (std::size_t i = 0; i < spec.files; ++i) {
        if (i % 64 == 0) signals.check();
        File f = File::open(root + "/" + spec.names[i]);
        const std::uint64_t size = spec.sizes[i];
        switch (i % 8) {
            case 0:
            case 1:
            case 2:
            case 3:
                evict(f, true);
                break;
            case 4:
            case 5:
                warm(f);
                break;
            case 6:
                evict(f, true);
                warm(f, 0, size / 3);
                break;
            case 7: {
                evict(f, true);
                const int err = ::posix_fadvise(f.fd(), 0, 0, POSIX_FADV_RANDOM);
                if (err != 0) throw_error("posix_fadvise", f.path(), err);
                for (std::uint64_t off = 0; off < size; off += kScatterStride * page) {
                    f.read_at(off, std::as_writable_bytes(std::span(buf)).first(1));
                }
                break;
            }
        }
    }
}

// ---- the comparison ------------------------------------------------------------

struct Counts {
    std::uint64_t files = 0;
    std::uint64_t resident = 0;
    std::uint64_t pages = 0;  // 0 where the tool does not say
};

Counts pagewire_counts(const std::string& self, const std::string& dir,
                       const HeldSignals& signals) {
    const ProgramRun run = run_program({self, "cache", "stat", "--json", dir}, true, signals);
    const Json j = Json::parse(run.out);
    return {j["files"].get<std::uint64_t>(), j["totals"]["cached"].get<std::uint64_t>(),
            j["totals"]["pages"].get<std::uint64_t>()};
}

Counts vmtouch_counts(const std::string& dir, const HeldSignals& signals) {
    const ProgramRun run = run_program({"vmtouch", dir}, true, signals);
    Counts c;
    const auto files = run.out.find("Files:");
    const auto resident = run.out.find("Resident Pages:");
    if (files == std::string::npos || resident == std::string::npos ||
        std::sscanf(run.out.c_str() + files, "Files: %lu", &c.files) != 1 ||
        std::sscanf(run.out.c_str() + resident, "Resident Pages: %lu/%lu", &c.resident, &c.pages) !=
            2) {
        throw_error("bench cache", "vmtouch", EIO, "unexpected output: " + run.out);
    }
    return c;
}

Counts fincore_counts(const std::vector<std::vector<std::string>>& commands,
                      const HeldSignals& signals) {
    Counts c;
    for (const auto& argv : commands) {
        const ProgramRun run = run_program(argv, true, signals);
        std::istringstream in(run.out);
        for (std::string line; std::getline(in, line);) {
            c.resident += std::stoull(line);
            ++c.files;
        }
    }
    return c;
}

struct Snapshot {
    Counts pagewire, vmtouch, fincore, pagewire_after;
    int attempts = 0;
    bool stable() const { return pagewire.resident == pagewire_after.resident; }
    bool agree() const {
        return pagewire.resident == vmtouch.resident && pagewire.resident == fincore.resident &&
               pagewire.pages == vmtouch.pages && pagewire.files == vmtouch.files &&
               pagewire.files == fincore.files;
    }
    std::string describe() const {
        return fmt::format(
            "pagewire {} files, {}/{} pages resident; vmtouch {} files, {}/{}; fincore {} "
            "files, {} resident; pagewire again after them: {}",
            pagewire.files, pagewire.resident, pagewire.pages, vmtouch.files, vmtouch.resident,
            vmtouch.pages, fincore.files, fincore.resident, pagewire_after.resident);
    }
};

// The three tools back to back, then pagewire again; repeated while the
// residency moved in between (another process's memory pressure).
Snapshot compare_counts(const std::string& self, const std::string& dir,
                        const std::vector<std::vector<std::string>>& fincore_commands,
                        const HeldSignals& signals) {
    Snapshot s;
    for (s.attempts = 1; s.attempts <= kSnapshotAttempts; ++s.attempts) {
        s.pagewire = pagewire_counts(self, dir, signals);
        s.vmtouch = vmtouch_counts(dir, signals);
        s.fincore = fincore_counts(fincore_commands, signals);
        s.pagewire_after = pagewire_counts(self, dir, signals);
        if (s.stable()) break;
    }
    s.attempts = std::min(s.attempts, kSnapshotAttempts);
    return s;
}

// fincore's command lines: the files in chunks of at most kArgvChunkBytes of
// arguments, as xargs would split them.
std::vector<std::vector<std::string>> fincore_commands(const std::string& root,
                                                       const TreeSpec& spec) {
    const std::vector<std::string> head = {"fincore", "--bytes",  "--noheadings",
                                           "--raw",   "--output", "PAGES"};
    std::vector<std::vector<std::string>> commands;
    std::size_t bytes = kArgvChunkBytes;  // start a new command at once
    for (const std::string& name : spec.names) {
        std::string path = root + "/" + name;
        if (bytes + path.size() + 1 > kArgvChunkBytes) {
            commands.push_back(head);
            bytes = 0;
            for (const auto& h : head) bytes += h.size() + 1;
        }
        bytes += path.size() + 1;
        commands.back().push_back(std::move(path));
    }
    return commands;
}

bool in_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "/usr/bin:/bin");
    for (std::string dir; std::getline(dirs, dir, ':');) {
        if (::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
    }
    return false;
}

// What one run measured, for the table, the notes and the summary.
struct Measured {
    TreeSpec spec;
    int rounds = 0;
    bool reused = false;        // the tree came from an earlier run (--dir)
    bool kept = false;          // the tree stays for the next run (--dir)
    double create_seconds = 0;  // writing, write-back and residency; 0 when reused
    double residency_seconds = 0;
    double remove_seconds = 0;  // removing the tree at the end (when not kept)
    Snapshot before;
    Snapshot after;
    std::vector<Trial> trials;  // pagewire, vmtouch, fincore
    std::size_t fincore_invocations = 0;
};

Json make_row(const std::string& tool, const std::string& command, const Trial& t,
              std::size_t invocations) {
    const Summary s = summarize(t.seconds);
    Json row;
    row["tool"] = tool;
    row["command"] = command;
    row["seconds"] = s.median;
    row["seconds_min"] = s.min;
    row["seconds_max"] = s.max;
    row["ratio_to_pagewire"] = nullptr;
    row["invocations"] = invocations;
    row["repetitions"] = s.count;
    row["samples"] = t.seconds;
    return row;
}

Json counts_json(const Counts& c) {
    return Json{{"files", c.files}, {"resident_pages", c.resident}, {"pages", c.pages}};
}

Json snapshot_json(const Snapshot& s) {
    return Json{{"pagewire", counts_json(s.pagewire)},
                {"vmtouch", counts_json(s.vmtouch)},
                {"fincore", counts_json(s.fincore)},
                {"pagewire_after", counts_json(s.pagewire_after)},
                {"attempts", s.attempts},
                {"stable", s.stable()},
                {"agree", s.agree()}};
}

SectionResult make_result(const Measured& m) {
    SectionResult result;
    result.title = fmt::format(
        "cache: residency of a tree of {} files, {} in {} directories (seconds, lower is better; "
        "median of {} interleaved runs, each a new process)",
        m.spec.files, format_bytes(m.spec.bytes), kSubdirectories, m.rounds);
    result.columns = {
        {"tool", "tool", -1, ""},
        {"seconds", "seconds", 4, ""},
        {"seconds_min", "min", 4, ""},
        {"seconds_max", "max", 4, ""},
        {"ratio_to_pagewire", "x pagewire", 2, "x"},
        {"invocations", "runs/rep", 0, ""},
    };
    result.rows.push_back(
        make_row("pagewire cache stat", "pagewire cache stat DIR", m.trials[0], 1));
    result.rows.push_back(make_row("vmtouch", "vmtouch DIR", m.trials[1], 1));
    result.rows.push_back(make_row(
        "fincore (file list)",
        "fincore --bytes --noheadings --raw --output PAGES FILE... (argv chunks of 128 KiB)",
        m.trials[2], m.fincore_invocations));
    const double pagewire_seconds = result.rows[0]["seconds"].get<double>();
    for (Json& row : result.rows) {
        row["ratio_to_pagewire"] = row["seconds"].get<double>() / pagewire_seconds;
    }
    const double to_vmtouch = result.rows[1]["ratio_to_pagewire"].get<double>();
    const double to_fincore = result.rows[2]["ratio_to_pagewire"].get<double>();
    const Snapshot& before = m.before;
    const bool agree = before.agree() && m.after.agree() && before.stable() && m.after.stable();
    const bool unchanged = before.pagewire.resident == m.after.pagewire.resident;
    const bool met = agree && to_vmtouch >= kTargetRatioToVmtouch;

    Json& summary = result.summary;
    summary["files"] = m.spec.files;
    summary["bytes"] = m.spec.bytes;
    summary["directories"] = kSubdirectories + 1;
    summary["tree"] = m.reused ? "reused" : "created";
    summary["create_seconds"] = m.reused ? Json(nullptr) : Json(m.create_seconds);
    summary["residency_seconds"] = m.residency_seconds;
    summary["remove_seconds"] = m.kept ? Json(nullptr) : Json(m.remove_seconds);
    summary["resident_pages"] = before.pagewire.resident;
    summary["pages"] = before.pagewire.pages;
    summary["counts_before"] = snapshot_json(before);
    summary["counts_after"] = snapshot_json(m.after);
    summary["counts_agree"] = agree;
    summary["residency_unchanged_by_timing"] = unchanged;
    summary["fincore_invocations"] = m.fincore_invocations;
    summary["probe"] = kernel_has_cachestat() ? "cachestat" : "mincore";
    summary["targets"] = {{"ratio_to_vmtouch", kTargetRatioToVmtouch},
                          {"ratio_to_vmtouch_measured", to_vmtouch},
                          {"ratio_to_fincore_measured", to_fincore},
                          {"met", met}};

    const double percent = 100.0 * static_cast<double>(before.pagewire.resident) /
                           static_cast<double>(before.pagewire.pages);
    result.notes.push_back(fmt::format(
        "tree: {} files, {} ({} pages), {:.1f}% resident; {}", m.spec.files,
        format_bytes(m.spec.bytes), before.pagewire.pages, percent,
        m.reused ? "reused from an earlier run"
                 : fmt::format("created, written back and its residency set in {:.1f} s",
                               m.create_seconds)));
    if (agree) {
        result.notes.push_back(fmt::format(
            "same numbers before and after the timing: {} of {} pages resident in {} files, from "
            "pagewire --json, vmtouch's Resident Pages and fincore's PAGES alike; the peers left "
            "the residency as it was",
            before.pagewire.resident, before.pagewire.pages, before.pagewire.files));
    } else {
        result.notes.push_back("ERROR: the counts differ. before: " + before.describe() +
                               ". after: " + m.after.describe());
    }
    if (!unchanged) {
        result.notes.push_back(fmt::format(
            "residency moved during the timing ({} -> {} resident pages): pages were reclaimed "
            "or read by something outside this run",
            before.pagewire.resident, m.after.pagewire.resident));
    }
    result.notes.push_back(fmt::format(
        "vmtouch takes {:.2f}x pagewire's time (target: at least {:.1f}x with the same numbers: "
        "{}), fincore {:.2f}x; directory and inode caches are warm in every run; fincore is given "
        "the file list ({} invocations), listing it is not timed",
        to_vmtouch, kTargetRatioToVmtouch, met ? "met" : "NOT met", to_fincore,
        m.fincore_invocations));
    result.notes.push_back(m.kept ? "the tree stays in DIR/cache-tree (--dir); the next run "
                                    "with the same --dir reuses it"
                                  : "the tree was removed; with --dir it stays and the next run "
                                    "reuses it");
    return result;
}

void remove_tree(const std::string& root, const std::string& manifest) {
    std::error_code ignored;  // nothing better to do than leave what cannot be removed
    std::filesystem::remove(manifest, ignored);
    std::filesystem::remove_all(root, ignored);
}

// Whether the scratch directory is one ScratchDir made (mkdtemp,
// /var/tmp/pagewire-bench-XXXXXX) rather than the user's --dir. ScratchDir
// removes its own directory at the end, but its signal handler can only
// rmdir it, so a signal between this section and that removal would leave
// the tree behind: the section removes the tree itself, signals held.
// (ScratchDir does not say whether it owns the directory; its name does.)
bool scratch_is_temporary(const ScratchDir& scratch) {
    constexpr std::string_view kPrefix = "/var/tmp/pagewire-bench-";
    const std::string& path = scratch.path();
    return path.size() == kPrefix.size() + 6 && path.rfind(kPrefix, 0) == 0;
}

SectionResult run_cache(Context& ctx) {
    for (const char* tool : {"vmtouch", "fincore"}) {
        if (!in_path(tool)) {
            throw_error("bench cache", tool, ENOENT,
                        "not installed (Debian packages vmtouch and util-linux; "
                        "scripts/install-deps.sh installs them)");
        }
    }
    const bool quick = ctx.options.quick;
    Measured m;
    m.spec = make_spec(quick ? kQuickFiles : kFullFiles, quick ? kQuickTreeBytes : kFullTreeBytes);
    m.rounds = ctx.options.repetitions > 0 ? ctx.options.repetitions
                                           : (quick ? kQuickRounds : kFullRounds);
    const std::string self = pagewire_command();
    const std::string root = ctx.scratch.path() + "/cache-tree";
    const std::string manifest = ctx.scratch.path() + "/cache-tree.manifest";
    HeldSignals signals;
    try {
        // ---- the tree ----------------------------------------------------------
        m.reused = tree_matches(root, manifest, m.spec);
        if (m.reused) {
            ctx.progress(fmt::format("reusing the tree in {} (manifest matches)", root));
        } else {
            std::filesystem::remove(manifest);
            std::filesystem::remove_all(root);
            ctx.progress(fmt::format("creating {} files, {} in {}", m.spec.files,
                                     format_bytes(m.spec.bytes), root));
            const auto start = Clock::now();
            create_tree(root, m.spec, ctx, signals);
            m.create_seconds = seconds_since(start);
        }
        ctx.progress("writing back, then setting residency (half evicted, some partly cached)");
        const auto residency_start = Clock::now();
        set_residency(root, m.spec, signals);
        m.residency_seconds = seconds_since(residency_start);
        if (!m.reused) {
            m.create_seconds += m.residency_seconds;  // includes the write-back (syncfs)
            std::ofstream(manifest) << manifest_text(m.spec);
        }

        // ---- same numbers before, timing, same numbers after ---------------------
        const auto fincore = fincore_commands(root, m.spec);
        m.fincore_invocations = fincore.size();
        ctx.progress("comparing counts (pagewire, vmtouch, fincore, pagewire)");
        m.before = compare_counts(self, root, fincore, signals);

        auto pagewire_run = [&] {
            return run_program({self, "cache", "stat", root}, false, signals).seconds;
        };
        auto vmtouch_run = [&] { return run_program({"vmtouch", root}, false, signals).seconds; };
        auto fincore_run = [&] {
            double total = 0;
            for (const auto& argv : fincore) total += run_program(argv, false, signals).seconds;
            return total;
        };
        m.trials = {{"pagewire", pagewire_run, {}},
                    {"vmtouch", vmtouch_run, {}},
                    {"fincore", fincore_run, {}}};
        run_interleaved(m.trials, m.rounds, kWarmupRounds, [&](int r, int n) {
            if (r == 0 || (r + 1) % 5 == 0 || r + 1 == n) {
                ctx.progress(fmt::format("round {}/{}", r + 1, n));
            }
        });

        m.after = compare_counts(self, root, fincore, signals);
        m.kept = !scratch_is_temporary(ctx.scratch);
        if (!m.kept) {
            ctx.progress("removing the tree");
            const auto start = Clock::now();
            remove_tree(root, manifest);
            m.remove_seconds = seconds_since(start);
        }
    } catch (const Interrupted&) {
        // Remove the tree (even a reusable one: nothing the size of it may be
        // left behind by an interrupted run); ~HeldSignals then delivers the signal.
        remove_tree(root, manifest);
        throw;
    }
    return make_result(m);
}

}  // namespace

Section cache_section() {
    return {"cache", "stat a tree of 10 000 files / 10 GiB: pagewire vs vmtouch and fincore",
            run_cache};
}

}  // namespace pagewire::bench
