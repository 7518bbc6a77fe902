// Micro-benchmarks of pagewire's mapping operations (Google Benchmark):
//   BM_MapUnmap      Mapping::map + unmap of a page-cache-hot file, no access
//   BM_FaultPerPage  map + touch one byte of every page, per page: plain faults
//                    (with the kernel's fault-around), populate=true,
//                    Advice::PopulateRead; unmap is outside the timing
//   BM_ReadChunk     copying a chunk out of a mapping: raw memcpy vs the
//                    SIGBUS-guarded Mapping::read and guarded_copy, from one
//                    cache-hot chunk (span 0) or walking 64 MiB of the file
//   BM_SumWords      the checksum scan of `pagewire bench` alone
// Every benchmark uses one 64 MiB file of pseudo-random data under /var/tmp,
// read once so it is in the page cache, removed at exit.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/guard.hpp>
#include <pagewire/mapping.hpp>
#include <span>
#include <string>
#include <vector>

#include "bench_scan.hpp"

namespace {

using pagewire::Access;
using pagewire::Advice;
using pagewire::File;
using pagewire::MapOptions;
using pagewire::Mapping;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::size_t kFileBytes = 64 * kMiB;
constexpr std::size_t kFillChunkBytes = 1 * kMiB;

// The process's one hot file. Created on first use; unlinked at exit.
class HotFile {
  public:
    static HotFile& get() {
        static HotFile instance;
        return instance;
    }
    const File& file() const noexcept { return file_; }
    // A populated read-only mapping of the whole file, kept for the process.
    const Mapping& view() const noexcept { return view_; }

    ~HotFile() { ::unlink(file_.path().c_str()); }

  private:
    HotFile() : file_(create()) {
        std::vector<std::byte> sink(kFillChunkBytes);
        for (std::uint64_t off = 0; off < kFileBytes; off += kFillChunkBytes) {
            (void)file_.read_at(off, sink);  // every page into the page cache
        }
        view_ = Mapping::map(file_, Access::ReadOnly, 0, Mapping::kToEnd, {.populate = true});
    }

    static File create() {
        std::string path = "/var/tmp/pagewire-microbench-XXXXXX";
        int fd = ::mkstemp(path.data());
        if (fd < 0) pagewire::throw_error("mkstemp", path);
        File file = File::adopt(pagewire::UniqueFd(fd), path, true);
        std::vector<std::uint64_t> chunk(kFillChunkBytes / sizeof(std::uint64_t));
        std::uint64_t state = 0x7061676577697265ULL;
        for (std::uint64_t off = 0; off < kFileBytes; off += kFillChunkBytes) {
            for (std::uint64_t& word : chunk) {  // splitmix64
                std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
                word = z ^ (z >> 31);
            }
            file.write_at(off, std::as_bytes(std::span(chunk)));
        }
        file.datasync();  // no writeback running during the measurements
        return file;
    }

    File file_;
    Mapping view_;
};

long minor_faults() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_minflt;
}

// ---- map / unmap -------------------------------------------------------------

void BM_MapUnmap(benchmark::State& state) {
    const File& file = HotFile::get().file();
    const auto length = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        Mapping view = Mapping::map(file, Access::ReadOnly, 0, length);
        benchmark::DoNotOptimize(view.data());
    }
}
BENCHMARK(BM_MapUnmap)->Arg(4 * kKiB)->Arg(1 * kMiB)->Arg(64 * kMiB)->UseRealTime();

// ---- faults ------------------------------------------------------------------

struct FaultVariant {
    MapOptions options;
    std::optional<Advice> advice;
};

