// The machinery shared by `pagewire bench` sections: a section registry,
// repeated interleaved timing with median/min/max, the checksum scan every
// section uses to prove it touched every byte, a scratch directory that is
// removed even when the run is interrupted, and table / JSON output.
//
// A section is a name plus a function that produces rows. Adding one means
// writing bench_<name>.cpp with a `Section <name>_section()` factory and
// listing it in all_sections() (cmd_bench.cpp); nothing else changes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bench_scan.hpp"

namespace pagewire::bench {

using Json = nlohmann::ordered_json;  // keeps keys in the order they were written

// ---- timing and statistics -------------------------------------------------

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Median (mean of the middle two for an even count), min and max of samples.
struct Summary {
    double median = 0;
    double min = 0;
    double max = 0;
    std::size_t count = 0;
};
Summary summarize(std::vector<double> samples);

// One measured method: `run` performs one repetition and returns the seconds
// it measured (it times itself, so per-repetition preparation such as
// dropping the page cache stays outside the measurement).
struct Trial {
    std::string name;
    std::function<double()> run;
    std::vector<double> seconds;  // one entry per measured repetition, in run order
};

// Runs every trial `rounds` times, interleaved: round r runs the trials in
// rotated order starting at trial r, so slow phases of a noisy machine hit
// every method alike instead of all repetitions of one method. `warmup`
// unmeasured rounds come first. `progress` (may be empty) is told each round.
void run_interleaved(std::vector<Trial>& trials, int rounds, int warmup,
                     const std::function<void(int round, int rounds)>& progress = {});

// ---- deterministic data ----------------------------------------------------

// splitmix64: fast, the same sequence for the same seed on every run, and its
// output has no long zero runs, so no page of data made from it is all zeros
// (which some layers could shortcut).
struct SplitMix64 {
    std::uint64_t state;
    std::uint64_t next() noexcept {
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    // Uniform in [0, 1), from the top 53 bits.
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

// ---- scratch files ---------------------------------------------------------

// A directory for a run's files. Without a parent it is made with mkdtemp
// under /var/tmp (a disk, not tmpfs, so page-cache behaviour is real) and
// removed with its files at the end; with a parent (--dir) the directory is
// the user's and only the files named through file() are removed. Removal
// also happens when SIGINT, SIGTERM or SIGHUP ends the process: the handler
// unlinks the recorded paths (async-signal-safe calls only) and re-raises.
// One instance at a time per process; not thread-safe.
class ScratchDir {
  public:
    explicit ScratchDir(const std::string& parent = {});
    ~ScratchDir();
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    const std::string& path() const noexcept { return path_; }
    // Full path of `name` inside the directory, recorded for removal.
    std::string file(std::string_view name);

  private:
    std::string path_;
    bool owned_ = false;  // made by us: removed as a whole at the end
};

// ---- sections, tables and JSON ---------------------------------------------

struct Options {
    bool quick = false;   // smaller sizes and fewer repetitions (make run)
    int repetitions = 0;  // 0: the section's default
    std::string
        only;  // POSIX extended regex: run only the methods whose names match (ipc); empty: all
    std::uint64_t messages = 0;  // messages per produce/consume run (broker); 0: the default
};

// What a section is given to run.
struct Context {
    const Options& options;
    ScratchDir& scratch;
    std::string section;  // the running section's name, for progress lines

    // One progress line on stderr ("[mapping] creating ..."), so stdout
    // carries only the tables.
    void progress(std::string_view message) const;
};

// One table column: a key of the row objects and how to print it. Numbers
// print with `precision` decimals (negative: the value is text); a missing
// or null value prints as "-".
struct Column {
    std::string key;
    std::string header;
    int precision = -1;
    std::string suffix;  // appended to numbers, e.g. "x"
};

struct SectionResult {
    std::string title;            // the table's heading
    std::vector<Column> columns;  // what the table shows (the JSON has every key)
    std::vector<Json> rows;
    std::vector<std::string> notes;  // printed under the table, kept in the JSON
    Json summary = Json::object();   // section-specific verdicts (targets met, ...)
    // Non-empty: the run found an error (wrong data, a failed row). Everything is
    // still printed and written, then the command fails with this line.
    std::string failure;
};

struct Section {
    std::string name;
    std::string description;
    std::function<SectionResult(Context&)> run;
};

void print_table(std::FILE* out, const SectionResult& result);

// cpu model, cores, kernel, page size, RAM, transparent huge page setting,
// scan implementation and the 1-minute load average when the run started.
Json machine_info();
// One line from machine_info() for the top of the output.
std::string machine_line(const Json& machine);
// Local time as ISO 8601 with offset, e.g. 2026-11-21T10:04:05+00:00.
std::string iso_date_now();
// This process's command line (/proc/self/cmdline, joined with spaces).
std::string command_line();
// The directory of this program (pagewire-bench): bin/ of the build tree or
// of the installation, where `pagewire` and the bench's peers are too.
std::string directory_of_self();
// The `pagewire` command the sections run (serve, cache stat, broker): the
// one beside this program, else the first in PATH. Throws pagewire::Error
// (ENOENT) when there is none.
std::string pagewire_command();

// A chart drawn by gnuplot next to the JSON document: `--json FILE` on the
// command line gives FILE's stem + "-<section>.png". Writes `data` to
// <section>-chart.dat in the scratch directory and a script of the pngcairo
// terminal (`size` is "width,height") and output lines followed by plot(dat),
// where dat is the data file's path, to <section>-chart.gp, then runs gnuplot.
// A non-empty `nothing_to_draw` skips the chart for that reason (after the
// --json check). Returns "chart: PNG" or "chart skipped: why", for a note.
std::string draw_chart(ScratchDir& scratch, std::string_view section, std::string_view size,
                       const std::string& data,
                       const std::function<std::string(const std::string& dat)>& plot,
                       std::string_view nothing_to_draw = {});

// "256 MiB", "1 GiB", "4 KiB", "100 B": exact binary units when they fit.
std::string format_bytes(std::uint64_t bytes);

}  // namespace pagewire::bench
