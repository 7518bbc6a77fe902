// pagewire: the one aligned-read pipeline under both direct paths —
// transfer()'s io-uring and direct methods (transfer_io_uring.cpp) and the
// network server's large-file path (net/direct_io.cpp). It reads the byte
// range [begin, end) of a file ahead in chunks, each read starting on the
// alignment O_DIRECT needs (statx STATX_DIOALIGN; 1 for buffered reads),
// and hands the chunks out in file order to whatever writes them (a
// write(2) on the same ring, a non-blocking send on a socket).
//
// It is a step API, not a loop: the driver asks issue() for the next slot
// to read into and submits that read itself (prep_read() fills the SQE),
// reports each completion with complete_read(), writes head()'s bytes
// however it likes and calls wrote(). The driver owns the ring and the
// buffers (slot(i).buf, set before the slot's read is submitted).
// Not thread-safe: one pipeline per transfer or per connection.
#pragma once

#include <liburing.h>

#include <array>
#include <cstddef>
#include <cstdint>

namespace pagewire::detail {

// Chunks of the range in flight at most (reads ahead of the head chunk).
inline constexpr unsigned kMaxReadDepth = 4;
// Direct reads smaller than this waste the device's time on per-request cost.
inline constexpr std::size_t kDirectMinChunkBytes = std::size_t{1} << 20;  // 1 MiB

struct ReadSlot {
    // Free: not in use. Reading: a read is in flight (the driver may also
    // have a write linked to it in flight). Ready: read, its bytes to be
    // written. Writing: a write of it is in flight. Sent: written by
    // SEND_ZC, the kernel's notifications that the buffer is free still to
    // come.
    enum class State { Free, Reading, Ready, Writing, Sent };
    State state = State::Free;
    char* buf = nullptr;            // the driver's; at least the pipeline's chunk bytes
    std::uint64_t file_offset = 0;  // where the read starts (aligned)
    std::size_t want = 0;           // bytes the read asks for (aligned)
    std::size_t got = 0;            // bytes read so far, of want
    std::size_t skip = 0;           // leading bytes before the range's first byte
    std::size_t length = 0;         // bytes to write: buf[skip, skip + length)
    std::size_t written = 0;        // of length
    unsigned notifications = 0;     // SEND_ZC notifications still to come (transfer)
    bool linked_write = false;      // a write was submitted linked to the read (transfer)

    const char* next_bytes() const noexcept { return buf + skip + written; }
    std::size_t bytes_left() const noexcept { return length - written; }
};

class AlignedReads {
  public:
    enum class ReadOutcome {
        Ready,  // the slot holds every byte of its chunk
        More,   // a partial read, to be continued: submit prep_read() again
        Ended,  // the file ended before the range did (it shrank), or a
                // partial direct read stopped off the alignment
        Failed  // the read failed: -res is the errno
    };

    // A new range; every slot Free. `chunk` is a multiple of `align` (the
    // buffers' size), `depth` at most kMaxReadDepth.
    void start(std::uint64_t begin, std::uint64_t end, std::uint32_t align, std::size_t chunk,
               unsigned depth) noexcept;
    // The slot whose read goes next, set up and marked Reading, or -1 when
    // the range is all issued, `depth` chunks are ahead of the head, or the
    // next slot is still in use (a SEND_ZC buffer not yet given back).
    int issue() noexcept;
    // Whether issue()'s next slot would be the head: the chunk to be
    // written next, whose first write may be linked to its read.
    bool next_is_head() const noexcept { return read_seq_ == write_seq_; }
    // Fills `sqe` with the read of slot i's remaining bytes from `fd`
    // (read_fixed from registered buffer i when `fixed`).
    void prep_read(io_uring_sqe* sqe, int fd, unsigned i, bool fixed) const noexcept;
    // A read of slot i returned `res` (bytes or -errno). After Ended or
    // Failed the range is broken: the slot is no longer Reading, and issue()
    // and head() give nothing more (reads still in flight complete as usual).
    ReadOutcome complete_read(unsigned i, int res) noexcept;

    // The chunk next in file order (Reading, Ready or Writing), or nullptr
    // when every issued chunk has been written.
    ReadSlot* head() noexcept;
    unsigned head_index() const noexcept { return static_cast<unsigned>(write_seq_ % depth_); }
    // `n` more bytes of head() were written; when that completes it, the
    // slot is Free (Sent while SEND_ZC notifications are due) and the next
    // chunk becomes the head. Returns whether the head chunk was completed.
    bool wrote(std::size_t n) noexcept;

    // Every byte of the range issued and written.
    bool finished() const noexcept {
        return !broken_ && write_seq_ == read_seq_ && next_read_ >= read_end_;
    }
    bool broken() const noexcept { return broken_; }
    unsigned reads_in_flight() const noexcept;
    ReadSlot& slot(unsigned i) noexcept { return slots_[i]; }
    unsigned depth() const noexcept { return depth_; }

  private:
    std::array<ReadSlot, kMaxReadDepth> slots_{};
    std::uint64_t begin_ = 0;
    std::uint64_t end_ = 0;
    std::uint32_t align_ = 1;
    std::size_t chunk_ = 0;
    unsigned depth_ = 1;
    std::uint64_t next_read_ = 0;  // aligned offset of the next chunk to issue
    std::uint64_t read_end_ = 0;   // end_ rounded up to the alignment
    std::uint64_t read_seq_ = 0;   // chunks issued
    std::uint64_t write_seq_ = 0;  // chunks fully written; slot of chunk k is k % depth_
    bool broken_ = false;          // a read ended early or failed
};

}  // namespace pagewire::detail
