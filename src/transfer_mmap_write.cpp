// Method mmap-write: map the source, write(2) straight from the mapping —
// seed 003's "mmap + write": the read copy is gone, the copy into the
// destination stays (one CPU copy, still two system calls per window).
#include <sys/mman.h>

#include "sys.hpp"
#include "transfer_method.hpp"

namespace pagewire::detail {
namespace {

using Side = MethodStatus::Side;

// Bytes mapped at a time: large enough that map/unmap cost is noise, small
// enough that a huge file never needs a huge piece of address space at once.
constexpr std::uint64_t kMmapWriteWindowBytes = 64ULL << 20;  // 64 MiB

}  // namespace

MethodStatus run_mmap_write(TransferJob& job) noexcept {
    if (job.source_kind != EndpointKind::RegularFile) {
        return MethodStatus::unsupported_here(ESPIPE, "mmap", "the source is not a regular file");
    }
    const std::uint64_t page = sys::page_size();
    while (!job.finished()) {
        if (job.until_end()) return MethodStatus::done();  // file sources always have a length
        const std::uint64_t start = sys::round_down(job.source_offset, page);
        const std::uint64_t skip = job.source_offset - start;
        const std::size_t n = job.next_chunk(kMmapWriteWindowBytes);
        ++job.syscalls;
        void* p = ::mmap(nullptr, skip + n, PROT_READ, MAP_SHARED, job.source_fd,
                         static_cast<off_t>(start));
        if (p == MAP_FAILED) return MethodStatus::failed(errno, "mmap", Side::Source);
        ++job.syscalls;
        ::madvise(p, skip + n, MADV_SEQUENTIAL);
        std::size_t written = 0;
        MethodStatus s = write_out(job, static_cast<const char*>(p) + skip, n, &written);
        ++job.syscalls;
        ::munmap(p, skip + n);
        if (!s.ok()) {
            if (s.error == EFAULT) return source_truncated();
            return s;
        }
        job.advance(written);
        if (job.would_block) return MethodStatus::done();
    }
    return MethodStatus::done();
}

}  // namespace pagewire::detail
