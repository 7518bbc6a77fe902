// Segments over every backend, checked between this process and separately
// exec'd helper processes: data both ways, create/open/exclusive semantics,
// names, permissions (a `nobody` child gets EACCES), foreign segments refused,
// creator liveness, memfd seals and descriptor passing, System V details.
#include <sys/socket.h>

#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/segment.hpp>

#include "shm_test_util.hpp"

using namespace pagewire;
using shmtest::Cleanup;
using testutil::contains;
using testutil::run;

namespace {

struct BackendCase {
    Backend backend;
    const char* label;
};

class SegmentBackends : public ::testing::TestWithParam<BackendCase> {
  protected:
    // Traversable by `nobody`, so file segments fail or succeed on their own mode.
    SegmentBackends() { ::chmod(dir_.path().c_str(), 0755); }

    // A fresh name for this backend; file segments live in the test's TempDir.
    std::string fresh_name() {
        switch (GetParam().backend) {
            case Backend::Posix:
                return shmtest::unique_posix_name();
            case Backend::SystemV:
                return shmtest::unique_sysv_key();
            default:
                return dir_.file("seg-" + std::to_string(shmtest::next_serial()));
        }
    }
    testutil::TempDir dir_;
};

std::string text_of(const Segment& s, std::size_t offset, std::size_t n) {
    return std::string(reinterpret_cast<const char*>(s.data()) + offset, n);
}

}  // namespace

