// Method copy-file-range: copy_file_range(2), file to file, in the kernel
// (filesystems may share blocks or copy server-side). With options.reflink,
// FICLONE / FICLONERANGE first: the destination shares the source's blocks
// and nothing is copied at all (btrfs, XFS with reflink; ext4 says no).
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cstring>

#include "sys.hpp"
#include "transfer_method.hpp"

namespace pagewire::detail {
namespace {

using Side = MethodStatus::Side;

// Bytes asked for per call: the kernel caps a call at MAX_RW_COUNT anyway;
// smaller calls let progress be reported for large files.
constexpr std::uint64_t kCopyFileRangeMaxPerCall = 256ULL << 20;  // 256 MiB

// Clones the job's whole range at once, or reports why not (errno).
int try_reflink(TransferJob& job) noexcept {
    struct stat st {};
    if (::fstat(job.source_fd, &st) != 0) return errno;
    const auto size = static_cast<std::uint64_t>(st.st_size);
    ++job.syscalls;
    int r;
    if (job.source_offset == 0 && job.destination_offset == 0 && job.remaining == size) {
        r = ::ioctl(job.destination_fd, FICLONE, job.source_fd);
    } else {
        // FICLONERANGE: length 0 means "to end of source"; a range ending at
        // end of file may have an unaligned length.
        file_clone_range range{};
        range.src_fd = job.source_fd;
        range.src_offset = job.source_offset;
        range.src_length = job.source_offset + job.remaining == size ? 0 : job.remaining;
        range.dest_offset = job.destination_offset;
        r = ::ioctl(job.destination_fd, FICLONERANGE, &range);
    }
    return r == 0 ? 0 : errno;
}

}  // namespace

MethodStatus run_copy_file_range(TransferJob& job) noexcept {
    if (job.source_kind != EndpointKind::RegularFile ||
        job.destination_kind != EndpointKind::RegularFile) {
        return MethodStatus::unsupported_here(EINVAL, "copy_file_range",
                                              "copy_file_range needs a file on both sides");
    }
    if (job.options.reflink && !job.finished() && !job.until_end()) {
        const int err = try_reflink(job);
        if (err == 0) {
            job.reflinked = true;
            job.advance(job.remaining);
            return MethodStatus::done();
        }
        job.note = std::string("reflink (FICLONE): ") + std::strerror(err) + "; copied instead";
    }
    while (!job.finished() && !job.until_end()) {
        std::uint64_t in = job.source_offset;
        std::uint64_t out = job.destination_offset;
        ++job.syscalls;
        ssize_t r = sys::copy_file_range(job.source_fd, &in, job.destination_fd, &out,
                                         job.next_chunk(kCopyFileRangeMaxPerCall));
        if (r < 0) return MethodStatus::failed(errno, "copy_file_range", Side::Destination);
        if (r == 0) return source_ended_early();
        job.advance(static_cast<std::uint64_t>(r));
    }
    return MethodStatus::done();
}

}  // namespace pagewire::detail
