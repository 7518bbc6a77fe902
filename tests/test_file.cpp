// Tests of pagewire::File, pagewire::UniqueFd and pagewire::Error against real
// files, real permissions (a child that drops root) and real descriptors.
#include <grp.h>
#include <sys/stat.h>

#include <array>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/unique_fd.hpp>
#include <span>
#include <string>
#include <system_error>

#include "test_util.hpp"

using namespace std::string_literals;
using pagewire::CreateMode;
using pagewire::Error;
using pagewire::File;
using pagewire::OpenMode;
using pagewire::UniqueFd;
using testutil::TempDir;

namespace {

std::span<const std::byte> as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

bool fd_is_open(int fd) {
    return ::fcntl(fd, F_GETFD) != -1;
}

bool fd_is_closed(int fd) {
    errno = 0;
    return ::fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

mode_t permission_bits(const std::string& path) {
    return testutil::stat_of(path).st_mode & 07777;
}

// Sets the umask for one scope.
class UmaskScope {
  public:
    explicit UmaskScope(mode_t mask) : old_(::umask(mask)) {}
    ~UmaskScope() { ::umask(old_); }

  private:
    mode_t old_;
};

// Calls fn, which must throw pagewire::Error; returns it for inspection.
template <class F>
Error expect_error(F&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e;
    }
    ADD_FAILURE() << "no pagewire::Error thrown";
    return Error("none", "none", 0);
}

}  // namespace

// ---------------------------------------------------------------- Error

TEST(Error, WhatIsOperationPathAndErrnoText) {
    Error e("open", "/tmp/x", ENOENT);
    EXPECT_EQ(std::string(e.what()), "open /tmp/x: No such file or directory");
    EXPECT_EQ(e.operation(), "open");
    EXPECT_EQ(e.path(), "/tmp/x");
    EXPECT_EQ(e.error_number(), ENOENT);
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_EQ(e.code().category(), std::generic_category());
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
}

TEST(Error, DetailReplacesErrnoText) {
    Error e("map", "/tmp/y", EINVAL, "offset 4096 is past end of file (size 100)");
    EXPECT_EQ(std::string(e.what()), "map /tmp/y: offset 4096 is past end of file (size 100)");
    EXPECT_EQ(e.error_number(), EINVAL);
}

TEST(Error, ThrowErrorThrowsErrorWithErrno) {
    try {
        errno = EACCES;
        pagewire::throw_error("frob", "/some/where");
        FAIL() << "throw_error returned";
    } catch (const Error& e) {
        EXPECT_EQ(e.error_number(), EACCES);
        EXPECT_EQ(e.operation(), "frob");
        EXPECT_EQ(e.path(), "/some/where");
        EXPECT_EQ(std::string(e.what()), "frob /some/where: "s + std::strerror(EACCES));
    }
    try {
        pagewire::throw_error("op", "p", EBUSY, "busy detail");
        FAIL() << "throw_error returned";
    } catch (const std::system_error& e) {  // Error is a std::system_error
        EXPECT_EQ(e.code().value(), EBUSY);
        EXPECT_EQ(std::string(e.what()), "op p: busy detail");
    }
}

// ---------------------------------------------------------------- UniqueFd

TEST(UniqueFd, DefaultIsEmpty) {
    UniqueFd fd;
    EXPECT_EQ(fd.get(), -1);
    EXPECT_FALSE(fd.valid());
    EXPECT_FALSE(static_cast<bool>(fd));
}

TEST(UniqueFd, ClosesOnDestruction) {
    int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(raw, 0);
    {
        UniqueFd fd(raw);
        EXPECT_TRUE(fd.valid());
        EXPECT_TRUE(static_cast<bool>(fd));
        EXPECT_EQ(fd.get(), raw);
        EXPECT_TRUE(fd_is_open(raw));
    }
    EXPECT_TRUE(fd_is_closed(raw));
}

