// The direct path: see direct_io.hpp.
#include "net/direct_io.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "sys.hpp"

namespace pagewire::net {

bool prepare_direct(FileSource& file) noexcept {
    if (file.direct != FileSource::Direct::Unknown) return file.direct == FileSource::Direct::Ready;
    file.direct = FileSource::Direct::Unsupported;
    int fd = -1;
    std::uint32_t align = 0;
    // O_NONBLOCK as the buffered descriptor: never let the worker block.
    if (sys::open_direct(file.fd.get(), O_NONBLOCK, &fd, &align) != sys::DirectOpen::Ready) {
        return false;
    }
    file.direct_fd.reset(fd);
    file.direct_align = align;
    file.direct = FileSource::Direct::Ready;
    return true;
}

DirectRing::~DirectRing() {
    if (state_ == 1) ::io_uring_queue_exit(&ring_);
    for (char* b : pool_) ::munmap(b, kDirectChunkBytes);
}

bool DirectRing::ready() noexcept {
    if (state_ == 1) return true;
    if (state_ < 0) {
        errno = -state_;
        return false;
    }
    const int r = ::io_uring_queue_init(kRingEntries, &ring_, 0);
    if (r < 0) {
        state_ = r;
        errno = -r;
        return false;
    }
    event_fd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!event_fd_ || ::io_uring_register_eventfd(&ring_, event_fd_.get()) != 0) {
        const int err = !event_fd_ ? errno : EINVAL;
        ::io_uring_queue_exit(&ring_);
        event_fd_.reset();
        state_ = -err;
        errno = err;
        return false;
    }
    pool_.reserve(kPooledBuffers);  // give_buffer never allocates
    state_ = 1;
    return true;
}

bool DirectRing::submit_read(const detail::AlignedReads& reads, int fd, unsigned i,
                             std::uint64_t tag) noexcept {
    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
        ::io_uring_submit(&ring_);
        sqe = ::io_uring_get_sqe(&ring_);
        if (sqe == nullptr) {
            errno = EBUSY;
            return false;
        }
    }
    reads.prep_read(sqe, fd, i, false);
    ::io_uring_sqe_set_data64(sqe, tag | i);
    int r;
    do {
        r = ::io_uring_submit(&ring_);
    } while (r == -EINTR);
    if (r < 0) {
        errno = -r;
        return false;
    }
    ++outstanding_;
    return true;
}

char* DirectRing::take_buffer() noexcept {
    if (!pool_.empty()) {
        char* b = pool_.back();
        pool_.pop_back();
        return b;
    }
    void* p = ::mmap(nullptr, kDirectChunkBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
}

void DirectRing::give_buffer(char* buffer) noexcept {
    if (buffer == nullptr) return;
    if (pool_.size() < kPooledBuffers) {
        pool_.push_back(buffer);  // within the capacity ready() reserved
        return;
    }
    ::munmap(buffer, kDirectChunkBytes);
}

void DirectStream::start(int fd, std::uint32_t align, std::uint64_t begin,
                         std::uint64_t end) noexcept {
    fd_ = fd;
    error_ = 0;
    reads_.start(begin, end, align, kDirectChunkBytes, kDirectBuffers);
    active_ = true;
}

bool DirectStream::fill(DirectRing& ring, std::uint64_t tag) noexcept {
    for (int i = reads_.issue(); i >= 0; i = reads_.issue()) {
        detail::ReadSlot& s = reads_.slot(static_cast<unsigned>(i));
        if (s.buf == nullptr) {
            s.buf = ring.take_buffer();
            if (s.buf == nullptr) return false;
        }
        if (!ring.submit_read(reads_, fd_, static_cast<unsigned>(i), tag)) return false;
    }
    return true;
}

void DirectStream::complete(unsigned index, int res, DirectRing& ring, std::uint64_t tag) noexcept {
    switch (reads_.complete_read(index, res)) {
        case detail::AlignedReads::ReadOutcome::Ready:
            return;
        case detail::AlignedReads::ReadOutcome::More:
            if (!ring.submit_read(reads_, fd_, index, tag)) {
                error_ = errno;
                reads_.slot(index).state = detail::ReadSlot::State::Free;  // nothing in flight
            }
            return;
        case detail::AlignedReads::ReadOutcome::Ended:
            error_ = EIO;
            return;
        case detail::AlignedReads::ReadOutcome::Failed:
            error_ = -res;
            return;
    }
}

void DirectStream::sent(std::size_t n) noexcept {
    if (reads_.wrote(n) && reads_.finished()) active_ = false;
}

void DirectStream::release(DirectRing& ring) noexcept {
    for (unsigned i = 0; i < kDirectBuffers; ++i) {
        detail::ReadSlot& s = reads_.slot(i);
        ring.give_buffer(s.buf);
        s.buf = nullptr;
        s.state = detail::ReadSlot::State::Free;
    }
    active_ = false;
}

}  // namespace pagewire::net
