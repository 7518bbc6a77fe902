// The transfer engine's inside: the job every method unit works on and the one
// signature they share (nginx's model: one small unit per mechanism, the
// policy elsewhere, in transfer.cpp). Internal, not installed.
#pragma once

#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <pagewire/transfer.hpp>
#include <string>

namespace pagewire::detail {

// What a transfer costs the calling thread from construction to finish():
// wall time, CPU time (CLOCK_THREAD_CPUTIME_ID, precise) and the rusage
// times (scheduler ticks) and context switches, into TransferStats.
class CostMeter {
  public:
    CostMeter() noexcept;
    void finish(TransferStats& stats) const noexcept;

  private:
    std::chrono::steady_clock::time_point start_;
    rusage usage_{};
    double cpu_ = 0;
};

inline constexpr std::uint64_t kProgressChunkBytes = 16 << 20;

// A transfer in progress. Methods read the positions, move bytes, and call
// advance() for bytes that have reached the destination, so that a fallback
// method continues exactly where the previous one stopped.
struct TransferJob {
    int source_fd;
    int destination_fd;
    EndpointKind source_kind;
    EndpointKind destination_kind;
    std::uint64_t source_offset;       // next source byte (file sources)
    std::uint64_t destination_offset;  // next destination byte (regular-file destinations)
    std::uint64_t remaining;           // bytes still to move; kTransferToEnd: until end of stream
    const TransferOptions& options;

    std::uint64_t moved = 0;     // bytes that reached the destination
    std::uint64_t syscalls = 0;  // data-path system calls made
    std::uint64_t zerocopy_completions = 0;
    std::uint64_t zerocopy_copied = 0;
    bool reflinked = false;
    bool would_block = false;  // a unit returned early: EAGAIN with return_on_would_block
    std::string note;  // a method's remark for TransferStats::notes (e.g. why reflink failed)

    bool until_end() const noexcept { return remaining == kTransferToEnd; }
    bool finished() const noexcept { return remaining == 0; }
    // Largest request for one call, at most `limit`; with a progress
    // callback at most kProgressChunkBytes, so that sendfile or splice of a
    // large file to a blocking socket reports as it goes, not once at the end.
    std::size_t next_chunk(std::uint64_t limit) const noexcept {
        if (options.progress && limit > kProgressChunkBytes) limit = kProgressChunkBytes;
        return static_cast<std::size_t>(remaining < limit ? remaining : limit);
    }
    // EAGAIN from the destination: true when the unit should return now
    // (return_on_would_block) rather than wait; records that it did.
    bool stop_on_would_block() noexcept {
        if (!options.return_on_would_block) return false;
        would_block = true;
        return true;
    }
    void advance(std::uint64_t n) noexcept {
        source_offset += n;
        destination_offset += n;
        if (!until_end()) remaining -= n;
        moved += n;
        if (options.progress) {
            options.progress(moved, until_end() ? kTransferToEnd : moved + remaining);
        }
    }
};

// What a method unit reports. Failed carries the errno, the system call and
// which side it concerned; transfer() decides whether the errno means "not
// possible here" (the next method runs) or a real failure (an Error).
struct MethodStatus {
    enum class Code { Done, Failed };
    enum class Side { Source, Destination };
    Code code = Code::Done;
    int error = 0;
    const char* operation = "";  // "sendfile", "write", ...
    Side side = Side::Destination;
    const char* detail = nullptr;  // replaces the errno text when set
    bool unsupported = false;      // the method itself says it cannot run here

    static MethodStatus done() noexcept { return {}; }
    static MethodStatus failed(int err, const char* op, Side side,
                               const char* detail = nullptr) noexcept {
        return {Code::Failed, err, op, side, detail, false};
    }
    // The method cannot run with these endpoints (not an I/O failure).
    static MethodStatus unsupported_here(int err, const char* op, const char* detail) noexcept {
        return {Code::Failed, err, op, Side::Destination, detail, true};
    }
    bool ok() const noexcept { return code == Code::Done; }
};

// The one signature. A unit returns Done when the job is finished (remaining
// is 0, or end of stream for until_end() jobs).
using MethodFn = MethodStatus (*)(TransferJob& job) noexcept;

MethodStatus run_read_write(TransferJob& job) noexcept;       // transfer_read_write.cpp
MethodStatus run_mmap_write(TransferJob& job) noexcept;       // transfer_mmap_write.cpp
MethodStatus run_sendfile(TransferJob& job) noexcept;         // transfer_sendfile.cpp
MethodStatus run_splice(TransferJob& job) noexcept;           // transfer_splice.cpp
MethodStatus run_copy_file_range(TransferJob& job) noexcept;  // transfer_copy_file_range.cpp
MethodStatus run_io_uring(TransferJob& job) noexcept;         // transfer_io_uring.cpp
MethodStatus run_direct(TransferJob& job) noexcept;           // transfer_io_uring.cpp
MethodStatus run_msg_zerocopy(TransferJob& job) noexcept;     // transfer_msg_zerocopy.cpp

// Shared by the units: a source that ended before the requested length.
inline MethodStatus source_ended_early() noexcept {
    return MethodStatus::failed(EIO, "read", MethodStatus::Side::Source,
                                "source ended before the requested length (truncated?)");
}

// Shared by the units that hand a mapping of the source to write(2) or
// send(2): the kernel reports a mapped page past a truncated source's end as
// EFAULT (never SIGBUS), which concerns the source, not the destination.
inline MethodStatus source_truncated() noexcept {
    return MethodStatus::failed(EIO, "read", MethodStatus::Side::Source,
                                "the source was truncated during the transfer");
}

// Writes n bytes from buf to the destination (pwrite for regular files,
// write/send otherwise, waiting on EAGAIN), counting syscalls; does not
// advance the job. For the units that hold bytes in user memory. With
// `written` and return_on_would_block, EAGAIN returns Done with *written < n
// and job.would_block set; *written is n otherwise.
MethodStatus write_out(TransferJob& job, const void* buf, std::size_t n,
                       std::size_t* written = nullptr) noexcept;

}  // namespace pagewire::detail
