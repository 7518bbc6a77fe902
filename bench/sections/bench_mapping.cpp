// Section "mapping" of pagewire bench: the seeds' claim that reading a file
// through a memory mapping beats read(2), because read(2) copies every byte
// from the page cache into the caller's buffer and a mapping does not (S19).
//
// One file of pseudo-random data is scanned end to end by every method; the
// scan sums the file as 64-bit words, the sums must all equal the one
// computed while the file was written, and throughput is bytes / seconds.
// Mapping rows pay for map + scan + unmap in every repetition, as a program
// that maps a file to read it would; the anonymous-memory rows (4 KiB pages
// and transparent huge pages) pay for the scan only and show the
// memory-bandwidth ceiling. Three phases, each interleaving its methods
// round by round:
//   hot (written)    the page cache as the writes left it (1 MiB writes:
//                    folios of up to 1 MiB, mapped with 4 KiB entries)
//   hot (read back)  dropped, then read once: readahead's large folios,
//                    which the kernel maps with 2 MiB entries where it can
//   cold             dropped before every repetition
// Dropping is pagewire::evict (write back + POSIX_FADV_DONTNEED), checked
// with mincore; when
// the kernel keeps the pages, the later phases are skipped with a note,
// never estimated.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/io.hpp>
#include <pagewire/mapping.hpp>
#include <pagewire/page_cache.hpp>
#include <pagewire/proc_maps.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace pagewire::bench {
namespace {

constexpr std::uint64_t kFullFileBytes = std::uint64_t{1} << 30;     // 1 GiB
constexpr std::uint64_t kQuickFileBytes = std::uint64_t{256} << 20;  // 256 MiB
constexpr std::size_t kReadBufferBytes = 128 * 1024;  // the read()/pread() loops' buffer
constexpr std::size_t kFillChunkBytes = 1024 * 1024;  // write size while creating the file
constexpr int kFullRounds = 9;
constexpr int kQuickRounds = 7;
constexpr int kWarmupRounds = 1;
constexpr int kFullColdRounds = 5;
constexpr int kQuickColdRounds = 3;
// A drop counts as done when at most this fraction of the file's pages is
// still resident after it (a page or two may be read back by readahead of
// an unrelated reader; more means the kernel kept the file).
constexpr double kColdResidentLimit = 0.01;

constexpr double kTargetRatioToRead = 1.4;
constexpr double kTargetRatioToAnonymous = 0.9;

// A scan's result that differs from the file's sum means a method skipped or
// misread bytes: the numbers would be meaningless, so the run stops.
void check_sum(std::uint64_t got, std::uint64_t expected, const std::string& method,
               const std::string& path) {
    if (got != expected) {
        throw_error("bench mapping", path, EIO,
                    fmt::format("{}: checksum {:016x} differs from the file's {:016x}", method, got,
                                expected));
    }
}

// Creates `path` with `size` bytes of pseudo-random data and returns it open
// for reading and writing, with its data on disk (so writeback does not run
// during the measurements) and still in the page cache. Returns the sum of
// the file's 64-bit words.
std::uint64_t create_data_file(File& file, std::uint64_t size) {
    std::vector<std::uint64_t> chunk(kFillChunkBytes / sizeof(std::uint64_t));
    SplitMix64 random{0x7061676577697265ULL};  // "pagewire"
    std::uint64_t sum = 0;
    for (std::uint64_t offset = 0; offset < size; offset += kFillChunkBytes) {
        for (std::uint64_t& word : chunk) {
            word = random.next();
            sum += word;
        }
        file.write_at(offset, std::as_bytes(std::span(chunk)));
    }
    file.datasync();
    return sum;
}

// read(2) until `n` bytes or end of file; the sensible plain loop a program
// would write (EINTR retried, short reads continued).
std::size_t read_full(int fd, std::byte* buf, std::size_t n, const std::string& path) {
    std::size_t done = 0;
    while (done < n) {
        ssize_t r = retry_eintr([&] { return ::read(fd, buf + done, n - done); });
        if (r < 0) throw_error("read", path);
        if (r == 0) break;
        done += static_cast<std::size_t>(r);
    }
    return done;
}

// Drops the file's pages from the page cache (pagewire::evict: write back,
// then POSIX_FADV_DONTNEED) and returns how many are still resident, asked
// of mincore through a fresh mapping rather than trusting evict's own count.
// Only unmapped pages can be dropped: callers hold no mapping of the file.
std::size_t drop_from_page_cache(File& file) {
    (void)evict(file, /*write_dirty_first=*/true);
    return Mapping::map(file, Access::ReadOnly).resident_page_count();
}

// Bytes of the mapping starting at `start` that the kernel maps with
// PMD-sized (2 MiB) entries, from /proc/self/smaps: FilePmdMapped for a file,
// AnonHugePages for anonymous memory. Large folios in the page cache (ext4
// makes them from large writes and from readahead) are mapped this way on a
// fault, which saves most page faults and TLB misses.
std::uint64_t pmd_mapped_bytes(const void* start) {
    const auto address = reinterpret_cast<std::uintptr_t>(start);
    for (const Vma& vma : read_smaps()) {
        if (vma.start == address)
            return vma.path.empty() ? vma.anon_huge_pages : vma.file_pmd_mapped;
    }
    return 0;
}

struct ColdDropFailed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// How a mapping row maps the file.
struct MapVariant {
    MapOptions options;
    std::optional<Advice> advice;
};

// The methods measured, each one repetition over the whole file.
class Scanner {
  public:
    Scanner(File& file, std::uint64_t size, std::uint64_t expected)
        : file_(file),
          reader_(File::open(file.path())),
          size_(size),
          expected_(expected),
          buffer_(Mapping::anonymous(kReadBufferBytes)) {}

