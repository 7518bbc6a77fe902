// pagewire::Log: open and recovery, append (mmap or pwrite), roll, retention,
// durability, reads by offset and time, and the cross-process tail.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <pagewire/guard.hpp>
#include <pagewire/log.hpp>
#include <thread>

#include "log/segment.hpp"
#include "log/wire.hpp"
#include "sys.hpp"
#include "sys_ipc.hpp"

namespace pagewire {

using logimpl::Segment;
using SegmentPtr = std::shared_ptr<Segment>;

namespace {

constexpr const char* kLockName = "/.lock";
constexpr const char* kTailName = "/.tail";
constexpr const char* kCleanName = "/.clean-shutdown";
constexpr const char* kCheckpointName = "/recovery-point";
constexpr std::uint64_t kTailMagic = 0x314c4941544c5750ULL;  // "PWLTAIL1"
constexpr std::uint64_t kTailFileBytes = 4096;
// Kafka caps an index at 10 MiB; so do we (a bigger segment just scans further).
constexpr std::uint64_t kMaxIndexBytes = 10 << 20;
// AppendPath::Auto: batches of this size and more go by pwrite (see reserve()).
constexpr std::size_t kPwriteFromBytes = 4096;

// DIR/.tail, shared by the writer and every reader: the high watermark and
// the futex readers sleep on. The writer stores `end` (release) after the
// batch bytes, then bumps `seq` and wakes sleepers when `waiters` says there
// are any.
struct TailFile {
    std::uint64_t magic;
    std::atomic<std::int64_t> end;                 // next offset to be assigned
    std::atomic<std::int64_t> start;               // first offset kept
    std::atomic<std::uint32_t> seq;                // futex word, bumped at every publish
    std::atomic<std::uint32_t> waiters;            // readers in (or entering) futex_wait
    std::atomic<std::uint64_t> writer_generation;  // bumped at every writer open
};
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool is_segment_name(const std::string& name, std::int64_t* base, std::string* ext) {
    if (name.size() < 21 || !std::all_of(name.begin(), name.begin() + 20, ::isdigit)) return false;
    *ext = name.substr(20);
    if (*ext != ".log" && *ext != ".index" && *ext != ".timeindex") return false;
    *base = std::stoll(name.substr(0, 20));
    return true;
}

// The segment base offsets of `dir` in order; EBADMSG for a file a log does not hold.
std::vector<std::int64_t> list_segments(const std::string& dir, bool strict) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) throw_error("open log", dir);
    std::vector<std::int64_t> bases;
    std::string foreign;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        std::int64_t base = 0;
        std::string ext;
        if (name == "." || name == ".." || name == ".lock" || name == ".tail" ||
            name == ".clean-shutdown" || name == "recovery-point" || name == "recovery-point.tmp" ||
            name == ".next.log" || name == ".next.index" || name == ".next.timeindex")
            continue;
        if (is_segment_name(name, &base, &ext)) {
            if (ext == ".log") bases.push_back(base);
        } else if (foreign.empty()) {
            foreign = name;
        }
    }
    ::closedir(d);
    if (strict && !foreign.empty())
        throw_error("open log", dir, EBADMSG, "not a log directory: foreign file " + foreign);
    std::sort(bases.begin(), bases.end());
    return bases;
}

void fsync_dir(const std::string& dir) {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd || ::fsync(fd.get()) != 0) throw_error("fsync", dir);
}

std::uint64_t index_bytes_for(const LogOptions& o) {
    std::uint64_t entries =
        o.segment_bytes / std::max<std::uint32_t>(o.index_interval_bytes, 1) + 2;
    return std::min(kMaxIndexBytes, entries * logimpl::kIndexEntryBytes);
}

}  // namespace

struct Log::Impl {
    std::string dir;
    LogOptions options;
    bool clean = false;
    UniqueFd lock_fd;
    std::optional<File> tail_file;
    Mapping tail_map;
    TailFile* tail = nullptr;
    std::uint64_t index_bytes = 0;
    bool use_mmap = true;  // the path of the batch being appended (reserve decides)

    mutable std::mutex mu;                     // guards segments (the list, not their bytes)
    mutable std::vector<SegmentPtr> segments;  // in base-offset order; the last is active
    std::atomic<std::int64_t> recovery_point{0};
    std::vector<std::byte> buffer;  // pwrite path: the batch being encoded (reused)

    // Interval durability: the flusher thread and what it waits on.
    std::thread flusher;
    std::mutex flush_mu;
    std::condition_variable flush_cv;
    bool stop = false;
    std::atomic<std::uint64_t> unflushed{0};

    // Pre-touch: the warmer thread prepares `spare` whenever there is none.
    std::thread warmer;
    std::mutex warm_mu;
    std::condition_variable warm_cv;
    SegmentPtr spare;          // ready for the next roll (warm_mu)
    bool warm_wanted = false;  // a roll took the spare: make another (warm_mu)
    bool warm_stop = false;
    // Pre-touch also trims replaced segments in the background (warm_mu);
    // trim_mu is held while trimming and writing the recovery point.
    std::vector<SegmentPtr> to_trim;
    std::mutex trim_mu;
    bool trim_failed = false;  // trim_mu: the recovery point stays where it is

    bool closed = false;

    SegmentPtr active() const {
        std::lock_guard lock(mu);
        return segments.back();
    }
    std::int64_t end() const { return tail->end.load(std::memory_order_acquire); }

