// pagewire's file stream (pagewire/file_stream.hpp) between two threads over
// a socket pair: a whole file confirmed, and every refusal carrying the
// receiver's reason back to the sender.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <pagewire/file_stream.hpp>
#include <pagewire/unique_fd.hpp>

#include "test_util.hpp"

namespace {

using pagewire::Error;
using pagewire::File;
using pagewire::StreamReceiver;
using pagewire::TransferOptions;
using pagewire::UniqueFd;

struct Pair {
    UniqueFd sender, receiver;
};

Pair socket_pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) testutil::die("socketpair");
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Runs send_stream of `path` on a thread; the future holds its error line
// ("" when it succeeded).
std::future<std::string> send_async(const std::string& path, int sock) {
    ::signal(SIGPIPE, SIG_IGN);  // as send_stream asks: a receiver that left is EPIPE
    return std::async(std::launch::async, [path, sock] {
        try {
            File f = File::open(path);
            pagewire::send_stream(f, path, f.size(), sock, "peer", TransferOptions{});
            return std::string();
        } catch (const Error& e) {
            return std::string(e.what());
        }
    });
}

TEST(FileStream, WholeFileArrivesAndIsConfirmed) {
    testutil::TempDir dir;
    const std::string data = testutil::random_bytes(3u << 20, 21);
    testutil::write_file(dir.file("src"), data);
    Pair p = socket_pair();
    auto sent = send_async(dir.file("src"), p.sender.get());
    StreamReceiver r(p.receiver.get(), "sender");
    EXPECT_EQ(r.length(), data.size());
    File out = File::create(dir.file("dst"), pagewire::CreateMode::Truncate);
    auto stats = r.receive(out, dir.file("dst"), TransferOptions{});
    r.confirm();
    EXPECT_EQ(sent.get(), "");
    EXPECT_EQ(stats.bytes, data.size());
    EXPECT_TRUE(testutil::read_file(dir.file("dst")) == data);
}

TEST(FileStream, ToAStreamWithProgress) {
    testutil::TempDir dir;
    const std::string data = testutil::random_bytes((5u << 20) + 3, 22);
    testutil::write_file(dir.file("src"), data);
    Pair p = socket_pair();
    auto sent = send_async(dir.file("src"), p.sender.get());
    StreamReceiver r(p.receiver.get(), "sender");
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
    auto drained = std::async(std::launch::async, [&] {
        std::string got;
        char buf[65536];
        ssize_t n;
        while ((n = ::read(read_end.get(), buf, sizeof buf)) > 0)
            got.append(buf, static_cast<std::size_t>(n));
        return got;
    });
    std::uint64_t calls = 0, last = 0;
    auto stats =
        r.receive_to_stream(write_end.get(), "pipe", [&](std::uint64_t done, std::uint64_t total) {
            EXPECT_GT(done, last);
            EXPECT_EQ(total, data.size());
            last = done;
            ++calls;
        });
    r.confirm();
    write_end.reset();
    EXPECT_EQ(sent.get(), "");
    EXPECT_TRUE(drained.get() == data);
    EXPECT_EQ(stats.bytes, data.size());
    EXPECT_EQ(last, data.size());
    EXPECT_GE(calls, 5u);  // 1 MiB at a time
}

// The receiver's own failure (here: a destination it cannot write) reaches
// the sender as the receiver's line, with its errno.
TEST(FileStream, ReceiverFailureReachesTheSender) {
    testutil::TempDir dir;
    testutil::write_file(dir.file("src"), testutil::random_bytes(2u << 20, 23));
    testutil::write_file(dir.file("dst"), "");
    Pair p = socket_pair();
    auto sent = send_async(dir.file("src"), p.sender.get());
    StreamReceiver r(p.receiver.get(), "sender");
    File read_only = File::open(dir.file("dst"));
    try {
        (void)r.receive(read_only, dir.file("dst"), TransferOptions{});
        ADD_FAILURE() << "a read-only destination was written";
    } catch (const Error& e) {
        EXPECT_EQ(e.error_number(), EBADF) << e.what();
    }
    p.receiver.reset();  // the receiver leaves, as `pagewire recv` exits
    const std::string error = sent.get();
    EXPECT_EQ(error.rfind("send peer: the receiver failed: ", 0), 0u) << error;
    EXPECT_TRUE(testutil::contains(error, "Bad file descriptor")) << error;
}

// A refusal after the payload arrived (the file could not be put in place).
TEST(FileStream, RefusalAfterReceiveReachesTheSender) {
    testutil::TempDir dir;
    testutil::write_file(dir.file("src"), "four");
    Pair p = socket_pair();
    auto sent = send_async(dir.file("src"), p.sender.get());
    StreamReceiver r(p.receiver.get(), "sender");
    File out = File::create(dir.file("dst"), pagewire::CreateMode::Truncate);
    (void)r.receive(out, dir.file("dst"), TransferOptions{});
    r.refuse(Error("rename", dir.file("final"), ENOSPC));
    r.confirm();  // after a refusal: no effect, the sender keeps its answer
    const std::string error = sent.get();
    EXPECT_TRUE(testutil::contains(error, "the receiver failed: rename ")) << error;
    EXPECT_TRUE(testutil::contains(error, "No space left on device")) << error;
}

TEST(FileStream, NotAStreamIsAProtocolError) {
    Pair p = socket_pair();
    const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(::write(p.sender.get(), junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
    p.sender.reset();
    try {
        StreamReceiver r(p.receiver.get(), "sender");
        ADD_FAILURE() << "junk accepted as a stream";
    } catch (const Error& e) {
        EXPECT_EQ(e.error_number(), EPROTO) << e.what();
    }
}

}  // namespace
