// Zero-copy transfer: move a byte range from a file (or a socket or pipe) to
// a file, socket or pipe with one call, by a chosen method or chosen for you
// the way nginx does with `sendfile on; aio on; directio N;` (seed 003, S14, S16, S17).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <pagewire/config.hpp>
#include <pagewire/file.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pagewire {

// How bytes move. Each method is one unit in src/transfer_*.cpp; the policy
// that picks one for Auto and the order of fallbacks live in src/transfer.cpp.
enum class TransferMethod {
    Auto,           // the policy below picks one
    ReadWrite,      // read(2) into a buffer, write(2) it out: 2 CPU copies, 2 syscalls per buffer
    MmapWrite,      // mmap the source, write(2) from the mapping: 1 CPU copy
    Sendfile,       // sendfile(2): in the kernel, no user buffer
    Splice,         // splice(2) through a pipe (source or destination may be the pipe itself)
    CopyFileRange,  // copy_file_range(2), file to file; reflink (FICLONE) first when asked
    IoUring,        // io_uring reads and writes with registered buffers, pipelined
    Direct,         // IoUring with O_DIRECT source reads: leaves the source out of the page cache
    MsgZerocopy,    // send(MSG_ZEROCOPY) from a mapping of the source; sockets only
};

// Where bytes come from or go to, as fstat(2) sees the descriptor.
enum class EndpointKind { RegularFile, Socket, Pipe, Other };

// Command-line names: "auto", "read-write", "mmap-write", "sendfile", "splice",
// "copy-file-range", "io-uring", "direct", "msg-zerocopy".
std::string_view method_name(TransferMethod method) noexcept;
std::optional<TransferMethod> parse_method(std::string_view name) noexcept;
// Every method other than Auto, in declaration order.
std::span<const TransferMethod> transfer_methods() noexcept;

inline constexpr std::uint64_t kTransferToEnd = std::numeric_limits<std::uint64_t>::max();
inline constexpr std::size_t kDefaultTransferBufferBytes = 128 * 1024;
// nginx's `directio` in seed 003's example is 1024m: files at least this large
// go the direct way under Auto.
inline constexpr std::uint64_t kDefaultDirectThreshold = std::uint64_t{1} << 30;

// io-uring and direct to a socket: send with IORING_OP_SEND_ZC (the kernel
// sends from the registered buffers without copying them and says when each
// buffer may be reused) instead of a write.
enum class ZeroCopySend {
    Auto,    // to a TCP/UDP peer on another host; not to loopback, where the
             // kernel copies anyway and the notifications only cost
    Always,  // whenever the socket takes it (falls back to writes, with a note, if not)
    Never,
};

struct TransferOptions {
    TransferMethod method = TransferMethod::Auto;
    // Source range. Files: length is clamped to end of file; an offset past
    // end of file is EINVAL. Streams: offset must be 0; kTransferToEnd reads
    // until end of stream, a length reads exactly that much (fewer is an error).
    std::uint64_t offset = 0;
    std::uint64_t length = kTransferToEnd;
    // Where the bytes land in a regular-file destination (ignored for streams).
    std::uint64_t destination_offset = 0;
    // read-write's buffer, io-uring's chunk (direct: at least 1 MiB), splice's pipe size.
    std::size_t buffer_bytes = kDefaultTransferBufferBytes;
    // Auto: a file source of at least this many bytes goes Direct; 0 = never.
    std::uint64_t direct_threshold = kDefaultDirectThreshold;
    bool reflink = false;            // CopyFileRange: try FICLONE / FICLONERANGE first
    bool fallback = true;            // false: an impossible method is an error, not the next method
    bool drop_source_pages = false;  // afterwards, POSIX_FADV_DONTNEED the source range
    ZeroCopySend send_zc = ZeroCopySend::Auto;  // io-uring / direct to a socket
    bool measure_cache = true;  // fill TransferStats::resident_* (cachestat, file sources)
    // Event loops: when a non-blocking destination is full (EAGAIN), return
    // with the bytes moved so far and TransferStats::would_block set instead
    // of poll(2)ing. Honoured by sendfile, read-write and mmap-write from a
    // file source and by splice when one end is a pipe (there EAGAIN from
    // either end returns); the other methods (and splice through its private
    // pipe) still wait.
    bool return_on_would_block = false;
    // Told the bytes done so far between chunks (from the calling thread; it
    // must not throw). Setting it caps one system call at 16 MiB, so that a
    // blocking sendfile or splice reports as it goes.
    std::function<void(std::uint64_t done, std::uint64_t total)> progress;
};

