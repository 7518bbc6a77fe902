// The transfer engine's policy and bookkeeping: which method runs (Auto, the
// nginx way), what runs instead when a method is impossible here, and the
// statistics. The methods themselves are the units in transfer_*.cpp.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/page_cache.hpp>
#include <pagewire/transfer.hpp>
#include <pagewire/units.hpp>

#include "sys.hpp"
#include "transfer_method.hpp"

namespace pagewire {
namespace {

struct MethodInfo {
    TransferMethod method;
    std::string_view name;
    detail::MethodFn run;
};

constexpr std::array<MethodInfo, 9> kMethods{{
    {TransferMethod::Auto, "auto", nullptr},
    {TransferMethod::ReadWrite, "read-write", detail::run_read_write},
    {TransferMethod::MmapWrite, "mmap-write", detail::run_mmap_write},
    {TransferMethod::Sendfile, "sendfile", detail::run_sendfile},
    {TransferMethod::Splice, "splice", detail::run_splice},
    {TransferMethod::CopyFileRange, "copy-file-range", detail::run_copy_file_range},
    {TransferMethod::IoUring, "io-uring", detail::run_io_uring},
    {TransferMethod::Direct, "direct", detail::run_direct},
    {TransferMethod::MsgZerocopy, "msg-zerocopy", detail::run_msg_zerocopy},
}};

constexpr std::array<TransferMethod, 8> kConcreteMethods{
    TransferMethod::ReadWrite, TransferMethod::MmapWrite,     TransferMethod::Sendfile,
    TransferMethod::Splice,    TransferMethod::CopyFileRange, TransferMethod::IoUring,
    TransferMethod::Direct,    TransferMethod::MsgZerocopy};

const MethodInfo& info(TransferMethod m) noexcept {
    return kMethods[static_cast<std::size_t>(m)];
}

// errno values that mean "this method cannot work with these descriptors or
// on this kernel", as opposed to an I/O failure: the next method runs.
bool means_unsupported(int err) noexcept {
    switch (err) {
        case EINVAL:      // sendfile/splice/copy_file_range: descriptor kinds not supported
        case ENOSYS:      // system call missing
        case EXDEV:       // copy_file_range across filesystems
        case EOPNOTSUPP:  // reflink, SO_ZEROCOPY on AF_UNIX, no DIOALIGN
        case ENOTSOCK:    // msg-zerocopy to a non-socket
        case ESPIPE:      // positional I/O on a stream
        case EBADF:       // copy_file_range to an O_APPEND destination
            return true;
        default:
            return false;
    }
}

// Pages of [offset, offset+length) of the source in the page cache.
std::uint64_t resident_pages(const File& source, std::uint64_t offset, std::uint64_t length) {
    return cache_stat(source, offset, length).cached;
}

// A File that borrows `fd` for the page-cache calls (they take a File).
File borrow(int fd, const std::string& name) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) throw_error("dup", name);
    return File::adopt(UniqueFd(copy), name, false);
}

std::string format_rate(double bytes, double seconds) {
    if (seconds <= 0) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GB/s", bytes / seconds / 1e9);
    return buf;
}

}  // namespace