TEST(UniqueFd, MoveConstructTransfersOwnership) {
    int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(raw, 0);
    {
        UniqueFd a(raw);
        UniqueFd b(std::move(a));
        EXPECT_FALSE(
            a.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
        EXPECT_EQ(a.get(), -1);
        EXPECT_EQ(b.get(), raw);
        EXPECT_TRUE(fd_is_open(raw));
    }
    EXPECT_TRUE(fd_is_closed(raw));
}

TEST(UniqueFd, MoveAssignClosesTheOldDescriptor) {
    int first = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int second = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(first, 0);
    ASSERT_GE(second, 0);
    {
        UniqueFd a(first);
        UniqueFd b(second);
        a = std::move(b);
        EXPECT_TRUE(fd_is_closed(first));
        EXPECT_TRUE(fd_is_open(second));
        EXPECT_EQ(a.get(), second);
        EXPECT_FALSE(b.valid());  // NOLINT(bugprone-use-after-move)
    }
    EXPECT_TRUE(fd_is_closed(second));
}

TEST(UniqueFd, SelfMoveAssignKeepsTheDescriptor) {
    int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(raw, 0);
    UniqueFd a(raw);
    UniqueFd& alias = a;  // through a reference, so the compiler does not flag the self-move
    a = std::move(alias);
    EXPECT_EQ(a.get(), raw);
    EXPECT_TRUE(fd_is_open(raw));
}

TEST(UniqueFd, ReleaseGivesUpOwnershipWithoutClosing) {
    int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(raw, 0);
    int released = -1;
    {
        UniqueFd fd(raw);
        released = fd.release();
        EXPECT_FALSE(fd.valid());
        EXPECT_EQ(fd.get(), -1);
    }
    EXPECT_EQ(released, raw);
    EXPECT_TRUE(fd_is_open(raw));
    ::close(raw);
}

TEST(UniqueFd, ResetClosesAndAdopts) {
    int first = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int second = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(first, 0);
    ASSERT_GE(second, 0);
    UniqueFd fd(first);
    fd.reset(second);
    EXPECT_TRUE(fd_is_closed(first));
    EXPECT_TRUE(fd_is_open(second));
    EXPECT_EQ(fd.get(), second);
    fd.reset();
    EXPECT_TRUE(fd_is_closed(second));
    EXPECT_FALSE(fd.valid());
    fd.reset();  // resetting an empty UniqueFd is harmless
    EXPECT_FALSE(fd.valid());
}

// ---------------------------------------------------------------- File: open/create

TEST(File, OpenReadOnlyAndReadWrite) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "hello");
    {
        File f = File::open(path);
        EXPECT_FALSE(f.writable());
        EXPECT_EQ(f.path(), path);
        ASSERT_GE(f.fd(), 0);
        EXPECT_EQ(::fcntl(f.fd(), F_GETFL) & O_ACCMODE, O_RDONLY);
        EXPECT_TRUE(::fcntl(f.fd(), F_GETFD) & FD_CLOEXEC);
        EXPECT_EQ(f.size(), 5u);
    }
    {
        File f = File::open(path, OpenMode::ReadWrite);
        EXPECT_TRUE(f.writable());
        EXPECT_EQ(::fcntl(f.fd(), F_GETFL) & O_ACCMODE, O_RDWR);
        EXPECT_TRUE(::fcntl(f.fd(), F_GETFD) & FD_CLOEXEC);
    }
    EXPECT_EQ(testutil::read_file(path), "hello");  // opening never truncates
}

TEST(File, DescriptorClosedWhenFileDestroyed) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "x");
    int raw = -1;
    {
        File f = File::open(path);
        raw = f.fd();
        File moved = std::move(f);
        EXPECT_EQ(moved.fd(), raw);
        EXPECT_TRUE(fd_is_open(raw));
    }
    EXPECT_TRUE(fd_is_closed(raw));
}

TEST(File, CreateOrOpenCreatesThenOpensWithoutTruncating) {
    TempDir dir;
    auto path = dir.file("f");
    {
        File f = File::create(path);  // CreateOrOpen by default
        EXPECT_TRUE(f.writable());
        EXPECT_EQ(f.size(), 0u);
        f.write_at(0, as_bytes("content"));
    }
    {
        File f = File::create(path, CreateMode::CreateOrOpen);
        EXPECT_EQ(f.size(), 7u);
    }
    EXPECT_EQ(testutil::read_file(path), "content");
}