    void open_writer();
    void open_reader();
    void open_tail(bool writer);
    void recover_segment(const SegmentPtr& s);
    void write_checkpoint(std::int64_t offset);
    void publish(std::int64_t end);
    SegmentPtr roll(std::uint64_t need);
    void seal(Segment& s);
    void trim_sealed(Segment& s);
    void trim_replaced();
    AppendResult commit(Segment& s, std::uint64_t pos, std::size_t size, std::int64_t base,
                        std::int64_t last, std::int64_t max_ts);
    std::byte* reserve(std::size_t size, std::int64_t ts, SegmentPtr& seg, std::uint64_t& pos);
    void write_out(Segment& s, std::uint64_t pos, const std::byte* p, std::size_t size);
    void flusher_loop();
    void warmer_loop();
    void touch_active();
    SegmentPtr take_spare(std::uint64_t need);
    void stop_warmer();
    void refresh() const;
    SegmentPtr segment_for(std::int64_t offset) const;
    std::uint64_t find_batch(const Segment& s, std::int64_t offset, bool* found) const;
    bool header_at(const Segment& s, std::uint64_t pos, std::int64_t expected, std::int64_t end,
                   std::uint64_t* total) const;
    LogSlice slice_at(const std::shared_ptr<const Segment>& s, std::uint64_t pos, std::int64_t base,
                      std::int64_t end_offset, std::size_t max_bytes) const;
};

// ---- open ----------------------------------------------------------------

Log Log::open(const std::string& dir, const LogOptions& options) {
    auto impl = std::make_unique<Impl>();
    impl->dir = dir;
    impl->options = options;
    if (options.segment_bytes < kBatchHeaderSize)
        throw_error("open log", dir, EINVAL, "segment size is below one batch header");
    impl->index_bytes = index_bytes_for(options);

    if (options.read_only)
        impl->open_reader();
    else
        impl->open_writer();
    return Log(std::move(impl));
}

void Log::Impl::open_tail(bool writer) {
    std::string path = dir + kTailName;
    if (writer) {
        tail_file = File::create(path, CreateMode::CreateOrOpen);
        if (tail_file->size() < kTailFileBytes) tail_file->allocate(0, kTailFileBytes);
    } else {
        tail_file = File::open(path, OpenMode::ReadWrite);
        if (tail_file->size() < sizeof(TailFile))
            throw_error("open log", path, EBADMSG, "tail file is too short");
    }
    tail_map = Mapping::map(*tail_file, Access::ReadWrite, 0, kTailFileBytes);
    tail = reinterpret_cast<TailFile*>(tail_map.data());
    if (tail->magic != kTailMagic && (!writer || tail->magic != 0))
        throw_error("open log", path, EBADMSG, "not a pagewire log tail file (bad magic)");
    if (writer) tail->magic = kTailMagic;
}

void Log::Impl::open_writer() {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        if (errno != ENOENT || !options.create) throw_error("open log", dir);
        if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) throw_error("mkdir", dir);
    } else if (!S_ISDIR(st.st_mode)) {
        throw_error("open log", dir, ENOTDIR);
    }
    std::vector<std::int64_t> bases = list_segments(dir, true);
    if (bases.empty() && !options.create)
        throw_error("open log", dir, EBADMSG, "not a log directory: no segment");

    std::string lock_path = dir + kLockName;
    lock_fd.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!lock_fd) throw_error("open log", lock_path);
    // flock: the kernel drops the lock with the last descriptor, so a writer
    // killed by SIGKILL leaves nothing stuck (no pid file to judge stale).
    if (sys::retry_eintr([&] { return ::flock(lock_fd.get(), LOCK_EX | LOCK_NB); }) != 0) {
        int err = errno;
        throw_error(
            "open log", dir, err,
            err == EWOULDBLOCK ? "another writer has the log open (" + lock_path + ")" : "");
    }
    open_tail(true);
    // A spare segment left by a pre-touching writer that died holds no data.
    for (const char* ext : logimpl::kSegmentExtensions)
        std::remove(logimpl::spare_path(dir, ext).c_str());

    std::string clean_path = dir + kCleanName;
    clean = ::access(clean_path.c_str(), F_OK) == 0;
    std::int64_t checkpoint = 0;
    if (FILE* f = std::fopen((dir + kCheckpointName).c_str(), "re")) {
        long long v = 0;
        if (std::fscanf(f, "%lld", &v) == 1 && v >= 0) checkpoint = v;
        std::fclose(f);
    }
    if (bases.empty()) {
        segments.push_back(Segment::create(dir, 0, options.segment_bytes, index_bytes));
        clean = true;
    }
    for (std::size_t i = 0; i < bases.size(); ++i) {
        bool last = i + 1 == bases.size();
        auto s = Segment::open(dir, bases[i], true, last ? options.segment_bytes : 0,
                               last ? index_bytes : 0);
        // Segments wholly below the recovery point were checked (or flushed)
        // before; the rest are scanned batch by batch.
        bool trusted = clean || (!last && bases[i + 1] <= checkpoint);
        if (!trusted) {
            recover_segment(s);
            if (!last && s->next.load() == bases[i + 1]) {
                // Whole, only its preallocated tail not cut yet: the writer
                // died between a roll and the trim (which a pre-touching
                // writer does later, in the background).
                s->trim();
            } else if (!last) {
                // Damage inside a sealed segment: what follows it cannot be
                // contiguous any more, so it goes (Kafka does the same).
                for (std::size_t j = i + 1; j < bases.size(); ++j)
                    for (const char* ext : {".log", ".index", ".timeindex"})
                        std::remove(logimpl::segment_path(dir, bases[j], ext).c_str());
                bases.resize(i + 1);
                last = true;
                s->file->allocate(0, options.segment_bytes);
                s = Segment::open(dir, bases[i], true, options.segment_bytes, index_bytes);
                recover_segment(s);
            }
        } else {
            s->next = last ? s->base : bases[i + 1];
            s->max_ts = s->last_time_entry_ts();
            if (last) {
                // A clean last segment: its size is its length at close;
                // the batches after the last index entry give the next offset.
                auto [rel, pos] = s->lookup(INT64_MAX);
                auto r = logimpl::scan_batches(s->map.data(), s->size.load(), pos, s->base + rel,
                                               false, [&](std::uint64_t, const BatchView& b) {
                                                   s->since_index += b.size();
                                                   s->max_ts = std::max<std::int64_t>(
                                                       s->max_ts, b.max_timestamp());
                                               });
                if (!r.damage.empty() || r.valid_end != s->size.load()) {
                    recover_segment(s);
                } else {
                    s->next = r.next_offset;
                }
            } else {
                s->sealed = true;
            }
        }
        if (!last) {
            s->sealed = true;
            s->next = bases[i + 1];
        }
        segments.push_back(s);
    }
    SegmentPtr a = segments.back();
    a->created_ms = now_ms();
    if (::unlink(clean_path.c_str()) != 0 && errno != ENOENT) throw_error("unlink", clean_path);
    if (options.durability != Durability::None) fsync_dir(dir);
    tail->start.store(segments.front()->base, std::memory_order_relaxed);
    tail->writer_generation.fetch_add(1);
    publish(a->next.load());
    // The recovery point is kept at segment granularity: the base of the
    // active segment, below which every segment is sealed and trimmed.
    // (A checkpoint at the end offset would also vouch for a segment a roll
    // had replaced but not yet trimmed when the writer died.)
    write_checkpoint(a->base);
    if (options.durability == Durability::Interval) {
        flusher = std::thread([this] { flusher_loop(); });
    }
    if (options.pretouch) {
        warm_wanted = true;
        warmer = std::thread([this] { warmer_loop(); });
    }
}

