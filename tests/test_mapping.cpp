// Tests of pagewire::Mapping with real files, the real page cache (mincore,
// posix_fadvise), /proc/self/smaps and real forked processes.
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/mapping.hpp>
#include <span>
#include <string>
#include <vector>

#include "test_util.hpp"

using pagewire::Access;
using pagewire::Advice;
using pagewire::Error;
using pagewire::File;
using pagewire::Flush;
using pagewire::HugePages;
using pagewire::MapOptions;
using pagewire::Mapping;
using pagewire::OpenMode;
using pagewire::Sharing;
using testutil::catch_as;
using testutil::contains;
using testutil::TempDir;

namespace {

const std::size_t kPage = testutil::page_size();

std::string view(const Mapping& m) {
    return std::string(m.chars());
}

MapOptions populate_options() {
    MapOptions o;
    o.populate = true;
    return o;
}
MapOptions lock_options() {
    MapOptions o;
    o.lock = true;
    return o;
}
MapOptions past_eof_options() {
    MapOptions o;
    o.allow_past_eof = true;
    return o;
}
MapOptions huge_options(HugePages h) {
    MapOptions o;
    o.huge_pages = h;
    return o;
}

// True when the page containing addr is mapped in this process: mincore
// fails with ENOMEM on unmapped addresses.
bool is_mapped(const void* addr) {
    auto a = reinterpret_cast<std::uintptr_t>(addr) & ~(static_cast<std::uintptr_t>(kPage) - 1);
    unsigned char vec = 0;
    errno = 0;
    int rc = ::mincore(reinterpret_cast<void*>(a), kPage, &vec);
    return !(rc == -1 && errno == ENOMEM);
}

// A volatile read, so the compiler cannot drop the access.
unsigned char touch(const std::byte* p) {
    return *reinterpret_cast<const volatile unsigned char*>(p);
}

std::span<const std::byte> as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

struct Record {
    int integer;
    char string[24];
};
static_assert(sizeof(Record) == 28);

}  // namespace

// ---------------------------------------------------------------- access modes (S1, S2)

TEST(Mapping, ReadOnlySeesFileContentAndLaterWrites) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(3 * kPage + 17);
    testutil::write_file(path, data);

    Mapping m = Mapping::open(path);
    ASSERT_EQ(m.size(), data.size());
    EXPECT_FALSE(m.empty());
    EXPECT_EQ(view(m), data);
    EXPECT_EQ(m.access(), Access::ReadOnly);
    EXPECT_FALSE(m.writable());
    EXPECT_FALSE(m.is_anonymous());
    EXPECT_EQ(m.file_offset(), 0u);
    EXPECT_EQ(m.name(), path);
    EXPECT_EQ(m.bytes().size(), data.size());
    EXPECT_EQ(static_cast<const void*>(m.bytes().data()), static_cast<const void*>(m.data()));
    // PROT_READ and MAP_SHARED
    EXPECT_TRUE(testutil::has_vm_flag(m.data(), "rd"));
    EXPECT_FALSE(testutil::has_vm_flag(m.data(), "wr")) << testutil::vm_flags_of(m.data());
    EXPECT_TRUE(testutil::has_vm_flag(m.data(), "ms")) << testutil::vm_flags_of(m.data());

    // Shared: another writer's change shows through the read-only view.
    {
        File w = File::open(path, OpenMode::ReadWrite);
        w.write_at(4000, as_bytes("CHANGED"));
    }
    EXPECT_EQ(view(m).substr(4000, 7), "CHANGED");
}

TEST(Mapping, MapOfFileKeepsWorkingAfterFileIsClosed) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, std::string(100, 'a'));
    Mapping m;
    {
        File f = File::open(path, OpenMode::ReadWrite);
        m = Mapping::map(f, Access::ReadWrite);
        EXPECT_EQ(m.name(), path);
    }
    m.data()[0] = std::byte{'b'};
    m.resize(200);  // needs the duplicated descriptor
    m.flush();
    EXPECT_EQ(testutil::file_size(path), 200u);
    EXPECT_EQ(testutil::pread_file(path, 0, 2), "ba");
}

TEST(Mapping, ReadWriteWritesReachTheFileWithAndWithoutFlush) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(3 * kPage + 17);
    testutil::write_file(path, data);
    {
        Mapping m = Mapping::open(path, Access::ReadWrite);
        EXPECT_EQ(m.access(), Access::ReadWrite);
        EXPECT_TRUE(m.writable());
        EXPECT_TRUE(testutil::has_vm_flag(m.data(), "wr"));
        EXPECT_TRUE(testutil::has_vm_flag(m.data(), "sh")) << testutil::vm_flags_of(m.data());

        std::memcpy(m.data() + 10, "no flush yet", 12);
        // MAP_SHARED is coherent with the page cache: pread sees it at once.
        EXPECT_EQ(testutil::pread_file(path, 10, 12), "no flush yet");

        std::memcpy(m.data() + 2 * kPage + 5, "flushed", 7);
        m.flush(Flush::Sync);
        EXPECT_EQ(testutil::pread_file(path, 2 * kPage + 5, 7), "flushed");
    }
    std::string after = testutil::read_file(path);
    data.replace(10, 12, "no flush yet");
    data.replace(2 * kPage + 5, 7, "flushed");
    EXPECT_EQ(after, data);
}

