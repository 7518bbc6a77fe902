// Method msg-zerocopy: send(MSG_ZEROCOPY) straight from a mapping of the
// source. The kernel pins the mapped pages and the NIC reads them; the socket's
// error queue says when each send is done with its pages (and whether the
// kernel had to copy after all, as it does on loopback). Sockets only.
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
// linux/errqueue.h uses struct timespec without including <time.h>.
// clang-format off
#include <time.h>
#include <linux/errqueue.h>
// clang-format on

#include <algorithm>

#include "sys.hpp"
#include "transfer_method.hpp"

namespace pagewire::detail {
namespace {

using Side = MethodStatus::Side;

// Bytes mapped at a time; all sends from a window complete before it is unmapped.
constexpr std::uint64_t kZerocopyWindowBytes = 16ULL << 20;  // 16 MiB
// Bytes per send: each send pins its pages and queues one notification.
constexpr std::size_t kZerocopySendBytes = 256 * 1024;

// Zero-copy send notifications: sends are numbered from 0 per socket and
// completions arrive as ranges [ee_info, ee_data].
struct Completions {
    std::uint32_t sent = 0;  // sends issued so far
    std::uint32_t done = 0;  // sends completed so far

    // Reads every queued notification (MSG_ERRQUEUE never blocks). False and
    // errno on a failure other than "queue empty".
    bool reap(TransferJob& job) noexcept {
        for (;;) {
            char control[128];
            msghdr msg{};
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            ++job.syscalls;
            if (sys::retry_eintr(
                    [&] { return ::recvmsg(job.destination_fd, &msg, MSG_ERRQUEUE); }) < 0) {
                return errno == EAGAIN;
            }
            for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
                const bool ip = (c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
                                (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR);
                if (!ip) continue;
                const auto* ee = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(c));
                if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY) continue;
                const std::uint32_t count = ee->ee_data - ee->ee_info + 1;
                done += count;
                job.zerocopy_completions += count;
                if ((ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED) != 0) job.zerocopy_copied += count;
            }
        }
    }

    // Waits until every send issued so far has released its pages.
    bool wait_all(TransferJob& job) noexcept {
        while (done != sent) {
            ++job.syscalls;
            if (sys::poll_one(job.destination_fd, 0) < 0) return false;  // POLLERR: a notification
            if (!reap(job)) return false;
        }
        return true;
    }
};

}  // namespace

MethodStatus run_msg_zerocopy(TransferJob& job) noexcept {
    if (job.source_kind != EndpointKind::RegularFile) {
        return MethodStatus::unsupported_here(EINVAL, "mmap", "the source is not a regular file");
    }
    if (job.destination_kind != EndpointKind::Socket) {
        return MethodStatus::unsupported_here(ENOTSOCK, "send", "MSG_ZEROCOPY needs a socket");
    }
    const int one = 1;
    ++job.syscalls;
    if (::setsockopt(job.destination_fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) != 0) {
        // EOPNOTSUPP: not a TCP/UDP socket (e.g. AF_UNIX).
        return MethodStatus::failed(errno, "setsockopt SO_ZEROCOPY", Side::Destination);
    }
    const std::uint64_t page = sys::page_size();
    Completions completions;
    while (!job.finished() && !job.until_end()) {
        const std::uint64_t start = sys::round_down(job.source_offset, page);
        const std::size_t skip = static_cast<std::size_t>(job.source_offset - start);
        const std::size_t n = job.next_chunk(kZerocopyWindowBytes);
        ++job.syscalls;
        void* p = ::mmap(nullptr, skip + n, PROT_READ, MAP_SHARED, job.source_fd,
                         static_cast<off_t>(start));
        if (p == MAP_FAILED) return MethodStatus::failed(errno, "mmap", Side::Source);
        const char* base = static_cast<const char*>(p) + skip;
        MethodStatus status = MethodStatus::done();
        std::size_t done = 0;
        while (done < n && status.ok()) {
            const std::size_t want = std::min(n - done, kZerocopySendBytes);
            ++job.syscalls;
            ssize_t w = sys::retry_eintr([&] {
                return ::send(job.destination_fd, base + done, want, MSG_ZEROCOPY | MSG_NOSIGNAL);
            });
            if (w < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
                // Socket buffer full, or too many notifications pending
                // (net.core.optmem_max): collect some, wait for room.
                if (!completions.reap(job)) {
                    status = MethodStatus::failed(errno, "recvmsg MSG_ERRQUEUE", Side::Destination);
                    break;
                }
                ++job.syscalls;
                if (sys::poll_one(job.destination_fd, POLLOUT) < 0) {
                    status = MethodStatus::failed(errno, "poll", Side::Destination);
                }
                continue;
            }
            if (w < 0) {
                status = errno == EFAULT ? source_truncated()
                                         : MethodStatus::failed(errno, "send", Side::Destination);
                break;
            }
            ++completions.sent;
            done += static_cast<std::size_t>(w);
            job.advance(static_cast<std::uint64_t>(w));
        }
        // The pages must stay mapped until the kernel is done with them.
        // After a failure they are not waited for: the kernel holds its own
        // references to the pages, and a reset peer may never release them.
        if (status.ok() && !completions.wait_all(job)) {
            status = MethodStatus::failed(errno, "recvmsg MSG_ERRQUEUE", Side::Destination);
        }
        ++job.syscalls;
        ::munmap(p, skip + n);
        if (!status.ok()) return status;
    }
    return MethodStatus::done();
}

}  // namespace pagewire::detail
