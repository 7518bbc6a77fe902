// pagewire::Log — a persistent message log in memory-mapped segment files,
// Kafka's on-disk format (S18): RecordBatch v2 batches in segments named by
// their 20-digit base offset (.log), each with a sparse offset index (.index)
// and a time index (.timeindex).
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <pagewire/config.hpp>
#include <pagewire/error.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pagewire {

// CRC-32C (Castagnoli), the checksum of RecordBatch v2: the CPU's crc32
// instruction (SSE4.2) when it has one, a table otherwise. `crc` continues a
// previous result (0 to start).
std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0) noexcept;
// True when crc32c uses the CPU instruction.
bool crc32c_hardware() noexcept;

// ---- Kafka RecordBatch v2 (magic 2), big-endian, 61-byte header ----------

inline constexpr std::size_t kBatchHeaderSize = 61;
// Bytes before batchLength's count starts (baseOffset + batchLength).
inline constexpr std::size_t kBatchLogOverhead = 12;
// The CRC covers attributes .. end of batch.
inline constexpr std::size_t kBatchCrcStart = 21;

struct RecordHeader {
    std::string_view key;
    std::optional<std::string_view> value;  // nullopt: a null value
};

// One record to append; nullopt key or value is Kafka's null (length -1).
struct Record {
    std::optional<std::string_view> key;
    std::optional<std::string_view> value;
    std::span<const RecordHeader> headers = {};
};

// A decoded record: views into the batch it came from.
struct RecordView {
    std::int64_t offset = 0;
    std::int64_t timestamp = 0;  // ms since the epoch
    std::optional<std::string_view> key;
    std::optional<std::string_view> value;
    std::uint32_t header_count = 0;
    std::string_view headers;  // the encoded headers (header_count of them)
};

// A view of one encoded RecordBatch v2 (not owned). Accessors read the
// header; they do not validate (validate() does).
class BatchView {
  public:
    BatchView() = default;
    explicit BatchView(std::span<const std::byte> bytes) : bytes_(bytes) {}

    std::span<const std::byte> bytes() const noexcept { return bytes_; }
    std::int64_t base_offset() const noexcept;
    std::int32_t batch_length() const noexcept;  // bytes after the first 12
    std::int8_t magic() const noexcept;
    std::uint32_t crc() const noexcept;
    std::int16_t attributes() const noexcept;
    std::int32_t last_offset_delta() const noexcept;
    std::int64_t last_offset() const noexcept { return base_offset() + last_offset_delta(); }
    std::int64_t base_timestamp() const noexcept;
    std::int64_t max_timestamp() const noexcept;
    std::int64_t producer_id() const noexcept;
    std::int16_t producer_epoch() const noexcept;
    std::int32_t base_sequence() const noexcept;
    std::int32_t record_count() const noexcept;
    int compression() const noexcept { return attributes() & 7; }  // 0: none
    std::size_t size() const noexcept { return bytes_.size(); }

    // Empty string when the header and CRC are sound and the view holds
    // exactly one batch; otherwise why not ("crc mismatch: stored ... computed ...").
    std::string validate() const;

    // Decodes the next record starting at `*cursor` (0 for the first, then
    // as left by the previous call). False at the end; throws Error(EBADMSG)
    // on a malformed record or a compressed batch.
    bool next_record(std::size_t* cursor, RecordView* out) const;

  private:
    std::span<const std::byte> bytes_;
};

// Encoded size of one batch holding `records` (no I/O).
std::size_t encoded_batch_size(std::span<const Record> records) noexcept;
// Encodes records as one RecordBatch v2 into out (exactly
// encoded_batch_size(records) bytes) with every record at `timestamp_ms`,
// producerId -1, and the CRC computed. Returns the bytes written.
std::size_t encode_batch(std::span<std::byte> out, std::int64_t base_offset,
                         std::int64_t timestamp_ms, std::span<const Record> records) noexcept;

// ---- The log --------------------------------------------------------------