TEST(File, CreateExclusiveFailsWithEexistWhenPresent) {
    TempDir dir;
    auto path = dir.file("f");
    {
        File f = File::create(path, CreateMode::CreateExclusive);
        f.write_at(0, as_bytes("abc"));
    }
    Error e = expect_error([&] { (void)File::create(path, CreateMode::CreateExclusive); });
    EXPECT_EQ(e.error_number(), EEXIST);
    EXPECT_EQ(e.path(), path);
    EXPECT_EQ(testutil::read_file(path), "abc");  // untouched
}

TEST(File, TruncateEmptiesAnExistingFile) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "some old content");
    File f = File::create(path, CreateMode::Truncate);
    EXPECT_EQ(f.size(), 0u);
    EXPECT_EQ(testutil::file_size(path), 0u);
    File g = File::create(dir.file("new"), CreateMode::Truncate);  // creates too
    EXPECT_EQ(testutil::file_size(dir.file("new")), 0u);
}

TEST(File, CreateAppliesModeBitsExactlyUnderZeroUmask) {
    TempDir dir;
    UmaskScope umask(0);
    (void)File::create(dir.file("a"), CreateMode::CreateOrOpen, 0640);
    (void)File::create(dir.file("b"), CreateMode::CreateExclusive, 0600);
    (void)File::create(dir.file("c"), CreateMode::Truncate, 0666);
    (void)File::create(dir.file("d"));  // default 0644
    EXPECT_EQ(permission_bits(dir.file("a")), 0640u);
    EXPECT_EQ(permission_bits(dir.file("b")), 0600u);
    EXPECT_EQ(permission_bits(dir.file("c")), 0666u);
    EXPECT_EQ(permission_bits(dir.file("d")), 0644u);
}

TEST(File, CreateModeIsFilteredByUmask) {
    TempDir dir;
    UmaskScope umask(027);
    (void)File::create(dir.file("a"), CreateMode::CreateOrOpen, 0666);
    EXPECT_EQ(permission_bits(dir.file("a")), 0640u);
}

TEST(File, CreateOfExistingFileKeepsItsMode) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "x", 0600);
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
    (void)File::create(path, CreateMode::CreateOrOpen, 0666);
    EXPECT_EQ(permission_bits(path), 0600u);
}

// ---------------------------------------------------------------- File: errors

TEST(File, NonexistentPathIsEnoentNamingOperationAndPath) {
    TempDir dir;
    auto path = dir.file("does-not-exist");
    for (auto mode : {OpenMode::ReadOnly, OpenMode::ReadWrite}) {
        Error e = expect_error([&] { (void)File::open(path, mode); });
        EXPECT_EQ(e.error_number(), ENOENT);
        EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
        EXPECT_EQ(e.path(), path);
        EXPECT_FALSE(e.operation().empty());
        std::string what = e.what();
        EXPECT_TRUE(testutil::contains(what, e.operation())) << what;
        EXPECT_TRUE(testutil::contains(what, path)) << what;
        EXPECT_TRUE(testutil::contains(what, "No such file or directory")) << what;
        EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
    }
    EXPECT_FALSE(std::filesystem::exists(path));  // open never creates
}

TEST(File, CreateInMissingDirectoryIsEnoent) {
    TempDir dir;
    auto path = dir.file("no-such-dir/f");
    Error e = expect_error([&] { (void)File::create(path); });
    EXPECT_EQ(e.error_number(), ENOENT);
    EXPECT_TRUE(testutil::contains(e.what(), path));
}

TEST(File, DirectoryIsRefusedWithEisdir) {
    TempDir dir;
    for (auto mode : {OpenMode::ReadOnly, OpenMode::ReadWrite}) {
        Error e = expect_error([&] { (void)File::open(dir.path(), mode); });
        EXPECT_EQ(e.error_number(), EISDIR);
        EXPECT_TRUE(testutil::contains(e.what(), dir.path())) << e.what();
        EXPECT_TRUE(testutil::contains(e.what(), std::strerror(EISDIR))) << e.what();
    }
    Error e = expect_error([&] { (void)File::create(dir.path()); });
    EXPECT_EQ(e.error_number(), EISDIR);
}

