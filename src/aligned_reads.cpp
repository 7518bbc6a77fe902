// The aligned-read pipeline: see aligned_reads.hpp.
#include "aligned_reads.hpp"

#include <algorithm>

#include "sys.hpp"

namespace pagewire::detail {

void AlignedReads::start(std::uint64_t begin, std::uint64_t end, std::uint32_t align,
                         std::size_t chunk, unsigned depth) noexcept {
    begin_ = begin;
    end_ = end;
    align_ = align > 0 ? align : 1;
    chunk_ = chunk;
    depth_ = std::clamp(depth, 1U, kMaxReadDepth);
    next_read_ = sys::round_down(begin, align_);
    read_end_ = sys::round_up(end, align_);
    read_seq_ = write_seq_ = 0;
    broken_ = false;
    for (ReadSlot& s : slots_) {
        s.state = ReadSlot::State::Free;
        s.notifications = 0;
        s.linked_write = false;
    }
}

int AlignedReads::issue() noexcept {
    if (broken_ || read_seq_ - write_seq_ >= depth_ || next_read_ >= read_end_) return -1;
    const auto i = static_cast<unsigned>(read_seq_ % depth_);
    ReadSlot& s = slots_[i];
    if (s.state != ReadSlot::State::Free) return -1;
    s.file_offset = next_read_;
    s.want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_, read_end_ - next_read_));
    s.got = 0;
    s.written = 0;
    s.skip = static_cast<std::size_t>(next_read_ < begin_ ? begin_ - next_read_ : 0);
    // Up to the range's end, which may lie before the aligned read's end.
    s.length = static_cast<std::size_t>(std::min<std::uint64_t>(s.file_offset + s.want, end_) -
                                        s.file_offset) -
               s.skip;
    s.linked_write = false;
    s.state = ReadSlot::State::Reading;
    next_read_ += s.want;
    ++read_seq_;
    return static_cast<int>(i);
}

void AlignedReads::prep_read(io_uring_sqe* sqe, int fd, unsigned i, bool fixed) const noexcept {
    const ReadSlot& s = slots_[i];
    char* at = s.buf + s.got;
    const auto n = static_cast<unsigned>(s.want - s.got);
    const std::uint64_t offset = s.file_offset + s.got;
    if (fixed) {
        ::io_uring_prep_read_fixed(sqe, fd, at, n, offset, static_cast<int>(i));
    } else {
        ::io_uring_prep_read(sqe, fd, at, n, offset);
    }
}

AlignedReads::ReadOutcome AlignedReads::complete_read(unsigned i, int res) noexcept {
    ReadSlot& s = slots_[i];
    if (res < 0) {
        s.state = ReadSlot::State::Free;
        broken_ = true;
        return ReadOutcome::Failed;
    }
    s.got += static_cast<std::size_t>(res);
    if (s.got < s.skip + s.length) {
        // Short: end of file (the file shrank), or a partial read that a
        // direct read may only continue on the alignment.
        if (res == 0 || s.got % align_ != 0) {
            s.state = ReadSlot::State::Free;
            broken_ = true;
            return ReadOutcome::Ended;
        }
        return ReadOutcome::More;
    }
    s.state = ReadSlot::State::Ready;
    return ReadOutcome::Ready;
}

ReadSlot* AlignedReads::head() noexcept {
    if (broken_ || write_seq_ == read_seq_) return nullptr;
    return &slots_[write_seq_ % depth_];
}

bool AlignedReads::wrote(std::size_t n) noexcept {
    ReadSlot& s = slots_[write_seq_ % depth_];
    s.written += n;
    if (s.written < s.length) return false;
    s.state = s.notifications > 0 ? ReadSlot::State::Sent : ReadSlot::State::Free;
    ++write_seq_;
    return true;
}

unsigned AlignedReads::reads_in_flight() const noexcept {
    unsigned n = 0;
    for (unsigned i = 0; i < depth_; ++i) n += slots_[i].state == ReadSlot::State::Reading ? 1 : 0;
    return n;
}

}  // namespace pagewire::detail
