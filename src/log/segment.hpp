// One segment of a pagewire::Log: the .log file of batches and its two
// sparse indexes, each memory-mapped; and the scan that validates batches
// (recovery, verify). Internal, not installed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <pagewire/file.hpp>
#include <pagewire/log.hpp>
#include <pagewire/mapping.hpp>
#include <string>

namespace pagewire::logimpl {

inline constexpr std::size_t kIndexEntryBytes =
    8;  // relative offset u32, position u32 (big-endian)
inline constexpr std::size_t kTimeEntryBytes = 12;  // timestamp i64, relative offset u32
// Kafka's AbstractIndex: lookups for recent offsets stay in the last 8 KiB of
// entries, so the pages they touch stay in the cache however large the index is.
inline constexpr std::size_t kWarmIndexEntries = 8192 / kIndexEntryBytes;

std::string segment_path(const std::string& dir, std::int64_t base, const char* ext);
// DIR/.next<ext>: a spare segment being prepared for the next roll (pre-touch).
std::string spare_path(const std::string& dir, const char* ext);
inline constexpr const char* kSegmentExtensions[] = {".log", ".index", ".timeindex"};

// Result of walking a segment's batches.
struct ScanResult {
    std::uint64_t valid_end = 0;  // position after the last sound batch
    std::int64_t next_offset = 0;
    std::string damage;  // why the walk stopped before the end ("" if it did not)
};

// A segment and the mapping of each of its files. Written by the log's one
// writer thread; read by any thread: the atomics publish what readers may use
// (release by the writer after the bytes are in place, acquire by readers).
struct Segment {
    std::int64_t base = 0;
    std::string path;                    // the .log file
    bool writer = false;                 // opened by the log's writer (mapped read-write)
    std::optional<File> file;            // the .log file (read-write for the writer)
    Mapping map;                         // the whole file, preallocation included
    std::atomic<std::uint64_t> size{0};  // writer: valid bytes; reader: bytes known sealed
    std::atomic<std::int64_t> next{0};   // offset after the last batch (writer; reader once sealed)
    std::atomic<std::int64_t> max_ts{-1};
    std::int64_t max_ts_offset = 0;  // writer: batch where max_ts was reached
    bool sealed = false;             // rolled: size and next are final

    std::optional<File> index_file;
    Mapping index_map;
    std::atomic<std::uint32_t> index_entries{0};  // writer's count; readers search for the end
    std::optional<File> time_file;
    Mapping time_map;
    std::atomic<std::uint32_t> time_entries{0};
    std::uint64_t since_index = 0;  // writer: bytes appended since the last index entry
    std::int64_t created_ms = 0;    // writer: when the segment got its first batch (age roll)

    // Creates the files of a new segment with `prealloc` bytes reserved.
    static std::shared_ptr<Segment> create(const std::string& dir, std::int64_t base,
                                           std::uint64_t prealloc, std::uint64_t index_bytes);
    // Creates a spare segment for a later roll (pre-touch): the same files
    // under the names of spare_path(), with no base offset yet.
    static std::shared_ptr<Segment> create_spare(const std::string& dir, std::uint64_t prealloc,
                                                 std::uint64_t index_bytes);
    // Gives a spare its base offset by renaming its files to the segment's
    // names: the indexes first and the .log last, so a crash in between
    // leaves only files a later open ignores or rebuilds.
    void adopt(const std::string& dir, std::int64_t new_base);
    // Faults every page of the three files in writable now, so appends into
    // them take no page fault (RocketMQ's warmMappedFile).
    void touch();
    // The same for the .log's bytes [from, from + length) only, rounded out
    // to pages: a chunk of the active segment ahead of its writer (safe
    // while the writer appends, the contents are not touched).
    void touch_log(std::uint64_t from, std::uint64_t length);
    // Opens an existing segment: read-write (the writer, with `prealloc` bytes
    // reserved for the active one) or read-only.
    static std::shared_ptr<Segment> open(const std::string& dir, std::int64_t base, bool writer,
                                         std::uint64_t prealloc, std::uint64_t index_bytes);

    // Entries in use: the writer's count, or found by a binary search for
    // the first unused (all-zero) entry, for a reader of a growing index.
    std::uint32_t offset_entries() const noexcept;
    std::uint32_t time_entries_now() const noexcept;
    // Entry i of the offset index (relative offset, position) or of the time
    // index (timestamp, relative offset); false when it is past the end of
    // the file (a reader's view of an index the writer has cut since).
    bool offset_entry(std::uint32_t i, std::uint32_t& rel, std::uint32_t& position) const noexcept;
    bool time_entry(std::uint32_t i, std::int64_t& ts, std::uint32_t& rel) const noexcept;
    // The last index entry at or below `offset`: (relative offset, position).
    std::pair<std::uint32_t, std::uint32_t> lookup(std::int64_t offset) const noexcept;
    // Position of the last time-index entry with timestamp < ts, as an offset.
    std::int64_t offset_before_time(std::int64_t ts) const noexcept;
    void add_index_entry(std::int64_t offset, std::uint64_t position) noexcept;
    void add_time_entry(std::int64_t ts, std::int64_t offset) noexcept;
    std::int64_t last_time_entry_ts() const noexcept;

    // Rebuilds both indexes from the sound batches in [0, limit) (writer,
    // recovery) in the one pass that checks them; says where they end.
    ScanResult rebuild_indexes(std::uint32_t interval, std::uint64_t limit);
    // Cuts the preallocated tails of the three files to what is in use (roll, close).
    void trim();
};

// Walks the batches of data[from, size) expecting base offset `expected`
// first, checking length, magic, CRC-32C and contiguity; calls on_batch for
// each sound one. Stops at the first bad byte. Zero bytes where a batch would
// start count as preallocated space; with check_zero_tail (verify) all of the
// rest must be zero too, else it is damage (recovery cuts there either way and
// need not read what it cuts).
ScanResult scan_batches(const std::byte* data, std::uint64_t size, std::uint64_t from,
                        std::int64_t expected, bool check_zero_tail,
                        const std::function<void(std::uint64_t pos, const BatchView&)>& on_batch);

}  // namespace pagewire::logimpl