// As root, a child drops to nobody and opens a 0600 root-owned file: EACCES.
// The same child opening a 0644 file succeeds, so the refusal is the mode's doing.
TEST(File, PermissionDeniedForOtherUserIsEacces) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to uid 65534";
    TempDir dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);  // nobody may traverse the directory
    auto secret = dir.file("secret");
    auto open_file = dir.file("open");
    testutil::write_file(secret, "top secret", 0600);
    testutil::write_file(open_file, "public", 0644);
    ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);
    ASSERT_EQ(::chmod(open_file.c_str(), 0644), 0);

    // Exit codes: 0 as expected, 10+ setup failures, 20+ wrong results.
    int status = testutil::run_in_child([&] {
        if (::setgroups(0, nullptr) != 0) return 10;
        if (::setgid(65534) != 0) return 11;
        if (::setuid(65534) != 0) return 12;
        if (::geteuid() != 65534) return 13;
        try {
            (void)File::open(open_file);
        } catch (const Error& e) {
            std::fprintf(stderr, "unexpected: %s\n", e.what());
            return 20;
        }
        try {
            (void)File::open(secret);
            return 21;  // opened a file it has no permission for
        } catch (const Error& e) {
            if (e.error_number() != EACCES) {
                std::fprintf(stderr, "wrong errno: %s\n", e.what());
                return 22;
            }
            if (!testutil::contains(e.what(), secret) ||
                !testutil::contains(e.what(), "Permission denied")) {
                std::fprintf(stderr, "bad message: %s\n", e.what());
                return 23;
            }
        }
        try {
            (void)File::open(secret, OpenMode::ReadWrite);
            return 24;
        } catch (const Error& e) {
            if (e.error_number() != EACCES) return 25;
        }
        return 0;
    });
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
}

TEST(File, WriteToReadOnlyFileIsEbadf) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "abc");
    File f = File::open(path);
    Error e = expect_error([&] { f.write_at(0, as_bytes("zzz")); });
    EXPECT_EQ(e.error_number(), EBADF);
    EXPECT_EQ(e.path(), path);
    Error r = expect_error([&] { f.resize(10); });
    EXPECT_TRUE(r.error_number() == EINVAL || r.error_number() == EBADF) << r.what();
    EXPECT_EQ(testutil::read_file(path), "abc");
}

// ---------------------------------------------------------------- File: size, resize, allocate

TEST(File, SizeAndResizeGrowSparseAndShrink) {
    TempDir dir;
    auto path = dir.file("f");
    File f = File::create(path);
    EXPECT_EQ(f.size(), 0u);
    f.resize(1 << 20);
    EXPECT_EQ(f.size(), 1u << 20);
    EXPECT_EQ(testutil::file_size(path), 1u << 20);
    struct stat st = testutil::stat_of(path);
    EXPECT_LT(st.st_blocks * 512, 64 * 1024) << "resize must grow sparse";
    EXPECT_EQ(testutil::pread_file(path, 4096, 16), std::string(16, '\0'));

    f.write_at(0, as_bytes("0123456789"));
    f.resize(4);
    EXPECT_EQ(f.size(), 4u);
    EXPECT_EQ(testutil::read_file(path), "0123");
    f.resize(0);
    EXPECT_EQ(testutil::file_size(path), 0u);
}

TEST(File, AllocateReservesBlocksAndGrows) {
    TempDir dir;
    auto path = dir.file("f");
    File f = File::create(path);
    f.resize(1 << 20);
    blkcnt_t before = testutil::stat_of(path).st_blocks;
    f.allocate(0, 1 << 20);
    blkcnt_t after = testutil::stat_of(path).st_blocks;
    EXPECT_GE(after * 512, 1 << 20) << "blocks before " << before << ", after " << after;
    EXPECT_GT(after, before);
    EXPECT_EQ(f.size(), 1u << 20);  // allocate inside the file leaves the size alone

    f.allocate(2 << 20, 4096);  // past end: grows the file
    EXPECT_EQ(f.size(), (2u << 20) + 4096);
    EXPECT_EQ(testutil::pread_file(path, 0, 8), std::string(8, '\0'));
}