    double read_loop() {
        const auto start = Clock::now();
        if (::lseek(reader_.fd(), 0, SEEK_SET) < 0) throw_error("lseek", reader_.path());
        std::uint64_t sum = 0;
        for (;;) {
            std::size_t n =
                read_full(reader_.fd(), buffer_.data(), kReadBufferBytes, reader_.path());
            if (n == 0) break;
            sum += sum_words(buffer_.data(), n);
        }
        const double seconds = seconds_since(start);
        keep(sum);
        check_sum(sum, expected_, "read()", file_.path());
        return seconds;
    }

    double pread_loop() {
        const auto start = Clock::now();
        std::uint64_t sum = 0;
        for (std::uint64_t offset = 0;;) {
            std::size_t n = file_.read_at(offset, buffer_.bytes());
            if (n == 0) break;
            sum += sum_words(buffer_.data(), n);
            offset += n;
        }
        const double seconds = seconds_since(start);
        keep(sum);
        check_sum(sum, expected_, "pread()", file_.path());
        return seconds;
    }

    // map + (advise) + scan + unmap. With `pmd_bytes`, also reports how much
    // of the view the kernel mapped with 2 MiB entries (for the probe run;
    // reading smaps makes that run's time meaningless).
    double map_scan(const MapVariant& variant, std::uint64_t* pmd_bytes = nullptr) {
        const auto start = Clock::now();
        std::uint64_t sum;
        {
            Mapping view =
                Mapping::map(file_, Access::ReadOnly, 0, Mapping::kToEnd, variant.options);
            if (variant.advice) view.advise(*variant.advice);
            sum = sum_words(view.data(), view.size());
            if (pmd_bytes != nullptr) *pmd_bytes = pmd_mapped_bytes(view.data());
        }
        const double seconds = seconds_since(start);
        keep(sum);
        check_sum(sum, expected_, "Mapping", file_.path());
        return seconds;
    }

    // Scan of memory that is already mapped and resident.
    double scan_only(const Mapping& memory, const char* what) {
        const auto start = Clock::now();
        std::uint64_t sum = sum_words(memory.data(), memory.size());
        const double seconds = seconds_since(start);
        keep(sum);
        check_sum(sum, expected_, what, file_.path());
        return seconds;
    }

    std::uint64_t size() const noexcept { return size_; }