// S6: two processes, each mapping the file by itself, talk through it.
TEST(Mapping, TwoProcessesCommunicateThroughAMappedFile) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, std::string(kPage, '\0'));
    Mapping parent = Mapping::open(path, Access::ReadWrite);
    std::memcpy(parent.data(), "from parent", 11);

    int status = testutil::run_in_child([&] {
        Mapping child = Mapping::open(path, Access::ReadWrite);  // its own mapping
        if (child.chars().substr(0, 11) != "from parent") return 1;
        std::memcpy(child.data() + 100, "from child", 10);
        return 0;
    });
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
    EXPECT_EQ(view(parent).substr(100, 10), "from child");
}

TEST(Mapping, CopyOnWriteWritesReachNeitherFileNorOtherProcesses) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(2 * kPage);
    testutil::write_file(path, data);

    Mapping shared_view = Mapping::open(path);  // ReadOnly, MAP_SHARED
    Mapping cow = Mapping::open(path, Access::CopyOnWrite);
    EXPECT_EQ(cow.access(), Access::CopyOnWrite);
    EXPECT_TRUE(cow.writable());
    EXPECT_TRUE(testutil::has_vm_flag(cow.data(), "wr"));
    EXPECT_FALSE(testutil::has_vm_flag(cow.data(), "ms")) << "CopyOnWrite must be MAP_PRIVATE";

    std::memcpy(cow.data() + 100, "private!", 8);
    EXPECT_EQ(view(cow).substr(100, 8), "private!");
    EXPECT_EQ(testutil::pread_file(path, 100, 8), data.substr(100, 8));
    EXPECT_EQ(view(shared_view).substr(100, 8), data.substr(100, 8));
    cow.flush();  // msync of a private mapping writes nothing
    EXPECT_EQ(testutil::read_file(path), data);

    std::string expected = data.substr(100, 8);
    int status = testutil::run_in_child([&] {
        Mapping other = Mapping::open(path);
        return other.chars().substr(100, 8) == expected ? 0 : 1;
    });
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
}

TEST(Mapping, CopyOnWriteOfAReadOnlyFileIsAllowed) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "read only file");
    File f = File::open(path);
    Mapping m = Mapping::map(f, Access::CopyOnWrite);
    m.data()[0] = std::byte{'R'};
    EXPECT_EQ(view(m), "Read only file");
    EXPECT_EQ(testutil::read_file(path), "read only file");
}

// ---------------------------------------------------------------- offsets and lengths (S3)

TEST(Mapping, UnalignedOffsetAndLength) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(3 * kPage);
    testutil::write_file(path, data);

    Mapping m = Mapping::open(path, Access::ReadOnly, 1000, 4000);
    EXPECT_EQ(m.size(), 4000u);
    EXPECT_EQ(m.file_offset(), 1000u);
    EXPECT_EQ(view(m), data.substr(1000, 4000));
    EXPECT_EQ(m.resident_pages().size(), 2u);  // bytes 1000..5000 span pages 0 and 1

    for (std::uint64_t offset : {std::uint64_t{1}, std::uint64_t{kPage - 1}, std::uint64_t{kPage},
                                 std::uint64_t{kPage + 1}, std::uint64_t{3 * kPage - 1}}) {
        Mapping to_end = Mapping::open(path, Access::ReadOnly, offset);
        EXPECT_EQ(to_end.size(), data.size() - offset) << "offset " << offset;
        EXPECT_EQ(view(to_end), data.substr(offset)) << "offset " << offset;
        EXPECT_EQ(to_end.file_offset(), offset);
    }
    Mapping one_page = Mapping::open(path, Access::ReadOnly, kPage, kPage);
    EXPECT_EQ(one_page.resident_pages().size(), 1u);
    Mapping straddle = Mapping::open(path, Access::ReadOnly, kPage - 100, 200);
    EXPECT_EQ(straddle.resident_pages().size(), 2u);
    EXPECT_EQ(view(straddle), data.substr(kPage - 100, 200));
}

TEST(Mapping, ReadWriteAtUnalignedOffsetWritesTheRightFileBytes) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data(3 * kPage, '.');
    testutil::write_file(path, data);
    {
        Mapping m = Mapping::open(path, Access::ReadWrite, 1000, 4000);
        m.data()[0] = std::byte{'A'};
        m.data()[3999] = std::byte{'Z'};
        m.flush(Flush::Sync);
    }
    data[1000] = 'A';
    data[4999] = 'Z';
    EXPECT_EQ(testutil::read_file(path), data);
}

TEST(Mapping, OffsetBeyondFourGigabytes) {
    TempDir dir;
    auto path = dir.file("sparse");
    const std::uint64_t offset = (std::uint64_t{5} << 30) + 1000;
    {
        File f = File::create(path);
        f.write_at(offset, as_bytes("far away"));
    }
    Mapping m = Mapping::open(path, Access::ReadOnly, offset);
    EXPECT_EQ(m.file_offset(), offset);
    EXPECT_EQ(view(m), "far away");
}

TEST(Mapping, EmptyFileMapsAsEmptyView) {
    TempDir dir;
    auto path = dir.file("empty");
    testutil::write_file(path, "");
    for (auto access : {Access::ReadOnly, Access::ReadWrite, Access::CopyOnWrite}) {
        Mapping m = Mapping::open(path, access);
        EXPECT_EQ(m.size(), 0u);
        EXPECT_TRUE(m.empty());
        EXPECT_TRUE(m.chars().empty());
        EXPECT_TRUE(m.bytes().empty());
        EXPECT_TRUE(m.resident_pages().empty());
        EXPECT_EQ(m.resident_page_count(), 0u);
        EXPECT_NO_THROW(m.flush());
        Mapping explicit_zero = Mapping::open(path, access, 0, 10);
        EXPECT_TRUE(explicit_zero.empty());
    }
    auto e = catch_as<Error>([&] { (void)Mapping::open(path, Access::ReadOnly, 1); });
    ASSERT_TRUE(e) << "offset 1 of an empty file must be refused";
    EXPECT_EQ(e->error_number(), EINVAL);
    EXPECT_TRUE(contains(e->what(), "past end")) << e->what();
}