void BM_FaultPerPage(benchmark::State& state, FaultVariant variant) {
    const File& file = HotFile::get().file();
    const auto length = static_cast<std::size_t>(state.range(0));
    const std::size_t page = Mapping::page_size();
    const std::size_t pages = length / page;
    long faults = 0;
    for (auto _ : state) {
        const long faults_before = minor_faults();
        const auto start = std::chrono::steady_clock::now();
        Mapping view = Mapping::map(file, Access::ReadOnly, 0, length, variant.options);
        if (variant.advice) view.advise(*variant.advice);
        const volatile unsigned char* p = reinterpret_cast<const unsigned char*>(view.data());
        unsigned sum = 0;
        for (std::size_t off = 0; off < length; off += page) sum += p[off];
        benchmark::DoNotOptimize(sum);
        state.SetIterationTime(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        faults += minor_faults() - faults_before;
        // `view` is unmapped here, outside the measured time (see BM_MapUnmap).
    }
    // Time per page: the iteration time divided by the pages touched.
    state.counters["per_page"] = benchmark::Counter(
        static_cast<double>(pages),
        benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
    // How many pages one page fault made present (the kernel's fault-around).
    state.counters["pages_per_fault"] = faults > 0 ? static_cast<double>(pages) *
                                                         static_cast<double>(state.iterations()) /
                                                         static_cast<double>(faults)
                                                   : 0.0;
}
BENCHMARK_CAPTURE(BM_FaultPerPage, fault, FaultVariant{{}, std::nullopt})
    ->Arg(64 * kMiB)
    ->UseManualTime();
BENCHMARK_CAPTURE(BM_FaultPerPage, populate, FaultVariant{{.populate = true}, std::nullopt})
    ->Arg(64 * kMiB)
    ->UseManualTime();
BENCHMARK_CAPTURE(BM_FaultPerPage, populate_read, FaultVariant{{}, Advice::PopulateRead})
    ->Arg(64 * kMiB)
    ->UseManualTime();

// ---- guarded vs raw reads ----------------------------------------------------

enum class ReadKind { Memcpy, MappingRead, GuardedCopy };

// range(0): chunk bytes; range(1): bytes of the file walked (0: the same
// chunk every time, so it stays in cache and the guard's own cost shows).
void BM_ReadChunk(benchmark::State& state, ReadKind kind) {
    const Mapping& view = HotFile::get().view();
    const auto chunk = static_cast<std::size_t>(state.range(0));
    const auto span = state.range(1) == 0 ? chunk : static_cast<std::size_t>(state.range(1));
    // Page-aligned like the source, so every benchmark copies with the same
    // relative alignment (a heap buffer's address varies from one benchmark
    // to the next and with it the cost of 4 KiB store/load aliasing).
    Mapping destination = Mapping::anonymous(chunk);
    std::memset(destination.data(), 0, chunk);  // faulted in before the timing
    std::span<std::byte> buffer = destination.bytes();
    std::size_t offset = 0;
    for (auto _ : state) {
        switch (kind) {
            case ReadKind::Memcpy:
                std::memcpy(buffer.data(), view.data() + offset, chunk);
                break;
            case ReadKind::MappingRead:
                if (auto r = view.read(offset, buffer); !r)
                    state.SkipWithError(r.message().c_str());
                break;
            case ReadKind::GuardedCopy:
                if (auto r = pagewire::guarded_copy(buffer.data(), view.data() + offset, chunk);
                    !r) {
                    state.SkipWithError(r.message().c_str());
                }
                break;
        }
        benchmark::DoNotOptimize(buffer.data());
        benchmark::ClobberMemory();
        offset += chunk;
        if (offset + chunk > span) offset = 0;
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(chunk));
}
#define PAGEWIRE_READ_ARGS \
    ArgsProduct({{4 * kKiB, 64 * kKiB, 1 * kMiB}, {0, 64 * kMiB}})->ArgNames({"chunk", "span"})
BENCHMARK_CAPTURE(BM_ReadChunk, memcpy, ReadKind::Memcpy)->PAGEWIRE_READ_ARGS;
BENCHMARK_CAPTURE(BM_ReadChunk, mapping_read, ReadKind::MappingRead)->PAGEWIRE_READ_ARGS;
BENCHMARK_CAPTURE(BM_ReadChunk, guarded_copy, ReadKind::GuardedCopy)->PAGEWIRE_READ_ARGS;

// ---- the checksum scan -------------------------------------------------------

// range(0) bytes: 128 KiB stays in L2 (the scan's own speed); 64 MiB of the
// hot mapping is the memory-bound case.
void BM_SumWords(benchmark::State& state) {
    const Mapping& view = HotFile::get().view();
    const auto length = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        std::uint64_t sum = pagewire::bench::sum_words(view.data(), length);
        benchmark::DoNotOptimize(sum);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(length));
    state.SetLabel(pagewire::bench::sum_words_kernel());
}
BENCHMARK(BM_SumWords)->Arg(128 * kKiB)->Arg(64 * kMiB);

}  // namespace
