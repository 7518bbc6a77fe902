// Method sendfile: sendfile(2) moves file pages to the destination inside the
// kernel — seed 003's zero copy: no user buffer, one system call per chunk
// (with scatter-gather DMA the NIC reads the page cache directly).
#include <poll.h>
#include <unistd.h>

#include "sys.hpp"
#include "transfer_method.hpp"

namespace pagewire::detail {
namespace {

using Side = MethodStatus::Side;

// sendfile(2) moves at most 0x7ffff000 bytes (2 GiB minus a page,
// MAX_RW_COUNT) per call; longer ranges take several calls.
constexpr std::uint64_t kSendfileMaxPerCall = 0x7ffff000;

}  // namespace

MethodStatus run_sendfile(TransferJob& job) noexcept {
    if (job.source_kind != EndpointKind::RegularFile) {
        return MethodStatus::unsupported_here(EINVAL, "sendfile",
                                              "the source is not a regular file");
    }
    if (job.destination_kind == EndpointKind::RegularFile) {
        // sendfile writes at the destination's file position.
        ++job.syscalls;
        if (::lseek(job.destination_fd, static_cast<off_t>(job.destination_offset), SEEK_SET) < 0) {
            return MethodStatus::failed(errno, "lseek", Side::Destination);
        }
    }
    while (!job.finished() && !job.until_end()) {
        std::uint64_t offset = job.source_offset;
        ++job.syscalls;
        ssize_t r = sys::sendfile(job.destination_fd, job.source_fd, &offset,
                                  job.next_chunk(kSendfileMaxPerCall));
        if (r < 0 && errno == EAGAIN) {
            if (job.stop_on_would_block()) return MethodStatus::done();
            ++job.syscalls;
            if (sys::poll_one(job.destination_fd, POLLOUT) < 0) {
                return MethodStatus::failed(errno, "poll", Side::Destination);
            }
            continue;
        }
        // sendfile cannot say which side failed; EINVAL and friends mean
        // "not possible with these descriptors" and are decided by the policy.
        if (r < 0) return MethodStatus::failed(errno, "sendfile", Side::Destination);
        if (r == 0) return source_ended_early();
        job.advance(static_cast<std::uint64_t>(r));
    }
    return MethodStatus::done();
}

}  // namespace pagewire::detail
