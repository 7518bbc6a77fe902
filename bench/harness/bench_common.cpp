#include "bench_common.hpp"

#include <fmt/core.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <pagewire/error.hpp>
#include <pagewire/mapping.hpp>
#include <sstream>

namespace pagewire::bench {

// ---- timing and statistics -------------------------------------------------

Summary summarize(std::vector<double> samples) {
    Summary s;
    s.count = samples.size();
    if (samples.empty()) return s;
    std::sort(samples.begin(), samples.end());
    const std::size_t mid = samples.size() / 2;
    s.median = samples.size() % 2 == 1 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
    s.min = samples.front();
    s.max = samples.back();
    return s;
}

void run_interleaved(std::vector<Trial>& trials, int rounds, int warmup,
                     const std::function<void(int, int)>& progress) {
    const std::size_t n = trials.size();
    for (int w = 0; w < warmup; ++w) {
        for (Trial& t : trials) t.run();
    }
    for (int r = 0; r < rounds; ++r) {
        if (progress) progress(r, rounds);
        for (std::size_t k = 0; k < n; ++k) {
            Trial& t = trials[(static_cast<std::size_t>(r) + k) % n];
            t.seconds.push_back(t.run());
        }
    }
}

// ---- scratch files ---------------------------------------------------------

namespace {

// What the signal handler removes. Fixed arrays because the handler may use
// only async-signal-safe calls: no allocation, no std::filesystem.
constexpr std::size_t kMaxScratchFiles = 64;
constexpr std::size_t kMaxPathBytes = 4096;  // PATH_MAX on Linux, with the NUL
char g_files[kMaxScratchFiles][kMaxPathBytes];
volatile sig_atomic_t g_file_count = 0;  // g_files[0, g_file_count) are live paths
char g_dir[kMaxPathBytes];
volatile sig_atomic_t g_remove_dir = 0;  // g_dir is ours: rmdir it too

constexpr int kCleanupSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction g_previous[std::size(kCleanupSignals)];
bool g_installed[std::size(kCleanupSignals)];  // our handler is in place for that signal

void remove_scratch_on_signal(int sig) {
    const int saved_errno = errno;
    for (sig_atomic_t i = 0; i < g_file_count; ++i) ::unlink(g_files[i]);
    if (g_remove_dir) ::rmdir(g_dir);
    g_file_count = 0;
    g_remove_dir = 0;
    // End the process the way the signal would have: restore the previous
    // disposition and re-raise (delivered when this handler returns).
    for (std::size_t k = 0; k < std::size(kCleanupSignals); ++k) {
        if (kCleanupSignals[k] == sig) ::sigaction(sig, &g_previous[k], nullptr);
    }
    ::raise(sig);
    errno = saved_errno;
}

void copy_path(char (&dst)[kMaxPathBytes], const std::string& src, const char* operation) {
    if (src.size() >= kMaxPathBytes) throw_error(operation, src, ENAMETOOLONG);
    std::memcpy(dst, src.c_str(), src.size() + 1);
}

}  // namespace

ScratchDir::ScratchDir(const std::string& parent) {
    if (parent.empty()) {
        std::string pattern = "/var/tmp/pagewire-bench-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr) throw_error("mkdtemp", pattern);
        path_ = pattern;
        owned_ = true;
        copy_path(g_dir, path_, "mkdtemp");
        std::atomic_signal_fence(std::memory_order_seq_cst);
        g_remove_dir = 1;
    } else {
        path_ = parent;
    }
    struct sigaction action {};
    action.sa_handler = remove_scratch_on_signal;
    sigemptyset(&action.sa_mask);
    for (std::size_t k = 0; k < std::size(kCleanupSignals); ++k) {
        // A signal the caller ignores (nohup) must stay ignored: removing the
        // files and carrying on would break the run.
        ::sigaction(kCleanupSignals[k], nullptr, &g_previous[k]);
        g_installed[k] = g_previous[k].sa_handler != SIG_IGN;
        if (g_installed[k]) ::sigaction(kCleanupSignals[k], &action, nullptr);
    }
}

ScratchDir::~ScratchDir() {
    for (std::size_t k = 0; k < std::size(kCleanupSignals); ++k) {
        if (g_installed[k]) ::sigaction(kCleanupSignals[k], &g_previous[k], nullptr);
        g_installed[k] = false;
    }
    for (sig_atomic_t i = 0; i < g_file_count; ++i) ::unlink(g_files[i]);
    g_file_count = 0;
    if (owned_) {
        g_remove_dir = 0;
        std::error_code ignored;  // nothing useful to do about a failure here
        std::filesystem::remove_all(path_, ignored);
    }
}

std::string ScratchDir::file(std::string_view name) {
    std::string full = path_ + "/" + std::string(name);
    for (sig_atomic_t i = 0; i < g_file_count; ++i) {
        if (full == g_files[i]) return full;
    }
    if (static_cast<std::size_t>(g_file_count) >= kMaxScratchFiles) {
        throw_error("bench scratch file", full, EMFILE,
                    fmt::format("more than {} scratch files", kMaxScratchFiles));
    }
    copy_path(g_files[g_file_count], full, "bench scratch file");
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the path before the count
    g_file_count = g_file_count + 1;
    return full;
}

// ---- sections, tables and JSON ---------------------------------------------

void Context::progress(std::string_view message) const {
    fmt::print(stderr, "[{}] {}\n", section, message);
    std::fflush(stderr);
}

namespace {

std::string cell_text(const Json& row, const Column& column) {
    auto it = row.find(column.key);
    if (it == row.end() || it->is_null()) return "-";
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number() && column.precision >= 0) {
        return fmt::format("{:.{}f}{}", it->get<double>(), column.precision, column.suffix);
    }
    return it->dump();
}

}  // namespace