void Log::Impl::recover_segment(const SegmentPtr& s) {
    auto r = s->rebuild_indexes(options.index_interval_bytes, s->map.size());
    s->size = r.valid_end;
    s->next = r.next_offset;
    // Cut what follows the last sound batch (a torn write, a corrupt batch,
    // zeros) and reserve the space again as zeros the next scan stops at.
    std::uint64_t reserved = s->map.size();
    s->map = Mapping();
    // FALLOC_FL_ZERO_RANGE turns the range into zeros and keeps its blocks
    // reserved, with no data written; cutting and reserving again instead
    // frees and re-allocates them (with `discard`, a device round trip).
    // File systems without it (tmpfs) get the cut.
    bool zeroed = reserved > r.valid_end &&
                  ::fallocate(s->file->fd(), FALLOC_FL_ZERO_RANGE, static_cast<off_t>(r.valid_end),
                              static_cast<off_t>(reserved - r.valid_end)) == 0;
    if (!zeroed) {
        s->file->resize(r.valid_end);
        if (reserved > r.valid_end) s->file->allocate(r.valid_end, reserved - r.valid_end);
    }
    s->map = Mapping::map(*s->file, Access::ReadWrite);
}

void Log::Impl::open_reader() {
    std::vector<std::int64_t> bases = list_segments(dir, true);
    if (bases.empty()) throw_error("open log", dir, EBADMSG, "not a log directory: no segment");
    open_tail(false);
    refresh();
}

// Reader: brings the segment list in line with the directory (new segments
// from rolls, deleted ones from retention, a grown active file).
void Log::Impl::refresh() const {
    std::vector<std::int64_t> bases = list_segments(dir, false);
    std::lock_guard lock(mu);
    std::vector<SegmentPtr> fresh;
    for (std::size_t i = 0; i < bases.size(); ++i) {
        SegmentPtr s;
        for (auto& old : segments)
            if (old->base == bases[i]) s = old;
        bool last = i + 1 == bases.size();
        try {
            if (!s || (!s->sealed && s->file->size() != s->map.size()))
                s = Segment::open(dir, bases[i], false, 0, 0);
        } catch (const Error& e) {
            if (e.error_number() == ENOENT) continue;  // deleted by retention meanwhile
            throw;
        }
        if (!last) {
            // Sealed: its length is final once the writer has trimmed it
            // (until then the zeros past its batches stop every walk).
            s->sealed = true;
            s->size = s->file->size();
            s->next = bases[i + 1];
        }
        fresh.push_back(std::move(s));
    }
    if (!fresh.empty()) segments = std::move(fresh);
}

void Log::Impl::write_checkpoint(std::int64_t offset) {
    recovery_point = offset;
    std::string path = dir + kCheckpointName, tmp = path + ".tmp";
    File f = File::create(tmp, CreateMode::Truncate);
    std::string text = std::to_string(offset) + "\n";
    f.write_at(0, std::as_bytes(std::span(text)));
    if (options.durability != Durability::None) f.datasync();
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw_error("rename", tmp);
}

