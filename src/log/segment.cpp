// Segment files, their sparse indexes, and the batch scan of recovery and verify.
#include "log/segment.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <pagewire/guard.hpp>

#include "log/wire.hpp"

namespace pagewire::logimpl {
namespace {

using wire::get_be;
using wire::put_be;

// An index file's mapping: read-write with `bytes` reserved for the writer,
// the file as it is for a reader (an empty file maps as an empty view).
void open_index(const std::string& path, bool writer, bool create, std::uint64_t bytes,
                std::optional<File>& file, Mapping& map) {
    if (writer) {
        // A new segment's index may be left over from a segment whose .log
        // was deleted first (a crash mid-delete): it is stale, so it is emptied.
        file = File::create(path, create ? CreateMode::Truncate : CreateMode::CreateOrOpen);
        if (file->size() < bytes) file->allocate(0, bytes);
        map = Mapping::map(*file, Access::ReadWrite);
    } else {
        file = File::open(path);
        map = Mapping::map(*file, Access::ReadOnly);
    }
}

// Copies index entry i (n bytes) of `map` to out. The writer owns its
// mapping; a reader's may be cut under it (the writer trims a segment's
// indexes when it rolls), so a reader copies under the SIGBUS guard: false
// when the entry is no longer in the file.
bool copy_entry(const Mapping& map, bool writer, std::size_t entry_bytes, std::uint32_t i,
                std::byte* out) noexcept {
    std::size_t at = std::size_t{i} * entry_bytes;
    if (at + entry_bytes > map.size()) return false;
    if (writer) {
        std::memcpy(out, map.data() + at, entry_bytes);
        return true;
    }
    return guarded_copy(out, map.data() + at, entry_bytes).ok();
}

// Index of the first all-zero (unused) entry at or after `first`: entries in
// use are never all zero, except the offset index's entry 0, (0, 0), which
// is right for every segment and so counts as used (first = 1). An entry a
// reader can no longer read counts as unused.
std::uint32_t find_end(const Mapping& map, bool writer, std::size_t entry_bytes,
                       std::uint32_t first) noexcept {
    auto slots = static_cast<std::uint32_t>(map.size() / entry_bytes);
    static constexpr std::byte kZero[16] = {};
    std::byte entry[16];
    std::uint32_t lo = first, hi = slots;
    if (slots == 0) return 0;
    while (lo < hi) {
        std::uint32_t mid = lo + (hi - lo) / 2;
        if (!copy_entry(map, writer, entry_bytes, mid, entry) ||
            std::memcmp(entry, kZero, entry_bytes) == 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

// Empties an index before a rebuild without writing its pages: the file is
// cut to nothing and its blocks reserved again (fallocate: read as zeros,
// never written), so the rebuild dirties only the pages of the entries it
// writes, not the whole preallocated file. The reservation stays so that a
// write through the mapping cannot meet a full disk (SIGBUS).
void reset_index(File& file, Mapping& map) {
    std::uint64_t bytes = map.size();
    map = Mapping();
    file.resize(0);
    if (bytes == 0) return;
    file.allocate(0, bytes);
    map = Mapping::map(file, Access::ReadWrite);
}

bool all_zero(const std::byte* p, const std::byte* end) noexcept {
    return std::all_of(p, end, [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

std::string segment_path(const std::string& dir, std::int64_t base, const char* ext) {
    char name[40];
    std::snprintf(name, sizeof name, "/%020lld%s", static_cast<long long>(base), ext);
    return dir + name;
}

namespace {

// The files of a new segment, named by `path_of(ext)`.
std::shared_ptr<Segment> create_files(const std::function<std::string(const char*)>& path_of,
                                      std::int64_t base, std::uint64_t prealloc,
                                      std::uint64_t index_bytes) {
    auto s = std::make_shared<Segment>();
    s->base = base;
    s->path = path_of(".log");
    s->writer = true;
    s->next = base;
    try {
        s->file = File::create(s->path, CreateMode::CreateExclusive);
        s->file->allocate(0, prealloc);
        s->map = Mapping::map(*s->file, Access::ReadWrite);
        open_index(path_of(".index"), true, true, index_bytes, s->index_file, s->index_map);
        open_index(path_of(".timeindex"), true, true,
                   index_bytes / kIndexEntryBytes * kTimeEntryBytes, s->time_file, s->time_map);
    } catch (...) {
        // A half-made segment (disk full) must not be found by the next open.
        for (const char* ext : kSegmentExtensions) std::remove(path_of(ext).c_str());
        throw;
    }
    return s;
}

}  // namespace

std::string spare_path(const std::string& dir, const char* ext) {
    return dir + "/.next" + ext;
}

std::shared_ptr<Segment> Segment::create(const std::string& dir, std::int64_t base,
                                         std::uint64_t prealloc, std::uint64_t index_bytes) {
    return create_files([&](const char* ext) { return segment_path(dir, base, ext); }, base,
                        prealloc, index_bytes);
}

std::shared_ptr<Segment> Segment::create_spare(const std::string& dir, std::uint64_t prealloc,
                                               std::uint64_t index_bytes) {
    return create_files([&](const char* ext) { return spare_path(dir, ext); }, 0, prealloc,
                        index_bytes);
}

void Segment::adopt(const std::string& dir, std::int64_t new_base) {
    for (const char* ext : {".index", ".timeindex", ".log"}) {
        std::string from = spare_path(dir, ext), to = segment_path(dir, new_base, ext);
        if (std::rename(from.c_str(), to.c_str()) != 0) throw_error("rename", from);
    }
    base = new_base;
    next = new_base;
    path = segment_path(dir, new_base, ".log");
}

namespace {

void populate_write(Mapping& m, std::size_t from, std::size_t length) {
    const std::size_t page = Mapping::page_size();
    from -= from % page;
    length = std::min(m.size() - from, (length + page - 1) / page * page);
    try {
        m.advise(Advice::PopulateWrite, from, length);
    } catch (const Error& e) {
        if (e.error_number() != EINVAL) throw;
        // Before Linux 5.14: an atomic add of zero to each page faults it in
        // writable without changing a byte, even under a concurrent writer.
        for (std::size_t at = from; at < from + length; at += page)
            std::atomic_ref(*reinterpret_cast<std::uint32_t*>(m.data() + at))
                .fetch_add(0, std::memory_order_relaxed);
    }
}

}  // namespace

void Segment::touch() {
    for (Mapping* m : {&map, &index_map, &time_map})
        if (!m->empty()) populate_write(*m, 0, m->size());
}

void Segment::touch_log(std::uint64_t from, std::uint64_t length) {
    if (from < map.size()) populate_write(map, from, length);
}

std::shared_ptr<Segment> Segment::open(const std::string& dir, std::int64_t base, bool writer,
                                       std::uint64_t prealloc, std::uint64_t index_bytes) {
    auto s = std::make_shared<Segment>();
    s->base = base;
    s->path = segment_path(dir, base, ".log");
    s->writer = writer;
    s->next = base;
    s->file = File::open(s->path, writer ? OpenMode::ReadWrite : OpenMode::ReadOnly);
    std::uint64_t size = s->file->size();
    s->size = size;
    if (writer && size < prealloc) s->file->allocate(size, prealloc - size);
    s->map = Mapping::map(*s->file, writer ? Access::ReadWrite : Access::ReadOnly);
    open_index(segment_path(dir, base, ".index"), writer, false, writer ? index_bytes : 0,
               s->index_file, s->index_map);
    open_index(segment_path(dir, base, ".timeindex"), writer, false,
               writer ? index_bytes / kIndexEntryBytes * kTimeEntryBytes : 0, s->time_file,
               s->time_map);
    s->index_entries = find_end(s->index_map, writer, kIndexEntryBytes, 1);
    s->time_entries = find_end(s->time_map, writer, kTimeEntryBytes, 0);
    return s;
}

std::uint32_t Segment::offset_entries() const noexcept {
    return writer ? index_entries.load(std::memory_order_acquire)
                  : find_end(index_map, false, kIndexEntryBytes, 1);
}

std::uint32_t Segment::time_entries_now() const noexcept {
    return writer ? time_entries.load(std::memory_order_acquire)
                  : find_end(time_map, false, kTimeEntryBytes, 0);
}

bool Segment::offset_entry(std::uint32_t i, std::uint32_t& rel,
                           std::uint32_t& position) const noexcept {
    std::byte e[kIndexEntryBytes];
    if (!copy_entry(index_map, writer, kIndexEntryBytes, i, e)) return false;
    rel = get_be<std::uint32_t>(e);
    position = get_be<std::uint32_t>(e + 4);
    return true;
}

bool Segment::time_entry(std::uint32_t i, std::int64_t& ts, std::uint32_t& rel) const noexcept {
    std::byte e[kTimeEntryBytes];
    if (!copy_entry(time_map, writer, kTimeEntryBytes, i, e)) return false;
    ts = get_be<std::int64_t>(e);
    rel = get_be<std::uint32_t>(e + 8);
    return true;
}

std::pair<std::uint32_t, std::uint32_t> Segment::lookup(std::int64_t offset) const noexcept {
    std::uint32_t n = offset_entries();
    auto rel = static_cast<std::uint32_t>(std::max<std::int64_t>(0, offset - base));
    // An entry a reader can no longer read (cut by a roll) sorts after every
    // offset; (0, 0), the start of the segment, is always a sound answer.
    auto entry = [&](std::uint32_t i) {
        std::uint32_t r = 0, pos = 0;
        return offset_entry(i, r, pos) ? r : UINT32_MAX;
    };
    if (n == 0 || entry(0) > rel) return {0, 0};
    // Binary search for the last entry <= rel, in the warm tail when it is there.
    std::uint32_t lo = 0, hi = n;
    if (n > kWarmIndexEntries && entry(n - kWarmIndexEntries) <= rel)
        lo = n - kWarmIndexEntries;
    else if (n > kWarmIndexEntries)
        hi = n - kWarmIndexEntries;
    while (hi - lo > 1) {
        std::uint32_t mid = lo + (hi - lo) / 2;
        if (entry(mid) <= rel)
            lo = mid;
        else
            hi = mid;
    }
    std::uint32_t r = 0, pos = 0;
    if (!offset_entry(lo, r, pos)) return {0, 0};
    return {r, pos};
}

std::int64_t Segment::offset_before_time(std::int64_t ts) const noexcept {
    std::uint32_t n = time_entries_now();
    // An entry a reader can no longer read counts as later than every time.
    auto ts_at = [&](std::uint32_t i) {
        std::int64_t t = 0;
        std::uint32_t r = 0;
        return time_entry(i, t, r) ? t : INT64_MAX;
    };
    std::uint32_t lo = 0, hi = n;  // find the first entry with timestamp >= ts
    while (lo < hi) {
        std::uint32_t mid = lo + (hi - lo) / 2;
        if (ts_at(mid) < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    std::int64_t t = 0;
    std::uint32_t r = 0;
    if (lo == 0 || !time_entry(lo - 1, t, r)) return base;
    return base + r;
}

void Segment::add_index_entry(std::int64_t offset, std::uint64_t position) noexcept {
    std::uint32_t n = index_entries.load(std::memory_order_relaxed);
    // A full index (a segment grown past its planned size) only makes lookups scan further.
    if ((n + 1) * kIndexEntryBytes > index_map.size() || position > UINT32_MAX) return;
    std::byte* p = index_map.data() + n * kIndexEntryBytes;
    put_be<std::uint32_t>(p, static_cast<std::uint32_t>(offset - base));
    put_be<std::uint32_t>(p + 4, static_cast<std::uint32_t>(position));
    index_entries.store(n + 1, std::memory_order_release);
}

void Segment::add_time_entry(std::int64_t ts, std::int64_t offset) noexcept {
    std::uint32_t n = time_entries.load(std::memory_order_relaxed);
    if ((n + 1) * kTimeEntryBytes > time_map.size()) return;
    if (n > 0 && get_be<std::int64_t>(time_map.data() + (n - 1) * kTimeEntryBytes) >= ts) return;
    std::byte* p = time_map.data() + n * kTimeEntryBytes;
    put_be<std::int64_t>(p, ts);
    put_be<std::uint32_t>(p + 8, static_cast<std::uint32_t>(offset - base));
    time_entries.store(n + 1, std::memory_order_release);
}

std::int64_t Segment::last_time_entry_ts() const noexcept {
    std::uint32_t n = time_entries_now();
    std::int64_t ts = -1;
    std::uint32_t rel = 0;
    if (n == 0 || !time_entry(n - 1, ts, rel)) return -1;
    return ts;
}

ScanResult Segment::rebuild_indexes(std::uint32_t interval, std::uint64_t limit) {
    reset_index(*index_file, index_map);
    reset_index(*time_file, time_map);
    index_entries = 0;
    time_entries = 0;
    since_index = 0;
    std::int64_t max = -1, max_offset = base;
    // The scan reads the segment once, front to back: MADV_SEQUENTIAL widens
    // the readahead of a cold segment's faults. Asking for more than that
    // (MADV_WILLNEED or readahead(2) of the windows ahead of the scan, from
    // this thread or another) made a cold 1 GiB recovery 3-4x slower on the
    // machine of `pagewire bench log` (docs/BENCHMARKS.md), so it does not.
    limit = std::min<std::uint64_t>(limit, map.size());
    if (limit != 0) map.advise(Advice::Sequential, 0, limit);
    auto r =
        scan_batches(map.data(), limit, 0, base, false, [&](std::uint64_t pos, const BatchView& b) {
            if (pos == 0 || since_index >= interval) {
                add_index_entry(b.base_offset(), pos);
                if (max >= 0) add_time_entry(max, max_offset);
                since_index = 0;
            }
            since_index += b.size();
            if (b.max_timestamp() > max) {
                max = b.max_timestamp();
                max_offset = b.base_offset();
            }
        });
    max_ts = max;
    max_ts_offset = max_offset;
    return r;
}

void Segment::trim() {
    std::uint64_t n = size.load();
    file->resize(n);
    index_file->resize(std::uint64_t{index_entries.load()} * kIndexEntryBytes);
    time_file->resize(std::uint64_t{time_entries.load()} * kTimeEntryBytes);
}

ScanResult scan_batches(const std::byte* data, std::uint64_t size, std::uint64_t from,
                        std::int64_t expected, bool check_zero_tail,
                        const std::function<void(std::uint64_t pos, const BatchView&)>& on_batch) {
    ScanResult r{from, expected, {}};
    std::uint64_t pos = from;
    while (pos < size) {
        if (size - pos < kBatchHeaderSize) {
            if (check_zero_tail && !all_zero(data + pos, data + size))
                r.damage = wire::strf("torn batch header (%llu bytes left)",
                                      static_cast<unsigned long long>(size - pos));
            break;
        }
        BatchView head(std::span<const std::byte>(data + pos, kBatchHeaderSize));
        if (head.base_offset() == 0 && head.batch_length() == 0) {
            if (check_zero_tail && !all_zero(data + pos, data + size))
                r.damage = "zero batch header followed by non-zero bytes";
            break;
        }
        auto length = static_cast<std::int64_t>(head.batch_length());
        if (length < static_cast<std::int64_t>(kBatchHeaderSize - kBatchLogOverhead) ||
            static_cast<std::uint64_t>(length) + kBatchLogOverhead > size - pos) {
            r.damage = wire::strf("batch length %lld runs past the end (%llu bytes left)",
                                  static_cast<long long>(length),
                                  static_cast<unsigned long long>(size - pos));
            break;
        }
        BatchView b(std::span<const std::byte>(
            data + pos, static_cast<std::size_t>(length) + kBatchLogOverhead));
        if (std::string why = b.validate(); !why.empty()) {
            r.damage = why;
            break;
        }
        if (b.base_offset() != r.next_offset) {
            r.damage = wire::strf("base offset %lld where %lld was expected",
                                  static_cast<long long>(b.base_offset()),
                                  static_cast<long long>(r.next_offset));
            break;
        }
        on_batch(pos, b);
        pos += b.size();
        r.valid_end = pos;
        r.next_offset = b.last_offset() + 1;
    }
    return r;
}

}  // namespace pagewire::logimpl
