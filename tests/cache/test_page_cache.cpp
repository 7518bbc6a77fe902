// pagewire/page_cache.hpp against the kernel: evict, warm and partial reads
// give exactly the residency the kernel reports through mincore, and the
// same page counts as vmtouch and util-linux fincore on the same files;
// cachestat(2) and the mincore fallback agree; dirty pages; locked pages.
#include <grp.h>
#include <sys/syscall.h>

#include <cstdlib>
#include <fstream>
#include <numeric>
#include <pagewire/error.hpp>
#include <pagewire/mapping.hpp>
#include <pagewire/page_cache.hpp>
#include <string>
#include <vector>

#include "cache_test_util.hpp"

using cachetest::DiskDir;
using cachetest::make_file;
using cachetest::mincore_map;
using cachetest::pages_of;
using pagewire::CacheProbe;
using pagewire::CacheStat;
using pagewire::File;

namespace {

const std::uint64_t kPage = cachetest::page_size();

std::uint64_t count(const std::vector<bool>& map) {
    return static_cast<std::uint64_t>(std::count(map.begin(), map.end(), true));
}

// Reads the whole file through a descriptor of the test's own.
void read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> buf(1 << 20);
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    }
}

// Both probes, the per-page map, vmtouch and fincore all report `cached` of
// `pages` for the file.
void expect_everyone_reports(const std::string& path, std::uint64_t cached, std::uint64_t pages) {
    File f = File::open(path);
    const CacheStat with_auto = pagewire::cache_stat(f);
    const CacheStat with_mincore =
        pagewire::cache_stat(f, 0, pagewire::kWholeFile, CacheProbe::Mincore);
    EXPECT_EQ(with_auto.pages, pages) << path;
    EXPECT_EQ(with_auto.cached, cached) << path;
    EXPECT_EQ(with_mincore.pages, pages) << path;
    EXPECT_EQ(with_mincore.cached, cached) << path;
    EXPECT_EQ(count(pagewire::cache_map(f)), cached) << path;
    EXPECT_EQ(count(mincore_map(path)), cached) << path;
    EXPECT_EQ(cachetest::fincore_pages({path}), cached) << path;
    const cachetest::VmtouchCount v = cachetest::vmtouch_count({path});
    EXPECT_EQ(v.resident, cached) << path;
    EXPECT_EQ(v.pages, pages) << path;
}

// kB of memory this process has locked ("VmLck:" in /proc/self/status).
long locked_kb() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("VmLck:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    }
    return -1;
}

}  // namespace

TEST(PageCache, EvictThenNothingIsCached) {
    DiskDir dir;
    const std::string path = dir / "data";
    const std::uint64_t size = 4 * 1024 * 1024 + 123;  // the last page is partial
    make_file(path, size);
    read_all(path);
    ASSERT_EQ(count(mincore_map(path)), pages_of(size)) << "the file should be cached after a read";

    File f = File::open(path);
    const CacheStat after = pagewire::evict(f, /*write_dirty_first=*/false);
    EXPECT_EQ(after.pages, pages_of(size));
    EXPECT_EQ(after.cached, 0u);
    expect_everyone_reports(path, 0, pages_of(size));
}

TEST(PageCache, WarmThenEverythingIsCached) {
    DiskDir dir;
    const std::string path = dir / "data";
    const std::uint64_t size = 3 * 1024 * 1024 + 5;
    make_file(path, size);
    cachetest::drop_pages(path);
    ASSERT_EQ(count(mincore_map(path)), 0u) << "the kernel kept the file cached after DONTNEED";

    File f = File::open(path);
    const CacheStat after = pagewire::warm(f);
    EXPECT_EQ(after.pages, pages_of(size));
    EXPECT_EQ(after.cached, pages_of(size));
    expect_everyone_reports(path, pages_of(size), pages_of(size));
}