void Log::Impl::publish(std::int64_t new_end) {
    tail->end.store(new_end, std::memory_order_release);
    tail->seq.fetch_add(1, std::memory_order_seq_cst);
    if (tail->waiters.load(std::memory_order_seq_cst) != 0)
        sys::futex_wake(reinterpret_cast<std::uint32_t*>(&tail->seq), INT32_MAX);
}

// ---- append --------------------------------------------------------------

// A segment gets no more appends: its last time-index entry (the writer's
// thread, which owns the index). trim_sealed then cuts its files.
void Log::Impl::seal(Segment& s) {
    if (s.max_ts >= 0) s.add_time_entry(s.max_ts, s.max_ts_offset);
    s.sealed = true;
}

void Log::Impl::trim_sealed(Segment& s) {
    s.trim();
    if (options.durability != Durability::None) {
        s.file->datasync();
        s.index_file->datasync();
        s.time_file->datasync();
    }
}

// Trims the replaced segments handed over by rolls, in order, then moves
// the recovery point past them: it only ever vouches for trimmed segments.
void Log::Impl::trim_replaced() {
    std::lock_guard trimming(trim_mu);
    std::vector<SegmentPtr> list;
    {
        std::lock_guard lock(warm_mu);
        list.swap(to_trim);
    }
    std::int64_t point = -1;
    for (const auto& s : list) {
        if (trim_failed) return;
        try {
            trim_sealed(*s);
            point = s->next.load();
        } catch (const Error&) {
            // Left untrimmed, below no recovery point: the next open scans it.
            trim_failed = true;
        }
    }
    if (point >= 0 && !trim_failed) write_checkpoint(point);
}

SegmentPtr Log::Impl::roll(std::uint64_t need) {
    SegmentPtr old = active();
    std::int64_t base = old->next.load();
    // The new segment first: if it cannot be made (disk full) the old one
    // stays active and whole.
    SegmentPtr fresh = take_spare(need);
    if (fresh) {
        // Only once the spare's names are free again may the next be made.
        auto want_next = [&] {
            std::lock_guard lock(warm_mu);
            warm_wanted = true;
            warm_cv.notify_one();
        };
        try {
            fresh->adopt(dir, base);
        } catch (...) {
            want_next();
            throw;
        }
        want_next();
    } else {
        fresh = Segment::create(dir, base, std::max(options.segment_bytes, need), index_bytes);
    }
    fresh->created_ms = now_ms();
    seal(*old);
    // Cutting the replaced segment's preallocated tails (ftruncate of three
    // files) was most of a roll's time, 5-15 ms against 0.2-0.5 ms for
    // making the new segment (`pagewire bench log`, docs/BENCHMARKS.md): with
    // pre-touch the warmer does it, and moves the recovery point after.
    if (!options.pretouch) trim_sealed(*old);
    if (options.durability != Durability::None) fsync_dir(dir);
    {
        std::lock_guard lock(mu);
        segments.push_back(fresh);
    }
    if (options.pretouch) {
        std::lock_guard lock(warm_mu);
        to_trim.push_back(old);
        warm_cv.notify_one();
    } else {
        write_checkpoint(base);
    }
    return fresh;
}

std::byte* Log::Impl::reserve(std::size_t size, std::int64_t ts, SegmentPtr& seg,
                              std::uint64_t& pos) {
    if (closed) throw_error("append", dir, EBADF, "the log is closed");
    if (options.read_only) throw_error("append", dir, EROFS, "the log is open read-only");
    seg = active();
    pos = seg->size.load(std::memory_order_relaxed);
    bool full = pos + size > options.segment_bytes || pos + size > seg->map.size();
    bool old =
        options.segment_age.count() != 0 && ts - seg->created_ms >= options.segment_age.count();
    if (pos != 0 && (full || old)) {
        seg = roll(size);
        pos = 0;
    } else if (pos + size > seg->map.size()) {
        // One batch larger than a segment: grow the (empty) active segment.
        seg->map = Mapping();
        seg->file->allocate(0, size);
        seg->map = Mapping::map(*seg->file, Access::ReadWrite);
    }
    // AppendPath::Auto picks by batch size, from `pagewire bench log` on this
    // machine (100 B records, docs/BENCHMARKS.md): a small batch is encoded
    // straight into the mapping, 9x faster than pwrite for one record and 3x
    // for 16 (no system call), while from about a page up pwrite is the safe
    // pick: at 256 records mmap led by 1.2x inside one segment but fell to
    // 0.28x of pwrite once the log rolls every 32 MiB (the write faults on
    // each fresh segment's pages), and again 0.25-0.8x in earlier runs. Both
    // write the same page cache.
    use_mmap = options.path == AppendPath::Mmap ||
               (options.path == AppendPath::Auto && size < kPwriteFromBytes);
    if (use_mmap) return seg->map.data() + pos;
    if (buffer.size() < size) buffer.resize(size);
    return buffer.data();
}

void Log::Impl::write_out(Segment& s, std::uint64_t pos, const std::byte* p, std::size_t size) {
    if (!use_mmap && sys::pwrite_full(s.file->fd(), p, size, pos) < 0)
        throw_error("append", s.path);
}