TEST(File, AllocateOnReadOnlyFileFails) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "abc");
    File f = File::open(path);
    Error e = expect_error([&] { f.allocate(0, 4096); });
    EXPECT_EQ(e.error_number(), EBADF);
    EXPECT_EQ(e.path(), path);
}

TEST(File, SyncAndDatasync) {
    TempDir dir;
    auto path = dir.file("f");
    File f = File::create(path);
    f.write_at(0, as_bytes("durable"));
    EXPECT_NO_THROW(f.sync());
    EXPECT_NO_THROW(f.datasync());
    EXPECT_EQ(testutil::read_file(path), "durable");
    File ro = File::open(path);
    EXPECT_NO_THROW(ro.sync());  // fsync of a read-only descriptor is allowed
    EXPECT_NO_THROW(ro.datasync());
}

TEST(File, SyncOfAdoptedPipeFailsWithEinval) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    UniqueFd write_end(fds[1]);
    File f = File::adopt(UniqueFd(fds[0]), "my-pipe", false);
    EXPECT_EQ(f.path(), "my-pipe");
    EXPECT_FALSE(f.writable());
    Error e = expect_error([&] { f.sync(); });
    EXPECT_EQ(e.error_number(), EINVAL);
    EXPECT_TRUE(testutil::contains(e.what(), "my-pipe")) << e.what();
}

// ---------------------------------------------------------------- File: positional I/O

TEST(File, WriteAtReadAtRoundTrip) {
    TempDir dir;
    auto path = dir.file("f");
    const std::size_t size = 3 * testutil::page_size() + 17;
    std::string data = testutil::random_bytes(size);
    File f = File::create(path);
    f.write_at(0, as_bytes(data));
    EXPECT_EQ(f.size(), size);
    EXPECT_EQ(testutil::read_file(path), data);

    std::string back(size, '\0');
    std::size_t n = f.read_at(0, std::as_writable_bytes(std::span(back)));
    EXPECT_EQ(n, size);
    EXPECT_EQ(back, data);

    std::string mid(100, '\0');
    EXPECT_EQ(f.read_at(4000, std::as_writable_bytes(std::span(mid))), 100u);
    EXPECT_EQ(mid, data.substr(4000, 100));

    f.write_at(4090, as_bytes("XYZXYZXYZXYZ"));  // across a page boundary
    EXPECT_EQ(testutil::pread_file(path, 4090, 12), "XYZXYZXYZXYZ");
}

TEST(File, ReadAtIsShortOnlyAtEndOfFile) {
    TempDir dir;
    auto path = dir.file("f");
    std::string data = testutil::random_bytes(5000);
    testutil::write_file(path, data);
    File f = File::open(path);
    std::array<std::byte, 100> buf{};
    EXPECT_EQ(f.read_at(4990, buf), 10u);
    EXPECT_EQ(std::memcmp(buf.data(), data.data() + 4990, 10), 0);
    EXPECT_EQ(f.read_at(5000, buf), 0u);
    EXPECT_EQ(f.read_at(1 << 30, buf), 0u);
    EXPECT_EQ(f.read_at(0, std::span<std::byte>()), 0u);
}

TEST(File, WriteAtPastEndLeavesAHoleOfZeros) {
    TempDir dir;
    auto path = dir.file("f");
    File f = File::create(path);
    f.write_at(10000, as_bytes("end"));
    EXPECT_EQ(f.size(), 10003u);
    EXPECT_EQ(testutil::pread_file(path, 0, 10000), std::string(10000, '\0'));
    EXPECT_EQ(testutil::pread_file(path, 10000, 3), "end");
}

TEST(File, PositionalIoOnPipeIsEspipe) {
    // pread/pwrite on a pipe fail with ESPIPE: a clear error naming the file, not a hang.
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    File reader = File::adopt(UniqueFd(fds[0]), "pipe-r", false);
    File writer = File::adopt(UniqueFd(fds[1]), "pipe-w", true);
    std::array<std::byte, 4> buf{};
    Error r = expect_error([&] { (void)reader.read_at(0, buf); });
    EXPECT_EQ(r.error_number(), ESPIPE);
    EXPECT_EQ(r.path(), "pipe-r");
    Error w = expect_error([&] { writer.write_at(0, buf); });
    EXPECT_EQ(w.error_number(), ESPIPE);
    EXPECT_EQ(w.path(), "pipe-w");
}