TEST(Mapping, OffsetAtOrPastEndIsEinvalPastEnd) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, std::string(100, 'x'));
    for (std::uint64_t offset :
         {std::uint64_t{100}, std::uint64_t{101}, std::uint64_t{kPage}, std::uint64_t{1} << 40}) {
        auto e = catch_as<Error>([&] { (void)Mapping::open(path, Access::ReadOnly, offset); });
        ASSERT_TRUE(e) << "offset " << offset;
        EXPECT_EQ(e->error_number(), EINVAL);
        EXPECT_TRUE(contains(e->what(), "past end")) << e->what();
        EXPECT_TRUE(contains(e->what(), path)) << e->what();
        EXPECT_EQ(std::string(e->what()).find('\n'), std::string::npos);
    }
    File f = File::open(path);
    auto e = catch_as<Error>([&] { (void)Mapping::map(f, Access::ReadOnly, 100, 1); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EINVAL);
    Mapping last = Mapping::open(path, Access::ReadOnly, 99);
    EXPECT_EQ(view(last), "x");
}

TEST(Mapping, LengthPastEndOfFileIsClamped) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(3 * kPage + 17);
    testutil::write_file(path, data);
    Mapping m = Mapping::open(path, Access::ReadOnly, 100, std::size_t{1} << 30);
    EXPECT_EQ(m.size(), data.size() - 100);
    EXPECT_EQ(view(m), data.substr(100));
    Mapping whole = Mapping::open(path, Access::ReadOnly, 0, data.size() + 1);
    EXPECT_EQ(whole.size(), data.size());
    Mapping rw = Mapping::open(path, Access::ReadWrite, 0, 10 * kPage);
    EXPECT_EQ(rw.size(), data.size());
    EXPECT_EQ(testutil::file_size(path), data.size());  // mapping never grows the file
}

// S8: a map larger than its file; the last partial page is usable, the pages
// after it are not backed; the file never grows.
TEST(Mapping, AllowPastEofMapsTheFullLength) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(100);
    testutil::write_file(path, data);
    Mapping m = Mapping::open(path, Access::ReadWrite, 0, 3 * kPage, past_eof_options());
    ASSERT_EQ(m.size(), 3 * kPage);
    EXPECT_EQ(testutil::file_size(path), 100u);

    std::string head(kPage, '\0');
    auto r = m.read(0, std::as_writable_bytes(std::span(head)));
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(head.substr(0, 100), data);
    EXPECT_EQ(head.substr(100), std::string(kPage - 100, '\0'));  // rest of the last page is zero

    EXPECT_TRUE(m.write(200, as_bytes("tail of the partial page")).ok());
    EXPECT_EQ(testutil::file_size(path), 100u);

    std::array<std::byte, 16> buf{};
    auto fault = m.read(2 * kPage, buf);
    EXPECT_FALSE(fault.ok());
    EXPECT_EQ(fault.error, EFAULT);
    EXPECT_EQ(testutil::file_size(path), 100u);
}

// ---------------------------------------------------------------- errors

TEST(Mapping, NonexistentPathIsEnoent) {
    TempDir dir;
    auto path = dir.file("missing");
    for (auto access : {Access::ReadOnly, Access::ReadWrite, Access::CopyOnWrite}) {
        auto e = catch_as<Error>([&] { (void)Mapping::open(path, access); });
        ASSERT_TRUE(e);
        EXPECT_EQ(e->error_number(), ENOENT);
        EXPECT_TRUE(contains(e->what(), path)) << e->what();
        EXPECT_TRUE(contains(e->what(), "No such file or directory")) << e->what();
    }
    EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Mapping, DirectoryIsEisdir) {
    TempDir dir;
    for (auto access : {Access::ReadOnly, Access::ReadWrite}) {
        auto e = catch_as<Error>([&] { (void)Mapping::open(dir.path(), access); });
        ASSERT_TRUE(e);
        EXPECT_EQ(e->error_number(), EISDIR);
        EXPECT_TRUE(contains(e->what(), dir.path())) << e->what();
    }
}

TEST(Mapping, ReadWriteMappingOfReadOnlyFileIsEacces) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "contents");
    File f = File::open(path, OpenMode::ReadOnly);
    auto e = catch_as<Error>([&] { (void)Mapping::map(f, Access::ReadWrite); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EACCES);
    EXPECT_TRUE(contains(e->what(), path)) << e->what();
}

// ---------------------------------------------------------------- flush, advise, lock, populate

TEST(Mapping, FlushEveryModeOnASubRange) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data(4 * kPage, '-');
    testutil::write_file(path, data);
    Mapping m = Mapping::open(path, Access::ReadWrite, 1000, 3 * kPage);
    int i = 0;
    for (auto mode : {Flush::Async, Flush::Sync, Flush::Invalidate}) {
        std::size_t at = 1500 + static_cast<std::size_t>(i) * kPage;  // unaligned, in the view
        char tag = static_cast<char>('A' + i++);
        std::memset(m.data() + at, tag, 1000);
        EXPECT_NO_THROW(m.flush(mode, at, 1000));
        EXPECT_EQ(testutil::pread_file(path, 1000 + at, 1000), std::string(1000, tag));
        data.replace(1000 + at, 1000, 1000, tag);
    }
    EXPECT_NO_THROW(m.flush());
    EXPECT_NO_THROW(m.flush(Flush::Sync, 0, Mapping::kToEnd));
    EXPECT_NO_THROW(m.flush(Flush::Async, m.size() - 1, 1));
    EXPECT_EQ(testutil::read_file(path), data);

    Mapping ro = Mapping::open(path);
    EXPECT_NO_THROW(ro.flush(Flush::Invalidate, 10, 10));
}

