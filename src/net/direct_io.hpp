// pagewire net: the direct path for large files (nginx `aio on; directio
// N;`). The transfer engine's Direct method waits for its destination, so a
// worker does it itself, without ever blocking: O_DIRECT reads submitted to
// the worker's io_uring (completions signalled through an eventfd in the
// worker's epoll set) into page-aligned buffers, each sent with a
// non-blocking send(2) as the socket takes it. Two buffers per response:
// the next chunk is read while the current one is sent. Not thread-safe:
// one ring per worker, one stream per connection.
#pragma once

#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <pagewire/unique_fd.hpp>
#include <vector>

#include "aligned_reads.hpp"
#include "net/protocol.hpp"
#include "sys.hpp"

namespace pagewire::net {

// Chunk of one direct read (the pipeline's minimum for direct reads), and
// chunks per response: the next one is read while the current one is sent.
inline constexpr std::size_t kDirectChunkBytes = detail::kDirectMinChunkBytes;
inline constexpr unsigned kDirectBuffers = 2;

// Makes file.direct Ready (direct_fd, direct_align) or Unsupported (the
// filesystem reports no alignment or refuses O_DIRECT). Returns whether Ready.
bool prepare_direct(FileSource& file) noexcept;

// A worker's io_uring and its pool of aligned buffers.
class DirectRing {
  public:
    DirectRing() = default;
    ~DirectRing();
    DirectRing(const DirectRing&) = delete;
    DirectRing& operator=(const DirectRing&) = delete;

    // Sets the ring up on first use; false (errno set) when io_uring is not available.
    bool ready() noexcept;
    int event_fd() const noexcept { return event_fd_.get(); }
    // Queues and submits the read of slot i of `reads` from `fd`; false
    // (errno set) if it could not be submitted.
    bool submit_read(const detail::AlignedReads& reads, int fd, unsigned i,
                     std::uint64_t tag) noexcept;
    // After the eventfd fired: calls on_completion(tag, res) for every completion.
    template <class F>
    void reap(F&& on_completion) noexcept {
        std::uint64_t count = 0;
        (void)sys::retry_eintr([&] { return ::read(event_fd_.get(), &count, sizeof count); });
        io_uring_cqe* cqe = nullptr;
        while (::io_uring_peek_cqe(&ring_, &cqe) == 0) {
            const std::uint64_t tag = ::io_uring_cqe_get_data64(cqe);
            const int res = cqe->res;
            ::io_uring_cqe_seen(&ring_, cqe);
            --outstanding_;
            on_completion(tag, res);
        }
    }
    // Reads submitted and not yet reaped.
    std::size_t outstanding() const noexcept { return outstanding_; }
    // Blocks until a completion is there (for the worker's exit only).
    void wait() noexcept {
        io_uring_cqe* cqe = nullptr;
        (void)::io_uring_wait_cqe(&ring_, &cqe);
    }
    // A kDirectChunkBytes page-aligned buffer, or nullptr (errno set).
    char* take_buffer() noexcept;
    void give_buffer(char* buffer) noexcept;

  private:
    static constexpr unsigned kRingEntries = 256;
    static constexpr std::size_t kPooledBuffers = 32;  // kept for reuse; the rest are unmapped

    io_uring ring_{};
    int state_ = 0;      // 0 not tried, 1 ready, -errno failed
    UniqueFd event_fd_;  // signalled on completions; in the worker's epoll set
    std::vector<char*> pool_;
    std::size_t outstanding_ = 0;
};

// One file segment [begin, end) on its way: the aligned-read pipeline
// (aligned_reads.hpp) reading ahead into buffers of the ring's pool, handed
// out in file order.
class DirectStream {
  public:
    void start(int fd, std::uint32_t align, std::uint64_t begin, std::uint64_t end) noexcept;
    // Issues reads into the free buffers; `tag` | slot index tags each. False
    // (errno set) when no buffer or no submission was possible.
    bool fill(DirectRing& ring, std::uint64_t tag) noexcept;
    // A read of slot `index` finished with `res` (bytes or -errno). May resubmit the rest.
    void complete(unsigned index, int res, DirectRing& ring, std::uint64_t tag) noexcept;
    // The next chunk to send (Ready, or still Reading), or nullptr when all is sent.
    detail::ReadSlot* front() noexcept { return reads_.head(); }
    // A read failed or the file shrank (errno value), 0 otherwise.
    int error() const noexcept { return error_; }
    // `n` more bytes of front() were sent.
    void sent(std::size_t n) noexcept;
    bool active() const noexcept { return active_; }
    unsigned in_flight() const noexcept { return reads_.reads_in_flight(); }
    // Gives the buffers back; only with nothing in flight.
    void release(DirectRing& ring) noexcept;

  private:
    detail::AlignedReads reads_;
    int fd_ = -1;
    int error_ = 0;
    bool active_ = false;
};

}  // namespace pagewire::net
