// The transfer engine against the kernel: every method byte for byte on the
// sizes where page and buffer boundaries bite, with offsets; file->file,
// file->TCP socket (a receiving child process), file->pipe, socket->file;
// sendfile's per-call limit on a sparse file over 2 GiB; fallbacks forced
// (EXDEV, O_APPEND, tmpfs without DIOALIGN, non-sockets); errors (file-size
// limit mid-copy, a receiver that leaves early); statistics and the page cache.
#include <sys/resource.h>

#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/page_cache.hpp>
#include <pagewire/transfer.hpp>

#include "transfer_test_util.hpp"

using pagewire::EndpointKind;
using pagewire::File;
using pagewire::TransferMethod;
using pagewire::TransferOptions;
using pagewire::TransferStats;
using testutil::TempDir;
using transfer_test::Receiver;

namespace {

const std::vector<std::size_t> kSizes = {0, 1, 4095, 4096, 4097, (1u << 20) + 3};

// Methods that work natively file -> file on a disk filesystem.
const std::vector<TransferMethod> kFileToFile = {
    TransferMethod::ReadWrite, TransferMethod::MmapWrite,     TransferMethod::Sendfile,
    TransferMethod::Splice,    TransferMethod::CopyFileRange, TransferMethod::IoUring,
    TransferMethod::Direct};
// ... and file -> TCP socket.
const std::vector<TransferMethod> kFileToSocket = {
    TransferMethod::ReadWrite,  TransferMethod::MmapWrite, TransferMethod::Sendfile,
    TransferMethod::Splice,     TransferMethod::IoUring,   TransferMethod::Direct,
    TransferMethod::MsgZerocopy};

std::string name_of(TransferMethod m) {
    return std::string(pagewire::method_name(m));
}

TransferOptions strict(TransferMethod m) {
    TransferOptions o;
    o.method = m;
    o.fallback = false;  // the method itself must do it
    return o;
}

// A scratch directory on the disk (/var/tmp is ext4 here; /tmp may be tmpfs
// elsewhere, which has no direct I/O alignment).
struct DiskDir {
    std::string path;
    DiskDir() {
        char templ[] = "/var/tmp/pagewire-transfer-XXXXXX";
        if (::mkdtemp(templ) == nullptr) testutil::die("mkdtemp");
        path = templ;
    }
    ~DiskDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

struct ShmDir {
    std::string path;
    ShmDir() {
        char templ[] = "/dev/shm/pagewire-transfer-XXXXXX";
        if (::mkdtemp(templ) == nullptr) testutil::die("mkdtemp /dev/shm");
        path = templ;
    }
    ~ShmDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

TransferStats copy_file(const std::string& src, const std::string& dst, const TransferOptions& o) {
    File in = File::open(src);
    File out = File::create(dst, pagewire::CreateMode::Truncate);
    return pagewire::transfer(in, out, o);
}

}  // namespace

TEST(Methods, NamesRoundTrip) {
    for (TransferMethod m : pagewire::transfer_methods()) {
        auto parsed = pagewire::parse_method(pagewire::method_name(m));
        ASSERT_TRUE(parsed.has_value()) << name_of(m);
        EXPECT_EQ(*parsed, m);
    }
    EXPECT_EQ(pagewire::parse_method("auto"), TransferMethod::Auto);
    EXPECT_FALSE(pagewire::parse_method("sendfile2").has_value());
    EXPECT_EQ(pagewire::transfer_methods().size(), 8u);
}

TEST(Policy, FollowsNginx) {
    TransferOptions o;
    o.direct_threshold = 1 << 20;
    using K = EndpointKind;
    EXPECT_EQ(pagewire::choose_method(K::RegularFile, K::Socket, 4096, o),
              TransferMethod::Sendfile);
    EXPECT_EQ(pagewire::choose_method(K::RegularFile, K::RegularFile, 4096, o),
              TransferMethod::CopyFileRange);
    EXPECT_EQ(pagewire::choose_method(K::RegularFile, K::Pipe, 4096, o), TransferMethod::Splice);
    EXPECT_EQ(pagewire::choose_method(K::RegularFile, K::Other, 4096, o), TransferMethod::Sendfile);
    EXPECT_EQ(pagewire::choose_method(K::RegularFile, K::Socket, 1 << 20, o),
              TransferMethod::Direct);
    EXPECT_EQ(pagewire::choose_method(K::Socket, K::RegularFile, 1 << 30, o),
              TransferMethod::Splice);
    o.direct_threshold = 0;  // `directio off`
    EXPECT_EQ(pagewire::choose_method(K::RegularFile, K::Socket, 1ull << 40, o),
              TransferMethod::Sendfile);
    EXPECT_EQ(pagewire::fallback_method(TransferMethod::CopyFileRange), TransferMethod::Sendfile);
    EXPECT_EQ(pagewire::fallback_method(TransferMethod::Direct), TransferMethod::IoUring);
    EXPECT_EQ(pagewire::fallback_method(TransferMethod::Sendfile), TransferMethod::ReadWrite);
    EXPECT_FALSE(pagewire::fallback_method(TransferMethod::ReadWrite).has_value());
}

TEST(FileToFile, EveryMethodEverySize) {
    DiskDir dir;
    for (std::size_t size : kSizes) {
        const std::string data = testutil::random_bytes(size, static_cast<std::uint32_t>(size + 1));
        const std::string src = dir.file("src-" + std::to_string(size));
        testutil::write_file(src, data);
        for (TransferMethod m : transfer_test::runnable(kFileToFile, dir.path)) {
            SCOPED_TRACE(name_of(m) + " size " + std::to_string(size));
            const std::string dst = dir.file("dst");
            TransferStats s = copy_file(src, dst, strict(m));
            EXPECT_EQ(s.used, m);
            EXPECT_TRUE(s.fallbacks.empty());
            EXPECT_EQ(s.bytes, size);
            EXPECT_EQ(testutil::read_file(dst), data);
            if (size > 0) {
                EXPECT_GT(s.syscalls, 0u);
            }
        }
    }
}

TEST(FileToFile, OffsetsAndRanges) {
    DiskDir dir;
    const std::string data = testutil::random_bytes((1u << 20) + 3, 7);
    const std::string src = dir.file("src");
    testutil::write_file(src, data);
    struct Range {
        std::uint64_t offset, length, dst_offset;
    };
    for (Range r : {Range{4097, 10000, 3}, Range{1, 4095, 4096}, Range{511, 600000, 0},
                    Range{(1u << 20), 100, 7}, Range{4096, pagewire::kTransferToEnd, 1}}) {
        for (TransferMethod m : transfer_test::runnable(kFileToFile, dir.path)) {
            SCOPED_TRACE(name_of(m) + " offset " + std::to_string(r.offset));
            const std::string dst = dir.file("dst");
            testutil::write_file(dst, "");
            TransferOptions o = strict(m);
            o.offset = r.offset;
            o.length = r.length;
            o.destination_offset = r.dst_offset;
            File in = File::open(src);
            File out = File::open(dst, pagewire::OpenMode::ReadWrite);
            TransferStats s = pagewire::transfer(in, out, o);
            const std::string expected = data.substr(r.offset, r.length);
            EXPECT_EQ(s.bytes, expected.size());
            EXPECT_EQ(s.used, m);
            const std::string got = testutil::read_file(dst);
            ASSERT_EQ(got.size(), r.dst_offset + expected.size());
            EXPECT_EQ(got.substr(0, r.dst_offset), std::string(r.dst_offset, '\0'));
            EXPECT_TRUE(got.substr(r.dst_offset) == expected);
        }
    }
}

// read-write keeps its buffer from one transfer to the next on a thread; a
// transfer started from another's progress callback must not share it, and
// a buffer size above what is kept (8 MiB) or growing between transfers
// must copy the same bytes.
TEST(FileToFile, ReadWriteBufferKeptPerThreadIsNeverShared) {
    DiskDir dir;
    const std::string outer = testutil::random_bytes((4u << 20) + 5, 11);
    const std::string inner = testutil::random_bytes((1u << 20) + 7, 12);
    testutil::write_file(dir.file("outer"), outer);
    testutil::write_file(dir.file("inner"), inner);
    int nested = 0;
    TransferOptions o = strict(TransferMethod::ReadWrite);
    o.buffer_bytes = 64 << 10;
    o.progress = [&](std::uint64_t, std::uint64_t) {
        if (nested++ != 0) return;
        TransferOptions i = strict(TransferMethod::ReadWrite);
        // Larger than the outer one's: were the kept buffer not marked in
        // use, it would be remapped under the outer transfer (EFAULT there).
        i.buffer_bytes = 1 << 20;
        (void)copy_file(dir.file("inner"), dir.file("inner-copy"), i);
    };
    (void)copy_file(dir.file("outer"), dir.file("outer-copy"), o);
    EXPECT_GT(nested, 0) << "the progress callback never ran: the test is void";
    EXPECT_TRUE(testutil::read_file(dir.file("outer-copy")) == outer);
    EXPECT_TRUE(testutil::read_file(dir.file("inner-copy")) == inner);
    for (std::size_t buffer : {std::size_t{4096}, std::size_t{1} << 20, std::size_t{16} << 20,
                               std::size_t{100000}, std::size_t{4096}}) {
        SCOPED_TRACE("buffer " + std::to_string(buffer));
        TransferOptions b = strict(TransferMethod::ReadWrite);
        b.buffer_bytes = buffer;
        const std::string dst = dir.file("copy-" + std::to_string(buffer));
        (void)copy_file(dir.file("outer"), dst, b);
        EXPECT_TRUE(testutil::read_file(dst) == outer);
    }
}

TEST(FileToFile, OffsetPastEndIsAnError) {
    DiskDir dir;
    testutil::write_file(dir.file("src"), "hello");
    File in = File::open(dir.file("src"));
    File out = File::create(dir.file("dst"));
    TransferOptions o;
    o.offset = 6;
    auto e = testutil::catch_as<pagewire::Error>([&] { pagewire::transfer(in, out, o); });
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->error_number(), EINVAL);
    EXPECT_TRUE(testutil::contains(e->what(), "past end of file")) << e->what();
    o.offset = 5;  // at end: nothing to do
    EXPECT_EQ(pagewire::transfer(in, out, o).bytes, 0u);
}

TEST(FileToSocket, EveryMethodEverySize) {
    DiskDir dir;
    for (std::size_t size : kSizes) {
        const std::string data = testutil::random_bytes(size, static_cast<std::uint32_t>(size + 9));
        const std::string src = dir.file("src");
        testutil::write_file(src, data);
        for (TransferMethod m : transfer_test::runnable(kFileToSocket, dir.path)) {
            SCOPED_TRACE(name_of(m) + " size " + std::to_string(size));
            Receiver receiver = Receiver::tcp(dir.file("received"));
            int sock = receiver.connect();
            File in = File::open(src);
            TransferStats s = pagewire::transfer({in.fd(), src}, {sock, "127.0.0.1"}, strict(m));
            ::close(sock);
            EXPECT_EQ(receiver.wait(), 0);
            EXPECT_EQ(s.used, m);
            EXPECT_EQ(s.bytes, size);
            EXPECT_EQ(testutil::read_file(dir.file("received")), data);
            if (m == TransferMethod::MsgZerocopy && size > 0) {
                // Every send's completion was collected before the pages were unmapped.
                EXPECT_GT(s.zerocopy_completions, 0u);
                EXPECT_LE(s.zerocopy_copied, s.zerocopy_completions);
            }
        }
    }
}

TEST(FileToSocket, NonBlockingSocketAndSlowReceiver) {
    DiskDir dir;
    const std::string data = testutil::random_bytes(6u << 20, 3);
    testutil::write_file(dir.file("src"), data);
    for (TransferMethod m : transfer_test::runnable(
             {TransferMethod::ReadWrite, TransferMethod::Sendfile, TransferMethod::Splice,
              TransferMethod::IoUring, TransferMethod::MsgZerocopy},
             dir.path)) {
        SCOPED_TRACE(name_of(m));
        Receiver receiver = Receiver::tcp(dir.file("received"), SIZE_MAX, /*slow=*/true);
        int sock = receiver.connect();
        ::fcntl(sock, F_SETFL, O_NONBLOCK);
        File in = File::open(dir.file("src"));
        TransferStats s = pagewire::transfer({in.fd(), "src"}, {sock, "socket"}, strict(m));
        ::close(sock);
        EXPECT_EQ(receiver.wait(), 0);
        EXPECT_EQ(s.bytes, data.size());
        EXPECT_TRUE(testutil::read_file(dir.file("received")) == data);
    }
}

TEST(FileToPipe, SpliceAndOthers) {
    DiskDir dir;
    const std::string data = testutil::random_bytes((1u << 20) + 3, 5);
    testutil::write_file(dir.file("src"), data);
    for (TransferMethod m : transfer_test::runnable(
             {TransferMethod::Auto, TransferMethod::Splice, TransferMethod::Sendfile,
              TransferMethod::ReadWrite, TransferMethod::IoUring},
             dir.path)) {
        SCOPED_TRACE(name_of(m));
        Receiver receiver = Receiver::pipe(dir.file("received"));
        File in = File::open(dir.file("src"));
        TransferOptions o = strict(m);
        TransferStats s = pagewire::transfer({in.fd(), "src"}, {receiver.write_end(), "pipe"}, o);
        receiver.close_write_end();
        EXPECT_EQ(receiver.wait(), 0);
        EXPECT_EQ(s.chosen, m == TransferMethod::Auto ? TransferMethod::Splice : m);
        EXPECT_TRUE(testutil::read_file(dir.file("received")) == data);
    }
}

TEST(SocketToFile, SpliceReceivesExactLengthAndUntilEnd) {
    DiskDir dir;
    const std::string data = testutil::random_bytes((3u << 20) + 5, 11);
    for (bool until_end : {false, true}) {
        for (TransferMethod m :
             {TransferMethod::Auto, TransferMethod::Splice, TransferMethod::ReadWrite}) {
            SCOPED_TRACE(name_of(m) + (until_end ? " until end" : " exact length"));
            int sv[2];
            ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
            std::fflush(nullptr);
            pid_t pid = ::fork();
            ASSERT_GE(pid, 0);
            if (pid == 0) {  // the sender: a real process
                ::close(sv[0]);
                std::size_t done = 0;
                while (done < data.size()) {
                    ssize_t n = ::write(sv[1], data.data() + done, data.size() - done);
                    if (n <= 0) ::_exit(1);
                    done += static_cast<std::size_t>(n);
                }
                ::_exit(0);
            }
            ::close(sv[1]);
            File out = File::create(dir.file("out"), pagewire::CreateMode::Truncate);
            TransferOptions o = strict(m);
            if (!until_end) o.length = data.size();
            TransferStats s = pagewire::transfer({sv[0], "socket"}, {out.fd(), out.path()}, o);
            ::close(sv[0]);
            EXPECT_EQ(testutil::wait_for(pid), 0);
            EXPECT_EQ(s.bytes, data.size());
            EXPECT_EQ(s.chosen, m == TransferMethod::Auto ? TransferMethod::Splice : m);
            EXPECT_FALSE(s.source_pages.has_value());
            EXPECT_TRUE(testutil::read_file(dir.file("out")) == data);
        }
    }
}

TEST(SocketToFile, StreamEndingEarlyIsAnError) {
    DiskDir dir;
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(::write(sv[1], "12345", 5), 5);
    ::close(sv[1]);
    File out = File::create(dir.file("out"));
    TransferOptions o;
    o.length = 10;
    auto e = testutil::catch_as<pagewire::Error>([&] {
        pagewire::transfer({sv[0], "peer"}, {out.fd(), out.path()}, o);
    });
    ::close(sv[0]);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->error_number(), EIO);
    EXPECT_TRUE(testutil::contains(e->what(), "read peer: source ended")) << e->what();
}