namespace {
bool have_thp() {
    return std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled");
}
}  // namespace

TEST(Mapping, AdviseEveryValue) {
    if (!have_thp()) GTEST_SKIP() << "kernel without transparent huge pages: MADV_HUGEPAGE fails";
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(4 * kPage);
    testutil::write_file(path, data);
    Mapping m = Mapping::open(path, Access::ReadWrite);

    m.advise(Advice::Sequential);
    EXPECT_TRUE(testutil::has_vm_flag(m.data(), "sr")) << testutil::vm_flags_of(m.data());
    m.advise(Advice::Random);
    EXPECT_TRUE(testutil::has_vm_flag(m.data(), "rr")) << testutil::vm_flags_of(m.data());
    EXPECT_FALSE(testutil::has_vm_flag(m.data(), "sr"));
    m.advise(Advice::Normal);
    EXPECT_FALSE(testutil::has_vm_flag(m.data(), "rr"));
    EXPECT_FALSE(testutil::has_vm_flag(m.data(), "sr"));
    EXPECT_NO_THROW(m.advise(Advice::WillNeed));
    m.advise(Advice::HugePage);
    EXPECT_TRUE(testutil::has_vm_flag(m.data(), "hg")) << testutil::vm_flags_of(m.data());
    m.advise(Advice::NoHugePage);
    EXPECT_TRUE(testutil::has_vm_flag(m.data(), "nh")) << testutil::vm_flags_of(m.data());
    EXPECT_FALSE(testutil::has_vm_flag(m.data(), "hg"));

    std::memcpy(m.data() + kPage, "dirty", 5);
    m.advise(Advice::DontNeed);  // file pages are dropped from the view, not lost
    data.replace(kPage, 5, "dirty");
    EXPECT_EQ(view(m), data);

    // Sub-ranges at unaligned offsets are rounded to pages inside.
    EXPECT_NO_THROW(m.advise(Advice::WillNeed, 1000, 100));
    EXPECT_NO_THROW(m.advise(Advice::Random, kPage + 1, 2 * kPage));

    for (auto advice : {Advice::PopulateRead, Advice::PopulateWrite}) {
        try {
            m.advise(advice);
        } catch (const Error& e) {
            if (e.error_number() == EINVAL)
                GTEST_SKIP() << "MADV_POPULATE_* not supported by this kernel (needs 5.14+): "
                             << e.what();
            throw;
        }
    }
    EXPECT_EQ(view(m), data);
}

TEST(Mapping, PopulateReadLoadsEvictedPages) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, testutil::random_bytes(4 * kPage));
    testutil::evict_from_page_cache(path);
    Mapping m = Mapping::open(path);
    ASSERT_EQ(m.resident_page_count(), 0u) << "posix_fadvise(DONTNEED) did not evict the file";
    try {
        m.advise(Advice::PopulateRead);
    } catch (const Error& e) {
        if (e.error_number() == EINVAL) GTEST_SKIP() << "no MADV_POPULATE_READ: " << e.what();
        throw;
    }
    EXPECT_EQ(m.resident_page_count(), 4u);
}

TEST(Mapping, PopulateOfPageNotBackedByFileIsEfault) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, std::string(100, 'x'));
    Mapping m = Mapping::open(path, Access::ReadOnly, 0, 3 * kPage, past_eof_options());
    ASSERT_EQ(m.size(), 3 * kPage);
    EXPECT_NO_THROW(m.advise(Advice::PopulateRead, 0, 100));
    auto e = catch_as<Error>([&] { m.advise(Advice::PopulateRead); });
    ASSERT_TRUE(e) << "populating a page past end of file must fail";
    if (e->error_number() == EINVAL) GTEST_SKIP() << "no MADV_POPULATE_READ: " << e->what();
    EXPECT_EQ(e->error_number(), EFAULT) << e->what();
    EXPECT_TRUE(contains(e->what(), path)) << e->what();
}

TEST(Mapping, DontNeedZeroesAnonymousPrivateMemory) {
    Mapping m = Mapping::anonymous(4 * kPage);
    std::memset(m.data(), 0x5a, m.size());
    m.advise(Advice::DontNeed);
    EXPECT_EQ(view(m), std::string(4 * kPage, '\0'));
}

TEST(Mapping, LockAndUnlock) {
    if (testutil::kAsan)
        GTEST_SKIP() << "ASan intercepts mlock/munlock and makes them no-ops (its shadow memory "
                        "cannot be locked); MapOptions::lock (MAP_LOCKED) is tested instead";
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, testutil::random_bytes(8 * kPage));
    testutil::evict_from_page_cache(path);
    Mapping m = Mapping::open(path, Access::ReadWrite);
    long before = testutil::vm_locked_kb();
    EXPECT_FALSE(testutil::has_vm_flag(m.data(), "lo"));
    m.lock();
    EXPECT_TRUE(testutil::has_vm_flag(m.data(), "lo")) << testutil::vm_flags_of(m.data());
    EXPECT_EQ(testutil::vm_locked_kb() - before, static_cast<long>(8 * kPage / 1024));
    EXPECT_EQ(m.resident_page_count(), 8u);  // mlock faults every page in
    m.unlock();
    EXPECT_FALSE(testutil::has_vm_flag(m.data(), "lo"));
    EXPECT_EQ(testutil::vm_locked_kb(), before);
}