// A method that could not run here, and the one run instead.
struct TransferFallback {
    TransferMethod from;
    TransferMethod to;
    int error;           // errno that ruled `from` out
    std::string reason;  // e.g. "copy_file_range: Invalid cross-device link"
};

struct TransferStats {
    TransferMethod requested = TransferMethod::Auto;
    TransferMethod chosen = TransferMethod::Auto;  // requested, or what Auto picked
    TransferMethod used = TransferMethod::Auto;    // the method that moved the last bytes
    std::vector<TransferFallback> fallbacks;       // in the order they happened
    std::vector<std::string> notes;                // e.g. "reflink: Operation not supported"
    std::uint64_t bytes = 0;
    std::uint64_t syscalls = 0;  // data-path system calls the engine made (io_uring_enter counts 1)
    double wall_seconds = 0;
    double cpu_seconds = 0;  // this thread's CPU time, CLOCK_THREAD_CPUTIME_ID (precise)
    // cpu_seconds split into user and system time in the proportion
    // getrusage(RUSAGE_THREAD) saw (it samples at scheduler ticks), so that
    // user + system == cpu; both 0 when the transfer was shorter than a tick.
    double user_seconds = 0;
    double system_seconds = 0;
    long voluntary_switches = 0;
    long involuntary_switches = 0;
    bool reflinked = false;    // CopyFileRange shared the blocks (FICLONE)
    bool would_block = false;  // return_on_would_block: stopped early, the destination was full
    std::uint64_t zerocopy_completions = 0;  // MSG_ZEROCOPY / SEND_ZC sends completed
    std::uint64_t zerocopy_copied = 0;       // ... of which the kernel completed by copying
    // File sources with measure_cache: pages of the range and how many were
    // in the page cache before and after (after drop_source_pages, if set).
    std::optional<std::uint64_t> source_pages;
    std::optional<std::uint64_t> resident_before;
    std::optional<std::uint64_t> resident_after;
};

// A descriptor and the name used for it in error messages.
struct Endpoint {
    int fd;
    std::string name;
};

// Moves the range and returns what happened. Throws pagewire::Error naming the
// operation and the endpoint at fault ("write dst.bin: File too large"); bytes
// already written stay written. Writing to a socket or pipe whose reader left
// raises SIGPIPE unless the caller ignores it (then EPIPE is the error).
// Non-blocking descriptors are waited on with poll(2) unless
// options.return_on_would_block says to return.
TransferStats transfer(const Endpoint& source, const Endpoint& destination,
                       const TransferOptions& options = {});
TransferStats transfer(const File& source, const File& destination,
                       const TransferOptions& options = {});

// The hot path of an event loop (a file server's sendfile): one pass of
// `method` (not Auto) over [offset, offset+length) of a regular file, with
// return_on_would_block and none of transfer()'s fstat, statistics or
// fallbacks. The caller knows the kinds; a source that ends early is EIO.
struct TransferStep {
    std::uint64_t bytes = 0;     // moved to the destination by this call
    bool would_block = false;    // the destination is full: wait for POLLOUT, call again
    int error = 0;               // errno of a failure (bytes may still be > 0)
    const char* operation = "";  // the system call that failed
};
TransferStep transfer_step(int source_fd, int destination_fd, EndpointKind destination_kind,
                           std::uint64_t offset, std::uint64_t length,
                           TransferMethod method = TransferMethod::Sendfile) noexcept;

// The policy: what Auto runs for these endpoints and this many bytes.
// Stream source: splice. File source of at least direct_threshold bytes: direct.
// Otherwise by destination: file copy-file-range, pipe splice, socket or other sendfile.
TransferMethod choose_method(EndpointKind source, EndpointKind destination, std::uint64_t length,
                             const TransferOptions& options) noexcept;
// The method run when `method` is impossible here; nullopt after read-write.
std::optional<TransferMethod> fallback_method(TransferMethod method) noexcept;

EndpointKind endpoint_kind(int fd);

// One line: bytes, method used (and requested), fallbacks, time, rate, CPU,
// syscalls, context switches and page-cache residency.
std::string summary(const TransferStats& stats);

}  // namespace pagewire