// pread on a descriptor advised POSIX_FADV_RANDOM reads no more than asked,
// so exactly the pages read are resident afterwards.
TEST(PageCache, PartialReadsGiveExactlyThosePages) {
    DiskDir dir;
    const std::string path = dir / "data";
    const std::uint64_t pages = 300;
    const std::uint64_t size = pages * kPage - 100;
    make_file(path, size);
    cachetest::drop_pages(path);
    const std::vector<std::uint64_t> read = {0, 1, 7, 64, 65, 66, 150, 299};
    cachetest::read_pages(path, read);

    File f = File::open(path);
    const std::vector<bool> expected = cachetest::map_with(pages, read);
    EXPECT_EQ(pagewire::cache_map(f), expected);
    EXPECT_EQ(mincore_map(path), expected);
    expect_everyone_reports(path, read.size(), pages);

    // Ranges: whole pages spanned by [offset, offset+length), clamped to the file.
    const CacheStat three = pagewire::cache_stat(f, 64 * kPage, 3 * kPage);
    EXPECT_EQ(three.pages, 3u);
    EXPECT_EQ(three.cached, 3u);
    const CacheStat straddling = pagewire::cache_stat(f, 66 * kPage + 10, kPage);  // pages 66, 67
    EXPECT_EQ(straddling.pages, 2u);
    EXPECT_EQ(straddling.cached, 1u);
    const CacheStat tail = pagewire::cache_stat(f, 290 * kPage, 1000 * kPage);  // clamped
    EXPECT_EQ(tail.pages, 10u);
    EXPECT_EQ(tail.cached, 1u);
    EXPECT_EQ(pagewire::cache_stat(f, size + 1).pages, 0u);
    const std::vector<bool> window = pagewire::cache_map(f, 60 * kPage, 10 * kPage);
    EXPECT_EQ(window, std::vector<bool>(expected.begin() + 60, expected.begin() + 70));
    // With the size given (a walk's stat): the same whole-file counts, each probe.
    for (const auto probe : {pagewire::CacheProbe::Auto, pagewire::CacheProbe::Mincore}) {
        const CacheStat sized = pagewire::cache_stat_sized(f, size, probe);
        EXPECT_EQ(sized.pages, pages);
        EXPECT_EQ(sized.cached, read.size());
    }
    EXPECT_EQ(pagewire::cache_stat_sized(f, 0).pages, 0u);
}

// The same through a mapping advised Random: touching a page faults in that
// page and (without readahead or fault-around beyond it) no other.
TEST(PageCache, TouchesThroughRandomAdvisedMappingGiveThosePages) {
    DiskDir dir;
    const std::string path = dir / "data";
    const std::uint64_t pages = 200;
    make_file(path, pages * kPage);
    cachetest::drop_pages(path);
    const std::vector<std::uint64_t> touched = {3, 4, 100, 199};
    File f = File::open(path);
    {
        pagewire::Mapping view = pagewire::Mapping::map(f, pagewire::Access::ReadOnly);
        view.advise(pagewire::Advice::Random);
        volatile std::byte sink{};
        for (std::uint64_t p : touched) sink = view.data()[p * kPage + 17];
        (void)sink;
    }
    // fault-around maps pages that are already cached, it does not read new
    // ones; with Random advice nothing else was read.
    EXPECT_EQ(pagewire::cache_map(f), cachetest::map_with(pages, touched));
    expect_everyone_reports(path, touched.size(), pages);
}