// What an append that returned has promised:
enum class Durability {
    // In the page cache only. Survives the writer's crash or kill -9 (the
    // kernel keeps the pages); lost on a power failure or kernel crash.
    None,
    // As None, and a background thread writes data to disk every
    // flush_interval (or sooner after flush_bytes): a power failure loses at
    // most about that much (RocketMQ's asynchronous flush).
    Interval,
    // On stable storage (fdatasync; a new segment's directory entry fsync'd)
    // before append returns: survives a power failure.
    Every,
};

// How appends reach the segment file; both write the same bytes.
enum class AppendPath {
    Auto,    // per batch, the one measured faster: mmap below 4 KiB, pwrite above (log.cpp)
    Mmap,    // encode straight into a shared writable mapping of the preallocated segment
    Pwrite,  // encode into a buffer, then pwrite(2) it (Kafka's way)
};

struct LogOptions {
    bool create = true;      // create the directory and the first segment if missing
    bool read_only = false;  // a reader: no lock, no recovery, follows a writer's appends
    std::uint64_t segment_bytes = 1ULL << 30;    // roll when a segment would pass this
    std::chrono::milliseconds segment_age{0};    // roll a segment older than this (0: never)
    std::uint64_t retention_bytes = 0;           // keep total bytes under this (0: unbounded)
    std::chrono::milliseconds retention_age{0};  // drop segments whose newest record is older
    Durability durability = Durability::None;
    std::chrono::milliseconds flush_interval{1000};  // Interval: at most this long unflushed
    std::uint64_t flush_bytes = 0;  // Interval: flush after this many (0: time only)
    AppendPath path = AppendPath::Auto;
    std::uint32_t index_interval_bytes = 4096;  // one index entry per this many bytes
    // Pre-touch: a background thread makes the next segment ahead of the roll
    // (files preallocated, mapped, every page faulted in writable) and trims
    // the replaced one after it, so a roll only renames files. Costs a
    // thread, a segment of page cache held ahead and the writeback of its
    // zeros; the recovery point may lag a roll behind. Off by default (why: log.cpp).
    bool pretouch = false;
};

struct AppendResult {
    std::int64_t base_offset = 0;
    std::int64_t last_offset = 0;
    std::uint64_t position = 0;  // file position of the batch in its segment
};

// A contiguous run of whole batches inside one segment: a zero-copy view of
// the mapped bytes and the same bytes as (fd, position, length) for
// sendfile(2). Keeps the segment open and mapped while it lives, even if
// retention deletes the segment's files meanwhile.
struct LogSlice {
    std::int64_t first_offset = 0;  // base offset of the first batch (may be < the asked offset)
    std::int64_t next_offset = 0;   // offset after the last batch in the slice
    int fd = -1;                    // the segment file, open for reading
    std::uint64_t position = 0;
    std::span<const std::byte> bytes;  // size() == the length for sendfile
    std::shared_ptr<const void> keep_alive;

    bool empty() const noexcept { return bytes.empty(); }
    // Each batch of the slice in turn: returns false when none is left.
    bool next_batch(std::size_t* cursor, BatchView* out) const noexcept;
    // f(record) for every record of the slice, in offset order (a compressed
    // batch's records are not decoded here: it gives none).
    template <class F>
    void for_each_record(F&& f) const {
        std::size_t cursor = 0;
        BatchView b;
        while (next_batch(&cursor, &b)) {
            std::size_t at = 0;
            RecordView r;
            while (b.next_record(&at, &r)) f(r);
        }
    }
};

struct LogSegmentInfo {
    std::int64_t base_offset = 0;
    std::int64_t next_offset = 0;  // one past the segment's last offset
    std::uint64_t bytes = 0;       // valid bytes (without preallocated space)
    std::uint64_t file_bytes = 0;  // size on the file system (with preallocation)
    std::int64_t max_timestamp = -1;
    std::uint32_t index_entries = 0;
    std::string path;  // the .log file
};