TEST(Mapping, LockOptionLocksAtMapTime) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, testutil::random_bytes(4 * kPage));
    testutil::evict_from_page_cache(path);
    long before = testutil::vm_locked_kb();
    {
        Mapping m = Mapping::open(path, Access::ReadOnly, 0, Mapping::kToEnd, lock_options());
        EXPECT_TRUE(testutil::has_vm_flag(m.data(), "lo")) << testutil::vm_flags_of(m.data());
        EXPECT_EQ(m.resident_page_count(), 4u);
        EXPECT_EQ(testutil::vm_locked_kb() - before, static_cast<long>(4 * kPage / 1024));

        Mapping anon = Mapping::anonymous(8 * kPage, Sharing::Private, lock_options());
        EXPECT_TRUE(testutil::has_vm_flag(anon.data(), "lo"));
        EXPECT_EQ(anon.resident_page_count(), 8u);
    }
    EXPECT_EQ(testutil::vm_locked_kb(), before);  // unmapping drops the lock
}

TEST(Mapping, PopulateFaultsEveryPageIn) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, testutil::random_bytes(6 * kPage));
    testutil::evict_from_page_cache(path);
    {
        Mapping plain = Mapping::open(path);
        EXPECT_EQ(plain.resident_page_count(), 0u)
            << "eviction failed; the next check means nothing";
    }
    Mapping m = Mapping::open(path, Access::ReadOnly, 0, Mapping::kToEnd, populate_options());
    EXPECT_EQ(m.resident_page_count(), 6u);

    Mapping anon = Mapping::anonymous(6 * kPage, Sharing::Private, populate_options());
    EXPECT_EQ(anon.resident_page_count(), 6u);
    Mapping lazy = Mapping::anonymous(6 * kPage);
    EXPECT_EQ(lazy.resident_page_count(), 0u);
}

// ---------------------------------------------------------------- huge pages (S10)

TEST(Mapping, ReservedHugePagesWithoutReservationIsAClearError) {
    std::string reserved = testutil::read_file("/proc/sys/vm/nr_hugepages");
    if (std::stol(reserved) != 0)
        GTEST_SKIP() << "vm.nr_hugepages is " << reserved << "; this test needs 0";
    auto e = catch_as<Error>([&] {
        (void)Mapping::anonymous(2 << 20, Sharing::Private, huge_options(HugePages::Reserved));
    });
    ASSERT_TRUE(e) << "MAP_HUGETLB without reserved huge pages must fail";
    std::string what = e->what();
    std::string lower = what;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    EXPECT_TRUE(contains(lower, "huge")) << what;
    EXPECT_NE(e->error_number(), 0);
    EXPECT_EQ(what.find('\n'), std::string::npos);
}

TEST(Mapping, ReservedHugePagesAreRefusedForFiles) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, std::string(kPage, 'x'));
    auto e = catch_as<Error>([&] {
        (void)Mapping::open(path, Access::ReadOnly, 0, Mapping::kToEnd,
                            huge_options(HugePages::Reserved));
    });
    EXPECT_TRUE(e) << "HugePages::Reserved is for anonymous memory only";
}

TEST(Mapping, TransparentHugePagesOnAnonymousMemory) {
    if (!have_thp()) GTEST_SKIP() << "kernel without transparent huge pages";
    const std::size_t size = 4 << 20;
    Mapping m = Mapping::anonymous(size, Sharing::Private, huge_options(HugePages::Transparent));
    ASSERT_EQ(m.size(), size);
    EXPECT_TRUE(testutil::has_vm_flag(m.data(), "hg")) << testutil::vm_flags_of(m.data());
    std::memset(m.data(), 1, size);
    EXPECT_EQ(touch(m.data() + size - 1), 1);

    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, std::string(kPage, 'x'));
    EXPECT_NO_THROW((void)Mapping::open(path, Access::ReadOnly, 0, Mapping::kToEnd,
                                        huge_options(HugePages::Transparent)));
}

// ---------------------------------------------------------------- resize

TEST(Mapping, ResizeGrowsReadWriteFileMapping) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(100);
    testutil::write_file(path, data);
    Mapping m = Mapping::open(path, Access::ReadWrite);
    const std::size_t new_size = 3 * kPage + 5;
    m.resize(new_size);
    ASSERT_EQ(m.size(), new_size);
    EXPECT_EQ(testutil::file_size(path), new_size);
    EXPECT_EQ(view(m).substr(0, 100), data);
    EXPECT_EQ(view(m).substr(100), std::string(new_size - 100, '\0'));

    m.data()[new_size - 1] = std::byte{'Q'};
    m.data()[2 * kPage] = std::byte{'P'};
    EXPECT_EQ(testutil::pread_file(path, new_size - 1, 1), "Q");
    EXPECT_EQ(testutil::pread_file(path, 2 * kPage, 1), "P");
    std::string all(new_size, '\0');
    EXPECT_TRUE(m.read(0, std::as_writable_bytes(std::span(all))).ok());
}

TEST(Mapping, ResizeAtOffsetSizesFileToOffsetPlusNewSize) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(5000);
    testutil::write_file(path, data);
    Mapping m = Mapping::open(path, Access::ReadWrite, 1000);
    ASSERT_EQ(m.size(), 4000u);
    m.resize(10000);
    EXPECT_EQ(m.size(), 10000u);
    EXPECT_EQ(m.file_offset(), 1000u);
    EXPECT_EQ(testutil::file_size(path), 11000u);
    EXPECT_EQ(view(m).substr(0, 4000), data.substr(1000));
    std::memcpy(m.data() + 9990, "0123456789", 10);
    EXPECT_EQ(testutil::pread_file(path, 10990, 10), "0123456789");

    m.resize(500);
    EXPECT_EQ(m.size(), 500u);
    EXPECT_EQ(testutil::file_size(path), 1500u);
    EXPECT_EQ(testutil::read_file(path), data.substr(0, 1500));
}

