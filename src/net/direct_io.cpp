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

bool DirectRing::submit_read(int fd, char* buf, unsigned n, std::uint64_t offset,
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
    ::io_uring_prep_read(sqe, fd, buf, n, offset);
    ::io_uring_sqe_set_data64(sqe, tag);
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
    align_ = align > 0 ? align : 1;
    begin_ = begin;
    end_ = end;
    next_read_ = sys::round_down(begin, align_);
    read_end_ = sys::round_up(end, align_);
    read_seq_ = send_seq_ = 0;
    active_ = true;
    for (DirectBuffer& b : buffers_) {
        b.state = DirectBuffer::State::Free;
        b.error = 0;
    }
}

bool DirectStream::fill(DirectRing& ring, std::uint64_t tag) noexcept {
    while (read_seq_ - send_seq_ < kDirectBuffers && next_read_ < read_end_) {
        const unsigned i = read_seq_ % kDirectBuffers;
        DirectBuffer& b = buffers_[i];
        if (b.data == nullptr) {
            b.data = ring.take_buffer();
            if (b.data == nullptr) return false;
        }
        b.file_offset = next_read_;
        b.want = static_cast<std::size_t>(
            std::min<std::uint64_t>(kDirectChunkBytes, read_end_ - next_read_));
        b.got = b.sent = b.length = 0;
        b.skip = static_cast<std::size_t>(begin_ > next_read_ ? begin_ - next_read_ : 0);
        b.error = 0;
        if (!ring.submit_read(fd_, b.data, static_cast<unsigned>(b.want), b.file_offset, tag | i)) {
            return false;
        }
        b.state = DirectBuffer::State::Reading;
        next_read_ += b.want;
        ++read_seq_;
    }
    return true;
}

void DirectStream::complete(unsigned index, int res, DirectRing& ring, std::uint64_t tag) noexcept {
    DirectBuffer& b = buffers_[index % kDirectBuffers];
    if (res < 0) {
        b.error = -res;
        b.state = DirectBuffer::State::Ready;
        return;
    }
    b.got += static_cast<std::size_t>(res);
    // Bytes this buffer must deliver: up to the segment's end, which may lie
    // before the aligned read's end (a short read at end of file is normal).
    const std::uint64_t needed =
        std::min<std::uint64_t>(b.file_offset + b.want, end_) - b.file_offset;
    if (b.got < needed) {
        // Short: the file shrank (0), or a partial read that may only go on aligned.
        if (res == 0 || b.got % align_ != 0) {
            b.error = EIO;
            b.state = DirectBuffer::State::Ready;
            return;
        }
        if (!ring.submit_read(fd_, b.data + b.got, static_cast<unsigned>(b.want - b.got),
                              b.file_offset + b.got, tag | (index % kDirectBuffers))) {
            b.error = errno;
            b.state = DirectBuffer::State::Ready;
        }
        return;
    }
    b.length = static_cast<std::size_t>(needed) - b.skip;
    b.state = DirectBuffer::State::Ready;
}

DirectBuffer* DirectStream::front() noexcept {
    if (send_seq_ == read_seq_) return nullptr;
    return &buffers_[send_seq_ % kDirectBuffers];
}

void DirectStream::pop() noexcept {
    buffers_[send_seq_ % kDirectBuffers].state = DirectBuffer::State::Free;
    ++send_seq_;
    if (send_seq_ == read_seq_ && next_read_ >= read_end_) active_ = false;
}

unsigned DirectStream::in_flight() const noexcept {
    unsigned n = 0;
    for (const DirectBuffer& b : buffers_) n += b.state == DirectBuffer::State::Reading ? 1 : 0;
    return n;
}

void DirectStream::release(DirectRing& ring) noexcept {
    for (DirectBuffer& b : buffers_) {
        ring.give_buffer(b.data);
        b.data = nullptr;
        b.state = DirectBuffer::State::Free;
    }
    active_ = false;
}

}  // namespace pagewire::net
