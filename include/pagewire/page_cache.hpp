// Page-cache residency and control for files: how much of a file is in RAM,
// and evicting, warming or locking it (seeds 001–003, S17).
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <pagewire/config.hpp>
#include <pagewire/file.hpp>
#include <pagewire/mapping.hpp>
#include <string>
#include <vector>

namespace pagewire {

// Page-cache state of a byte range of a file, in pages of Mapping::page_size().
struct CacheStat {
    std::uint64_t pages = 0;   // pages the range spans
    std::uint64_t cached = 0;  // pages resident in the page cache
    // The rest is known only where the kernel has cachestat(2) (Linux 6.5+);
    // with the mincore fallback these are nullopt.
    std::optional<std::uint64_t> dirty;             // cached and modified, not yet written back
    std::optional<std::uint64_t> writeback;         // being written back now
    std::optional<std::uint64_t> evicted;           // evicted from the cache (shadow entries)
    std::optional<std::uint64_t> recently_evicted;  // evicted recently enough to count as thrashing

    CacheStat& operator+=(const CacheStat& other);
};

// How cache_stat gets its numbers.
enum class CacheProbe {
    Auto,     // cachestat(2) when the kernel has it, else mincore
    Mincore,  // map the file and ask mincore(2): works everywhere, no dirty counts
};

inline constexpr std::uint64_t kWholeFile = std::numeric_limits<std::uint64_t>::max();

// Residency totals for [offset, offset+length) of an open file (clamped to end of file).
// The kernel shows residency only to the file's owner or to someone who may
// write it (others would be told every page is resident): for anyone else
// this throws Error(EPERM) rather than report wrong numbers.
CacheStat cache_stat(const File& file, std::uint64_t offset = 0, std::uint64_t length = kWholeFile,
                     CacheProbe probe = CacheProbe::Auto);
// The whole file, its size already known (from the stat a directory walk
// made): no fstat of its own. A tree's stat is system calls per file
// (open, stat, cachestat, close): one fewer is a fifth of the time.
CacheStat cache_stat_sized(const File& file, std::uint64_t file_size,
                           CacheProbe probe = CacheProbe::Auto);

// Per-page residency of [offset, offset+length): one entry per page (mincore).
// EPERM as for cache_stat.
std::vector<bool> cache_map(const File& file, std::uint64_t offset = 0,
                            std::uint64_t length = kWholeFile);

// True when the running kernel implements cachestat(2); probed once.
bool kernel_has_cachestat() noexcept;

// Drops the range's clean pages from the page cache (POSIX_FADV_DONTNEED).
// With write_dirty_first, dirty pages are written back first so they can be
// dropped too; otherwise they are not waited for (DONTNEED starts writeback,
// and pages whose write finishes in time may still go). Pages mapped by any
// process stay. Returns the state afterwards; for a file whose residency the
// caller may not see, the pages are evicted and then Error(EPERM) is thrown.
CacheStat evict(const File& file, bool write_dirty_first, std::uint64_t offset = 0,
                std::uint64_t length = kWholeFile);

// Reads the range into the page cache and waits until it is there
// (readahead(2), then a populate of whatever has not arrived, checked with
// mincore). Returns the state afterwards; EPERM as for evict.
CacheStat warm(const File& file, std::uint64_t offset = 0, std::uint64_t length = kWholeFile);

// Keeps a whole file's pages in RAM (mmap + mlock) for as long as it lives.
// Move-only. RLIMIT_MEMLOCK applies to unprivileged users.
class CacheLock {
  public:
    explicit CacheLock(const File& file);
    std::uint64_t bytes() const noexcept { return mapping_.size(); }
    const std::string& path() const noexcept { return mapping_.name(); }

  private:
    Mapping mapping_;  // read-only, locked
};

}  // namespace pagewire
