#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <pagewire/error.hpp>
#include <pagewire/page_cache.hpp>

#include "sys.hpp"

namespace pagewire {
namespace {

// cachestat(2), Linux 6.5. The C library has no wrapper yet; the number is the
// same on every architecture (it is in the generic syscall table).
constexpr long kSysCachestat = 451;

struct CachestatRange {
    std::uint64_t off;
    std::uint64_t len;  // 0: to end of file
};

struct Cachestat {
    std::uint64_t nr_cache;
    std::uint64_t nr_dirty;
    std::uint64_t nr_writeback;
    std::uint64_t nr_evicted;
    std::uint64_t nr_recently_evicted;
};

// mincore works on mappings; files are probed through windows of this size
// so a huge file never needs a huge address-space reservation.
constexpr std::uint64_t kMincoreWindowBytes = std::uint64_t{1} << 30;

struct Span {
    std::uint64_t offset;
    std::uint64_t length;
};

// Clamps [offset, offset+length) to the file and aligns it to whole pages.
Span page_span(std::uint64_t file_size, std::uint64_t offset, std::uint64_t length) {
    const std::uint64_t page = sys::page_size();
    if (offset >= file_size) return {offset, 0};
    const std::uint64_t end = length >= file_size - offset ? file_size : offset + length;
    const std::uint64_t begin = sys::round_down(offset, page);
    return {begin, sys::round_up(end, page) - begin};
}

// Calls visit(window_offset, residency bytes) for each window of the span.
template <class Visit>
void for_each_mincore_window(const File& file, Span span, Visit visit) {
    const std::uint64_t page = sys::page_size();
    std::vector<unsigned char> vec;
    for (std::uint64_t done = 0; done < span.length;) {
        const std::uint64_t n = std::min(kMincoreWindowBytes, span.length - done);
        void* addr = ::mmap(nullptr, n, PROT_READ, MAP_SHARED, file.fd(),
                            static_cast<off_t>(span.offset + done));
        if (addr == MAP_FAILED) throw_error("mincore", file.path());
        vec.resize(n / page);
        const int r = ::mincore(addr, n, vec.data());
        const int err = errno;
        ::munmap(addr, n);
        if (r != 0) throw_error("mincore", file.path(), err);
        visit(span.offset + done, vec);
        done += n;
    }
}

// mincore(2) and cachestat(2) show which pages of a file are cached only to
// its owner, a process with CAP_FOWNER, or one that may write the file
// (residency would otherwise be a side channel between users). Anyone else
// gets EPERM from cachestat and, from mincore, every page reported resident
// whatever the truth (what vmtouch and fincore then print). pagewire refuses
// with this message instead of reporting made-up numbers.
constexpr const char* kHiddenDetail =
    "the kernel shows page-cache residency only to the file's owner or to users who may write it";

bool residency_visible(const File& file) {
    if (file.writable()) return true;
    if (kernel_has_cachestat()) {
        // The kernel's own answer: cachestat applies the same rule as mincore.
        CachestatRange range{0, 1};
        Cachestat cs{};
        if (::syscall(kSysCachestat, file.fd(), &range, &cs, 0) == 0) return true;
        if (errno == EPERM) return false;
    }
    struct stat st {};
    if (::fstat(file.fd(), &st) != 0) throw_error("fstat", file.path());
    if (st.st_uid == ::geteuid() || ::geteuid() == 0) return true;
    return ::faccessat(file.fd(), "", W_OK, AT_EMPTY_PATH | AT_EACCESS) == 0;
}

void require_visible(const File& file, std::string_view operation) {
    if (!residency_visible(file)) throw_error(operation, file.path(), EPERM, kHiddenDetail);
}

// Pages of the span whose data is in the page cache (a page whose read is
// still in flight does not count). No visibility check: see residency_visible.
std::uint64_t mincore_count(const File& file, Span span) {
    std::uint64_t cached = 0;
    for_each_mincore_window(file, span, [&](std::uint64_t, const std::vector<unsigned char>& vec) {
        for (unsigned char v : vec) cached += v & 1;
    });
    return cached;
}

CacheStat stat_with_mincore(const File& file, Span span) {
    require_visible(file, "cache stat");
    CacheStat s;
    s.pages = span.length / sys::page_size();
    s.cached = mincore_count(file, span);
    return s;
}

bool stat_with_cachestat(const File& file, Span span, CacheStat& out) {
    CachestatRange range{span.offset, span.length};
    Cachestat cs{};
    if (::syscall(kSysCachestat, file.fd(), &range, &cs, 0) != 0) {
        if (errno == ENOSYS) return false;
        // The kernel has cachestat (probed), so EPERM is the visibility rule.
        if (errno == EPERM) throw_error("cache stat", file.path(), EPERM, kHiddenDetail);
        throw_error("cachestat", file.path());
    }
    out.pages = span.length / sys::page_size();
    out.cached = cs.nr_cache;
    out.dirty = cs.nr_dirty;
    out.writeback = cs.nr_writeback;
    out.evicted = cs.nr_evicted;
    out.recently_evicted = cs.nr_recently_evicted;
    return true;
}

void add_optional(std::optional<std::uint64_t>& into, const std::optional<std::uint64_t>& v) {
    if (into && v) {
        *into += *v;
    } else {
        into.reset();
    }
}

}  // namespace

CacheStat& CacheStat::operator+=(const CacheStat& other) {
    pages += other.pages;
    cached += other.cached;
    add_optional(dirty, other.dirty);
    add_optional(writeback, other.writeback);
    add_optional(evicted, other.evicted);
    add_optional(recently_evicted, other.recently_evicted);
    return *this;
}

bool kernel_has_cachestat() noexcept {
    static const bool has = [] {
        // An invalid descriptor gives EBADF when the call exists, ENOSYS when not.
        CachestatRange range{0, 0};
        Cachestat cs{};
        return ::syscall(kSysCachestat, -1, &range, &cs, 0) != 0 && errno == EBADF;
    }();
    return has;
}

namespace {

CacheStat stat_span(const File& file, Span span, CacheProbe probe) {
    if (span.length == 0) return CacheStat{};
    CacheStat s;
    if (probe == CacheProbe::Auto && kernel_has_cachestat() && stat_with_cachestat(file, span, s)) {
        return s;
    }
    return stat_with_mincore(file, span);
}

}  // namespace

CacheStat cache_stat(const File& file, std::uint64_t offset, std::uint64_t length,
                     CacheProbe probe) {
    return stat_span(file, page_span(file.size(), offset, length), probe);
}

CacheStat cache_stat_sized(const File& file, std::uint64_t file_size, CacheProbe probe) {
    return stat_span(file, page_span(file_size, 0, kWholeFile), probe);
}

std::vector<bool> cache_map(const File& file, std::uint64_t offset, std::uint64_t length) {
    const Span span = page_span(file.size(), offset, length);
    if (span.length != 0) require_visible(file, "cache map");
    std::vector<bool> map;
    map.reserve(span.length / sys::page_size());
    for_each_mincore_window(file, span, [&](std::uint64_t, const std::vector<unsigned char>& vec) {
        for (unsigned char v : vec) map.push_back((v & 1) != 0);
    });
    return map;
}

CacheStat evict(const File& file, bool write_dirty_first, std::uint64_t offset,
                std::uint64_t length) {
    const Span span = page_span(file.size(), offset, length);
    if (span.length == 0) return CacheStat{};
    if (write_dirty_first) {
        const int flags =
            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
        if (sys::retry_eintr([&] {
                return ::sync_file_range(file.fd(), static_cast<off_t>(span.offset),
                                         static_cast<off_t>(span.length),
                                         static_cast<unsigned>(flags));
            }) != 0) {
            throw_error("evict", file.path());
        }
    }
    const int err = ::posix_fadvise(file.fd(), static_cast<off_t>(span.offset),
                                    static_cast<off_t>(span.length), POSIX_FADV_DONTNEED);
    if (err != 0) throw_error("evict", file.path(), err);
    if (!residency_visible(file)) {
        throw_error("evict", file.path(), EPERM, std::string("evicted, but ") + kHiddenDetail);
    }
    return cache_stat(file, span.offset, span.length);
}

CacheStat warm(const File& file, std::uint64_t offset, std::uint64_t length) {
    const Span span = page_span(file.size(), offset, length);
    if (span.length == 0) return CacheStat{};
    // readahead(2) only starts the reads, and may stop early (memory
    // pressure, device limits). Whether every page's data has arrived is
    // asked of mincore, which counts a page once its read has completed;
    // cachestat counts pages whose read is still in flight, so it would
    // declare the file warm too early. A populate pass through a mapping
    // then faults in whatever is missing, waiting for reads in flight,
    // without copying data to user space.
    if (sys::retry_eintr([&] {
            return ::readahead(file.fd(), static_cast<off64_t>(span.offset), span.length);
        }) != 0) {
        throw_error("warm", file.path());
    }
    const bool visible = residency_visible(file);  // else mincore says "all resident"
    if (!visible || mincore_count(file, span) < span.length / sys::page_size()) {
        for (std::uint64_t done = 0; done < span.length;) {
            const std::uint64_t n = std::min(kMincoreWindowBytes, span.length - done);
            Mapping window = Mapping::map(file, Access::ReadOnly, span.offset + done, n);
            window.advise(Advice::PopulateRead);
            done += n;
        }
    }
    if (!visible) {
        throw_error("warm", file.path(), EPERM, std::string("warmed, but ") + kHiddenDetail);
    }
    return cache_stat(file, span.offset, span.length);
}

CacheLock::CacheLock(const File& file) {
    if (file.size() == 0) return;
    mapping_ = Mapping::map(file, Access::ReadOnly, 0, Mapping::kToEnd, MapOptions{.lock = true});
}

}  // namespace pagewire
