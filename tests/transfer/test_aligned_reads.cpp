// The aligned-read pipeline under transfer()'s io-uring/direct methods and
// the server's direct path (src/aligned_reads.hpp): its chunk arithmetic,
// and a real io_uring driving it over a real file, buffered and O_DIRECT.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <pagewire/unique_fd.hpp>
#include <string>
#include <vector>

#include "aligned_reads.hpp"
#include "sys.hpp"
#include "test_util.hpp"

namespace {

using pagewire::detail::AlignedReads;
using pagewire::detail::ReadSlot;

TEST(AlignedReads, ChunksStartAlignedAndSkipToTheRange) {
    AlignedReads reads;
    reads.start(1000, 10000, 4096, 4096, 2);
    EXPECT_TRUE(reads.next_is_head());
    const int a = reads.issue();
    ASSERT_EQ(a, 0);
    const ReadSlot& s0 = reads.slot(0);
    EXPECT_EQ(s0.file_offset, 0u);
    EXPECT_EQ(s0.want, 4096u);
    EXPECT_EQ(s0.skip, 1000u);
    EXPECT_EQ(s0.length, 3096u);
    EXPECT_FALSE(reads.next_is_head());
    ASSERT_EQ(reads.issue(), 1);
    EXPECT_EQ(reads.slot(1).file_offset, 4096u);
    EXPECT_EQ(reads.slot(1).skip, 0u);
    EXPECT_EQ(reads.slot(1).length, 4096u);
    // Depth 2: a third chunk waits until the head is written.
    EXPECT_EQ(reads.issue(), -1);
    EXPECT_EQ(reads.reads_in_flight(), 2u);

    EXPECT_EQ(reads.complete_read(0, 4096), AlignedReads::ReadOutcome::Ready);
    EXPECT_EQ(reads.head(), &reads.slot(0));
    EXPECT_FALSE(reads.wrote(3000));
    EXPECT_EQ(reads.slot(0).bytes_left(), 96u);
    EXPECT_TRUE(reads.wrote(96));
    EXPECT_EQ(reads.slot(0).state, ReadSlot::State::Free);
    ASSERT_EQ(reads.issue(), 0);
    // The last chunk ends at the range's end (10000), its read at the
    // alignment (12288).
    EXPECT_EQ(reads.slot(0).file_offset, 8192u);
    EXPECT_EQ(reads.slot(0).want, 4096u);
    EXPECT_EQ(reads.slot(0).length, 10000u - 8192u);
    EXPECT_EQ(reads.issue(), -1);
    EXPECT_FALSE(reads.finished());
}

TEST(AlignedReads, ShortReadsContinueOnlyAligned) {
    AlignedReads reads;
    reads.start(0, 8192, 512, 8192, 1);
    ASSERT_EQ(reads.issue(), 0);
    EXPECT_EQ(reads.complete_read(0, 1024), AlignedReads::ReadOutcome::More);
    EXPECT_EQ(reads.slot(0).got, 1024u);
    EXPECT_EQ(reads.complete_read(0, 100), AlignedReads::ReadOutcome::Ended);  // off the alignment
    EXPECT_NE(reads.slot(0).state, ReadSlot::State::Reading);
    EXPECT_TRUE(reads.broken());
    EXPECT_EQ(reads.head(), nullptr);  // no partial chunk is ever handed out
    EXPECT_EQ(reads.issue(), -1);
    EXPECT_FALSE(reads.finished());

    reads.start(0, 8192, 1, 8192, 1);
    ASSERT_EQ(reads.issue(), 0);
    EXPECT_EQ(reads.complete_read(0, 100), AlignedReads::ReadOutcome::More);  // buffered: any size
    EXPECT_EQ(reads.complete_read(0, 0), AlignedReads::ReadOutcome::Ended);   // end of file
    reads.start(0, 8192, 1, 8192, 1);
    ASSERT_EQ(reads.issue(), 0);
    EXPECT_EQ(reads.complete_read(0, -EIO), AlignedReads::ReadOutcome::Failed);
    EXPECT_EQ(reads.reads_in_flight(), 0u);
}

TEST(AlignedReads, SendZcBuffersAreNotReusedBeforeTheirNotification) {
    AlignedReads reads;
    reads.start(0, 3 * 4096, 1, 4096, 1);
    ASSERT_EQ(reads.issue(), 0);
    ASSERT_EQ(reads.complete_read(0, 4096), AlignedReads::ReadOutcome::Ready);
    reads.slot(0).notifications = 1;
    EXPECT_TRUE(reads.wrote(4096));
    EXPECT_EQ(reads.slot(0).state, ReadSlot::State::Sent);
    EXPECT_EQ(reads.issue(), -1);  // the buffer is still the kernel's
    reads.slot(0).notifications = 0;
    reads.slot(0).state = ReadSlot::State::Free;
    EXPECT_EQ(reads.issue(), 0);
}

// Reads [begin, end) of `fd` through the pipeline and a real ring, the way
// both drivers do (reads ahead, hands out in order), into a string.
std::string read_range(int fd, std::uint32_t align, std::uint64_t begin, std::uint64_t end,
                       std::size_t chunk, unsigned depth, bool* ended) {
    io_uring ring{};
    EXPECT_EQ(::io_uring_queue_init(8, &ring, 0), 0);
    std::vector<void*> buffers;
    AlignedReads reads;
    reads.start(begin, end, align, chunk, depth);
    for (unsigned i = 0; i < depth; ++i) {
        void* p =
            ::mmap(nullptr, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        EXPECT_NE(p, MAP_FAILED);
        buffers.push_back(p);
        reads.slot(i).buf = static_cast<char*>(p);
    }
    std::string out;
    *ended = false;
    unsigned inflight = 0;
    for (;;) {
        while (const ReadSlot* head = reads.head()) {
            if (head->state != ReadSlot::State::Ready) break;
            out.append(head->next_bytes(), head->bytes_left());
            reads.wrote(head->bytes_left());
        }
        for (int i = reads.issue(); i >= 0; i = reads.issue()) {
            io_uring_sqe* sqe = ::io_uring_get_sqe(&ring);
            reads.prep_read(sqe, fd, static_cast<unsigned>(i), false);
            ::io_uring_sqe_set_data64(sqe, static_cast<unsigned>(i));
            ++inflight;
        }
        if (reads.finished() || *ended || inflight == 0) break;
        io_uring_cqe* cqe = nullptr;
        EXPECT_EQ(::io_uring_submit_and_wait(&ring, 1) >= 0, true);
        while (::io_uring_peek_cqe(&ring, &cqe) == 0) {
            const auto i = static_cast<unsigned>(::io_uring_cqe_get_data64(cqe));
            const int res = cqe->res;
            ::io_uring_cqe_seen(&ring, cqe);
            --inflight;
            switch (reads.complete_read(i, res)) {
                case AlignedReads::ReadOutcome::Ready:
                    break;
                case AlignedReads::ReadOutcome::More: {
                    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring);
                    reads.prep_read(sqe, fd, i, false);
                    ::io_uring_sqe_set_data64(sqe, i);
                    ++inflight;
                    break;
                }
                case AlignedReads::ReadOutcome::Ended:
                case AlignedReads::ReadOutcome::Failed:
                    *ended = true;
                    break;
            }
        }
    }
    while (inflight > 0) {
        io_uring_cqe* cqe = nullptr;
        if (::io_uring_wait_cqe(&ring, &cqe) != 0) break;
        ::io_uring_cqe_seen(&ring, cqe);
        --inflight;
    }
    for (void* p : buffers) ::munmap(p, chunk);
    ::io_uring_queue_exit(&ring);
    return out;
}

class AlignedReadsFile : public ::testing::Test {
  protected:
    void SetUp() override {
        io_uring probe{};
        if (::io_uring_queue_init(2, &probe, 0) != 0)
            GTEST_SKIP() << "io_uring is not available here (io_uring_setup refused)";
        ::io_uring_queue_exit(&probe);
        path_ = dir_.path() + "/data";
        content_.resize(3 * 1024 * 1024 + 1234);
        for (std::size_t i = 0; i < content_.size(); ++i)
            content_[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
        testutil::write_file(path_, content_);
    }
    testutil::TempDir dir_;
    std::string path_;
    std::string content_;
};

TEST_F(AlignedReadsFile, BufferedRangesComeBackInOrder) {
    pagewire::UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    bool ended = false;
    for (auto [begin, end] : {std::pair<std::uint64_t, std::uint64_t>{0, content_.size()},
                              {77, 4096 * 3 + 5},
                              {1'000'001, content_.size()}}) {
        const std::string got = read_range(fd.get(), 1, begin, end, 64 * 1024, 4, &ended);
        EXPECT_FALSE(ended);
        EXPECT_EQ(got.size(), end - begin) << begin << ".." << end;
        EXPECT_TRUE(got == content_.substr(begin, end - begin)) << begin << ".." << end;
    }
}

TEST_F(AlignedReadsFile, DirectRangesSkipTheAlignmentAndStopAtTheEnd) {
    int raw = -1;
    std::uint32_t align = 0;
    pagewire::UniqueFd buffered(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(buffered);
    if (pagewire::sys::open_direct(buffered.get(), 0, &raw, &align) !=
        pagewire::sys::DirectOpen::Ready) {
        GTEST_SKIP() << "this filesystem does not do O_DIRECT (statx DIOALIGN or open refused)";
    }
    pagewire::UniqueFd direct(raw);
    const std::size_t chunk = pagewire::detail::kDirectMinChunkBytes;
    bool ended = false;
    // Unaligned at both ends, the last chunk past the end of the file.
    const std::string got =
        read_range(direct.get(), align, 4097, content_.size() - 3, chunk, 2, &ended);
    EXPECT_FALSE(ended);
    EXPECT_EQ(got.size(), content_.size() - 3 - 4097);
    EXPECT_TRUE(got == content_.substr(4097, content_.size() - 3 - 4097));
    // The file is shorter than the range asked for: Ended, never made-up bytes.
    const std::string cut =
        read_range(direct.get(), align, 0, content_.size() + 8192, chunk, 2, &ended);
    EXPECT_TRUE(ended);
    EXPECT_LE(cut.size(), content_.size());
    EXPECT_TRUE(cut == content_.substr(0, cut.size()));
}

}  // namespace