// sendfile moves at most 0x7ffff000 bytes per call: a range longer than that
// takes several calls, and the bytes at the boundary must land where they belong.
TEST(Sendfile, SparseFileOverTwoGiB) {
    DiskDir dir;
    ShmDir shm;
    constexpr std::uint64_t kLimit = 0x7ffff000;
    constexpr std::uint64_t kSize = (2ull << 30) + 8192 + 5;
    const std::string src = dir.file("sparse");
    const std::string head = "head-marker", edge = "edge-marker-across-the-limit", tail = "tail";
    {
        File f = File::create(src, pagewire::CreateMode::Truncate);
        f.resize(kSize);
        f.write_at(0, std::as_bytes(std::span(head)));
        f.write_at(kLimit - 10, std::as_bytes(std::span(edge)));
        f.write_at(kSize - tail.size(), std::as_bytes(std::span(tail)));
    }
    const std::string dst = shm.file("copy");  // tmpfs: 2 GiB of RAM, no disk writes
    TransferStats s = copy_file(src, dst, strict(TransferMethod::Sendfile));
    EXPECT_EQ(s.bytes, kSize);
    EXPECT_EQ(s.used, TransferMethod::Sendfile);
    EXPECT_GE(s.syscalls, 3u);  // lseek + at least two sendfile calls
    ASSERT_EQ(testutil::file_size(dst), kSize);
    EXPECT_EQ(testutil::pread_file(dst, 0, head.size()), head);
    EXPECT_EQ(testutil::pread_file(dst, kLimit - 10, edge.size()), edge);
    EXPECT_EQ(testutil::pread_file(dst, kSize - tail.size(), tail.size()), tail);
    EXPECT_EQ(testutil::pread_file(dst, kLimit + 100, 4096), std::string(4096, '\0'));
    EXPECT_EQ(testutil::pread_file(dst, 1ull << 30, 4096), std::string(4096, '\0'));
}