// One log directory. A writer (read_only false) takes the directory's lock
// (an flock(2) on DIR/.lock, released by the kernel when the writer dies,
// even by kill -9), recovers after an unclean stop, and appends; any number
// of read_only Logs in any process read and follow it.
//
// Threads: append, append_batch, flush, retain and close belong to one
// thread; read, offset_for_time, wait_for, segments and the offsets may be
// called from any thread meanwhile. Cold paths throw Error.
class Log {
  public:
    // Opens (or, with options.create, creates) the log in `dir`. A writer
    // fails with EWOULDBLOCK when another writer holds the lock, with
    // EBADMSG for a directory that holds foreign files or is not a log.
    static Log open(const std::string& dir, const LogOptions& options = {});

    Log(Log&&) noexcept;
    Log& operator=(Log&&) noexcept;
    ~Log();  // close(), errors swallowed

    // Appends records as one batch; returns its offsets. Durable as
    // options().durability says when it returns.
    AppendResult append(std::span<const Record> records, std::int64_t timestamp_ms = -1);
    // Appends a batch a producer encoded (RecordBatch v2, possibly
    // compressed): validates it (EBADMSG if not sound), then stores it
    // verbatim except baseOffset, which the log assigns.
    AppendResult append_batch(std::span<const std::byte> batch);
    // Writes appended data to disk now (fdatasync) and records the recovery point.
    void flush();
    // Deletes whole segments past the retention limits, never the active
    // one; returns how many were deleted.
    std::size_t retain();
    // Clean close: trims the preallocated tails, writes the recovery point,
    // marks the shutdown clean, releases the lock. Idempotent.
    void close();

    // Whole batches from the one holding `offset`, up to about max_bytes
    // (always at least one batch), within one segment. Empty when offset ==
    // end_offset(); Error(ERANGE) outside [start_offset(), end_offset()].
    LogSlice read(std::int64_t offset, std::size_t max_bytes = 1 << 20) const;
    // The slice that follows `prev` (one read() or read_next() returned),
    // as read(prev.next_offset, max_bytes) would give it, but starting at
    // the byte after prev's last batch: no segment search, no index lookup
    // (a tailer's cursor, Chronicle Queue's way). Where prev's segment has
    // no more batches (a roll) it looks the offset up as read() does. When
    // nothing new has arrived the result is empty and still continues from
    // where prev ended, so a tail loop is wait_for, read_next, repeat. A
    // default LogSlice with next_offset set is a cursor at that offset.
    LogSlice read_next(const LogSlice& prev, std::size_t max_bytes = 1 << 20) const;
    // The first offset whose record timestamp is >= timestamp_ms, or
    // end_offset() when there is none.
    std::int64_t offset_for_time(std::int64_t timestamp_ms) const;

    // Blocks until end_offset() > offset or the timeout passes (futex on
    // DIR/.tail, shared with the writer's process; busy-polls first for
    // `spin`). True when data is there.
    bool wait_for(std::int64_t offset, std::chrono::nanoseconds timeout,
                  std::chrono::nanoseconds spin = std::chrono::nanoseconds{0}) const;

    std::int64_t start_offset() const;  // the first offset still kept
    std::int64_t end_offset() const;    // the next offset to be assigned (high watermark)
    // Segments below this offset were sealed and checked; an unclean open scans from here.
    std::int64_t recovery_point() const;
    std::vector<LogSegmentInfo> segments() const;
    const std::string& dir() const noexcept;
    const LogOptions& options() const noexcept;
    bool clean_open() const noexcept;  // the previous writer closed cleanly (no recovery ran)

    struct Impl;

  private:
    explicit Log(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Damage found by verify_log: where and what.
struct LogDamage {
    std::string path;            // the file
    std::uint64_t position = 0;  // byte position in it
    std::string reason;
};

// Checks every batch (length, magic, CRC-32C, contiguous offsets) and every
// index entry of the log in `dir` without changing anything; an empty result
// means sound. Does not need (or take) the writer's lock.
std::vector<LogDamage> verify_log(const std::string& dir);

}  // namespace pagewire