TEST(Mapping, ResizeShrinksReadWriteFileMapping) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(3 * kPage + 17);
    testutil::write_file(path, data);
    Mapping m = Mapping::open(path, Access::ReadWrite);
    m.resize(500);
    EXPECT_EQ(m.size(), 500u);
    EXPECT_EQ(view(m), data.substr(0, 500));
    EXPECT_EQ(testutil::file_size(path), 500u);
    m.data()[499] = std::byte{'!'};
    EXPECT_EQ(testutil::pread_file(path, 499, 1), "!");
}

TEST(Mapping, ResizeRepeatedlyKeepsContent) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "");
    File f = File::open(path, OpenMode::ReadWrite);
    Mapping m = Mapping::map(f, Access::ReadWrite);
    ASSERT_TRUE(m.empty());
    std::string expected;
    for (std::size_t step = 1; step <= 12; ++step) {
        std::size_t new_size = step * kPage + step * 7;
        m.resize(new_size);
        ASSERT_EQ(m.size(), new_size);
        expected.resize(new_size, '\0');
        std::size_t at = new_size / 2;
        m.data()[at] = static_cast<std::byte>(step);
        expected[at] = static_cast<char>(step);
    }
    m.resize(3 * kPage);
    expected.resize(3 * kPage);
    EXPECT_EQ(view(m), expected);
    EXPECT_EQ(testutil::read_file(path), expected);
}

TEST(Mapping, ResizeOfReadOnlyOrCopyOnWriteFileMappingIsEperm) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(kPage);
    testutil::write_file(path, data);
    for (auto access : {Access::ReadOnly, Access::CopyOnWrite}) {
        Mapping m = Mapping::open(path, access);
        auto e = catch_as<Error>([&] { m.resize(2 * kPage); });
        ASSERT_TRUE(e);
        EXPECT_EQ(e->error_number(), EPERM);
        EXPECT_TRUE(contains(e->what(), path)) << e->what();
        EXPECT_EQ(m.size(), kPage);  // unchanged and still usable
        EXPECT_EQ(view(m), data);
        auto shrink = catch_as<Error>([&] { m.resize(10); });
        ASSERT_TRUE(shrink);
        EXPECT_EQ(shrink->error_number(), EPERM);
    }
    EXPECT_EQ(testutil::read_file(path), data);
}

namespace {

// Grows a one-page anonymous mapping to 5 pages + 3 and shrinks it to 100
// bytes; returns "" or what went wrong.
std::string resize_anonymous(Sharing sharing) {
    Mapping m = Mapping::anonymous(kPage, sharing);
    std::memset(m.data(), 'A', kPage);
    m.resize(5 * kPage + 3);
    if (m.size() != 5 * kPage + 3) return "size after growing is " + std::to_string(m.size());
    if (view(m) != std::string(kPage, 'A') + std::string(4 * kPage + 3, '\0'))
        return "content after growing is wrong";
    m.data()[5 * kPage + 2] = std::byte{'Z'};  // the new bytes are writable
    m.resize(100);
    if (m.size() != 100) return "size after shrinking is " + std::to_string(m.size());
    if (view(m) != std::string(100, 'A')) return "content after shrinking is wrong";
    return "";
}

}  // namespace

TEST(Mapping, ResizeAnonymousPrivate) {
    EXPECT_EQ(resize_anonymous(Sharing::Private), "");
}

// Runs in a child: touching the grown part must not kill the process.
// A MAP_SHARED|MAP_ANONYMOUS mapping grown with mremap alone would keep its
// shmem object's original size and SIGBUS on the first touch of a new page.
TEST(Mapping, ResizeAnonymousShared) {
    int status = testutil::run_in_child([] {
        std::string problem = resize_anonymous(Sharing::Shared);
        if (!problem.empty()) std::fprintf(stderr, "%s\n", problem.c_str());
        return problem.empty() ? 0 : 1;
    });
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child ended with " << testutil::describe_status(status)
        << " (a SIGBUS means mremap grew the mapping but not the shared memory object behind it)";
}

// As ResizeAnonymousShared, and the grown pages stay shared with later children.
TEST(Mapping, ResizeOfSharedAnonymousStaysSharedWithLaterChildren) {
    int status = testutil::run_in_child([] {
        Mapping m = Mapping::anonymous(kPage, Sharing::Shared);
        m.resize(3 * kPage);
        int child = testutil::run_in_child([&] {
            m.data()[2 * kPage] = std::byte{'c'};
            return 0;
        });
        if (!WIFEXITED(child) || WEXITSTATUS(child) != 0) return 2;
        return m.data()[2 * kPage] == std::byte{'c'} ? 0 : 1;
    });
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "ended with " << testutil::describe_status(status);
}

TEST(Mapping, ResizeOfViewThatDoesNotReachEndOfFileIsRefused) {
    // The header leaves this case open; src refuses it rather than truncate
    // bytes the view does not show. What must never happen is data loss.
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(4 * kPage);
    testutil::write_file(path, data);
    Mapping m = Mapping::open(path, Access::ReadWrite, 0, kPage);
    try {
        m.resize(2 * kPage);
        EXPECT_EQ(m.size(), 2 * kPage);
    } catch (const Error& e) {
        EXPECT_EQ(e.error_number(), EINVAL) << e.what();
        EXPECT_EQ(m.size(), kPage);
    }
    EXPECT_EQ(testutil::read_file(path), data) << "resizing a view must not cut the file";
}

