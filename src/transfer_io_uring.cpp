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
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <pagewire/unique_fd.hpp>
#include <string>

#include "sys.hpp"
#include "transfer_method.hpp"

namespace pagewire::detail {
namespace {

using Side = MethodStatus::Side;

// Buffers in flight: reads run ahead of the one write in progress by up to
// this many chunks. Writes are issued one at a time, in order, so a stream
// destination receives the bytes in file order.
constexpr unsigned kIoUringDepth = 4;
// Direct reads smaller than this waste the device's time on per-request cost.
constexpr std::size_t kDirectMinChunkBytes = 1 << 20;  // 1 MiB

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

struct Slot {
    // Sent: all written by SEND_ZC, the kernel's notification that the
    // buffer may be reused still to come.
    enum class State { Free, Reading, Full, Writing, Sent };
    State state = State::Free;
    unsigned notifications = 0;  // SEND_ZC notifications still to come for this buffer
    char* buf = nullptr;
    std::uint64_t file_offset = 0;  // where the read starts (aligned for direct)
    std::size_t want = 0;           // bytes the read asks for
    std::size_t got = 0;            // bytes read so far
    std::size_t skip = 0;           // leading bytes before the job's first byte (alignment)
    std::size_t length = 0;         // bytes to write, from buf + skip
    std::size_t written = 0;        // of length
};

// The ring, the buffers and the direct descriptor, released on scope exit.
class Engine {
  public:
    ~Engine() {
        if (ring_ready_) ::io_uring_queue_exit(&ring_);
        if (memory_ != nullptr) ::munmap(memory_, memory_bytes_);
    }
    io_uring ring_{};
    bool ring_ready_ = false;
    bool registered_ = false;  // buffers registered: *_fixed operations
    void* memory_ = nullptr;   // kIoUringDepth chunks, page-aligned
    std::size_t memory_bytes_ = 0;
    UniqueFd direct_fd_;  // O_DIRECT descriptor of the source (direct only)
};

std::uint64_t user_data(unsigned slot, bool write) noexcept {
    return (slot << 1) | (write ? 1 : 0);
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

    Engine engine;
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
        engine.direct_fd_.reset(fd);
        read_fd = fd;
        align = offset_align;
    }

    std::size_t chunk =
        job.options.buffer_bytes > 0 ? job.options.buffer_bytes : kDefaultTransferBufferBytes;
    if (direct) chunk = std::max(chunk, kDirectMinChunkBytes);
    chunk = static_cast<std::size_t>(
        sys::round_up(chunk, std::max<std::uint64_t>(align, sys::page_size())));