  private:
    File& file_;
    File reader_;  // own descriptor: read() moves its file offset
    std::uint64_t size_;
    std::uint64_t expected_;
    Mapping buffer_;  // kReadBufferBytes, page-aligned, for read() and pread()
};

// Whether MADV_POPULATE_READ works here (Linux 5.14+); the reason if not.
std::optional<std::string> populate_read_unsupported(File& file) {
    try {
        Mapping probe = Mapping::map(file, Access::ReadOnly, 0, Mapping::page_size());
        probe.advise(Advice::PopulateRead);
    } catch (const Error& e) {
        return std::string(e.what());
    }
    return std::nullopt;
}

struct Method {
    std::string name;
    std::string measures;               // what one repetition includes
    std::optional<MapVariant> mapping;  // set for Mapping rows
    std::function<double()> run;
    const Mapping* anonymous = nullptr;  // set for anonymous-memory rows
};

// The rows of one phase, measured interleaved: every row of the phase sees
// the file in the same page-cache state.
struct Phase {
    std::string cache;  // the rows' "cache" column
    std::vector<Method> methods;
};

// Turns measured seconds into a row; ratios are filled in per phase later.
Json make_row(const Method& m, const std::string& cache, const std::vector<double>& seconds,
              std::uint64_t bytes) {
    std::vector<double> gbps;
    for (double s : seconds) gbps.push_back(static_cast<double>(bytes) / s / 1e9);
    const Summary g = summarize(gbps);
    Json row;
    row["method"] = m.name;
    row["cache"] = cache;
    row["measures"] = m.measures;
    row["gbps"] = g.median;
    row["gbps_min"] = g.min;
    row["gbps_max"] = g.max;
    row["ratio_to_read"] = nullptr;
    row["ratio_to_anonymous"] = nullptr;
    row["pmd_mapped_percent"] = nullptr;
    row["repetitions"] = g.count;
    row["bytes"] = bytes;
    row["seconds"] = seconds;
    return row;
}

constexpr const char* kReadRow = "read() 128 KiB buffer";
constexpr const char* kAnonymousRow = "anonymous memory, 4 KiB pages";
constexpr const char* kAnonymousHugeRow = "anonymous memory, THP";

// Runs a phase and returns its rows, with ratios to the phase's own read()
// and anonymous-memory rows. `probe_pmd`: afterwards map once more per
// mapping row (untimed) to report how much the kernel mapped with 2 MiB entries.
std::vector<Json> run_phase(Context& ctx, Phase& phase, int rounds, int warmup, Scanner& scanner,
                            bool probe_pmd) {
    std::vector<Trial> trials;
    for (const Method& m : phase.methods) trials.push_back({m.name, m.run, {}});
    run_interleaved(trials, rounds, warmup, [&](int r, int n) {
        ctx.progress(fmt::format("{}: round {}/{}", phase.cache, r + 1, n));
    });

    std::vector<Json> rows;
    double read_gbps = 0;
    double anonymous_gbps = 0;
    for (std::size_t i = 0; i < trials.size(); ++i) {
        rows.push_back(make_row(phase.methods[i], phase.cache, trials[i].seconds, scanner.size()));
        if (phase.methods[i].name == kReadRow) read_gbps = rows.back()["gbps"];
        // The ceiling is the faster anonymous row: the stricter comparison.
        if (phase.methods[i].name == kAnonymousRow || phase.methods[i].name == kAnonymousHugeRow) {
            anonymous_gbps = std::max(anonymous_gbps, rows.back()["gbps"].get<double>());
        }
        if (probe_pmd && phase.methods[i].anonymous != nullptr) {
            const Mapping& memory = *phase.methods[i].anonymous;
            rows.back()["pmd_mapped_percent"] =
                100.0 * static_cast<double>(pmd_mapped_bytes(memory.data())) /
                static_cast<double>(memory.size());
        }
        if (probe_pmd && phase.methods[i].mapping) {
            std::uint64_t pmd_bytes = 0;
            scanner.map_scan(*phase.methods[i].mapping, &pmd_bytes);
            rows.back()["pmd_mapped_percent"] =
                100.0 * static_cast<double>(pmd_bytes) / static_cast<double>(scanner.size());
        }
    }
    for (Json& row : rows) {
        const double gbps = row["gbps"];
        if (read_gbps > 0) row["ratio_to_read"] = gbps / read_gbps;
        if (anonymous_gbps > 0) row["ratio_to_anonymous"] = gbps / anonymous_gbps;
    }
    return rows;
}

// The best mapping row of a hot phase against the targets. Every
// mapping row pays for map + scan + unmap in each repetition.
Json verdict(const std::vector<Json>& rows, const Phase& phase, std::vector<std::string>& notes) {
    const Json* best = nullptr;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (!phase.methods[i].mapping) continue;
        if (best == nullptr || rows[i]["gbps"] > (*best)["gbps"]) best = &rows[i];
    }
    if (best == nullptr || (*best)["ratio_to_read"].is_null() ||
        (*best)["ratio_to_anonymous"].is_null()) {
        return nullptr;
    }
    const double to_read = (*best)["ratio_to_read"];
    const double to_anon = (*best)["ratio_to_anonymous"];
    const bool read_met = to_read >= kTargetRatioToRead;
    const bool anon_met = to_anon >= kTargetRatioToAnonymous;
    notes.push_back(fmt::format(
        "{}: best mapping {} at {:.2f} GB/s = {:.3f}x read() (target {:.1f}x: {}), {:.3f}x "
        "anonymous memory (target {:.1f}x: {})",
        phase.cache, (*best)["method"].get<std::string>(), (*best)["gbps"].get<double>(), to_read,
        kTargetRatioToRead, read_met ? "met" : "NOT met", to_anon, kTargetRatioToAnonymous,
        anon_met ? "met" : "NOT met"));
    return {{"cache", phase.cache},
            {"best_mapping", (*best)["method"]},
            {"gbps", (*best)["gbps"]},
            {"ratio_to_read", to_read},
            {"ratio_to_anonymous", to_anon},
            {"ratio_to_read_met", read_met},
            {"ratio_to_anonymous_met", anon_met}};
}