TEST_P(SegmentBackends, DataCrossesProcessesBothWays) {
    const Backend b = GetParam().backend;
    const std::string name = fresh_name();
    Cleanup cleanup(b, name);
    Segment seg = Segment::create(b, name, 10000);
    EXPECT_TRUE(seg.created());
    EXPECT_EQ(seg.size(), 10000u);
    std::memcpy(seg.data() + 5000, "from-the-test", 13);

    auto r = run({shmtest::helper(), "read", GetParam().label, name, "5000", "13"});
    EXPECT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(r.out, "from-the-test");

    r = run({shmtest::helper(), "write", GetParam().label, name, "9990", "from-child"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(text_of(seg, 9990, 10), "from-child");

    r = run({shmtest::helper(), "size", GetParam().label, name});
    EXPECT_EQ(r.out, "10000\n") << r;
}

TEST_P(SegmentBackends, CreateIsExclusiveAndOpenOrCreateJoins) {
    const Backend b = GetParam().backend;
    const std::string name = fresh_name();
    Cleanup cleanup(b, name);
    Segment first = Segment::create(b, name, 4096);
    auto e = testutil::catch_as<Error>([&] { Segment::create(b, name, 4096); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EEXIST) << e->what();
    EXPECT_EQ(std::string(e->what()).rfind("create ", 0), 0u) << e->what();

    Segment joined = Segment::open_or_create(b, name, 999);
    EXPECT_FALSE(joined.created());
    EXPECT_EQ(joined.size(), 4096u);  // the existing size wins
    std::memcpy(first.data(), "shared", 6);
    EXPECT_EQ(text_of(joined, 0, 6), "shared");
}

TEST_P(SegmentBackends, OpeningAMissingSegmentSaysSo) {
    const Backend b = GetParam().backend;
    const std::string name = fresh_name();
    auto e = testutil::catch_as<Error>([&] { Segment::open(b, name); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), ENOENT) << e->what();
    EXPECT_TRUE(contains(e->what(), "open ")) << e->what();
    EXPECT_TRUE(contains(e->what(),
                         b == Backend::SystemV ? "no System V segment with key" : "No such file"))
        << e->what();
}

TEST_P(SegmentBackends, OwnerOnlyByDefaultNobodyGetsEacces) {
    const Backend b = GetParam().backend;
    const std::string name = fresh_name();
    Cleanup cleanup(b, name);
    {
        Segment seg = Segment::create(b, name, 4096);
        EXPECT_EQ(seg.info().mode, 0600u);
    }
    auto r = run({shmtest::helper(), "--as-nobody", "read", GetParam().label, name, "0", "1"});
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_TRUE(contains(r.out, "Permission denied")) << r;
    EXPECT_TRUE(contains(r.out, "[errno 13]")) << r;
    EXPECT_TRUE(contains(r.out, "error: open ")) << r;
}

TEST_P(SegmentBackends, ExplicitModeIsExactAndLetsOthersIn) {
    const Backend b = GetParam().backend;
    const std::string name = fresh_name();
    Cleanup cleanup(b, name);
    SegmentOptions o;
    o.mode = 0666;
    Segment seg = Segment::create(b, name, 64, o);
    EXPECT_EQ(seg.info().mode, 0666u);  // umask not applied
    std::memcpy(seg.data(), "open to all", 11);
    auto r = run({shmtest::helper(), "--as-nobody", "read", GetParam().label, name, "0", "11"});
    EXPECT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(r.out, "open to all");
}

TEST_P(SegmentBackends, RemoveOnCloseRemoves) {
    const Backend b = GetParam().backend;
    const std::string name = fresh_name();
    Cleanup cleanup(b, name);
    {
        SegmentOptions o;
        o.remove_on_close = true;
        Segment seg = Segment::create(b, name, 100, o);
        Segment moved = std::move(seg);  // the duty moves with the handle
    }
    auto e = testutil::catch_as<Error>([&] { Segment::open(b, name); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), ENOENT) << e->what();
}

TEST_P(SegmentBackends, CreatorLivenessUsesPidAndStartTime) {
    const Backend b = GetParam().backend;
    const std::string name = fresh_name();
    Cleanup cleanup(b, name);
    // A creator that has exited: dead.
    auto r = run({shmtest::helper(), "create", GetParam().label, name, "256"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    SegmentInfo info = Segment::stat(b, name);
    EXPECT_EQ(info.pagewire, std::optional<bool>(true));
    EXPECT_EQ(info.creator, Liveness::Dead);
    EXPECT_EQ(info.data_size, 256u);
    EXPECT_EQ(info.size, 256u + Segment::kHeaderSize);

    // This process as the creator: alive.
    const std::string mine = fresh_name();
    Cleanup cleanup2(b, mine);
    Segment seg = Segment::create(b, mine, 256);
    SegmentInfo own = seg.info();
    EXPECT_EQ(own.creator, Liveness::Alive);
    EXPECT_EQ(own.creator_pid, ::getpid());
}

TEST_P(SegmentBackends, ForeignSegmentIsRefusedUnlessRaw) {
    const Backend b = GetParam().backend;
    const std::string name = fresh_name();
    Cleanup cleanup(b, name);
    SegmentOptions raw;
    raw.raw = true;
    Segment foreign = Segment::create(b, name, 4096, raw);
    std::memset(foreign.data(), 0x5a, foreign.size());  // not a header

    auto e = testutil::catch_as<Error>([&] { Segment::open(b, name); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EPROTO);
    EXPECT_TRUE(contains(e->what(), "not a pagewire segment")) << e->what();

    Segment seen = Segment::open(b, name, raw);
    EXPECT_EQ(seen.size(), 4096u);
    EXPECT_EQ(seen.data()[4095], std::byte{0x5a});
    EXPECT_EQ(Segment::stat(b, name).pagewire, std::optional<bool>(false));
}

TEST_P(SegmentBackends, ReadOnlyOpenMapsReadOnly) {
    const Backend b = GetParam().backend;
    const std::string name = fresh_name();
    Cleanup cleanup(b, name);
    Segment seg = Segment::create(b, name, 4096);
    SegmentOptions ro;
    ro.read_only = true;
    Segment reader = Segment::open(b, name, ro);
    EXPECT_FALSE(reader.writable());
    EXPECT_TRUE(testutil::has_vm_flag(reader.data(), "rd"));
    EXPECT_FALSE(testutil::has_vm_flag(reader.data(), "wr"));
    EXPECT_TRUE(testutil::has_vm_flag(seg.data(), "wr"));
}

INSTANTIATE_TEST_SUITE_P(AllNamedBackends, SegmentBackends,
                         ::testing::Values(BackendCase{Backend::Posix, "posix"},
                                           BackendCase{Backend::SystemV, "sysv"},
                                           BackendCase{Backend::File, "file"}),
                         [](const auto& info) { return std::string(info.param.label); });

// ------------------------------------------------------------------ names

TEST(SegmentNames, BadPosixNamesAreRefusedClearly) {
    const std::string too_long(300, 'x');
    for (const std::string& bad :
         {std::string(""), std::string("/"), std::string("a/b"), std::string("/a/b"),
          std::string(".."), std::string("/."), too_long}) {
        auto e = testutil::catch_as<Error>([&] { Segment::create(Backend::Posix, bad, 10); });
        ASSERT_TRUE(e) << bad;
        EXPECT_EQ(e->error_number(), EINVAL) << bad;
        EXPECT_TRUE(contains(e->what(), "a POSIX segment name must")) << e->what();
    }
}

TEST(SegmentNames, BadSystemVNamesAreRefusedClearly) {
    auto e = testutil::catch_as<Error>(
        [&] { Segment::open(Backend::SystemV, "/no/such/path/for/ftok"); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), ENOENT);
    EXPECT_TRUE(contains(e->what(), "not a System V key")) << e->what();
    e = testutil::catch_as<Error>([&] { Segment::open(Backend::SystemV, "0x1ffffffff"); });
    ASSERT_TRUE(e);
    e = testutil::catch_as<Error>([&] { Segment::open(Backend::SystemV, "private"); });
    ASSERT_TRUE(e);
    EXPECT_TRUE(contains(e->what(), "IPC_PRIVATE names no existing segment")) << e->what();
    e = testutil::catch_as<Error>([&] { Segment::open(Backend::SystemV, "id:2147483000"); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), ENOENT) << e->what();
}

TEST(SegmentNames, ReadOnlyCreateAndBadModeAreRefused) {
    SegmentOptions o;
    o.read_only = true;
    auto e = testutil::catch_as<Error>(
        [&] { Segment::create(Backend::Posix, shmtest::unique_posix_name(), 10, o); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EINVAL);
    SegmentOptions m;
    m.mode = 04755;
    e = testutil::catch_as<Error>(
        [&] { Segment::create(Backend::Posix, shmtest::unique_posix_name(), 10, m); });
    ASSERT_TRUE(e);
    EXPECT_TRUE(contains(e->what(), "bits outside 0777")) << e->what();
}

// ------------------------------------------------------------------ System V specifics

TEST(SystemV, PrivateSegmentIsReachableById) {
    Segment seg = Segment::create(Backend::SystemV, "private", 300);
    Cleanup cleanup(Backend::SystemV, seg.name());
    ASSERT_EQ(seg.name().rfind("id:", 0), 0u) << seg.name();
    EXPECT_EQ(seg.name(), "id:" + std::to_string(seg.sysv_id()));
    std::memcpy(seg.data(), "private!", 8);
    auto r = run({shmtest::helper(), "read", "sysv", seg.name(), "0", "8"});
    EXPECT_EQ(r.out, "private!") << r;
    EXPECT_EQ(seg.info().key, IPC_PRIVATE);
}

TEST(SystemV, PathBecomesAKeyWithFtok) {
    testutil::TempDir dir;
    const std::string path = dir.file("keyfile");
    testutil::write_file(path, "k");
    const key_t expected = ::ftok(path.c_str(), 1);
    Segment seg = Segment::create(Backend::SystemV, path, 128);
    Cleanup cleanup(Backend::SystemV, "id:" + std::to_string(seg.sysv_id()));
    EXPECT_EQ(seg.info().key, expected);
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(expected));
    EXPECT_EQ(seg.name(), buf);
    Segment again = Segment::open(Backend::SystemV, path);
    EXPECT_EQ(again.sysv_id(), seg.sysv_id());
}

TEST(SystemV, AttachCountsAndShmRndAndDestroyAfterLastDetach) {
    const std::string key = shmtest::unique_sysv_key();
    Cleanup cleanup(Backend::SystemV, key);
    Segment seg = Segment::create(Backend::SystemV, key, 4096);
    EXPECT_EQ(seg.info().attach_count, 1);
    EXPECT_EQ(seg.info().creator_pid, ::getpid());

    shmtest::Child holder({shmtest::helper(), "hold", "sysv", key});
    ASSERT_EQ(holder.read_line(), "holding");
    SegmentInfo two = seg.info();
    EXPECT_EQ(two.attach_count, 2);
    EXPECT_EQ(two.last_pid, holder.pid());

    // SHM_RND: an address inside a SHMLBA block is rounded down to it.
    auto area = Mapping::anonymous(4 * SHMLBA);
    auto base = reinterpret_cast<std::uintptr_t>(area.data());
    auto aligned = (base + SHMLBA - 1) / SHMLBA * SHMLBA;
    area = Mapping();  // leave the range free for shmat
    SegmentOptions rnd;
    rnd.attach_address = reinterpret_cast<void*>(aligned + 100);
    rnd.round_attach_address = true;
    Segment rounded = Segment::open(Backend::SystemV, key, rnd);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(rounded.data()) - Segment::kHeaderSize, aligned);
    SegmentOptions exact;
    exact.attach_address = reinterpret_cast<void*>(aligned + SHMLBA + 100);
    auto e = testutil::catch_as<Error>([&] { Segment::open(Backend::SystemV, key, exact); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EINVAL);
    EXPECT_TRUE(contains(e->what(), "attach ")) << e->what();

    // IPC_RMID with attachers: the key goes now, the pages when the last detaches.
    seg.remove();
    SegmentInfo marked = seg.info();
    EXPECT_TRUE(marked.marked_for_removal);
    EXPECT_THROW(Segment::open(Backend::SystemV, key), Error);
    std::memcpy(seg.data(), "still", 5);
    EXPECT_EQ(std::memcmp(rounded.data(), "still", 5), 0);
    const int id = seg.sysv_id();
    holder.close_stdin();
    EXPECT_EQ(testutil::describe_status(holder.wait()), "exit 0");
    seg = Segment();
    rounded = Segment();
    shmid_ds ds{};
    EXPECT_EQ(::shmctl(id, IPC_STAT, &ds), -1);  // gone
}

// ------------------------------------------------------------------ memfd

TEST(Memfd, SealedDescriptorPassedToAnotherProcessCannotBeShrunk) {
    Segment seg = Segment::create(Backend::Memfd, "pwtest-memfd", 8192);
    std::memcpy(seg.data(), "HELLO", 5);
    seg.add_seals(kSealShrink | kSealGrow);
    EXPECT_EQ(seg.seals() & (kSealShrink | kSealGrow),
              static_cast<unsigned>(kSealShrink | kSealGrow));
    // Here too: the truncation SIGBUS cannot happen to a shrink-sealed memfd.
    EXPECT_EQ(::ftruncate(seg.fd(), 0), -1);
    EXPECT_EQ(errno, EPERM);

    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);  // sv[1] inherited by the helper
    ::fcntl(sv[0], F_SETFD, FD_CLOEXEC);
    seg.send(sv[0]);  // queued in the socket until the helper receives it
    auto r = run({shmtest::helper(), "receive", std::to_string(sv[1])});
    ::close(sv[0]);
    ::close(sv[1]);
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(contains(r.out, "seals=6 size=8192 text=HELLO")) << r;
    EXPECT_TRUE(contains(r.out, "shrink: Operation not permitted")) << r;
    EXPECT_EQ(text_of(seg, 0, 5), "REPLY");  // the same pages
}

TEST(Memfd, WriteSealNeedsNoWritableMappingAndOpenByNameIsRefused) {
    Segment seg = Segment::create(Backend::Memfd, "pwtest-seal", 100);
    auto e = testutil::catch_as<Error>([&] { seg.add_seals(kSealWrite); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EBUSY);
    EXPECT_TRUE(contains(e->what(), "writable shared mapping")) << e->what();
    seg.add_seals(kSealSeal);
    e = testutil::catch_as<Error>([&] { seg.add_seals(kSealShrink); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EPERM);
    e = testutil::catch_as<Error>([&] { Segment::open(Backend::Memfd, "pwtest-seal"); });
    ASSERT_TRUE(e);
    EXPECT_TRUE(contains(e->what(), "a memfd has no name to open")) << e->what();
}

TEST(Memfd, ReceivingFromAClosedSocketIsAnError) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ::close(sv[0]);
    auto e = testutil::catch_as<Error>([&] { Segment::receive(sv[1]); });
    ::close(sv[1]);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), ECONNRESET) << e->what();
}

// ------------------------------------------------------------------ list

TEST(SegmentList, ListsPosixAndSystemVSegments) {
    const std::string posix = shmtest::unique_posix_name();
    const std::string key = shmtest::unique_sysv_key();
    Cleanup c1(Backend::Posix, posix), c2(Backend::SystemV, key);
    Segment a = Segment::create(Backend::Posix, posix, 1000);
    Segment b = Segment::create(Backend::SystemV, key, 2000);
    bool saw_posix = false, saw_sysv = false;
    for (const SegmentInfo& info : Segment::list()) {
        if (info.backend == Backend::Posix && info.name == posix) {
            saw_posix = true;
            EXPECT_EQ(info.size, 1000u + Segment::kHeaderSize);
            EXPECT_EQ(info.attach_count, 1);  // this process maps it
            EXPECT_EQ(info.creator, Liveness::Alive);
            EXPECT_EQ(info.pagewire, std::optional<bool>(true));
        }
        if (info.backend == Backend::SystemV && info.name == key) {
            saw_sysv = true;
            EXPECT_EQ(info.id, b.sysv_id());
            EXPECT_EQ(info.attach_count, 1);
            EXPECT_EQ(info.creator, Liveness::Alive);
            EXPECT_FALSE(info.pagewire.has_value());  // list() does not attach
        }
    }
    EXPECT_TRUE(saw_posix);
    EXPECT_TRUE(saw_sysv);
}

// ------------------------------------------------------------------ resource limits (issue 12)

// Creation reserves the blocks: on a full filesystem the create fails with
// ENOSPC and leaves nothing, and a segment that was created can be written
// to its last byte (without the reservation, the second create succeeds and
// writing it raises SIGBUS).
TEST(SegmentLimits, FullFilesystemIsEnospcAtCreateNeverSigbusLater) {
    testutil::SmallTmpfs fs("1m");
    if (!fs.mounted()) GTEST_SKIP() << "needs a small tmpfs: " << fs.why();
    const std::string first = fs.file("first"), second = fs.file("second");
    Segment a = Segment::create(Backend::File, first, 600 * 1024);
    auto e = testutil::catch_as<Error>([&] { Segment::create(Backend::File, second, 600 * 1024); });
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->error_number(), ENOSPC);
    EXPECT_EQ(e->path(), second);
    EXPECT_TRUE(contains(e->what(), "cannot reserve")) << e->what();
    EXPECT_FALSE(std::filesystem::exists(second));
    std::memset(a.data(), 0x5a, a.size());  // every page is backed
    EXPECT_EQ(static_cast<unsigned char>(a.data()[a.size() - 1]), 0x5au);
}

// Under RLIMIT_FSIZE (SIGXFSZ ignored, as the CLI does) every fd-backed
// create is EFBIG, one line, and removes the object it made.
TEST(SegmentLimits, FileSizeLimitIsEfbigAndLeavesNothing) {
    testutil::TempDir dir;
    const std::string posix = shmtest::unique_posix_name();
    const std::string file = dir.file("seg");
    Cleanup c(Backend::Posix, posix);
    for (auto [backend, name] :
         {std::pair{Backend::Posix, posix}, std::pair{Backend::File, file}}) {
        SCOPED_TRACE(name);
        const int status = testutil::run_in_child([&, backend = backend, name = name] {
            ::signal(SIGXFSZ, SIG_IGN);
            const rlimit limit{64 * 1024, 64 * 1024};
            if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 10;
            auto e = testutil::catch_as<Error>([&] { Segment::create(backend, name, 1 << 20); });
            if (!e) return 11;
            if (e->error_number() != EFBIG) return 12;
            if (!contains(e->what(), "File too large") || !contains(e->what(), name)) return 13;
            return 0;
        });
        EXPECT_EQ(testutil::describe_status(status), "exit 0");
        const std::string path = backend == Backend::Posix ? "/dev/shm" + name : name;
        EXPECT_FALSE(std::filesystem::exists(path)) << path << " was left behind";
    }
}
