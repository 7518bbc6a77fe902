// Reading a mapping of a file another process can change (issue 12): the
// guarded checksum and write_mapped turn a truncation into an error naming the
// file, never a SIGBUS death or an error naming the wrong thing.
#include <fcntl.h>
#include <sys/wait.h>

#include <atomic>
#include <cstring>
#include <pagewire/checksum.hpp>
#include <pagewire/error.hpp>
#include <pagewire/mapping.hpp>
#include <string>
#include <thread>

#include "test_util.hpp"

using pagewire::Checksum;
using pagewire::Error;
using pagewire::File;
using pagewire::Mapping;
using testutil::TempDir;

namespace {

const std::size_t kPage = testutil::page_size();

std::uint64_t checksum_of(std::string_view bytes) {
    Checksum sum;
    sum.update(bytes.data(), bytes.size());
    return sum.value();
}

// A 3-page file mapped read-only, then truncated to one page.
struct TruncatedView {
    TempDir dir;
    std::string path = dir.file("f");
    std::string data = testutil::random_bytes(3 * kPage, 5);
    Mapping view;
    TruncatedView() {
        testutil::write_file(path, data);
        view = Mapping::open(path);
        if (::truncate(path.c_str(), static_cast<off_t>(kPage)) != 0) testutil::die("truncate");
    }
};

}  // namespace

TEST(Checksum, PiecesInMultiplesOfEightEqualTheWhole) {
    const std::string data = testutil::random_bytes(1000, 3);
    Checksum pieces;
    pieces.update(data.data(), 64);
    pieces.update(data.data() + 64, 800);
    pieces.update(data.data() + 864, 136);
    EXPECT_EQ(pieces.value(), checksum_of(data));
    std::string swapped = data;
    std::swap_ranges(swapped.begin(), swapped.begin() + 8, swapped.begin() + 8);
    EXPECT_NE(checksum_of(swapped), checksum_of(data));  // order-sensitive
}

TEST(Checksum, GuardedUpdateOfATruncatedMappingIsEfault) {
    TruncatedView t;
    Checksum sum;
    pagewire::AccessResult r = sum.update_guarded(t.view.data(), t.view.size());
    EXPECT_EQ(r.error, EFAULT);
    EXPECT_EQ(r.fault_offset, kPage);  // the first byte past the new end
    Checksum inside;
    EXPECT_TRUE(inside.update_guarded(t.view.data(), kPage).ok());
    EXPECT_EQ(inside.value(), checksum_of(std::string_view(t.data).substr(0, kPage)));
}

// Larger than one 64 MiB window, with data at both ends and a hole between.
TEST(ChecksumFile, MatchesTheBytesAcrossWindowsAndFromAnOffset) {
    TempDir dir;
    const std::string path = dir.file("f");
    const std::size_t size = (65u << 20) + 123;
    const std::string head = testutil::random_bytes(kPage, 7);
    const std::string tail = testutil::random_bytes(5000, 8);
    {
        File f = File::create(path);
        f.resize(size);
        f.write_at(0, std::as_bytes(std::span(head)));
        f.write_at(size - tail.size(), std::as_bytes(std::span(tail)));
    }
    std::string all(size, '\0');
    all.replace(0, head.size(), head);
    all.replace(size - tail.size(), tail.size(), tail);
    File f = File::open(path);
    EXPECT_EQ(pagewire::checksum_file(f, 0, size), checksum_of(all));
    EXPECT_EQ(pagewire::checksum_file(f, 8, size - 8),
              checksum_of(std::string_view(all).substr(8)));
    EXPECT_EQ(pagewire::checksum_file(f, 0, 0), Checksum().value());
}

TEST(ChecksumFile, AFileShorterThanAskedIsOneErrorNamingIt) {
    TempDir dir;
    const std::string path = dir.file("short");
    testutil::write_file(path, testutil::random_bytes(3 * kPage, 9));
    File f = File::open(path);
    for (const auto& range :
         {std::pair<std::uint64_t, std::uint64_t>{0, 3 * kPage + 1}, {4 * kPage, 10}}) {
        const std::uint64_t offset = range.first, length = range.second;  // lambdas capture these
        auto e =
            testutil::catch_as<Error>([&] { (void)pagewire::checksum_file(f, offset, length); });
        ASSERT_TRUE(e.has_value()) << offset << "+" << length;
        EXPECT_EQ(e->error_number(), EIO);
        EXPECT_EQ(e->path(), path);
        EXPECT_TRUE(testutil::contains(e->what(), "truncated")) << e->what();
    }
}

// Another process truncates and regrows the file in a loop while it is
// checksummed: every result is a value or the one error, never SIGBUS.
TEST(ChecksumFile, AnotherProcessTruncatingMeanwhile) {
    TempDir dir;
    const std::string path = dir.file("f");
    const std::size_t size = 32u << 20;
    File f = File::create(path);
    f.resize(size);
    std::fflush(nullptr);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        const int fd = ::open(path.c_str(), O_WRONLY);
        for (int i = 0; i < 100000; ++i) {  // until killed; bounded in case the parent dies
            if (::ftruncate(fd, 0) != 0 || ::usleep(300) != 0 ||
                ::ftruncate(fd, static_cast<off_t>(size)) != 0 || ::usleep(300) != 0)
                ::_exit(1);
        }
        ::_exit(0);
    }
    int values = 0, errors = 0;
    for (int i = 0; i < 30; ++i) {
        try {
            (void)pagewire::checksum_file(f, 0, size);
            ++values;
        } catch (const Error& e) {
            ++errors;
            EXPECT_TRUE(testutil::contains(e.what(), "truncated")) << e.what();
            EXPECT_EQ(e.path(), path);
        }
    }
    ::kill(child, SIGKILL);
    testutil::wait_for(child);
    EXPECT_EQ(values + errors, 30);
    EXPECT_GT(errors, 0) << "the truncation never hit a checksum: the test proved nothing";
}

TEST(WriteMapped, ATruncatedSourceIsNamedNotTheDestination) {
    TruncatedView t;
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    // 3 pages fit in the pipe: no reader needed.
    auto e = testutil::catch_as<Error>([&] {
        pagewire::write_mapped(pipe_fds[1], t.view.data(), t.view.size(), t.path, "the pipe");
    });
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->operation(), "read");
    EXPECT_EQ(e->path(), t.path);
    EXPECT_TRUE(testutil::contains(e->what(), "truncated while it was being read")) << e->what();
    // The backed page went through before the fault.
    std::string got(kPage, '\0');
    EXPECT_EQ(::read(pipe_fds[0], got.data(), got.size()), static_cast<ssize_t>(kPage));
    EXPECT_EQ(got, t.data.substr(0, kPage));
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
}

TEST(WriteMapped, DestinationErrorsNameTheDestination) {
    TempDir dir;
    const std::string path = dir.file("f");
    testutil::write_file(path, "some bytes");
    Mapping view = Mapping::open(path);
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    ::close(pipe_fds[0]);
    auto previous = ::signal(SIGPIPE, SIG_IGN);
    auto e = testutil::catch_as<Error>(
        [&] { pagewire::write_mapped(pipe_fds[1], view.data(), view.size(), path, "the pipe"); });
    ::signal(SIGPIPE, previous);
    ::close(pipe_fds[1]);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->operation(), "write");
    EXPECT_EQ(e->path(), "the pipe");
    EXPECT_EQ(e->error_number(), EPIPE);
}