TEST(PageCache, ProbesAgreeOnAssortedFiles) {
    DiskDir dir;
    struct Case {
        std::uint64_t size;
        std::vector<std::uint64_t> read;  // pages read after dropping all; empty: none
        bool all = false;                 // read the whole file instead
    };
    const std::vector<Case> cases = {
        {0, {}},
        {1, {0}},
        {kPage - 1, {}, true},
        {kPage, {0}},
        {kPage + 1, {1}},
        {1024 * 1024 + 3, {0, 2, 4, 255, 256}},
        {3 * 1024 * 1024, {}, true},
        {5 * kPage, {}},
    };
    CacheStat total{.dirty = 0, .writeback = 0, .evicted = 0, .recently_evicted = 0};
    std::uint64_t expected_cached = 0, expected_pages = 0;
    std::vector<std::string> paths;
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        // Named first: `"literal" + <temporary string>` trips a GCC 12 -O3 -Wrestrict false
        // positive (GCC bug 105329).
        const std::string index = std::to_string(i);
        const std::string path = dir / ("f" + index);
        paths.push_back(path);
        make_file(path, c.size, static_cast<std::uint32_t>(i));
        cachetest::drop_pages(path);
        if (c.all) {
            read_all(path);
        } else {
            cachetest::read_pages(path, c.read);
        }
        const std::uint64_t cached = c.all ? pages_of(c.size) : c.read.size();
        expected_cached += cached;
        expected_pages += pages_of(c.size);

        File f = File::open(path);
        const CacheStat a = pagewire::cache_stat(f, 0, pagewire::kWholeFile, CacheProbe::Auto);
        const CacheStat m = pagewire::cache_stat(f, 0, pagewire::kWholeFile, CacheProbe::Mincore);
        EXPECT_EQ(a.pages, pages_of(c.size)) << path;
        EXPECT_EQ(a.cached, cached) << path;
        EXPECT_EQ(m.pages, a.pages) << path;
        EXPECT_EQ(m.cached, a.cached) << path;
        EXPECT_EQ(count(pagewire::cache_map(f)), a.cached) << path;
        EXPECT_EQ(pagewire::cache_map(f).size(), a.pages) << path;
        // The fallback cannot know dirty/writeback/evicted counts.
        EXPECT_FALSE(m.dirty.has_value());
        EXPECT_FALSE(m.evicted.has_value());
        if (c.size != 0) {
            EXPECT_EQ(a.dirty.has_value(), pagewire::kernel_has_cachestat()) << path;
        }
        total += a;
    }
    EXPECT_EQ(total.pages, expected_pages);
    EXPECT_EQ(total.cached, expected_cached);
    EXPECT_EQ(cachetest::fincore_pages(paths), expected_cached);
    const cachetest::VmtouchCount v = cachetest::vmtouch_count({dir.path()});
    EXPECT_EQ(v.resident, expected_cached);
    EXPECT_EQ(v.pages, expected_pages);

    // A sum with a fallback result has no dirty count any more.
    CacheStat mixed = total;
    CacheStat fallback;  // as the mincore fallback returns it: no dirty count
    fallback.pages = 1;
    fallback.cached = 1;
    mixed += fallback;
    EXPECT_FALSE(mixed.dirty.has_value());
    EXPECT_EQ(mixed.cached, expected_cached + 1);
}

// kernel_has_cachestat() says what the raw system call says on a real file.
TEST(PageCache, CachestatProbeMatchesTheSystemCall) {
    DiskDir dir;
    const std::string path = dir / "data";
    make_file(path, 10 * kPage);
    File f = File::open(path);
    struct {
        std::uint64_t off, len;
    } range{0, 0};
    std::uint64_t cs[5] = {};
    const bool works = ::syscall(451, f.fd(), &range, cs, 0) == 0;
    EXPECT_EQ(pagewire::kernel_has_cachestat(), works);
    if (works) {
        EXPECT_EQ(cs[0], pagewire::cache_stat(f).cached);
    }
}

TEST(PageCache, EmptyFileAndRangesPastTheEnd) {
    DiskDir dir;
    const std::string path = dir / "empty";
    make_file(path, 0);
    File f = File::open(path);
    const CacheStat s = pagewire::cache_stat(f);
    EXPECT_EQ(s.pages, 0u);
    EXPECT_EQ(s.cached, 0u);
    EXPECT_TRUE(pagewire::cache_map(f).empty());
    EXPECT_EQ(pagewire::evict(f, true).pages, 0u);
    EXPECT_EQ(pagewire::warm(f).pages, 0u);
    pagewire::CacheLock lock(f);
    EXPECT_EQ(lock.bytes(), 0u);

    const std::string small = dir / "small";
    make_file(small, 2 * kPage);
    File g = File::open(small);
    EXPECT_EQ(pagewire::cache_stat(g, 2 * kPage).pages, 0u);
    EXPECT_EQ(pagewire::cache_stat(g, 5 * kPage, kPage).pages, 0u);
    EXPECT_TRUE(pagewire::cache_map(g, 3 * kPage).empty());
}