TEST(Mapping, ResizeOfLockedMappingRelocks) {
    Mapping m = Mapping::anonymous(2 * kPage, Sharing::Private, lock_options());
    m.resize(16 * kPage);
    EXPECT_TRUE(testutil::has_vm_flag(m.data(), "lo")) << testutil::vm_flags_of(m.data());
    EXPECT_TRUE(testutil::has_vm_flag(m.data() + 15 * kPage, "lo"));
    EXPECT_EQ(m.resident_page_count(), 16u);
}

// ---------------------------------------------------------------- move and unmap

TEST(Mapping, DefaultConstructedIsEmpty) {
    Mapping m;
    EXPECT_TRUE(m.empty());
    EXPECT_EQ(m.size(), 0u);
    EXPECT_EQ(m.data(), nullptr);
    EXPECT_TRUE(m.resident_pages().empty());
}

TEST(Mapping, MoveConstructLeavesSourceEmpty) {
    Mapping a = Mapping::anonymous(2 * kPage);
    std::memcpy(a.data(), "moved", 5);
    std::byte* addr = a.data();
    Mapping b(std::move(a));
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    EXPECT_EQ(a.size(), 0u);
    EXPECT_EQ(a.data(), nullptr);
    EXPECT_EQ(b.data(), addr);
    EXPECT_EQ(b.size(), 2 * kPage);
    EXPECT_EQ(view(b).substr(0, 5), "moved");
    EXPECT_TRUE(is_mapped(addr));
}

TEST(Mapping, MoveAssignUnmapsTheOldMapping) {
    Mapping a = Mapping::anonymous(kPage);
    Mapping b = Mapping::anonymous(3 * kPage);
    std::byte* a_addr = a.data();
    std::byte* b_addr = b.data();
    b = std::move(a);
    EXPECT_FALSE(is_mapped(b_addr)) << "the old mapping of the assigned-to object must be unmapped";
    EXPECT_FALSE(is_mapped(b_addr + 2 * kPage));
    EXPECT_TRUE(is_mapped(a_addr));
    EXPECT_EQ(b.data(), a_addr);
    EXPECT_EQ(b.size(), kPage);
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(Mapping, DestructorUnmaps) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, testutil::random_bytes(3 * kPage));
    std::byte* file_addr = nullptr;
    std::byte* unaligned_addr = nullptr;
    std::byte* anon_addr = nullptr;
    {
        Mapping m = Mapping::open(path);
        Mapping u = Mapping::open(path, Access::ReadOnly, 1000, 5000);
        Mapping a = Mapping::anonymous(4 * kPage, Sharing::Shared);
        file_addr = m.data();
        unaligned_addr = u.data();
        anon_addr = a.data();
        ASSERT_TRUE(is_mapped(file_addr));
        ASSERT_TRUE(is_mapped(unaligned_addr));
        ASSERT_TRUE(is_mapped(anon_addr + 3 * kPage));
    }
    EXPECT_FALSE(is_mapped(file_addr));
    EXPECT_FALSE(is_mapped(file_addr + 2 * kPage));
    EXPECT_FALSE(is_mapped(unaligned_addr));         // the page holding byte 1000
    EXPECT_FALSE(is_mapped(unaligned_addr + 4999));  // the page holding byte 5999
    EXPECT_FALSE(is_mapped(anon_addr));
    EXPECT_FALSE(is_mapped(anon_addr + 3 * kPage));
}

// ---------------------------------------------------------------- records (S4)

TEST(Mapping, RecordsAsTypedArray) {
    TempDir dir;
    auto path = dir.file("records");
    {
        // Written with stdio, as seed 000 does.
        std::FILE* fp = std::fopen(path.c_str(), "w");
        ASSERT_NE(fp, nullptr);
        for (int i = 0; i < 100; ++i) {
            Record r{};
            r.integer = i;
            std::snprintf(r.string, sizeof r.string, "RECORD-%d", i);
            ASSERT_EQ(std::fwrite(&r, sizeof r, 1, fp), 1u);
        }
        std::fclose(fp);
    }
    Mapping m = Mapping::open(path, Access::ReadWrite);
    std::span<Record> records = m.records<Record>();
    ASSERT_EQ(records.size(), 100u);
    EXPECT_EQ(static_cast<const void*>(records.data()), static_cast<const void*>(m.data()));
    EXPECT_EQ(records[43].integer, 43);
    EXPECT_STREQ(records[43].string, "RECORD-43");
    EXPECT_EQ(records[99].integer, 99);

    // record 43 -> 143 by stdio: the shared map sees it.
    {
        std::FILE* fp = std::fopen(path.c_str(), "r+");
        ASSERT_NE(fp, nullptr);
        Record r{};
        std::fseek(fp, 43 * static_cast<long>(sizeof(Record)), SEEK_SET);
        ASSERT_EQ(std::fread(&r, sizeof r, 1, fp), 1u);
        r.integer = 143;
        std::fseek(fp, 43 * static_cast<long>(sizeof(Record)), SEEK_SET);
        ASSERT_EQ(std::fwrite(&r, sizeof r, 1, fp), 1u);
        std::fclose(fp);
    }
    EXPECT_EQ(records[43].integer, 143);
    // -> 243 through the map: the file sees it.
    records[43].integer = 243;
    m.flush();
    Record back{};
    std::string raw = testutil::pread_file(path, 43 * sizeof(Record), sizeof(Record));
    std::memcpy(&back, raw.data(), sizeof back);
    EXPECT_EQ(back.integer, 243);

    const Mapping& cm = m;
    std::span<const Record> const_records = cm.records<Record>();
    EXPECT_EQ(const_records.size(), 100u);
    EXPECT_EQ(const_records[43].integer, 243);

    Mapping tail = Mapping::open(path, Access::ReadOnly, sizeof(Record));
    auto tail_records = tail.records<Record>();
    ASSERT_EQ(tail_records.size(), 99u);
    EXPECT_EQ(tail_records[0].integer, 1);
}