AppendResult Log::Impl::commit(Segment& s, std::uint64_t pos, std::size_t size, std::int64_t base,
                               std::int64_t last, std::int64_t max_ts) {
    std::uint32_t entries = s.index_entries.load(std::memory_order_relaxed);
    if (entries == 0 || s.since_index >= options.index_interval_bytes) {
        s.add_index_entry(base, pos);
        if (entries != 0 && s.max_ts >= 0) s.add_time_entry(s.max_ts, s.max_ts_offset);
        s.since_index = 0;
    }
    s.since_index += size;
    if (max_ts > s.max_ts) {
        s.max_ts = max_ts;
        s.max_ts_offset = base;
    }
    if (options.durability == Durability::Every) s.file->datasync();
    s.size.store(pos + size, std::memory_order_release);
    s.next.store(last + 1, std::memory_order_release);
    publish(last + 1);
    if (options.durability == Durability::Interval) {
        std::uint64_t pending = unflushed.fetch_add(size, std::memory_order_relaxed) + size;
        if (options.flush_bytes != 0 && pending >= options.flush_bytes &&
            pending - size < options.flush_bytes)
            flush_cv.notify_one();
    }
    return {base, last, pos};
}

AppendResult Log::append(std::span<const Record> records, std::int64_t timestamp_ms) {
    if (records.empty()) throw_error("append", impl_->dir, EINVAL, "a batch needs a record");
    if (timestamp_ms < 0) timestamp_ms = now_ms();
    std::size_t size = encoded_batch_size(records);
    if (size > INT32_MAX) throw_error("append", impl_->dir, EMSGSIZE, "batch larger than 2 GiB");
    SegmentPtr seg;
    std::uint64_t pos = 0;
    std::byte* out = impl_->reserve(size, timestamp_ms, seg, pos);
    std::int64_t base = seg->next.load(std::memory_order_relaxed);
    encode_batch(std::span(out, size), base, timestamp_ms, records);
    impl_->write_out(*seg, pos, out, size);
    auto r = impl_->commit(*seg, pos, size, base,
                           base + static_cast<std::int64_t>(records.size()) - 1, timestamp_ms);
    if (pos == 0 && seg != impl_->segments.front()) retain();
    return r;
}

AppendResult Log::append_batch(std::span<const std::byte> batch) {
    BatchView view(batch);
    if (std::string why = view.validate(); !why.empty())
        throw_error("append", impl_->dir, EBADMSG, "bad batch: " + why);
    SegmentPtr seg;
    std::uint64_t pos = 0;
    std::byte* out = impl_->reserve(batch.size(), now_ms(), seg, pos);
    std::int64_t base = seg->next.load(std::memory_order_relaxed);
    std::memcpy(out, batch.data(), batch.size());
    // baseOffset is outside the CRC's range: patching it keeps the batch sound.
    wire::put_be<std::int64_t>(out, base);
    impl_->write_out(*seg, pos, out, batch.size());
    auto r = impl_->commit(*seg, pos, batch.size(), base, base + view.last_offset_delta(),
                           view.max_timestamp());
    if (pos == 0 && seg != impl_->segments.front()) retain();
    return r;
}

void Log::Impl::flusher_loop() {
    std::unique_lock lock(flush_mu);
    while (!stop) {
        flush_cv.wait_for(lock, options.flush_interval, [&] {
            return stop || (options.flush_bytes != 0 && unflushed.load() >= options.flush_bytes);
        });
        if (unflushed.exchange(0) == 0) continue;
        SegmentPtr s = active();
        lock.unlock();
        // fdatasync writes back pages dirtied through the mapping as well as
        // by pwrite: both are the file's page-cache pages.
        ::fdatasync(s->file->fd());
        lock.lock();
    }
}

// Pre-touch. The warmer runs beside the writer and never holds warm_mu
// while it works, so a roll never waits for it: a roll that finds no spare
// ready makes its segment itself, as without pre-touch.
//
// Off by default, by measurement (docs/BENCHMARKS.md): a writer that leaves
// the CPU now and then rolls in 0.15-0.7 ms with it against 10-30 ms
// without, but the bench's busy writer on the shared 2-core machine gained
// little and not every run (the append that rolls 17.7 -> 14.1 ms median of
// 3, p99.9 373 -> 178 us, throughput unchanged), while it costs a thread per
// log (a broker has a log per partition), a whole segment of page cache held
// ahead (1 GiB by default) and writing that segment's zeros to disk once.
void Log::Impl::warmer_loop() {
    touch_active();
    std::unique_lock lock(warm_mu);
    for (;;) {
        warm_cv.wait(lock, [&] { return warm_stop || warm_wanted || !to_trim.empty(); });
        if (warm_stop) return;
        if (!to_trim.empty()) {
            lock.unlock();
            try {
                trim_replaced();
            } catch (const Error&) {
                // The recovery point could not be written: it stays behind (safe).
            }
            lock.lock();
            continue;
        }
        warm_wanted = false;
        lock.unlock();
        SegmentPtr s;
        try {
            s = Segment::create_spare(dir, options.segment_bytes, index_bytes);
            s->touch();
        } catch (const Error&) {
            // No room for a spare (disk full): the roll makes its segment
            // itself and reports the error there, to the appender.
            s.reset();
            for (const char* ext : logimpl::kSegmentExtensions)
                std::remove(logimpl::spare_path(dir, ext).c_str());
        }
        lock.lock();
        spare = std::move(s);
    }
}