TEST(Fallback, CopyFileRangeAcrossFilesystemsIsExdev) {
    DiskDir dir;
    ShmDir shm;
    const std::string data = testutil::random_bytes(100000, 21);
    testutil::write_file(shm.file("src"), data);
    TransferOptions o;
    o.method = TransferMethod::CopyFileRange;
    TransferStats s = copy_file(shm.file("src"), dir.file("dst"), o);
    ASSERT_EQ(s.fallbacks.size(), 1u);
    EXPECT_EQ(s.fallbacks[0].from, TransferMethod::CopyFileRange);
    EXPECT_EQ(s.fallbacks[0].to, TransferMethod::Sendfile);
    EXPECT_EQ(s.fallbacks[0].error, EXDEV);
    EXPECT_EQ(s.used, TransferMethod::Sendfile);
    EXPECT_TRUE(testutil::read_file(dir.file("dst")) == data);
    EXPECT_TRUE(testutil::contains(pagewire::summary(s), "copy-file-range -> sendfile"));

    // Without fallbacks the same copy is an error saying why.
    auto e = testutil::catch_as<pagewire::Error>([&] {
        copy_file(shm.file("src"), dir.file("dst2"), strict(TransferMethod::CopyFileRange));
    });
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->error_number(), EXDEV);
    EXPECT_TRUE(testutil::contains(e->what(), "copy-file-range")) << e->what();
}