// Pages written through a shared mapping and not flushed are dirty; eviction
// without write-back leaves them cached, with write-back drops them.
//
// What the kernel does: POSIX_FADV_DONTNEED itself starts writeback of dirty
// pages (without waiting) before it drops the clean ones, and skips pages
// still dirty or under writeback. On a fast disk a small write can finish in
// between, and then those pages are dropped too; so "dirty pages stay" is
// checked over a few attempts and must hold in at least one, while "clean
// pages go" must hold in every one.
TEST(PageCache, DirtyPagesStayUnlessWrittenFirst) {
    if (!pagewire::kernel_has_cachestat()) {
        GTEST_SKIP()
            << "the kernel has no cachestat(2) (Linux 6.5+): dirty pages cannot be counted";
    }
    DiskDir dir;
    const std::string path = dir / "data";
    const std::uint64_t pages = 64;
    const std::uint64_t written = 16;
    make_file(path, pages * kPage);
    File f = File::open(path, pagewire::OpenMode::ReadWrite);
    std::vector<std::uint64_t> all(pages);
    std::iota(all.begin(), all.end(), 0);

    constexpr int kAttempts = 5;
    int kept_dirty = 0;  // attempts in which dirty pages survived the eviction
    for (int attempt = 0; attempt < kAttempts && kept_dirty == 0; ++attempt) {
        // The page cache tracks dirtiness per folio, and a file written in
        // large chunks is cached in large folios (one byte written dirties
        // all of one). Read back page by page without readahead, it is
        // cached in single-page folios, so the dirty count is exact.
        cachetest::drop_pages(path);
        cachetest::read_pages(path, all);
        ASSERT_EQ(pagewire::cache_stat(f).cached, pages);
        {
            pagewire::Mapping view = pagewire::Mapping::map(f, pagewire::Access::ReadWrite);
            for (std::uint64_t p = 0; p < written; ++p) {
                view.data()[p * kPage] = std::byte{static_cast<unsigned char>(0x50 + attempt)};
            }
        }  // unmapped without a flush: the pages stay dirty in the page cache

        const CacheStat dirty = pagewire::cache_stat(f);
        EXPECT_EQ(dirty.cached, pages);
        ASSERT_TRUE(dirty.dirty.has_value());
        // Background writeback (another process writing a lot) could clean
        // some of them already; none of the others can be dirty.
        EXPECT_GT(*dirty.dirty, 0u);
        EXPECT_LE(*dirty.dirty, written);
        EXPECT_EQ(pagewire::cache_stat(f, 0, written * kPage).dirty, dirty.dirty)
            << "dirty pages outside the written range";

        const CacheStat kept = pagewire::evict(f, /*write_dirty_first=*/false);
        EXPECT_LE(kept.cached, written) << "clean pages were not dropped";
        if (kept.cached > 0) ++kept_dirty;
    }
    EXPECT_GT(kept_dirty, 0)
        << "in " << kAttempts
        << " attempts dirty pages never survived an eviction without write-back";

    const CacheStat dropped = pagewire::evict(f, /*write_dirty_first=*/true);
    EXPECT_EQ(dropped.cached, 0u);
    ASSERT_TRUE(dropped.dirty.has_value());
    EXPECT_EQ(*dropped.dirty, 0u);
    // The bytes written last reached the file, whichever way they were evicted.
    char first = 0;
    ASSERT_EQ(::pread(f.fd(), &first, 1, 0), 1);
    char stored = 0;
    ASSERT_EQ(::pread(f.fd(), &stored, 1, static_cast<off_t>(written * kPage)), 1);
    EXPECT_GE(first, 0x50);
    EXPECT_LT(first, 0x50 + kAttempts);
    EXPECT_NE(stored, first) << "a page that was not written changed";
}