namespace detail {
namespace {

double thread_cpu_seconds() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double seconds(const timeval& tv) noexcept {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

}  // namespace

CostMeter::CostMeter() noexcept : start_(std::chrono::steady_clock::now()) {
    ::getrusage(RUSAGE_THREAD, &usage_);
    cpu_ = thread_cpu_seconds();
}

void CostMeter::finish(TransferStats& stats) const noexcept {
    stats.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    stats.cpu_seconds = thread_cpu_seconds() - cpu_;
    rusage now{};
    ::getrusage(RUSAGE_THREAD, &now);
    // The tick-sampled split, scaled to the precise total (the two clocks
    // disagree by up to a tick, which made "user" exceed "cpu").
    const double user = std::max(0.0, seconds(now.ru_utime) - seconds(usage_.ru_utime));
    const double system = std::max(0.0, seconds(now.ru_stime) - seconds(usage_.ru_stime));
    if (user + system > 0) {
        stats.user_seconds = stats.cpu_seconds * user / (user + system);
        stats.system_seconds = stats.cpu_seconds - stats.user_seconds;
    }
    stats.voluntary_switches = now.ru_nvcsw - usage_.ru_nvcsw;
    stats.involuntary_switches = now.ru_nivcsw - usage_.ru_nivcsw;
}

}  // namespace detail

std::string_view method_name(TransferMethod method) noexcept {
    return info(method).name;
}

std::optional<TransferMethod> parse_method(std::string_view name) noexcept {
    for (const MethodInfo& m : kMethods) {
        if (m.name == name) return m.method;
    }
    return std::nullopt;
}

std::span<const TransferMethod> transfer_methods() noexcept {
    return kConcreteMethods;
}

namespace {

struct stat stat_fd(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw_error("stat", "fd " + std::to_string(fd));
    return st;
}

EndpointKind kind_of(const struct stat& st) noexcept {
    if (S_ISREG(st.st_mode)) return EndpointKind::RegularFile;
    if (S_ISSOCK(st.st_mode)) return EndpointKind::Socket;
    if (S_ISFIFO(st.st_mode)) return EndpointKind::Pipe;
    return EndpointKind::Other;
}

}  // namespace

EndpointKind endpoint_kind(int fd) {
    return kind_of(stat_fd(fd));
}

// nginx: `sendfile on; aio on; directio N;` — below N zero copy through the
// page cache, at or above it direct asynchronous reads that leave the cache
// alone (seed 003: large files would only push hot small files out).
// File -> socket stays sendfile, not splice through an enlarged pipe: on the
// 2-vCPU loopback of docs/BENCHMARKS.md (2026-11-21), 256 MiB hot, medians of
// 5-8 interleaved runs in 11 configurations (receiver buffer, SO_SNDBUF,
// pinning), splice won 5, lost 4, tied 2, by less than repetitions vary
// (1.5-7 GB/s for either); a 1 MiB pipe was no better than 128 KiB. Nothing
// here outweighs nginx's choice, which also costs one system call per 2 GiB.
TransferMethod choose_method(EndpointKind source, EndpointKind destination, std::uint64_t length,
                             const TransferOptions& options) noexcept {
    if (source != EndpointKind::RegularFile) return TransferMethod::Splice;
    if (options.direct_threshold > 0 && length != kTransferToEnd &&
        length >= options.direct_threshold) {
        return TransferMethod::Direct;
    }
    switch (destination) {
        case EndpointKind::RegularFile:
            return TransferMethod::CopyFileRange;
        case EndpointKind::Pipe:
            return TransferMethod::Splice;
        case EndpointKind::Socket:
        case EndpointKind::Other:
            break;
    }
    return TransferMethod::Sendfile;
}

std::optional<TransferMethod> fallback_method(TransferMethod method) noexcept {
    switch (method) {
        case TransferMethod::CopyFileRange:
            return TransferMethod::Sendfile;
        case TransferMethod::Direct:
            return TransferMethod::IoUring;
        case TransferMethod::Auto:
        case TransferMethod::MmapWrite:
        case TransferMethod::Sendfile:
        case TransferMethod::Splice:
        case TransferMethod::IoUring:
        case TransferMethod::MsgZerocopy:
            return TransferMethod::ReadWrite;
        case TransferMethod::ReadWrite:
            break;
    }
    return std::nullopt;
}

TransferStats transfer(const File& source, const File& destination,
                       const TransferOptions& options) {
    return transfer(Endpoint{source.fd(), source.path()},
                    Endpoint{destination.fd(), destination.path()}, options);
}

TransferStats transfer(const Endpoint& source, const Endpoint& destination,
                       const TransferOptions& options) {
    // One fstat of the source gives both its kind and its size.
    const struct stat source_st = stat_fd(source.fd);
    EndpointKind source_kind = kind_of(source_st);
    // A file of a pseudo filesystem that reports size 0 but has content
    // (/proc/self/status) is read like a stream: until read() returns 0.
    if (source_kind == EndpointKind::RegularFile && source_st.st_size == 0 &&
        !borrow(source.fd, source.name).size_known()) {
        source_kind = EndpointKind::Other;
    }
    const EndpointKind destination_kind = endpoint_kind(destination.fd);
    std::uint64_t length = options.length;
    std::optional<File> source_file;
    if (source_kind == EndpointKind::RegularFile) {
        const struct stat& st = source_st;
        const auto size = static_cast<std::uint64_t>(st.st_size);
        if (options.offset > size) {
            throw_error("transfer", source.name, EINVAL,
                        "offset " + std::to_string(options.offset) + " is past end of file (size " +
                            std::to_string(size) + ")");
        }
        length = std::min(length, size - options.offset);
        if (options.measure_cache || options.drop_source_pages) {
            source_file.emplace(borrow(source.fd, source.name));
        }
    } else if (options.offset != 0) {
        throw_error("transfer", source.name, ESPIPE, "a stream source has no offsets");
    }

    TransferStats stats;
    stats.requested = options.method;
    stats.chosen = options.method == TransferMethod::Auto
                       ? choose_method(source_kind, destination_kind, length, options)
                       : options.method;
    if (source_file && options.measure_cache && length > 0) {
        const std::uint64_t page = sys::page_size();
        stats.source_pages =
            (sys::round_up(options.offset + length, page) - sys::round_down(options.offset, page)) /
            page;
        stats.resident_before = resident_pages(*source_file, options.offset, length);
    }

    detail::TransferJob job{.source_fd = source.fd,
                            .destination_fd = destination.fd,
                            .source_kind = source_kind,
                            .destination_kind = destination_kind,
                            .source_offset = options.offset,
                            .destination_offset = options.destination_offset,
                            .remaining = length,
                            .options = options,
                            .note = {}};
    const detail::CostMeter cost;
    TransferMethod method = stats.chosen;
    for (;;) {
        stats.used = method;
        const detail::MethodStatus status = info(method).run(job);
        if (!job.note.empty()) stats.notes.push_back(std::move(job.note));
        job.note.clear();
        if (status.ok() || job.would_block) break;
        const std::optional<TransferMethod> next = fallback_method(method);
        const bool impossible = status.unsupported || means_unsupported(status.error);
        if (!impossible || !options.fallback || !next) {
            const std::string& name =
                status.side == detail::MethodStatus::Side::Source ? source.name : destination.name;
            std::string detail =
                status.detail != nullptr ? status.detail : std::strerror(status.error);
            if (impossible) detail = std::string(method_name(method)) + ": " + detail;
            throw_error(status.operation, name, status.error, detail);
        }
        std::string reason =
            std::string(status.operation) + ": " +
            (status.detail != nullptr ? status.detail : std::strerror(status.error));
        stats.fallbacks.push_back({method, *next, status.error, std::move(reason)});
        method = *next;
    }
    cost.finish(stats);
    stats.bytes = job.moved;
    stats.syscalls = job.syscalls;
    stats.reflinked = job.reflinked;
    stats.would_block = job.would_block;
    stats.zerocopy_completions = job.zerocopy_completions;
    stats.zerocopy_copied = job.zerocopy_copied;

    if (source_file && options.drop_source_pages && length > 0) {
        (void)evict(*source_file, /*write_dirty_first=*/false, options.offset, length);
    }
    if (stats.resident_before) {
        stats.resident_after = resident_pages(*source_file, options.offset, length);
    }
    return stats;
}

TransferStep transfer_step(int source_fd, int destination_fd, EndpointKind destination_kind,
                           std::uint64_t offset, std::uint64_t length,
                           TransferMethod method) noexcept {
    static const TransferOptions kStepOptions = [] {
        TransferOptions o;
        o.return_on_would_block = true;
        o.measure_cache = false;
        return o;
    }();
    TransferStep step;
    if (method == TransferMethod::Auto) {
        step.error = EINVAL;
        step.operation = "transfer";
        return step;
    }
    detail::TransferJob job{.source_fd = source_fd,
                            .destination_fd = destination_fd,
                            .source_kind = EndpointKind::RegularFile,
                            .destination_kind = destination_kind,
                            .source_offset = offset,
                            .destination_offset = 0,
                            .remaining = length,
                            .options = kStepOptions,
                            .note = {}};
    const detail::MethodStatus status = info(method).run(job);
    step.bytes = job.moved;
    step.would_block = job.would_block;
    if (!status.ok()) {
        step.error = status.error;
        step.operation = status.operation;
    }
    return step;
}

std::string summary(const TransferStats& s) {
    std::string line = std::to_string(s.bytes) + " bytes";
    if (s.bytes >= 1024) line += " (" + format_bytes(s.bytes) + ")";
    line += " by " + std::string(method_name(s.used));
    if (s.requested != s.used) line += " (asked: " + std::string(method_name(s.requested)) + ")";
    if (s.reflinked) line += ", reflinked";
    char buf[256];
    std::snprintf(buf, sizeof buf, " in %.6f s, %s; cpu %.6f s", s.wall_seconds,
                  format_rate(static_cast<double>(s.bytes), s.wall_seconds).c_str(), s.cpu_seconds);
    line += buf;
    if (s.user_seconds + s.system_seconds > 0) {
        std::snprintf(buf, sizeof buf, " (user %.6f system %.6f)", s.user_seconds,
                      s.system_seconds);
        line += buf;
    }
    std::snprintf(buf, sizeof buf, "; %s; context switches %ld voluntary %ld involuntary",
                  counted(s.syscalls, "syscall").c_str(), s.voluntary_switches,
                  s.involuntary_switches);
    line += buf;
    if (s.source_pages) {
        std::snprintf(buf, sizeof buf, "; source pages cached %llu/%llu before, %llu after",
                      static_cast<unsigned long long>(*s.resident_before),
                      static_cast<unsigned long long>(*s.source_pages),
                      static_cast<unsigned long long>(*s.resident_after));
        line += buf;
    }
    if (s.zerocopy_completions > 0) {
        std::snprintf(buf, sizeof buf, "; zero-copy sends %llu, copied by the kernel %llu",
                      static_cast<unsigned long long>(s.zerocopy_completions),
                      static_cast<unsigned long long>(s.zerocopy_copied));
        line += buf;
    }
    for (const TransferFallback& f : s.fallbacks) {
        line += "; fell back " + std::string(method_name(f.from)) + " -> " +
                std::string(method_name(f.to)) + " (" + f.reason + ")";
    }
    for (const std::string& note : s.notes) line += "; " + note;
    return line;
}

}  // namespace pagewire