TEST(Fallback, AppendOnlyDestinationRefusesSpliceSendfileAndCopyFileRange) {
    DiskDir dir;
    const std::string data = testutil::random_bytes((1u << 20) + 3, 23);
    testutil::write_file(dir.file("src"), data);
    for (TransferMethod m :
         {TransferMethod::Splice, TransferMethod::Sendfile, TransferMethod::CopyFileRange}) {
        SCOPED_TRACE(name_of(m));
        const std::string dst = dir.file("dst");
        testutil::write_file(dst, "");
        int fd = ::open(dst.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        File in = File::open(dir.file("src"));
        TransferOptions o;
        o.method = m;
        TransferStats s = pagewire::transfer({in.fd(), "src"}, {fd, dst}, o);
        ::close(fd);
        ASSERT_FALSE(s.fallbacks.empty());
        EXPECT_EQ(s.fallbacks[0].from, m);
        EXPECT_EQ(s.used, TransferMethod::ReadWrite);
        EXPECT_EQ(s.bytes, data.size());
        EXPECT_TRUE(testutil::read_file(dst) == data);
    }
}

TEST(Fallback, DirectOnTmpfsRunsBufferedIoUring) {
    if (auto why = transfer_test::io_uring_missing()) GTEST_SKIP() << *why;
    ShmDir shm;
    const std::string data = testutil::random_bytes((2u << 20) + 3, 29);
    testutil::write_file(shm.file("src"), data);
    TransferOptions o;
    o.method = TransferMethod::Direct;
    TransferStats s = copy_file(shm.file("src"), shm.file("dst"), o);
    ASSERT_EQ(s.fallbacks.size(), 1u);
    EXPECT_EQ(s.fallbacks[0].from, TransferMethod::Direct);
    EXPECT_EQ(s.used, TransferMethod::IoUring);
    EXPECT_TRUE(testutil::contains(s.fallbacks[0].reason, "direct I/O")) << s.fallbacks[0].reason;
    EXPECT_TRUE(testutil::read_file(shm.file("dst")) == data);
}

TEST(Fallback, MsgZerocopyNeedsAnInetSocket) {
    DiskDir dir;
    const std::string data = testutil::random_bytes(70000, 31);
    testutil::write_file(dir.file("src"), data);
    TransferOptions o;
    o.method = TransferMethod::MsgZerocopy;
    TransferStats to_file = copy_file(dir.file("src"), dir.file("dst"), o);
    EXPECT_EQ(to_file.used, TransferMethod::ReadWrite);
    ASSERT_EQ(to_file.fallbacks.size(), 1u);
    EXPECT_EQ(to_file.fallbacks[0].error, ENOTSOCK);
    EXPECT_TRUE(testutil::read_file(dir.file("dst")) == data);

    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    const int big = 1 << 20;
    ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    File in = File::open(dir.file("src"));
    TransferStats to_unix = pagewire::transfer({in.fd(), "src"}, {sv[0], "unix"}, o);
    ::close(sv[0]);
    EXPECT_EQ(to_unix.used, TransferMethod::ReadWrite);
    ASSERT_EQ(to_unix.fallbacks.size(), 1u);
    EXPECT_EQ(to_unix.fallbacks[0].error, EOPNOTSUPP);
    std::string got(data.size(), '\0');
    std::size_t done = 0;
    while (done < got.size()) {
        ssize_t n = ::read(sv[1], got.data() + done, got.size() - done);
        ASSERT_GT(n, 0);
        done += static_cast<std::size_t>(n);
    }
    ::close(sv[1]);
    EXPECT_TRUE(got == data);
}

// RLIMIT_FSIZE hit part-way: a clear EFBIG error from every method (SIGXFSZ
// ignored, as `pagewire copy` does), in a child so the limit stays there.
TEST(Errors, FileSizeLimitMidCopy) {
    DiskDir dir;
    const std::string data = testutil::random_bytes(1u << 20, 37);
    testutil::write_file(dir.file("src"), data);
    for (TransferMethod m : transfer_test::runnable(kFileToFile, dir.path)) {
        SCOPED_TRACE(name_of(m));
        const std::string dst = dir.file("dst-" + name_of(m));
        int status = testutil::run_in_child([&] {
            ::signal(SIGXFSZ, SIG_IGN);
            rlimit limit{256 * 1024, 256 * 1024};
            if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 10;
            try {
                copy_file(dir.file("src"), dst, strict(m));
            } catch (const pagewire::Error& e) {
                std::fprintf(stderr, "%s\n", e.what());
                const std::string expected = "File too large";
                if (e.error_number() != EFBIG) return 11;
                if (std::string(e.what()).find(dst) == std::string::npos) return 12;
                if (std::string(e.what()).find(expected) == std::string::npos) return 13;
                return 0;
            }
            return 14;  // no error: the limit was not hit
        });
        EXPECT_EQ(testutil::describe_status(status), "exit 0");
        EXPECT_LE(testutil::file_size(dst), 256u * 1024);
    }
}

TEST(Errors, ReceiverLeavesEarly) {
    DiskDir dir;
    const std::string data = testutil::random_bytes(32u << 20, 41);
    testutil::write_file(dir.file("src"), data);
    ::signal(SIGPIPE, SIG_IGN);  // EPIPE instead of death, as the CLI does
    for (TransferMethod m : transfer_test::runnable(kFileToSocket, dir.path)) {
        SCOPED_TRACE(name_of(m));
        Receiver receiver = Receiver::tcp(dir.file("received"), 64 * 1024);
        int sock = receiver.connect();
        File in = File::open(dir.file("src"));
        auto e = testutil::catch_as<pagewire::Error>([&] {
            pagewire::transfer({in.fd(), "src"}, {sock, "127.0.0.1:peer"}, strict(m));
        });
        ::close(sock);
        EXPECT_EQ(receiver.wait(), 0);
        ASSERT_TRUE(e.has_value());
        EXPECT_TRUE(e->error_number() == EPIPE || e->error_number() == ECONNRESET) << e->what();
        EXPECT_TRUE(testutil::contains(e->what(), "127.0.0.1:peer")) << e->what();
    }
}

TEST(Errors, UnwritableDestination) {
    DiskDir dir;
    testutil::write_file(dir.file("src"), "some bytes");
    int fd = ::open(dir.file("src").c_str(), O_RDONLY | O_CLOEXEC);  // read-only "destination"
    File in = File::open(dir.file("src"));
    auto e = testutil::catch_as<pagewire::Error>([&] {
        pagewire::transfer({in.fd(), "src"}, {fd, "readonly"}, {});
    });
    ::close(fd);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->error_number(), EBADF);
    EXPECT_TRUE(testutil::contains(e->what(), "readonly")) << e->what();
}