TEST(Mapping, RecordsOfRaggedSizeIsEinval) {
    TempDir dir;
    auto path = dir.file("ragged");
    testutil::write_file(path, std::string(100 * sizeof(Record) + 1, 'r'));
    Mapping m = Mapping::open(path);
    auto e = catch_as<Error>([&] { (void)m.records<Record>(); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EINVAL);
    EXPECT_TRUE(contains(e->what(), path)) << e->what();
    const Mapping& cm = m;
    auto ce = catch_as<Error>([&] { (void)cm.records<Record>(); });
    ASSERT_TRUE(ce);
    EXPECT_EQ(ce->error_number(), EINVAL);
    EXPECT_EQ(m.records<char>().size(), m.size());
}

// ---------------------------------------------------------------- residency (S17, S21)

TEST(Mapping, ResidentPagesFollowThePageCache) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, testutil::random_bytes(4 * kPage));
    testutil::evict_from_page_cache(path);
    Mapping m = Mapping::open(path);
    m.advise(Advice::Random);  // no readahead: a fault reads exactly its page
    std::vector<bool> before = m.resident_pages();
    ASSERT_EQ(before.size(), 4u);
    EXPECT_EQ(before, std::vector<bool>(4, false));
    EXPECT_EQ(m.resident_page_count(), 0u);

    (void)touch(m.data());
    (void)touch(m.data() + 2 * kPage + 10);
    std::vector<bool> after = m.resident_pages();
    EXPECT_EQ(after, (std::vector<bool>{true, false, true, false}));
    EXPECT_EQ(m.resident_page_count(), 2u);
}

TEST(Mapping, AnonymousPrivateIsDemandZero) {
    Mapping m = Mapping::anonymous(10 * kPage);
    EXPECT_TRUE(m.is_anonymous());
    EXPECT_TRUE(m.writable());
    EXPECT_EQ(m.name(), "[anonymous]");
    EXPECT_EQ(m.size(), 10 * kPage);
    EXPECT_FALSE(testutil::has_vm_flag(m.data(), "ms"));
    EXPECT_EQ(m.resident_page_count(), 0u);
    m.data()[3 * kPage + 1] = std::byte{7};
    EXPECT_EQ(m.resident_page_count(), 1u);
    std::vector<bool> pages = m.resident_pages();
    ASSERT_EQ(pages.size(), 10u);
    EXPECT_TRUE(pages[3]);
    std::string expected(10 * kPage, '\0');
    expected[3 * kPage + 1] = 7;
    EXPECT_EQ(view(m), expected);
}

// S7: parent and child share anonymous memory mapped before fork.
TEST(Mapping, AnonymousSharedIsSharedWithForkedChild) {
    Mapping m = Mapping::anonymous(kPage, Sharing::Shared);
    EXPECT_TRUE(testutil::has_vm_flag(m.data(), "sh")) << testutil::vm_flags_of(m.data());
    int status = testutil::run_in_child([&] {
        std::memcpy(m.data(), "hello from child", 16);
        return 0;
    });
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(view(m).substr(0, 16), "hello from child");
}

TEST(Mapping, AnonymousPrivateIsNotSharedWithForkedChild) {
    Mapping m = Mapping::anonymous(kPage, Sharing::Private);
    std::memcpy(m.data(), "parent", 6);
    int status = testutil::run_in_child([&] {
        if (m.chars().substr(0, 6) != "parent") return 1;  // the child starts with a copy
        std::memcpy(m.data(), "child!", 6);
        return 0;
    });
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
    EXPECT_EQ(view(m).substr(0, 6), "parent");
}

// ---------------------------------------------------------------- guarded read/write basics

TEST(Mapping, GuardedReadAndWriteOnHealthyMapping) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(2 * kPage);
    testutil::write_file(path, data);
    Mapping m = Mapping::open(path, Access::ReadWrite);
    std::string out(300, '\0');
    auto r = m.read(kPage - 150, std::as_writable_bytes(std::span(out)));
    EXPECT_TRUE(r.ok());
    EXPECT_TRUE(static_cast<bool>(r));
    EXPECT_EQ(r.message(), "");
    EXPECT_EQ(out, data.substr(kPage - 150, 300));
    auto w = m.write(kPage - 3, as_bytes("across"));
    EXPECT_TRUE(w.ok()) << w.message();
    EXPECT_EQ(testutil::pread_file(path, kPage - 3, 6), "across");
}

// Not in the header (which names only the size check), but what src does:
// records at an address not aligned for the type are refused, since using
// them would be undefined behaviour.
TEST(Mapping, RecordsAtMisalignedOffsetAreEinval) {
    TempDir dir;
    auto path = dir.file("records");
    testutil::write_file(path, std::string(2 + 10 * sizeof(Record), 'r'));
    Mapping m = Mapping::open(path, Access::ReadOnly, 2);
    ASSERT_EQ(m.size(), 10 * sizeof(Record));
    auto e = catch_as<Error>([&] { (void)m.records<Record>(); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EINVAL);
    EXPECT_EQ(m.records<char>().size(), m.size());
}
