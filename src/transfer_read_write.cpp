// Method read-write: read(2) into a user buffer, write(2) it out — seed 003's
// "traditional" transfer: two CPU copies and two system calls per buffer.
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "sys.hpp"
#include "transfer_method.hpp"

namespace pagewire::detail {
namespace {

using Side = MethodStatus::Side;

// Largest buffer a thread keeps between transfers; larger ones are mapped
// for one transfer.
constexpr std::size_t kMaxKeptBufferBytes = 8u << 20;

// Page-aligned anonymous memory, unmapped when dropped.
class Mapped {
  public:
    Mapped() = default;
    explicit Mapped(std::size_t bytes) noexcept {
        void* p =
            ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            data_ = static_cast<char*>(p);
            bytes_ = bytes;
        }
    }
    Mapped(Mapped&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
    Mapped& operator=(Mapped&& o) noexcept {
        std::swap(data_, o.data_);
        std::swap(bytes_, o.bytes_);
        return *this;
    }
    ~Mapped() {
        if (data_ != nullptr) ::munmap(data_, bytes_);
    }
    char* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return bytes_; }

  private:
    char* data_ = nullptr;
    std::size_t bytes_ = 0;
};

// The buffer of one transfer: the calling thread's kept buffer (grown to the
// largest size asked for, up to kMaxKeptBufferBytes), or memory of its own
// when that is in use (a transfer started from a progress callback) or too
// small. Mapping a fresh buffer per transfer and faulting its pages in cost
// more than the copy itself for files up to a few MiB: 1 MiB hot file ->
// file ran at 0.76 GB/s with a 128 KiB buffer mapped per transfer and at
// 7.9 GB/s with one kept (docs/BENCHMARKS.md, issue 16). A fork()ed child
// gets a copy-on-write copy of the parent's kept buffer, which is its own.
class Buffer {
  public:
    explicit Buffer(std::size_t bytes) noexcept {
        if (bytes <= kMaxKeptBufferBytes && !kept_in_use) {
            if (kept.size() < bytes) kept = Mapped(bytes);
            if (kept.data() != nullptr) {
                kept_in_use = true;
                data_ = kept.data();
                return;
            }
        }
        own_ = Mapped(bytes);
        data_ = own_.data();
    }
    ~Buffer() {
        if (data_ != nullptr && data_ == kept.data()) kept_in_use = false;
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    char* data() const noexcept { return data_; }

  private:
    static thread_local Mapped kept;
    static thread_local bool kept_in_use;
    Mapped own_;
    char* data_ = nullptr;  // nullptr if mmap failed
};
thread_local Mapped Buffer::kept;
thread_local bool Buffer::kept_in_use = false;

// One read of up to n bytes: pread for file sources, read for streams
// (waiting on EAGAIN). 0 is end of file or stream.
ssize_t read_some(TransferJob& job, char* buf, std::size_t n) noexcept {
    for (;;) {
        ++job.syscalls;
        ssize_t r =
            job.source_kind == EndpointKind::RegularFile
                ? sys::retry_eintr([&] {
                      return ::pread(job.source_fd, buf, n, static_cast<off_t>(job.source_offset));
                  })
                : sys::retry_eintr([&] { return ::read(job.source_fd, buf, n); });
        if (r >= 0 || errno != EAGAIN) return r;
        ++job.syscalls;
        if (sys::poll_one(job.source_fd, POLLIN) < 0) return -1;
    }
}

}  // namespace

MethodStatus write_out(TransferJob& job, const void* buf, std::size_t n,
                       std::size_t* written) noexcept {
    const auto* p = static_cast<const char*>(buf);
    std::size_t done = 0;
    if (written != nullptr) *written = n;
    while (done < n) {
        ++job.syscalls;
        ssize_t w;
        if (job.destination_kind == EndpointKind::RegularFile) {
            w = sys::retry_eintr([&] {
                return ::pwrite(job.destination_fd, p + done, n - done,
                                static_cast<off_t>(job.destination_offset + done));
            });
        } else if (job.destination_kind == EndpointKind::Socket) {
            // MSG_NOSIGNAL: a peer that left is EPIPE here, not a SIGPIPE death.
            w = sys::retry_eintr(
                [&] { return ::send(job.destination_fd, p + done, n - done, MSG_NOSIGNAL); });
        } else {
            w = sys::retry_eintr([&] { return ::write(job.destination_fd, p + done, n - done); });
        }
        if (w < 0 && errno == EAGAIN) {
            if (written != nullptr && job.stop_on_would_block()) {
                *written = done;
                return MethodStatus::done();
            }
            ++job.syscalls;
            if (sys::poll_one(job.destination_fd, POLLOUT) < 0) {
                return MethodStatus::failed(errno, "poll", Side::Destination);
            }
            continue;
        }
        if (w < 0) return MethodStatus::failed(errno, "write", Side::Destination);
        done += static_cast<std::size_t>(w);
    }
    return MethodStatus::done();
}

MethodStatus run_read_write(TransferJob& job) noexcept {
    const std::size_t size =
        job.options.buffer_bytes > 0 ? job.options.buffer_bytes : kDefaultTransferBufferBytes;
    Buffer buffer(size);
    if (buffer.data() == nullptr) return MethodStatus::failed(errno, "mmap", Side::Source);
    while (!job.finished()) {
        ssize_t r = read_some(job, buffer.data(), job.next_chunk(size));
        if (r < 0) return MethodStatus::failed(errno, "read", Side::Source);
        if (r == 0) return job.until_end() ? MethodStatus::done() : source_ended_early();
        // Only a file source can be read again from where a partial write
        // stopped; a stream's bytes must all go out.
        const bool file_source = job.source_kind == EndpointKind::RegularFile;
        std::size_t written = 0;
        MethodStatus s = write_out(job, buffer.data(), static_cast<std::size_t>(r),
                                   file_source ? &written : nullptr);
        if (!s.ok()) return s;
        job.advance(file_source ? written : static_cast<std::uint64_t>(r));
        if (job.would_block) return MethodStatus::done();
    }
    return MethodStatus::done();
}

}  // namespace pagewire::detail
