// Methods io-uring and direct: reads and writes submitted to an io_uring with
// registered (pre-pinned) buffers, pipelined so that the next chunks are read
// while the current one is written — seed 003's "asynchronous I/O". Direct
// reads the source with O_DIRECT, aligned as statx(STATX_DIOALIGN) says, so
// the source's pages never enter the page cache — seed 003's "direct I/O +
// async I/O for large files" (nginx `aio on; directio N;`).
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <pagewire/unique_fd.hpp>
#include <string>

#include "aligned_reads.hpp"
#include "sys.hpp"
#include "transfer_method.hpp"

namespace pagewire::detail {
namespace {

using Side = MethodStatus::Side;

// Buffers in flight: reads run ahead of the one write in progress by up to
// this many chunks. Writes are issued one at a time, in order, so a stream
// destination receives the bytes in file order.
constexpr unsigned kIoUringDepth = kMaxReadDepth;

// Kernel 6.2 ABI values that liburing 2.3's headers predate: SEND_ZC's flag
// asking the notification to say whether the kernel copied after all, and
// the bit of the notification's result that says it did.
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

// Whether a socket's peer is on this host (loopback), where zero-copy sends
// are copied by the kernel anyway.
bool peer_is_loopback(const sockaddr_storage& peer) noexcept {
    if (peer.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(peer);
        return (ntohl(a.sin_addr.s_addr) >> 24) == 127;
    }
    if (peer.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(peer);
        if (IN6_IS_ADDR_LOOPBACK(&a.sin6_addr)) return true;
        return IN6_IS_ADDR_V4MAPPED(&a.sin6_addr) && a.sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

// ZeroCopySend::Auto's policy: an inet socket whose peer is on another host.
bool want_send_zc(const TransferJob& job) noexcept {
    if (job.destination_kind != EndpointKind::Socket) return false;
    switch (job.options.send_zc) {
        case ZeroCopySend::Never:
            return false;
        case ZeroCopySend::Always:
            return true;
        case ZeroCopySend::Auto:
            break;
    }
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    if (::getpeername(job.destination_fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0)
        return false;
    return (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) && !peer_is_loopback(peer);
}

// Bumped in every fork()ed child, so that a ring can tell it was inherited
// (its memory shared with the parent, whose ring it is) without a getpid()
// on every transfer.
std::atomic<unsigned> fork_generation{0};
void note_fork() noexcept {
    fork_generation.fetch_add(1, std::memory_order_relaxed);
}
[[maybe_unused]] const int fork_handler = ::pthread_atfork(nullptr, nullptr, note_fork);

// A ring and its registered buffers, kept from one transfer to the next by
// the thread that made them. Setting a ring up (io_uring_setup and its three
// mappings), mapping the buffers and pinning them (io_uring_register_buffers)
// cost far more than a small transfer itself: `pagewire bench transfer`
// measured io-uring at 4 KiB at 74 s of CPU per GB with a ring made per
// transfer against sendfile's 0.95, direct at 463 (its 4 MiB of buffers
// pinned each time). A transfer takes the thread's ring when it is free and
// its buffers are large enough (or grows them once), and leaves it with
// nothing in flight; a fork()ed child, which shares the parent's ring
// memory, makes its own.
class Ring {
  public:
    Ring() = default;
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    ~Ring() { release(); }

    // setup(): the ring is there, 0 or -errno when io_uring cannot be set up
    // here. map_buffers(): kIoUringDepth buffers of at least `chunk` bytes
    // (a multiple of the page size and of the direct alignment `unit`), 0 or
    // -errno when they cannot be mapped; buffers that could not be
    // registered leave registered() false (plain reads and writes then) and
    // register_error() saying why. `syscalls` counts the calls made.
    int setup(std::uint64_t& syscalls) noexcept {
        if (ready_ && generation_ != fork_generation.load(std::memory_order_relaxed))
            forget_inherited();
        if (ready_) return 0;
        ++syscalls;
        const int r = ::io_uring_queue_init(kIoUringDepth * 2, &ring_, 0);
        if (r < 0) return r;
        ready_ = true;
        generation_ = fork_generation.load(std::memory_order_relaxed);
        return 0;
    }
    int map_buffers(std::size_t chunk, std::size_t unit, std::uint64_t& syscalls) noexcept {
        if (memory_ != nullptr && slot_bytes_ >= chunk && slot_bytes_ % unit == 0) return 0;
        unmap(syscalls);
        const std::size_t bytes = chunk * kIoUringDepth;
        ++syscalls;
        void* memory =
            ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) return -errno;
        memory_ = static_cast<char*>(memory);
        slot_bytes_ = chunk;
        // Registered buffers are pinned once instead of on every operation;
        // they count against RLIMIT_MEMLOCK, and without them the same ring
        // still works.
        std::array<iovec, kIoUringDepth> iovecs{};
        for (unsigned i = 0; i < kIoUringDepth; ++i) iovecs[i] = {buffer(i), chunk};
        ++syscalls;
        const int r = ::io_uring_register_buffers(&ring_, iovecs.data(), kIoUringDepth);
        registered_ = r == 0;
        register_error_ = r < 0 ? -r : 0;
        return 0;
    }

    io_uring* get() noexcept { return &ring_; }
    char* buffer(unsigned i) const noexcept { return memory_ + i * slot_bytes_; }
    bool registered() const noexcept { return registered_; }
    int register_error() const noexcept { return register_error_; }
    // Whether these buffers are worth keeping for the next transfer (a huge
    // --buffer is not kept pinned after its transfer).
    bool worth_keeping() const noexcept { return slot_bytes_ * kIoUringDepth <= kMaxKeptBytes; }

    // Everything undone: ring closed, buffers unregistered and unmapped.
    void release() noexcept {
        std::uint64_t ignored = 0;
        unmap(ignored);
        if (ready_ && generation_ == fork_generation.load(std::memory_order_relaxed))
            ::io_uring_queue_exit(&ring_);
        ready_ = false;
    }

  private:
    // Direct's 1 MiB chunks, four of them, stay; larger sets go after use.
    static constexpr std::size_t kMaxKeptBytes = std::size_t{4} << 20;

    void unmap(std::uint64_t& syscalls) noexcept {
        if (memory_ == nullptr) return;
        if (registered_) {
            ++syscalls;
            ::io_uring_unregister_buffers(&ring_);
        }
        ++syscalls;
        drop_buffers();
    }
    void drop_buffers() noexcept {
        if (memory_ != nullptr) ::munmap(memory_, slot_bytes_ * kIoUringDepth);
        memory_ = nullptr;
        slot_bytes_ = 0;
        registered_ = false;
    }

    // After fork(): unmap this process's view of the parent's ring and close
    // its descriptor (the parent's ring is untouched), and drop the
    // copy-on-write buffers (their registration is the parent's).
    void forget_inherited() noexcept {
        ::io_uring_queue_exit(&ring_);
        ready_ = false;
        drop_buffers();
    }

    io_uring ring_{};
    bool ready_ = false;
    bool registered_ = false;
    int register_error_ = 0;
    char* memory_ = nullptr;  // kIoUringDepth buffers of slot_bytes_, page-aligned
    std::size_t slot_bytes_ = 0;
    unsigned generation_ = 0;  // fork_generation when the ring was set up
};

// The calling thread's ring, while a transfer has it (a transfer started
// from inside another's callback makes a ring of its own).
class ThreadRing {
  public:
    ThreadRing() noexcept : ring_(taken_ ? own_ : kept_) {
        if (&ring_ == &kept_) taken_ = true;
    }
    ~ThreadRing() {
        if (&ring_ != &kept_) return;
        if (!clean_ || !kept_.worth_keeping()) kept_.release();
        taken_ = false;
    }
    ThreadRing(const ThreadRing&) = delete;
    ThreadRing& operator=(const ThreadRing&) = delete;
    Ring* operator->() noexcept { return &ring_; }
    // Operations may still be in flight: the ring is not reused.
    void mark_unclean() noexcept { clean_ = false; }

  private:
    static thread_local Ring kept_;
    static thread_local bool taken_;
    Ring own_;
    Ring& ring_;
    bool clean_ = true;
};

thread_local Ring ThreadRing::kept_;
thread_local bool ThreadRing::taken_ = false;

// A completion's tag: the slot, whether a write, whether a write linked to its read.
constexpr std::uint64_t kTagWrite = 1;
constexpr std::uint64_t kTagLinked = 2;
std::uint64_t user_data(unsigned slot, std::uint64_t flags) noexcept {
    return (std::uint64_t{slot} << 2) | flags;
}

// A socket that refuses SEND_ZC (or its usage report): plain writes from then on.
bool send_zc_refused(int res) noexcept {
    return res == -EOPNOTSUPP || res == -EINVAL || res == -ENOTSUP;
}

MethodStatus run_ring(TransferJob& job, bool direct) noexcept {
    if (job.source_kind != EndpointKind::RegularFile) {
        return MethodStatus::unsupported_here(EINVAL, direct ? "open O_DIRECT" : "io_uring",
                                              "the source is not a regular file");
    }
    if (job.finished() || job.until_end()) return MethodStatus::done();

    UniqueFd direct_fd;  // O_DIRECT descriptor of the source (direct only)
    int read_fd = job.source_fd;
    std::uint64_t align = 1;
    if (direct) {
        int fd = -1;
        std::uint32_t offset_align = 0;
        const sys::DirectOpen opened = sys::open_direct(job.source_fd, 0, &fd, &offset_align);
        // statx, then open unless the alignment check stopped it.
        job.syscalls +=
            opened == sys::DirectOpen::StatxFailed || opened == sys::DirectOpen::NoAlignment ? 1
                                                                                             : 2;
        switch (opened) {
            case sys::DirectOpen::Ready:
                break;
            case sys::DirectOpen::StatxFailed:
                return MethodStatus::failed(errno, "statx", Side::Source);
            case sys::DirectOpen::NoAlignment:
                return MethodStatus::unsupported_here(
                    EOPNOTSUPP, "statx",
                    "the source's filesystem reports no direct I/O alignment (STATX_DIOALIGN)");
            case sys::DirectOpen::Refused:
                return MethodStatus::unsupported_here(EINVAL, "open O_DIRECT",
                                                      "the source's filesystem refuses O_DIRECT");
            case sys::DirectOpen::OpenFailed:
                return MethodStatus::failed(errno, "open O_DIRECT", Side::Source);
        }
        direct_fd.reset(fd);
        read_fd = fd;
        align = offset_align;
    }

    std::size_t chunk =
        job.options.buffer_bytes > 0 ? job.options.buffer_bytes : kDefaultTransferBufferBytes;
    if (direct) chunk = std::max(chunk, kDirectMinChunkBytes);
    chunk = static_cast<std::size_t>(
        sys::round_up(chunk, std::max<std::uint64_t>(align, sys::page_size())));

    // A small transfer needs no larger buffers than its bytes (a 4 KiB
    // direct copy reads 4 KiB, not a 1 MiB chunk).
    const std::uint64_t unit = std::max<std::uint64_t>(align, sys::page_size());
    const std::uint64_t span = sys::round_up(job.source_offset + job.remaining, unit) -
                               sys::round_down(job.source_offset, align);
    if (span < chunk) chunk = static_cast<std::size_t>(sys::round_up(span, unit));

    ThreadRing ring;
    int r = ring->setup(job.syscalls);
    if (r < 0) {
        return MethodStatus::unsupported_here(-r, "io_uring_setup",
                                              "io_uring is not available here");
    }
    r = ring->map_buffers(chunk, static_cast<std::size_t>(unit), job.syscalls);
    if (r < 0) return MethodStatus::failed(-r, "mmap", Side::Source);
    const bool registered = ring->registered();
    if (!registered) {
        job.note = std::string("io_uring buffers not registered (") +
                   std::strerror(ring->register_error()) + "); plain reads and writes used";
    }
    io_uring* const uring = ring->get();

    const std::uint64_t begin = job.source_offset;
    const std::uint64_t end = begin + job.remaining;
    const std::uint64_t destination_base = job.destination_offset;
    const bool file_destination = job.destination_kind == EndpointKind::RegularFile;
    AlignedReads reads;
    reads.start(begin, end, static_cast<std::uint32_t>(align), chunk, kIoUringDepth);
    for (unsigned i = 0; i < kIoUringDepth; ++i) reads.slot(i).buf = ring->buffer(i);
    unsigned inflight = 0;
    MethodStatus status = MethodStatus::done();
    bool send_zc = want_send_zc(job);
    unsigned zc_flags = IORING_SEND_ZC_REPORT_USAGE;

    auto submit_read = [&](unsigned i, bool link = false) {
        io_uring_sqe* sqe = ::io_uring_get_sqe(uring);
        reads.prep_read(sqe, read_fd, i, registered);
        ::io_uring_sqe_set_data64(sqe, user_data(i, 0));
        if (link) ::io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
        ++inflight;
    };
    // `linked`: submitted right after the slot's read, chained to it; the
    // slot stays Reading until the read completes.
    auto submit_write = [&](unsigned i, bool linked = false) {
        ReadSlot& s = reads.slot(i);
        io_uring_sqe* sqe = ::io_uring_get_sqe(uring);
        const char* at = s.next_bytes();
        const auto n = static_cast<unsigned>(s.bytes_left());
        // Streams have no offset: -1 means "the current position", which
        // sockets and pipes ignore.
        const std::uint64_t off =
            file_destination ? destination_base + (s.file_offset + s.skip - begin) + s.written
                             : static_cast<std::uint64_t>(-1);
        if (send_zc && registered) {
            ::io_uring_prep_send_zc_fixed(sqe, job.destination_fd, at, n, MSG_NOSIGNAL, zc_flags,
                                          i);
        } else if (send_zc) {
            ::io_uring_prep_send_zc(sqe, job.destination_fd, at, n, MSG_NOSIGNAL, zc_flags);
        } else if (registered) {
            ::io_uring_prep_write_fixed(sqe, job.destination_fd, at, n, off, static_cast<int>(i));
        } else {
            ::io_uring_prep_write(sqe, job.destination_fd, at, n, off);
        }
        ::io_uring_sqe_set_data64(sqe, user_data(i, kTagWrite | (linked ? kTagLinked : 0)));
        s.linked_write = linked;
        if (!linked) s.state = ReadSlot::State::Writing;
        ++inflight;
    };

    while (status.ok()) {
        for (;;) {
            // The chunk next in line to be written: its write goes in the
            // same submission, linked to the read, so a transfer of one
            // chunk (a small file) costs one io_uring_enter instead of two.
            // SEND_ZC keeps its own completion accounting: not linked.
            const bool link = reads.next_is_head() && !send_zc;
            const int i = reads.issue();
            if (i < 0) break;
            submit_read(static_cast<unsigned>(i), link);
            if (link) submit_write(static_cast<unsigned>(i), true);
        }
        if (const ReadSlot* head = reads.head();
            head != nullptr && head->state == ReadSlot::State::Ready) {
            submit_write(reads.head_index());
        }
        if (inflight == 0) break;

        ++job.syscalls;
        r = ::io_uring_submit_and_wait(uring, 1);
        if (r < 0 && r != -EINTR) {
            status = MethodStatus::failed(-r, "io_uring_enter", Side::Destination);
            break;
        }
        io_uring_cqe* cqe = nullptr;
        while (::io_uring_peek_cqe(uring, &cqe) == 0) {
            const std::uint64_t data = ::io_uring_cqe_get_data64(cqe);
            const int res = cqe->res;
            const unsigned flags = cqe->flags;
            ::io_uring_cqe_seen(uring, cqe);
            --inflight;
            const auto i = static_cast<unsigned>(data >> 2);
            ReadSlot& s = reads.slot(i);
            if ((flags & IORING_CQE_F_NOTIF) != 0) {  // SEND_ZC: the kernel is done with the buffer
                ++job.zerocopy_completions;
                if ((static_cast<unsigned>(res) & IORING_NOTIF_USAGE_ZC_COPIED) != 0)
                    ++job.zerocopy_copied;
                if (--s.notifications == 0 && s.state == ReadSlot::State::Sent)
                    s.state = ReadSlot::State::Free;
                continue;
            }
            if ((flags & IORING_CQE_F_MORE) != 0) {  // SEND_ZC: a notification follows
                ++s.notifications;
                ++inflight;
            }
            if ((data & kTagWrite) == 0) {  // a read
                // A linked write runs only after a read that returned every
                // byte asked for; otherwise its completion is -ECANCELED.
                const bool write_follows =
                    s.linked_write && res >= 0 && static_cast<std::size_t>(res) == s.want - s.got;
                if (!write_follows) s.linked_write = false;
                switch (reads.complete_read(i, res)) {
                    case AlignedReads::ReadOutcome::Ready:
                        if (write_follows) s.state = ReadSlot::State::Writing;
                        break;
                    case AlignedReads::ReadOutcome::More:
                        submit_read(i);
                        break;
                    case AlignedReads::ReadOutcome::Ended:
                        status = source_ended_early();
                        break;
                    case AlignedReads::ReadOutcome::Failed:
                        status = MethodStatus::failed(-res, "read", Side::Source);
                        break;
                }
                continue;
            }
            // A write.
            if ((data & kTagLinked) != 0) {
                const bool expected = s.linked_write;  // its read returned every byte
                s.linked_write = false;
                if (res == -ECANCELED) {
                    // The read came back short (the write is issued again
                    // when it is done), or the kernel cancelled it anyway.
                    if (expected) s.state = ReadSlot::State::Ready;
                    continue;
                }
            }
            if (res == -EAGAIN) {  // a non-blocking destination is full
                ++job.syscalls;
                if (sys::poll_one(job.destination_fd, POLLOUT) < 0) {
                    status = MethodStatus::failed(errno, "poll", Side::Destination);
                    continue;
                }
                s.state = ReadSlot::State::Ready;
                continue;
            }
            if (send_zc && send_zc_refused(res)) {
                if (zc_flags != 0) {
                    zc_flags = 0;  // a kernel without usage reports: SEND_ZC without it
                } else {
                    send_zc = false;
                    job.note =
                        std::string("send_zc: ") + std::strerror(-res) + "; plain writes used";
                }
                s.state = ReadSlot::State::Ready;  // again
                continue;
            }
            if (res < 0) {
                status =
                    MethodStatus::failed(-res, send_zc ? "send_zc" : "write", Side::Destination);
                continue;
            }
            const std::size_t length = s.length;
            if (!reads.wrote(static_cast<std::size_t>(res))) {
                s.state = ReadSlot::State::Ready;  // short write: the rest goes next
                continue;
            }
            job.advance(length);
        }
    }
    // Operations still in flight use the buffers: wait for them, so that the
    // next transfer finds the ring empty (or, if waiting fails, the ring is
    // not reused).
    while (inflight > 0) {
        r = ::io_uring_submit_and_wait(uring, 1);
        if (r < 0 && r != -EINTR) {
            ring.mark_unclean();
            break;
        }
        io_uring_cqe* cqe = nullptr;
        while (::io_uring_peek_cqe(uring, &cqe) == 0) {
            // SEND_ZC: the buffer stays in use until its notification.
            if ((cqe->flags & IORING_CQE_F_MORE) != 0) ++inflight;
            ::io_uring_cqe_seen(uring, cqe);
            --inflight;
        }
    }
    return status;
}

}  // namespace

MethodStatus run_io_uring(TransferJob& job) noexcept {
    return run_ring(job, false);
}
MethodStatus run_direct(TransferJob& job) noexcept {
    return run_ring(job, true);
}

}  // namespace pagewire::detail