    ++job.syscalls;
    int r = ::io_uring_queue_init(kIoUringDepth * 2, &engine.ring_, 0);
    if (r < 0) {
        return MethodStatus::unsupported_here(-r, "io_uring_setup",
                                              "io_uring is not available here");
    }
    engine.ring_ready_ = true;
    engine.memory_bytes_ = chunk * kIoUringDepth;
    ++job.syscalls;
    engine.memory_ = ::mmap(nullptr, engine.memory_bytes_, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (engine.memory_ == MAP_FAILED) {
        engine.memory_ = nullptr;
        return MethodStatus::failed(errno, "mmap", Side::Source);
    }
    std::array<Slot, kIoUringDepth> slots;
    std::array<iovec, kIoUringDepth> iovecs{};
    for (unsigned i = 0; i < kIoUringDepth; ++i) {
        slots[i].buf = static_cast<char*>(engine.memory_) + i * chunk;
        iovecs[i] = {slots[i].buf, chunk};
    }
    // Registered buffers are pinned once instead of on every operation; they
    // count against RLIMIT_MEMLOCK, and without them the same ring still works.
    ++job.syscalls;
    r = ::io_uring_register_buffers(&engine.ring_, iovecs.data(), kIoUringDepth);
    engine.registered_ = r == 0;
    if (!engine.registered_) {
        job.note = std::string("io_uring buffers not registered (") + std::strerror(-r) +
                   "); plain reads and writes used";
    }

    const std::uint64_t begin = job.source_offset;
    const std::uint64_t end = begin + job.remaining;
    const std::uint64_t destination_base = job.destination_offset;
    const bool file_destination = job.destination_kind == EndpointKind::RegularFile;
    std::uint64_t next_read = sys::round_down(begin, align);
    std::uint64_t read_seq = 0;   // chunks whose read was issued
    std::uint64_t write_seq = 0;  // chunks fully written
    unsigned inflight = 0;
    MethodStatus status = MethodStatus::done();
    bool send_zc = want_send_zc(job);
    unsigned zc_flags = IORING_SEND_ZC_REPORT_USAGE;

    auto submit_read = [&](unsigned i) {
        Slot& s = slots[i];
        io_uring_sqe* sqe = ::io_uring_get_sqe(&engine.ring_);
        char* at = s.buf + s.got;
        const unsigned n = static_cast<unsigned>(s.want - s.got);
        const std::uint64_t off = s.file_offset + s.got;
        if (engine.registered_) {
            ::io_uring_prep_read_fixed(sqe, read_fd, at, n, off, static_cast<int>(i));
        } else {
            ::io_uring_prep_read(sqe, read_fd, at, n, off);
        }
        ::io_uring_sqe_set_data64(sqe, user_data(i, false));
        s.state = Slot::State::Reading;
        ++inflight;
    };
    auto submit_write = [&](unsigned i) {
        Slot& s = slots[i];
        io_uring_sqe* sqe = ::io_uring_get_sqe(&engine.ring_);
        const char* at = s.buf + s.skip + s.written;
        const unsigned n = static_cast<unsigned>(s.length - s.written);
        // Streams have no offset: -1 means "the current position", which
        // sockets and pipes ignore.
        const std::uint64_t off =
            file_destination ? destination_base + (s.file_offset + s.skip - begin) + s.written
                             : static_cast<std::uint64_t>(-1);
        if (send_zc && engine.registered_) {
            ::io_uring_prep_send_zc_fixed(sqe, job.destination_fd, at, n, MSG_NOSIGNAL, zc_flags,
                                          i);
        } else if (send_zc) {
            ::io_uring_prep_send_zc(sqe, job.destination_fd, at, n, MSG_NOSIGNAL, zc_flags);
        } else if (engine.registered_) {
            ::io_uring_prep_write_fixed(sqe, job.destination_fd, at, n, off, static_cast<int>(i));
        } else {
            ::io_uring_prep_write(sqe, job.destination_fd, at, n, off);
        }
        ::io_uring_sqe_set_data64(sqe, user_data(i, true));
        s.state = Slot::State::Writing;
        ++inflight;
    };

    while (status.ok()) {
        while (read_seq - write_seq < kIoUringDepth && next_read < end &&
               slots[read_seq % kIoUringDepth].state == Slot::State::Free) {
            const unsigned i = static_cast<unsigned>(read_seq % kIoUringDepth);
            Slot& s = slots[i];
            s.file_offset = next_read;
            s.want = static_cast<std::size_t>(
                std::min<std::uint64_t>(chunk, sys::round_up(end, align) - next_read));
            s.got = 0;
            s.skip = static_cast<std::size_t>(next_read < begin ? begin - next_read : 0);
            s.written = 0;
            submit_read(i);
            next_read += s.want;
            ++read_seq;
        }
        if (write_seq < read_seq) {
            const unsigned head = static_cast<unsigned>(write_seq % kIoUringDepth);
            if (slots[head].state == Slot::State::Full) submit_write(head);
        }
        if (inflight == 0) break;

        ++job.syscalls;
        r = ::io_uring_submit_and_wait(&engine.ring_, 1);
        if (r < 0 && r != -EINTR) {
            status = MethodStatus::failed(-r, "io_uring_enter", Side::Destination);
            break;
        }
        io_uring_cqe* cqe = nullptr;
        while (::io_uring_peek_cqe(&engine.ring_, &cqe) == 0) {
            const std::uint64_t data = ::io_uring_cqe_get_data64(cqe);
            const int res = cqe->res;
            const unsigned flags = cqe->flags;
            ::io_uring_cqe_seen(&engine.ring_, cqe);
            --inflight;
            const unsigned i = static_cast<unsigned>(data >> 1);
            Slot& s = slots[i];
            if ((flags & IORING_CQE_F_NOTIF) != 0) {  // SEND_ZC: the kernel is done with the buffer
                ++job.zerocopy_completions;
                if ((static_cast<unsigned>(res) & IORING_NOTIF_USAGE_ZC_COPIED) != 0)
                    ++job.zerocopy_copied;
                if (--s.notifications == 0 && s.state == Slot::State::Sent)
                    s.state = Slot::State::Free;
                continue;
            }
            if ((flags & IORING_CQE_F_MORE) != 0) {  // SEND_ZC: a notification follows
                ++s.notifications;
                ++inflight;
            }
            if ((data & 1) == 0) {  // a read
                if (res < 0) {
                    status = MethodStatus::failed(-res, "read", Side::Source);
                    continue;
                }
                s.got += static_cast<std::size_t>(res);
                const std::uint64_t needed = std::min<std::uint64_t>(s.file_offset + s.want, end);
                if (s.file_offset + s.got < needed) {
                    // Short: end of file (the source shrank), or a partial
                    // read to continue; a direct read may only continue aligned.
                    if (res == 0 || (direct && s.got % align != 0)) {
                        status = source_ended_early();
                        continue;
                    }
                    submit_read(i);
                    continue;
                }
                s.length = static_cast<std::size_t>(needed - s.file_offset) - s.skip;
                s.state = Slot::State::Full;
            } else {                   // a write
                if (res == -EAGAIN) {  // a non-blocking destination is full
                    ++job.syscalls;
                    if (sys::poll_one(job.destination_fd, POLLOUT) < 0) {
                        status = MethodStatus::failed(errno, "poll", Side::Destination);
                        continue;
                    }
                    s.state = Slot::State::Full;
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
                    s.state = Slot::State::Full;  // again
                    continue;
                }
                if (res < 0) {
                    status = MethodStatus::failed(-res, send_zc ? "send_zc" : "write",
                                                  Side::Destination);
                    continue;
                }
                s.written += static_cast<std::size_t>(res);
                if (s.written < s.length) {
                    s.state = Slot::State::Full;  // short write: the rest goes next
                    continue;
                }
                job.advance(s.length);
                s.state = s.notifications > 0 ? Slot::State::Sent : Slot::State::Free;
                ++write_seq;
            }
        }
    }
    // Operations still in flight use the buffers: wait for them before the
    // engine unmaps them.
    while (inflight > 0) {
        r = ::io_uring_submit_and_wait(&engine.ring_, 1);
        if (r < 0 && r != -EINTR) break;
        io_uring_cqe* cqe = nullptr;
        while (::io_uring_peek_cqe(&engine.ring_, &cqe) == 0) {
            // SEND_ZC: the buffer stays in use until its notification.
            if ((cqe->flags & IORING_CQE_F_MORE) != 0) ++inflight;
            ::io_uring_cqe_seen(&engine.ring_, cqe);
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