TEST(Stats, CountsAndProgress) {
    DiskDir dir;
    const std::string data = testutil::random_bytes(8u << 20, 43);
    testutil::write_file(dir.file("src"), data);
    TransferOptions o = strict(TransferMethod::ReadWrite);
    o.buffer_bytes = 64 * 1024;
    std::vector<std::uint64_t> seen;
    o.progress = [&](std::uint64_t done, std::uint64_t total) {
        EXPECT_EQ(total, data.size());
        seen.push_back(done);
    };
    TransferStats s = copy_file(dir.file("src"), dir.file("dst"), o);
    // 128 buffers: one read and one write each, plus the final read of nothing.
    EXPECT_EQ(s.syscalls, 2u * 128u);
    EXPECT_EQ(seen.size(), 128u);
    EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
    EXPECT_EQ(seen.back(), data.size());
    EXPECT_GT(s.wall_seconds, 0);
    EXPECT_GT(s.cpu_seconds, 0);
    EXPECT_LE(s.cpu_seconds, s.wall_seconds * 2 + 0.05);
    ASSERT_TRUE(s.source_pages.has_value());
    EXPECT_EQ(*s.source_pages, (8u << 20) / testutil::page_size());

    TransferStats cfr =
        copy_file(dir.file("src"), dir.file("dst2"), strict(TransferMethod::CopyFileRange));
    EXPECT_LT(cfr.syscalls, s.syscalls);  // one call per 256 MiB
    EXPECT_TRUE(testutil::contains(pagewire::summary(cfr), "by copy-file-range"));
}

