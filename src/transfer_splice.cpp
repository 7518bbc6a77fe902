// Method splice: splice(2) moves page references from the source into a pipe
// and from the pipe to the destination, in the kernel. When either end is a
// pipe already, one splice(2) per chunk does it; otherwise a private pipe,
// sized up with F_SETPIPE_SZ, sits in between. Also the receiving side of a
// socket: socket -> pipe -> file.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <pagewire/unique_fd.hpp>
#include <vector>

#include "sys.hpp"
#include "transfer_method.hpp"

namespace pagewire::detail {
namespace {

using Side = MethodStatus::Side;

// Requests per call when one end is a pipe (the pipe's capacity bounds it anyway).
constexpr std::uint64_t kSpliceMaxPerCall = 1ULL << 30;
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_MORE;

bool is_pipe(EndpointKind kind) noexcept {
    return kind == EndpointKind::Pipe;
}

// One splice from `in` to `out`, waiting (poll) while a non-blocking end says
// EAGAIN. may_return: the caller can stop here (return_on_would_block); then
// -1 with errno EAGAIN and job.would_block set.
ssize_t splice_waiting(TransferJob& job, int in, std::uint64_t* in_off, int out,
                       std::uint64_t* out_off, std::size_t n, Side* failed_side,
                       bool may_return = false) noexcept {
    for (;;) {
        ++job.syscalls;
        ssize_t r = sys::splice(in, in_off, out, out_off, n, kSpliceFlags);
        if (r >= 0 || errno != EAGAIN) {
            *failed_side = in == job.source_fd ? Side::Source : Side::Destination;
            return r;
        }
        if (may_return && job.stop_on_would_block()) return -1;
        // Which end would block is not said; wait for both to be ready.
        ++job.syscalls;
        if (in == job.source_fd && sys::poll_one(in, POLLIN, 100) < 0) return -1;
        if (out == job.destination_fd && sys::poll_one(out, POLLOUT, 100) < 0) return -1;
    }
}

// The two descriptors of a pipe, closed on scope exit.
struct Pipe {
    UniqueFd read_end;
    UniqueFd write_end;
    // pipe2(O_CLOEXEC); -1 and errno on failure.
    int open() noexcept {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return -1;
        read_end.reset(fds[0]);
        write_end.reset(fds[1]);
        return 0;
    }
};

// Bytes spliced into our pipe that the destination refused: read them back
// and write them the ordinary way, so a fallback continues at the right byte.
MethodStatus flush_pipe(TransferJob& job, int pipe_read, std::size_t pending) noexcept {
    std::vector<char> buf(pending);
    std::size_t got = 0;
    while (got < pending) {
        ++job.syscalls;
        ssize_t r =
            sys::retry_eintr([&] { return ::read(pipe_read, buf.data() + got, pending - got); });
        if (r <= 0) return MethodStatus::failed(r < 0 ? errno : EIO, "read", Side::Source);
        got += static_cast<std::size_t>(r);
    }
    MethodStatus s = write_out(job, buf.data(), pending);
    if (s.ok()) job.advance(pending);
    return s;
}

MethodStatus splice_direct(TransferJob& job) noexcept {
    const bool file_source = job.source_kind == EndpointKind::RegularFile;
    const bool file_destination = job.destination_kind == EndpointKind::RegularFile;
    while (!job.finished()) {
        std::uint64_t in_off = job.source_offset;
        std::uint64_t out_off = job.destination_offset;
        Side side{};
        ssize_t r = splice_waiting(job, job.source_fd, file_source ? &in_off : nullptr,
                                   job.destination_fd, file_destination ? &out_off : nullptr,
                                   job.next_chunk(kSpliceMaxPerCall), &side, true);
        if (r < 0 && job.would_block) return MethodStatus::done();
        if (r < 0) return MethodStatus::failed(errno, "splice", side);
        if (r == 0) return job.until_end() ? MethodStatus::done() : source_ended_early();
        job.advance(static_cast<std::uint64_t>(r));
    }
    return MethodStatus::done();
}

}  // namespace

MethodStatus run_splice(TransferJob& job) noexcept {
    if (is_pipe(job.source_kind) || is_pipe(job.destination_kind)) return splice_direct(job);

    Pipe pipe;
    ++job.syscalls;
    if (pipe.open() != 0) return MethodStatus::failed(errno, "pipe", Side::Source);
    // A bigger pipe means fewer round trips; the kernel caps it at
    // /proc/sys/fs/pipe-max-size for unprivileged users, so a refusal only
    // leaves the default 64 KiB.
    ++job.syscalls;
    int capacity =
        ::fcntl(pipe.write_end.get(), F_SETPIPE_SZ, static_cast<int>(job.options.buffer_bytes));
    if (capacity < 0) {
        ++job.syscalls;
        capacity = ::fcntl(pipe.write_end.get(), F_GETPIPE_SZ);
        if (capacity <= 0) return MethodStatus::failed(errno, "fcntl", Side::Source);
    }
    const bool file_source = job.source_kind == EndpointKind::RegularFile;
    const bool file_destination = job.destination_kind == EndpointKind::RegularFile;
    while (!job.finished()) {
        std::uint64_t in_off = job.source_offset;
        Side side{};
        ssize_t in = splice_waiting(job, job.source_fd, file_source ? &in_off : nullptr,
                                    pipe.write_end.get(), nullptr,
                                    job.next_chunk(static_cast<std::uint64_t>(capacity)), &side);
        if (in < 0) return MethodStatus::failed(errno, "splice", Side::Source);
        if (in == 0) return job.until_end() ? MethodStatus::done() : source_ended_early();
        std::size_t pending = static_cast<std::size_t>(in);
        while (pending > 0) {
            std::uint64_t out_off = job.destination_offset;
            ssize_t out = splice_waiting(job, pipe.read_end.get(), nullptr, job.destination_fd,
                                         file_destination ? &out_off : nullptr, pending, &side);
            if (out < 0) {
                const int err = errno;
                // EINVAL and friends: the destination takes no splice; hand
                // over the bytes already in the pipe before falling back.
                if (err == EINVAL || err == EOPNOTSUPP) {
                    MethodStatus s = flush_pipe(job, pipe.read_end.get(), pending);
                    if (!s.ok()) return s;
                }
                return MethodStatus::failed(err, "splice", Side::Destination);
            }
            pending -= static_cast<std::size_t>(out);
            job.advance(static_cast<std::uint64_t>(out));
        }
    }
    return MethodStatus::done();
}

}  // namespace pagewire::detail