// The active segment at open (a new log's first one, or the one an earlier
// writer left) was not made by the warmer: its pages ahead of the writer are
// faulted in first, in chunks, before the writer gets there (it writes about
// 100 MB/s at 1 M records/s; populating runs at several GB/s).
void Log::Impl::touch_active() {
    constexpr std::uint64_t kChunk = 4 << 20;
    SegmentPtr s = active();
    std::uint64_t at = s->size.load(std::memory_order_relaxed);
    try {
        while (at < s->map.size()) {
            {
                std::lock_guard lock(warm_mu);
                if (warm_stop) return;
            }
            if (s != active()) return;  // rolled meanwhile: the spare is warm
            s->touch_log(at, kChunk);
            at += kChunk;
        }
    } catch (const Error&) {
        // No memory to fault pages in: appends fault them as without pre-touch.
    }
}

SegmentPtr Log::Impl::take_spare(std::uint64_t need) {
    if (!options.pretouch) return nullptr;
    std::lock_guard lock(warm_mu);
    // A spare too small for this batch stays for a later roll.
    if (!spare || spare->map.size() < need) return nullptr;
    return std::move(spare);
}

void Log::Impl::stop_warmer() {
    if (!warmer.joinable()) return;
    {
        std::lock_guard lock(warm_mu);
        warm_stop = true;
    }
    warm_cv.notify_one();
    warmer.join();
    if (spare) {
        spare.reset();
        for (const char* ext : logimpl::kSegmentExtensions)
            std::remove(logimpl::spare_path(dir, ext).c_str());
    }
}

void Log::flush() {
    if (impl_->options.read_only)
        throw_error("flush", impl_->dir, EROFS, "the log is open read-only");
    SegmentPtr s = impl_->active();
    s->file->datasync();
    s->index_file->datasync();
    impl_->trim_replaced();
    std::lock_guard trimming(impl_->trim_mu);
    if (!impl_->trim_failed) impl_->write_checkpoint(s->base);
}

std::size_t Log::retain() {
    auto& m = *impl_;
    if (m.options.read_only) throw_error("retain", m.dir, EROFS, "the log is open read-only");
    std::vector<SegmentPtr> doomed;
    {
        std::lock_guard lock(m.mu);
        std::uint64_t total = 0;
        for (auto& s : m.segments) total += s->size.load();
        std::int64_t now = now_ms();
        while (m.segments.size() > 1) {
            const auto& s = m.segments.front();
            bool too_big = m.options.retention_bytes != 0 && total > m.options.retention_bytes;
            bool too_old = m.options.retention_age.count() != 0 &&
                           now - s->max_ts.load() > m.options.retention_age.count();
            if (!too_big && !too_old) break;
            total -= s->size.load();
            doomed.push_back(s);
            m.segments.erase(m.segments.begin());
        }
        m.tail->start.store(m.segments.front()->base, std::memory_order_release);
    }
    // Unlinking leaves the inode alive for any process that still has the
    // segment mapped or open: its reads go on and see the same bytes.
    for (auto& s : doomed)
        for (const char* ext : {".log", ".index", ".timeindex"})
            std::remove(logimpl::segment_path(m.dir, s->base, ext).c_str());
    return doomed.size();
}

void Log::close() {
    if (!impl_ || impl_->closed) return;
    auto& m = *impl_;
    m.closed = true;
    if (m.flusher.joinable()) {
        {
            std::lock_guard lock(m.flush_mu);
            m.stop = true;
        }
        m.flush_cv.notify_one();
        m.flusher.join();
    }
    m.stop_warmer();
    if (m.options.read_only) return;
    m.trim_replaced();
    SegmentPtr a = m.active();
    m.seal(*a);
    m.trim_sealed(*a);
    // A replaced segment left untrimmed: no clean mark, so the next open
    // scans what follows the recovery point.
    if (m.trim_failed) {
        m.lock_fd.reset();
        return;
    }
    m.write_checkpoint(a->next.load());
    File::create(m.dir + kCleanName, CreateMode::Truncate);
    if (m.options.durability != Durability::None) fsync_dir(m.dir);
    m.lock_fd.reset();
}

// ---- read ----------------------------------------------------------------

SegmentPtr Log::Impl::segment_for(std::int64_t offset) const {
    std::lock_guard lock(mu);
    auto it = std::upper_bound(segments.begin(), segments.end(), offset,
                               [](std::int64_t o, const SegmentPtr& s) { return o < s->base; });
    if (it == segments.begin()) return nullptr;
    return *(it - 1);
}

// Whether a whole batch with base offset `expected` (< end) starts at pos;
// its total size in *total. A reader's active segment may have been cut
// behind its back by a roll: the header is read under the SIGBUS guard.
bool Log::Impl::header_at(const Segment& s, std::uint64_t pos, std::int64_t expected,
                          std::int64_t end_offset, std::uint64_t* total) const {
    if (expected >= end_offset) return false;
    std::uint64_t limit =
        s.writer || s.sealed ? s.size.load(std::memory_order_acquire) : s.map.size();
    if (pos + kBatchHeaderSize > limit) return false;
    std::byte head[kBatchLogOverhead];
    if (!guarded_copy(head, s.map.data() + pos, sizeof head).ok()) return false;
    auto base = wire::get_be<std::int64_t>(head);
    auto length = wire::get_be<std::int32_t>(head + 8);
    if (base != expected || length <= 0 || pos + kBatchLogOverhead + std::uint64_t(length) > limit)
        return false;
    *total = kBatchLogOverhead + static_cast<std::uint64_t>(length);
    return true;
}