SectionResult run_mapping(Context& ctx) {
    const bool quick = ctx.options.quick;
    const std::uint64_t size = quick ? kQuickFileBytes : kFullFileBytes;
    const int rounds = ctx.options.repetitions > 0 ? ctx.options.repetitions
                                                   : (quick ? kQuickRounds : kFullRounds);
    const int cold_rounds = ctx.options.repetitions > 0
                                ? ctx.options.repetitions
                                : (quick ? kQuickColdRounds : kFullColdRounds);

    SectionResult result;
    result.title = fmt::format(
        "mapping: scan a {} file of pseudo-random data, sum of 64-bit words (GB/s, higher is "
        "better; median of {} hot / {} cold repetitions)",
        format_bytes(size), rounds, cold_rounds);
    result.columns = {
        {"method", "method", -1, ""},
        {"cache", "cache", -1, ""},
        {"gbps", "GB/s", 2, ""},
        {"gbps_min", "min", 2, ""},
        {"gbps_max", "max", 2, ""},
        {"ratio_to_read", "x read()", 2, "x"},
        {"ratio_to_anonymous", "x anon", 2, "x"},
        {"pmd_mapped_percent", "2M-mapped", 0, "%"},
    };

    const std::string path = ctx.scratch.file("mapping.dat");
    ctx.progress(fmt::format("writing {} of pseudo-random data to {}", format_bytes(size), path));
    File file = File::create(path, CreateMode::Truncate, 0600);
    const std::uint64_t expected = create_data_file(file, size);
    Scanner scanner(file, size, expected);
    const std::optional<std::string> no_populate_read = populate_read_unsupported(file);
    if (no_populate_read) {
        result.notes.push_back("Advice::PopulateRead skipped: " + *no_populate_read);
    }

    const MapVariant kFaultDriven{{}, std::nullopt};
    const MapVariant kSequential{{}, Advice::Sequential};
    const MapVariant kPopulate{{.populate = true}, std::nullopt};
    const MapVariant kPopulateRead{{}, Advice::PopulateRead};
    const std::string kPerRepetition = "map + scan + unmap";
    auto mapping_method = [&](std::string name, const MapVariant& variant) {
        return Method{std::move(name), kPerRepetition, variant,
                      [&scanner, variant] { return scanner.map_scan(variant); }};
    };

    // The same bytes in anonymous memory, already faulted in: the ceiling,
    // with normal pages and with transparent huge pages (fewer TLB misses).
    Mapping anonymous = Mapping::anonymous(size);
    Mapping anonymous_huge =
        Mapping::anonymous(size, Sharing::Private, {.huge_pages = HugePages::Transparent});
    // (Reading the file here also leaves every page of it in the page cache.)
    for (Mapping* memory : {&anonymous, &anonymous_huge}) {
        if (file.read_at(0, memory->bytes()) != size) {
            throw_error("read", path, EIO, "file shorter than written");
        }
    }
    auto hot_phase = [&](std::string cache) {
        Phase phase{std::move(cache), {}};
        phase.methods.push_back({kReadRow, "read loop + scan of the buffer", std::nullopt,
                                 [&] { return scanner.read_loop(); }});
        phase.methods.push_back({"pread() 128 KiB buffer", "pread loop (File::read_at) + scan",
                                 std::nullopt, [&] { return scanner.pread_loop(); }});
        phase.methods.push_back(mapping_method("Mapping, fault-driven", kFaultDriven));
        phase.methods.push_back(mapping_method("Mapping + Advice::Sequential", kSequential));
        phase.methods.push_back(mapping_method("Mapping + populate (MAP_POPULATE)", kPopulate));
        if (!no_populate_read) {
            phase.methods.push_back(
                mapping_method("Mapping + Advice::PopulateRead", kPopulateRead));
        }
        phase.methods.push_back({kAnonymousRow, "scan of resident anonymous memory", std::nullopt,
                                 [&] { return scanner.scan_only(anonymous, kAnonymousRow); },
                                 &anonymous});
        phase.methods.push_back(
            {kAnonymousHugeRow, "scan of resident anonymous memory (MADV_HUGEPAGE)", std::nullopt,
             [&] { return scanner.scan_only(anonymous_huge, kAnonymousHugeRow); },
             &anonymous_huge});
        return phase;
    };
    std::vector<Json> verdicts;
    auto append = [&](std::vector<Json> rows) {
        for (Json& row : rows) result.rows.push_back(std::move(row));
    };

    // ---- hot, as written: page-cache folios as the writes made them --------
    // The file was written in 1 MiB writes; ext4 caches them in folios of
    // up to that size, which the kernel maps with 4 KiB entries.
    {
        Phase phase = hot_phase("hot (written)");
        std::vector<Json> rows = run_phase(ctx, phase, rounds, kWarmupRounds, scanner, true);
        verdicts.push_back(verdict(rows, phase, result.notes));
        append(std::move(rows));
    }

    // ---- dropping the file from the page cache -----------------------------
    const std::size_t pages = (size + Mapping::page_size() - 1) / Mapping::page_size();
    const auto resident_limit =
        static_cast<std::size_t>(kColdResidentLimit * static_cast<double>(pages));
    auto drop = [&file, resident_limit] {
        const std::size_t left = drop_from_page_cache(file);
        if (left > resident_limit) {
            throw ColdDropFailed(
                fmt::format("{} pages still resident after POSIX_FADV_DONTNEED", left));
        }
    };
    std::string cold_status = "measured";
    try {
        ctx.progress("dropping the file from the page cache (write back + POSIX_FADV_DONTNEED)");
        drop();

        // ---- hot, read back: the page cache as readahead fills it ----------
        // What a file that was read before looks like: readahead makes
        // large folios, which a mapping can map with 2 MiB entries.
        scanner.read_loop();
        {
            Phase phase = hot_phase("hot (read back)");
            std::vector<Json> rows = run_phase(ctx, phase, rounds, kWarmupRounds, scanner, true);
            verdicts.push_back(verdict(rows, phase, result.notes));
            append(std::move(rows));
        }

        // ---- cold: every repetition starts with the file dropped -----------
        // Dropping is preparation, outside the measured time.
        Phase cold{"cold", {}};
        auto cold_method = [&](Method m) {
            m.run = [&drop, run = std::move(m.run)] {
                drop();
                return run();
            };
            cold.methods.push_back(std::move(m));
        };
        cold_method({kReadRow, "read loop + scan of the buffer", std::nullopt,
                     [&] { return scanner.read_loop(); }});
        cold_method(mapping_method("Mapping, fault-driven", kFaultDriven));
        cold_method(mapping_method("Mapping + Advice::Sequential", kSequential));
        cold_method(mapping_method("Mapping + populate (MAP_POPULATE)", kPopulate));
        append(run_phase(ctx, cold, cold_rounds, 0, scanner, false));
    } catch (const ColdDropFailed& e) {
        cold_status = std::string("skipped: ") + e.what();
        result.notes.push_back("read-back and cold rows " + cold_status +
                               " (the kernel kept the file cached; nothing was estimated)");
    }

    Json summary;
    summary["file_bytes"] = size;
    summary["file_write_bytes"] = kFillChunkBytes;
    summary["read_buffer_bytes"] = kReadBufferBytes;
    summary["hot_repetitions"] = rounds;
    summary["cold_repetitions"] = cold_rounds;
    summary["cold"] = cold_status;
    summary["scan_kernel"] = sum_words_kernel();
    summary["checksum"] = fmt::format("{:016x}", expected);
    summary["targets"] = {{"ratio_to_read", kTargetRatioToRead},
                          {"ratio_to_anonymous", kTargetRatioToAnonymous}};
    summary["verdicts"] = verdicts;
    result.notes.push_back(
        "x read(): relative to the same phase's read() row; x anon: relative to the faster "
        "anonymous-memory row of the phase (the stricter ceiling)");
    result.notes.push_back(
        fmt::format("every scan's checksum matched the file's ({:016x}); scan kernel: {}", expected,
                    sum_words_kernel()));
    result.summary = std::move(summary);
    return result;
}

}  // namespace

Section mapping_section() {
    return {"mapping",
            "scan a file hot and cold in the page cache: Mapping vs read()/pread() vs "
            "anonymous memory",
            run_mapping};
}

}  // namespace pagewire::bench