void print_table(std::FILE* out, const SectionResult& result) {
    const std::size_t ncol = result.columns.size();
    std::vector<std::vector<std::string>> cells;
    std::vector<std::size_t> width(ncol);
    for (std::size_t c = 0; c < ncol; ++c) width[c] = result.columns[c].header.size();
    for (const Json& row : result.rows) {
        std::vector<std::string> line;
        for (std::size_t c = 0; c < ncol; ++c) {
            line.push_back(cell_text(row, result.columns[c]));
            width[c] = std::max(width[c], line.back().size());
        }
        cells.push_back(std::move(line));
    }
    auto line_text = [&](const std::vector<std::string>& line) {
        std::string text;
        for (std::size_t c = 0; c < ncol; ++c) {
            if (c > 0) text += "  ";
            const bool left = result.columns[c].precision < 0;  // text left, numbers right
            text += left ? fmt::format("{:<{}}", line[c], width[c])
                         : fmt::format("{:>{}}", line[c], width[c]);
        }
        while (!text.empty() && text.back() == ' ') text.pop_back();
        return text;
    };

    fmt::print(out, "\n{}\n", result.title);
    std::vector<std::string> header;
    for (std::size_t c = 0; c < ncol; ++c) header.push_back(result.columns[c].header);
    const std::string header_text = line_text(header);
    fmt::print(out, "{}\n", header_text);
    // As wide as the header line: a free-text last column (ipc's "unavailable: ..."
    // notes) would otherwise stretch the dashes to its longest cell.
    fmt::print(out, "{}\n", std::string(header_text.size(), '-'));
    for (const auto& line : cells) fmt::print(out, "{}\n", line_text(line));
    for (const std::string& note : result.notes) fmt::print(out, "note: {}\n", note);
    std::fflush(out);
}

namespace {

// The value after "key:" on the first line of a /proc-style file that starts
// with key, or "" if there is none.
std::string proc_field(const char* path, std::string_view key) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key, 0) != 0) continue;
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        auto start = line.find_first_not_of(" \t", colon + 1);
        return start == std::string::npos ? std::string() : line.substr(start);
    }
    return {};
}

// The bracketed choice in a sysfs selector such as "always [madvise] never".
std::string sysfs_choice(const char* path) {
    std::ifstream in(path);
    std::string text;
    std::getline(in, text);
    auto open = text.find('[');
    auto close = text.find(']', open);
    if (open == std::string::npos || close == std::string::npos) return text;
    return text.substr(open + 1, close - open - 1);
}

}  // namespace

Json machine_info() {
    Json m;
    std::string cpu = proc_field("/proc/cpuinfo", "model name");
    m["cpu_model"] = cpu.empty() ? "unknown" : cpu;
    m["cores"] = ::sysconf(_SC_NPROCESSORS_ONLN);
    struct utsname u {};
    if (::uname(&u) == 0) {
        m["kernel"] = std::string(u.sysname) + " " + u.release;
        m["arch"] = u.machine;
    }
    m["page_size"] = Mapping::page_size();
    std::string mem = proc_field("/proc/meminfo", "MemTotal");  // "24684048 kB"
    m["ram_bytes"] = std::strtoull(mem.c_str(), nullptr, 10) * 1024;
    m["transparent_hugepage"] = sysfs_choice("/sys/kernel/mm/transparent_hugepage/enabled");
    m["scan_kernel"] = sum_words_kernel();
    // Other work on the machine is the main source of noise: record it.
    std::ifstream loadavg("/proc/loadavg");
    double load1 = 0;
    if (loadavg >> load1) m["load_average_1min"] = load1;
    return m;
}