// A CacheLock keeps the file's pages resident through an eviction attempt
// and releases them when it ends. Note: POSIX_FADV_DONTNEED never drops a
// page that is mapped into any process (its reference count is raised), so
// it is the lock's mapping, mlocked or not, that keeps the pages; mlock is
// what keeps them under memory pressure, visible here as VmLck.
TEST(PageCache, LockKeepsPagesThroughEvict) {
    DiskDir dir;
    const std::string path = dir / "data";
    const std::uint64_t size = 2 * 1024 * 1024;
    make_file(path, size);
    cachetest::drop_pages(path);
    File f = File::open(path);
    const long locked_before = locked_kb();
    {
        pagewire::CacheLock lock(f);
        EXPECT_EQ(lock.bytes(), size);
        EXPECT_EQ(lock.path(), path);
        EXPECT_EQ(locked_kb() - locked_before, static_cast<long>(size / 1024));
        EXPECT_EQ(pagewire::cache_stat(f).cached, pages_of(size)) << "locking reads the file in";

        EXPECT_EQ(pagewire::evict(f, true).cached, pages_of(size));
        cachetest::drop_pages(path);  // the test's own DONTNEED
        EXPECT_EQ(count(mincore_map(path)), pages_of(size));
        EXPECT_EQ(cachetest::fincore_pages({path}), pages_of(size));
    }
    EXPECT_EQ(locked_kb(), locked_before);
    EXPECT_EQ(pagewire::evict(f, true).cached, 0u) << "pages still held after the lock ended";
}

// The claim in the comment above: a mapped page survives DONTNEED without mlock too.
TEST(PageCache, MappedPagesSurviveEvictWithoutLock) {
    DiskDir dir;
    const std::string path = dir / "data";
    const std::uint64_t pages = 32;
    make_file(path, pages * kPage);
    File f = File::open(path);
    pagewire::Mapping view =
        pagewire::Mapping::map(f, pagewire::Access::ReadOnly, 0, pagewire::Mapping::kToEnd,
                               pagewire::MapOptions{.populate = true});
    EXPECT_EQ(pagewire::evict(f, true).cached, pages);
    view = pagewire::Mapping();
    EXPECT_EQ(pagewire::evict(f, true).cached, 0u);
}

// Another user's file that this user may read but not write: the kernel
// hides its residency (cachestat EPERM; mincore claims every page resident),
// so pagewire refuses to count it rather than report made-up numbers, while
// evict and warm still do their work.
TEST(PageCache, ResidencyOfOtherUsersFilesIsHidden) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user";
    const std::optional<cachetest::User> user = cachetest::nobody();
    if (!user) GTEST_SKIP() << "no user 'nobody'";
    DiskDir dir;
    ::chmod(dir.path().c_str(), 0755);
    const std::string root_file = dir / "root-owned";
    const std::string own_file = dir / "nobody-owned";
    make_file(root_file, 8 * kPage, 1, 0644);
    make_file(own_file, 8 * kPage, 2, 0644);
    ASSERT_EQ(::chown(own_file.c_str(), user->uid, user->gid), 0);
    for (const auto& f : {root_file, own_file}) {
        cachetest::drop_pages(f);
        cachetest::read_pages(f, {1, 2, 3});
    }

    std::fflush(nullptr);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // Exit code: the number of the first check that failed, 0 if none.
        int code = 0;
        try {
            if (!testutil::become(*user)) ::_exit(100);
            auto error_of = [](auto&& fn) -> int {
                try {
                    fn();
                } catch (const pagewire::Error& e) {
                    return e.error_number();
                }
                return 0;
            };
            File theirs = File::open(root_file);
            File mine = File::open(own_file);
            if (error_of([&] { pagewire::cache_stat(theirs); }) != EPERM)
                code = 1;
            else if (error_of([&] {
                         pagewire::cache_stat(theirs, 0, pagewire::kWholeFile, CacheProbe::Mincore);
                     }) != EPERM)
                code = 2;
            else if (error_of([&] { pagewire::cache_map(theirs); }) != EPERM)
                code = 3;
            else if (pagewire::cache_stat(mine).cached != 3)
                code = 4;
            else if (pagewire::cache_stat(mine, 0, pagewire::kWholeFile, CacheProbe::Mincore)
                         .cached != 3)
                code = 5;
            else if (error_of([&] { pagewire::evict(theirs, false); }) != EPERM)
                code = 6;
            else if (error_of([&] { pagewire::warm(theirs, 0, 2 * kPage); }) != EPERM)
                code = 7;
        } catch (...) {
            code = 99;
        }
        ::_exit(code);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "check " << WEXITSTATUS(status) << " failed in the child";
    // The child's evict dropped the pages and its warm read the first two back.
    EXPECT_EQ(mincore_map(root_file), cachetest::map_with(8, {0, 1}));
}