// Seed 003 / S17: the direct path leaves the source out of the page cache,
// the buffered one brings it in; drop_source_pages evicts afterwards.
TEST(PageCache, DirectLeavesTheSourceOut) {
    DiskDir dir;
    if (auto why = transfer_test::direct_io_missing(dir.path)) GTEST_SKIP() << *why;
    const std::string data = testutil::random_bytes(16u << 20, 47);
    const std::string src = dir.file("src");
    testutil::write_file(src, data);
    testutil::evict_from_page_cache(src);

    TransferStats direct = copy_file(src, dir.file("dst1"), strict(TransferMethod::Direct));
    ASSERT_TRUE(direct.resident_after.has_value());
    EXPECT_LT(*direct.resident_after, *direct.source_pages / 100) << pagewire::summary(direct);
    EXPECT_TRUE(testutil::read_file(dir.file("dst1")) == data);

    TransferOptions auto_direct;
    auto_direct.direct_threshold = 1 << 20;  // nginx `directio 1m`
    TransferStats chosen = copy_file(src, dir.file("dst2"), auto_direct);
    EXPECT_EQ(chosen.chosen, TransferMethod::Direct);
    EXPECT_EQ(chosen.used, TransferMethod::Direct);
    EXPECT_LT(*chosen.resident_after, *chosen.source_pages / 100);

    TransferStats buffered = copy_file(src, dir.file("dst3"), strict(TransferMethod::ReadWrite));
    EXPECT_GT(*buffered.resident_after, *buffered.source_pages * 9 / 10)
        << pagewire::summary(buffered);

    TransferOptions drop = strict(TransferMethod::Sendfile);
    drop.drop_source_pages = true;
    TransferStats dropped = copy_file(src, dir.file("dst4"), drop);
    EXPECT_GT(*dropped.resident_before, *dropped.source_pages * 9 / 10);
    EXPECT_LT(*dropped.resident_after, *dropped.source_pages / 100);
}