// Position of the batch holding `offset` in s (found), or where s's batches end.
std::uint64_t Log::Impl::find_batch(const Segment& s, std::int64_t offset, bool* found) const {
    auto [rel, pos] = s.lookup(offset);
    std::int64_t expected = s.base + rel, end_offset = end();
    std::uint64_t total = 0;
    while (header_at(s, pos, expected, end_offset, &total)) {
        BatchView b(std::span(s.map.data() + pos, total));
        if (b.last_offset() >= offset) {
            *found = true;
            return pos;
        }
        expected = b.last_offset() + 1;
        pos += total;
    }
    *found = false;
    return pos;
}

LogSlice Log::read(std::int64_t offset, std::size_t max_bytes) const {
    auto& m = *impl_;
    std::int64_t start = start_offset(), end_offset = m.end();
    if (offset < start || offset > end_offset)
        throw_error(
            "read", m.dir, ERANGE,
            wire::strf("offset %lld is out of range [%lld, %lld]", static_cast<long long>(offset),
                       static_cast<long long>(start), static_cast<long long>(end_offset)));
    LogSlice slice;
    slice.first_offset = slice.next_offset = offset;
    if (offset == end_offset) return slice;
    for (int attempt = 0; attempt < 3; ++attempt) {
        SegmentPtr s = m.segment_for(offset);
        bool found = false;
        std::uint64_t pos = s ? m.find_batch(*s, offset, &found) : 0;
        if (!found) {
            // A reader behind a roll or retention: look at the directory again.
            if (m.options.read_only) {
                m.refresh();
                continue;
            }
            break;
        }
        BatchView b(std::span(s->map.data() + pos, kBatchHeaderSize));
        return m.slice_at(s, pos, b.base_offset(), end_offset, max_bytes);
    }
    throw_error("read", m.dir, EIO,
                wire::strf("offset %lld is below the end but no segment holds it",
                           static_cast<long long>(offset)));
}

// The whole batches of s from pos, where the batch with base offset `base`
// starts (or should), up to max_bytes but at least one; empty when no
// sound batch starts there.
LogSlice Log::Impl::slice_at(const std::shared_ptr<const Segment>& s, std::uint64_t pos,
                             std::int64_t base, std::int64_t end_offset,
                             std::size_t max_bytes) const {
    LogSlice slice;
    slice.first_offset = base;
    std::int64_t expected = base;
    std::uint64_t first = pos, total = 0;
    while (header_at(*s, pos, expected, end_offset, &total) &&
           (pos == first || pos + total - first <= max_bytes)) {
        expected = BatchView(std::span(s->map.data() + pos, kBatchHeaderSize)).last_offset() + 1;
        pos += total;
    }
    slice.next_offset = expected;
    slice.fd = s->file->fd();
    slice.position = first;
    slice.bytes = std::span<const std::byte>(s->map.data() + first, pos - first);
    slice.keep_alive = s;
    return slice;
}

LogSlice Log::read_next(const LogSlice& prev, std::size_t max_bytes) const {
    auto& m = *impl_;
    auto s = std::static_pointer_cast<const Segment>(prev.keep_alive);
    const std::int64_t offset = prev.next_offset, end_offset = m.end();
    // Below the start (retention passed the reader) or past the end: read()
    // says so in its words.
    if (s == nullptr || offset < start_offset() || offset > end_offset)
        return read(offset, max_bytes);
    LogSlice next = m.slice_at(s, prev.position + prev.bytes.size(), offset, end_offset, max_bytes);
    if (!next.empty() || offset == end_offset) return next;
    return read(offset, max_bytes);  // prev's segment ended: the next one holds the offset
}

std::int64_t Log::offset_for_time(std::int64_t timestamp_ms) const {
    auto& m = *impl_;
    if (m.options.read_only) m.refresh();
    std::vector<SegmentPtr> list;
    {
        std::lock_guard lock(m.mu);
        list = m.segments;
    }
    std::int64_t end_offset = m.end();
    for (const auto& s : list) {
        std::int64_t from = s->offset_before_time(timestamp_ms);
        bool found = false;
        std::uint64_t pos = m.find_batch(*s, from, &found), total = 0;
        std::int64_t expected =
            found ? BatchView(std::span(s->map.data() + pos, kBatchHeaderSize)).base_offset()
                  : end_offset;
        while (m.header_at(*s, pos, expected, end_offset, &total)) {
            BatchView b(std::span(s->map.data() + pos, total));
            if (b.max_timestamp() >= timestamp_ms) {
                if (b.compression() != 0) return b.base_offset();
                std::size_t cursor = 0;
                RecordView r;
                while (b.next_record(&cursor, &r))
                    if (r.timestamp >= timestamp_ms) return r.offset;
                return b.base_offset();
            }
            expected = b.last_offset() + 1;
            pos += total;
        }
    }
    return end_offset;
}