// open_beneath: a root with a file, a subdirectory, and symlinks that stay
// inside, leave by absolute path, leave by "..", and a magic link.
class OpenBeneath : public ::testing::Test {
  protected:
    void SetUp() override {
        ::mkdir(dir_.file("root").c_str(), 0755);
        testutil::write_file(dir_.file("root/a.txt"), "a");
        ::mkdir(dir_.file("root/sub").c_str(), 0755);
        testutil::write_file(dir_.file("root/sub/b.txt"), "b");
        testutil::write_file(dir_.file("outside.txt"), "secret");
        ASSERT_EQ(::symlink("a.txt", dir_.file("root/in").c_str()), 0);
        ASSERT_EQ(::symlink(dir_.file("outside.txt").c_str(), dir_.file("root/abs").c_str()), 0);
        ASSERT_EQ(::symlink("../outside.txt", dir_.file("root/up").c_str()), 0);
        ASSERT_EQ(::symlink("/proc/self/cwd", dir_.file("root/magic").c_str()), 0);
        root_.reset(::open(dir_.file("root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        ASSERT_TRUE(root_);
        const int probe = pagewire::open_beneath(root_.get(), "", O_RDONLY);
        if (probe == -ENOSYS) GTEST_SKIP() << "openat2 not available (Linux < 5.6)";
        ASSERT_GE(probe, 0);
        ::close(probe);
    }
    // What `path` opens to (its first bytes), or the errno of the failure.
    std::string open_text(const std::string& path,
                          pagewire::Symlinks mode = pagewire::Symlinks::StayBeneath) {
        const int fd = pagewire::open_beneath(root_.get(), path, O_RDONLY, mode);
        if (fd < 0) return "errno " + std::to_string(-fd);
        UniqueFd owned(fd);
        char buf[16] = {};
        const ssize_t n = ::read(fd, buf, sizeof buf);
        return n < 0 ? "read errno " + std::to_string(errno) : std::string(buf, n);
    }
    TempDir dir_;
    UniqueFd root_;
};

TEST_F(OpenBeneath, OpensInsideTheRootAndRefusesEveryWayOut) {
    EXPECT_EQ(open_text("a.txt"), "a");
    EXPECT_EQ(open_text("sub/b.txt"), "b");
    EXPECT_EQ(open_text("sub/../a.txt"), "a");
    EXPECT_EQ(open_text("in"), "a");  // a symlink that stays inside
    const std::string exdev = "errno " + std::to_string(EXDEV);
    EXPECT_EQ(open_text("../outside.txt"), exdev);
    EXPECT_EQ(open_text(dir_.file("outside.txt")), exdev);  // absolute path
    EXPECT_EQ(open_text("abs"), exdev);
    EXPECT_EQ(open_text("up"), exdev);
    EXPECT_EQ(open_text("missing"), "errno " + std::to_string(ENOENT));
}

TEST_F(OpenBeneath, FollowModeFollowsSymlinksOutButNeverMagicLinks) {
    using pagewire::Symlinks;
    EXPECT_EQ(open_text("abs", Symlinks::Follow), "secret");
    EXPECT_EQ(open_text("up", Symlinks::Follow), "secret");
    // /proc/self/cwd is a symlink to a magic link: refused in both modes.
    EXPECT_EQ(open_text("magic", Symlinks::Follow), "errno " + std::to_string(ELOOP));
    EXPECT_EQ(open_text("magic"), "errno " + std::to_string(EXDEV));
}

TEST_F(OpenBeneath, RootItselfAndDescriptorFlags) {
    const int fd = pagewire::open_beneath(root_.get(), "", O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd, 0);
    UniqueFd owned(fd);
    EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);  // always close-on-exec
    struct stat a {};
    struct stat b {};
    ASSERT_EQ(::fstat(fd, &a), 0);
    ASSERT_EQ(::fstat(root_.get(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
    EXPECT_EQ(pagewire::open_beneath(root_.get(), "a.txt", O_RDONLY | O_DIRECTORY), -ENOTDIR);
}