TEST(Reflink, AskedOnExt4CopiesAndSaysWhy) {
    DiskDir dir;
    const std::string data = testutil::random_bytes(300000, 53);
    testutil::write_file(dir.file("src"), data);
    TransferOptions o = strict(TransferMethod::CopyFileRange);
    o.reflink = true;
    TransferStats s = copy_file(dir.file("src"), dir.file("dst"), o);
    EXPECT_TRUE(testutil::read_file(dir.file("dst")) == data);
    if (s.reflinked) {
        GTEST_SKIP() << "this filesystem reflinks; the copy shared blocks";
    }
    ASSERT_EQ(s.notes.size(), 1u);
    EXPECT_TRUE(testutil::contains(s.notes[0], "reflink")) << s.notes[0];
}

// io-uring and direct to a socket with IORING_OP_SEND_ZC: byte-exact, every
// buffer's notification collected (one per send) before the buffers are
// unmapped, also when a slow receiver makes the sends short or a
// non-blocking socket says EAGAIN; Auto leaves loopback peers to plain writes.
TEST(FileToSocket, IoUringSendZc) {
    if (auto why = transfer_test::io_uring_missing()) GTEST_SKIP() << *why;
    DiskDir dir;
    const std::string data = testutil::random_bytes((5u << 20) + 4097, 21);
    testutil::write_file(dir.file("src"), data);
    for (TransferMethod m :
         transfer_test::runnable({TransferMethod::IoUring, TransferMethod::Direct}, dir.path)) {
        for (bool slow : {false, true}) {
            SCOPED_TRACE(name_of(m) + (slow ? " slow non-blocking" : ""));
            Receiver receiver = Receiver::tcp(dir.file("received"), SIZE_MAX, slow);
            int sock = receiver.connect();
            if (slow) ::fcntl(sock, F_SETFL, O_NONBLOCK);
            File in = File::open(dir.file("src"));
            TransferOptions o = strict(m);
            o.send_zc = pagewire::ZeroCopySend::Always;
            TransferStats s = pagewire::transfer({in.fd(), "src"}, {sock, "127.0.0.1"}, o);
            ::close(sock);
            EXPECT_EQ(receiver.wait(), 0);
            EXPECT_EQ(s.used, m);
            EXPECT_EQ(s.bytes, data.size());
            EXPECT_TRUE(testutil::read_file(dir.file("received")) == data);
            EXPECT_GT(s.zerocopy_completions, 0u) << pagewire::summary(s);
            // Loopback: the kernel copies what it was asked to send in place.
            EXPECT_LE(s.zerocopy_copied, s.zerocopy_completions);
        }
    }
    Receiver receiver = Receiver::tcp(dir.file("received"));
    int sock = receiver.connect();
    File in = File::open(dir.file("src"));
    TransferStats s = pagewire::transfer({in.fd(), "src"}, {sock, "127.0.0.1"},
                                         strict(TransferMethod::IoUring));  // send_zc Auto
    ::close(sock);
    EXPECT_EQ(receiver.wait(), 0);
    EXPECT_EQ(s.bytes, data.size());
    EXPECT_EQ(s.zerocopy_completions, 0u) << "Auto used SEND_ZC towards a loopback peer";
}