bool Log::wait_for(std::int64_t offset, std::chrono::nanoseconds timeout,
                   std::chrono::nanoseconds spin) const {
    TailFile* t = impl_->tail;
    auto ready = [&] { return t->end.load(std::memory_order_acquire) > offset; };
    if (ready()) return true;
    std::int64_t start = sys::monotonic_ns();
    std::int64_t spin_until = start + std::min(spin, timeout).count();
    while (sys::monotonic_ns() < spin_until) {
        for (int i = 0; i < 64; ++i) {
            if (ready()) return true;
            sys::cpu_relax();
        }
    }
    std::int64_t deadline =
        timeout.count() > INT64_MAX - start ? INT64_MAX : start + timeout.count();
    auto* word = reinterpret_cast<std::uint32_t*>(&t->seq);
    for (;;) {
        std::uint32_t seq = t->seq.load(std::memory_order_acquire);
        if (ready()) return true;
        std::int64_t left = deadline - sys::monotonic_ns();
        if (left <= 0) return false;
        t->waiters.fetch_add(1, std::memory_order_seq_cst);
        if (!ready()) {
            timespec ts = sys::to_timespec(left);
            sys::futex_wait(word, seq, deadline == INT64_MAX ? nullptr : &ts);
        }
        t->waiters.fetch_sub(1, std::memory_order_seq_cst);
    }
}

// ---- state ---------------------------------------------------------------

Log::Log(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Log::Log(Log&&) noexcept = default;
Log& Log::operator=(Log&& other) noexcept {
    if (this != &other) {
        try {
            close();
        } catch (...) {
        }
        impl_ = std::move(other.impl_);
    }
    return *this;
}
Log::~Log() {
    try {
        close();
    } catch (...) {
    }
}

std::int64_t Log::start_offset() const {
    return impl_->tail->start.load(std::memory_order_acquire);
}
std::int64_t Log::end_offset() const {
    return impl_->end();
}
std::int64_t Log::recovery_point() const {
    if (!impl_->options.read_only) return impl_->recovery_point.load();
    long long v = 0;
    if (FILE* f = std::fopen((impl_->dir + kCheckpointName).c_str(), "re")) {
        if (std::fscanf(f, "%lld", &v) != 1) v = 0;
        std::fclose(f);
    }
    return v;
}
const std::string& Log::dir() const noexcept {
    return impl_->dir;
}
const LogOptions& Log::options() const noexcept {
    return impl_->options;
}
bool Log::clean_open() const noexcept {
    return impl_->clean;
}

std::vector<LogSegmentInfo> Log::segments() const {
    if (impl_->options.read_only) impl_->refresh();
    std::vector<SegmentPtr> list;
    {
        std::lock_guard lock(impl_->mu);
        list = impl_->segments;
    }
    std::vector<LogSegmentInfo> out;
    std::int64_t end_offset = impl_->end();
    for (const auto& s : list) {
        LogSegmentInfo i;
        i.base_offset = s->base;
        i.path = s->path;
        i.file_bytes = s->file->size();
        i.index_entries = s->offset_entries();
        i.max_timestamp = s->max_ts.load();
        if (s->writer || s->sealed) {
            i.bytes = s->size.load();
            i.next_offset = s->next.load();
        } else {
            bool found = false;
            i.bytes = impl_->find_batch(*s, end_offset, &found);
            i.next_offset = end_offset;
        }
        out.push_back(i);
    }
    return out;
}

// ---- verify --------------------------------------------------------------

std::vector<LogDamage> verify_log(const std::string& dir) {
    std::vector<LogDamage> damage;
    std::vector<std::int64_t> bases = list_segments(dir, true);
    if (bases.empty()) throw_error("verify", dir, EBADMSG, "not a log directory: no segment");
    std::int64_t expected = bases.front();
    for (std::size_t i = 0; i < bases.size(); ++i) {
        auto s = Segment::open(dir, bases[i], false, 0, 0);
        if (s->base != expected)
            damage.push_back(
                {s->path, 0,
                 wire::strf("segment starts at offset %lld, %lld expected",
                            static_cast<long long>(s->base), static_cast<long long>(expected))});
        std::vector<std::pair<std::uint64_t, std::int64_t>> batches;  // position, base offset
        auto r = logimpl::scan_batches(s->map.data(), s->map.size(), 0, s->base, true,
                                       [&](std::uint64_t pos, const BatchView& b) {
                                           batches.emplace_back(pos, b.base_offset());
                                       });
        // Zeros after a sealed segment's last batch are preallocated space
        // not cut yet (a pre-touching writer trims after the roll, or a
        // writer died before its trim): not damage, as long as the next
        // segment starts where these batches end (checked next round).
        if (!r.damage.empty()) damage.push_back({s->path, r.valid_end, r.damage});
        expected = r.next_offset;
        std::string index_path = logimpl::segment_path(dir, s->base, ".index");
        std::uint32_t n = s->offset_entries();
        std::uint32_t prev_rel = 0;
        std::uint32_t rel = 0, pos = 0;
        for (std::uint32_t e = 0; e < n && s->offset_entry(e, rel, pos); ++e) {
            auto it = std::lower_bound(batches.begin(), batches.end(),
                                       std::make_pair(std::uint64_t{pos}, INT64_MIN));
            bool ok = it != batches.end() && it->first == pos && it->second == s->base + rel &&
                      (e == 0 || rel > prev_rel);
            if (!ok && !(e == 0 && batches.empty() && rel == 0 && pos == 0)) {
                damage.push_back(
                    {index_path, e * logimpl::kIndexEntryBytes,
                     wire::strf("entry %u (offset %lld, position %u) is not a batch start", e,
                                static_cast<long long>(s->base + rel), pos)});
                break;
            }
            prev_rel = rel;
        }
    }
    return damage;
}

}  // namespace pagewire