std::string machine_line(const Json& m) {
    return fmt::format(
        "machine: {}, {} cores, {}, page {} B, RAM {:.1f} GiB, THP {}, scan {}, load {:.2f}",
        m.value("cpu_model", "?"), m.value("cores", 0), m.value("kernel", "?"),
        m.value("page_size", 0),
        static_cast<double>(m.value("ram_bytes", std::uint64_t{0})) / (1 << 30),
        m.value("transparent_hugepage", "?"), m.value("scan_kernel", "?"),
        m.value("load_average_1min", 0.0));
}

std::string iso_date_now() {
    std::time_t now = std::time(nullptr);
    std::tm local{};
    ::localtime_r(&now, &local);
    char buf[64];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &local);
    // +0000 -> +00:00, assembled from the two halves: std::string::insert
    // here trips a GCC 12 -Wrestrict false positive at -O3 (GCC bug 105329).
    const std::string_view stamp(buf, n);
    if (stamp.size() < 5) return std::string(stamp);
    return fmt::format("{}:{}", stamp.substr(0, stamp.size() - 2), stamp.substr(stamp.size() - 2));
}

std::string command_line() {
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    while (!text.empty() && text.back() == '\0') text.pop_back();
    std::replace(text.begin(), text.end(), '\0', ' ');
    return text.empty() ? "pagewire bench" : text;
}

std::string directory_of_self() {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string(".") : self.parent_path().string();
}

std::string pagewire_command() {
    const std::string beside = directory_of_self() + "/pagewire";
    if (::access(beside.c_str(), X_OK) == 0) return beside;
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "/usr/bin:/bin");
    for (std::string dir; std::getline(dirs, dir, ':');) {
        const std::string candidate = dir + "/pagewire";
        if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    throw_error("bench", "pagewire", ENOENT,
                "the pagewire command is neither beside pagewire-bench nor in PATH");
}

std::string draw_chart(ScratchDir& scratch, std::string_view section, std::string_view size,
                       const std::string& data,
                       const std::function<std::string(const std::string& dat)>& plot,
                       std::string_view nothing_to_draw) {
    const std::string cmd = command_line();
    const auto at = cmd.find("--json ");
    if (at == std::string::npos)
        return fmt::format("chart skipped: pass --json FILE to get FILE's stem + -{}.png", section);
    std::string json = cmd.substr(at + 7);
    json = json.substr(0, json.find(' '));
    const std::string png = std::filesystem::path(json).replace_extension("").string() + "-" +
                            std::string(section) + ".png";
    if (!nothing_to_draw.empty()) return "chart skipped: " + std::string(nothing_to_draw);
    const std::string dat = scratch.file(std::string(section) + "-chart.dat");
    const std::string script = scratch.file(std::string(section) + "-chart.gp");
    {
        std::FILE* f = std::fopen(dat.c_str(), "w");
        if (f == nullptr) return "chart skipped: cannot write " + dat;
        fmt::print(f, "{}", data);
        std::fclose(f);
    }
    {
        std::FILE* f = std::fopen(script.c_str(), "w");
        if (f == nullptr) return "chart skipped: cannot write " + script;
        fmt::print(f, "set terminal pngcairo size {} font ',10'\nset output '{}'\n{}", size, png,
                   plot(dat));
        std::fclose(f);
    }
    const std::string run = "gnuplot '" + script + "' 2>&1";
    if (std::system(run.c_str()) != 0)
        return "chart skipped: gnuplot failed (is gnuplot-nox installed?)";
    return "chart: " + png;
}

std::string format_bytes(std::uint64_t bytes) {
    constexpr std::uint64_t kKiB = 1024;
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    std::size_t u = 0;
    while (u + 1 < std::size(units) && bytes >= kKiB && bytes % kKiB == 0) {
        bytes /= kKiB;
        ++u;
    }
    return fmt::format("{} {}", bytes, units[u]);
}

}  // namespace pagewire::bench
