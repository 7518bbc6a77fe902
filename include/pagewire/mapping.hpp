// pagewire::Mapping — a memory mapping of a file or of anonymous memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <pagewire/config.hpp>
#include <pagewire/file.hpp>
#include <pagewire/guard.hpp>
#include <pagewire/unique_fd.hpp>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace pagewire {

// How a file mapping may be used. The type says it once; there are no hidden modes.
enum class Access {
    ReadOnly,     // PROT_READ, MAP_SHARED: sees other writers' changes
    ReadWrite,    // PROT_READ|PROT_WRITE, MAP_SHARED: writes reach the file and other mappers
    CopyOnWrite,  // PROT_READ|PROT_WRITE, MAP_PRIVATE: writes stay in this process only
};

// Anonymous memory: private to the process, or shared with children forked later.
enum class Sharing { Private, Shared };

enum class HugePages {
    None,         // normal pages
    Transparent,  // madvise(MADV_HUGEPAGE): the kernel may use THP; never fails for lack of them
    Reserved,     // MAP_HUGETLB (anonymous only): needs vm.nr_hugepages > 0, else a clear error
};

// Options applied when the mapping is made.
struct MapOptions {
    bool populate = false;  // MAP_POPULATE: fault every page in now (reads ahead for files)
    bool lock = false;      // MAP_LOCKED then mlock: keep the pages in RAM (RLIMIT_MEMLOCK applies)
    HugePages huge_pages = HugePages::None;
    // Map exactly the requested length even where it extends past end of file
    // (seed 004's boundary demo). Pages wholly past end of file are then
    // mapped but not backed: touching them raises SIGBUS; use the guarded
    // accessors. The file is never grown by mapping it. Off by default: the
    // length is clamped to end of file.
    bool allow_past_eof = false;
};

enum class Flush {
    Async,       // MS_ASYNC: schedule writeback and return
    Sync,        // MS_SYNC: return when the pages are written
    Invalidate,  // MS_SYNC|MS_INVALIDATE: write, then drop other cached copies
};

enum class Advice {
    Normal,         // MADV_NORMAL
    Sequential,     // MADV_SEQUENTIAL: aggressive readahead, pages freed soon after use
    Random,         // MADV_RANDOM: no readahead
    WillNeed,       // MADV_WILLNEED: start reading ahead now
    DontNeed,       // MADV_DONTNEED: drop the pages (file pages are re-read, anonymous zeroed)
    HugePage,       // MADV_HUGEPAGE
    NoHugePage,     // MADV_NOHUGEPAGE
    PopulateRead,   // MADV_POPULATE_READ (Linux 5.14+): fault pages in readable
    PopulateWrite,  // MADV_POPULATE_WRITE (Linux 5.14+): fault pages in writable
};

// A mapped view of exactly the bytes asked for: the page alignment mmap(2)
// needs is handled inside, so data() points at the requested offset.
//
// Move-only; unmapped on destruction. A Mapping may be read from several
// threads; changing it (resize, move-assign) needs external synchronization.
// Holds a duplicate of the file's descriptor (for resize), so the File it was
// made from may be closed. Shared anonymous memory is backed by a memfd so
// that it can grow and stay shared with children forked afterwards.
//
// Sizes: for a file, length defaults to "to end of file". A length that runs
// past end of file is clamped to end of file (like seed 003's program) unless
// MapOptions::allow_past_eof. An offset at or past the end of a non-empty file
// is an error (EINVAL); an empty file maps as an empty view (any offset other
// than 0 is past its end).
class Mapping {
  public:
    static constexpr std::size_t kToEnd = std::numeric_limits<std::size_t>::max();

    // Maps [offset, offset+length) of an open file. The file must be open for
    // writing for Access::ReadWrite.
    static Mapping map(const File& file, Access access, std::uint64_t offset = 0,
                       std::size_t length = kToEnd, const MapOptions& options = {});
    // Opens `path` (read-only, or read-write for Access::ReadWrite) and maps it.
    static Mapping open(const std::string& path, Access access = Access::ReadOnly,
                        std::uint64_t offset = 0, std::size_t length = kToEnd,
                        const MapOptions& options = {});
    // Anonymous memory of `length` bytes, zero-filled on first touch (demand-zero).
    // Sharing::Shared memory stays shared with processes forked afterwards.
    static Mapping anonymous(std::size_t length, Sharing sharing = Sharing::Private,
                             const MapOptions& options = {});

    Mapping() noexcept = default;  // empty view
    Mapping(Mapping&& other) noexcept;
    Mapping& operator=(Mapping&& other) noexcept;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping();

    // The view. Raw access: not guarded against SIGBUS (see guard.hpp).
    std::byte* data() noexcept { return data_; }
    const std::byte* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    std::span<std::byte> bytes() noexcept { return {data_, size_}; }
    std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
    std::string_view chars() const noexcept {
        return {reinterpret_cast<const char*>(data_), size_};
    }

    Access access() const noexcept { return access_; }
    bool writable() const noexcept { return access_ != Access::ReadOnly; }
    bool is_anonymous() const noexcept { return anonymous_; }
    std::uint64_t file_offset() const noexcept {
        return offset_;
    }                                                           // offset of data()[0] in the file
    const std::string& name() const noexcept { return name_; }  // path, or "[anonymous]"

    // Typed view of fixed-size records (S4). Throws Error(EINVAL) when the view's
    // size is not a whole number of records or data() is not aligned for T
    // (a file offset that is not a multiple of alignof(T)). Raw access, not guarded.
    template <class T>
    std::span<T> records() {
        static_assert(std::is_trivially_copyable_v<T>, "records must be trivially copyable");
        check_records(sizeof(T), alignof(T));
        return {reinterpret_cast<T*>(data_), size_ / sizeof(T)};
    }
    template <class T>
    std::span<const T> records() const {
        static_assert(std::is_trivially_copyable_v<T>, "records must be trivially copyable");
        check_records(sizeof(T), alignof(T));
        return {reinterpret_cast<const T*>(data_), size_ / sizeof(T)};
    }

    // Guarded access (see guard.hpp): copy between the view at `offset` and a
    // buffer. ERANGE if the range leaves the view, EACCES for write() on a
    // read-only view, EFAULT on SIGBUS (page past end of file, e.g. the file
    // was truncated under the mapping); fault_offset then counts from the
    // start of the view, not from `offset`.
    AccessResult read(std::size_t offset, std::span<std::byte> out) const noexcept;
    AccessResult write(std::size_t offset, std::span<const std::byte> in) noexcept;

    // Writes dirty pages of [offset, offset+length) of the view back to the file.
    void flush(Flush mode = Flush::Sync, std::size_t offset = 0, std::size_t length = kToEnd);
    // Advice for [offset, offset+length) of the view. PopulateRead/Write throw
    // EFAULT-based errors when a page is not backed by the file.
    void advise(Advice advice, std::size_t offset = 0, std::size_t length = kToEnd);
    // mlock/munlock the view's pages (RLIMIT_MEMLOCK applies to non-root users).
    void lock();
    void unlock();

    // Changes the view's length to new_size bytes; data() may move (mremap
    // with MREMAP_MAYMOVE). For Access::ReadWrite file mappings the file's size
    // becomes file_offset()+new_size: grown before the mapping grows, shrunk
    // after the tail is unmapped. The view must reach end of file (else EINVAL:
    // resizing would cut or expose bytes outside it). Anonymous mappings
    // resize too (new bytes are zero). ReadOnly/CopyOnWrite file mappings: EPERM.
    void resize(std::size_t new_size);

    // Page residency (mincore): one entry per page spanned by the view, true
    // when the page is in RAM (page cache or anonymous memory).
    std::vector<bool> resident_pages() const;
    std::size_t resident_page_count() const;

    static std::size_t page_size() noexcept;

  private:
    void check_records(std::size_t record_size, std::size_t record_align) const;
    void unmap() noexcept;
    std::byte* page_start() const noexcept { return data_ - delta_; }
    std::size_t mapped_length() const noexcept;  // delta_ + size_ rounded up to granule_
    std::size_t aligned_range(std::size_t offset, std::size_t& length, const char* operation) const;

    std::byte* data_ = nullptr;  // first requested byte; page_start() is the mmap address
    std::size_t size_ = 0;       // bytes in the view; 0 means nothing is mapped
    std::size_t delta_ = 0;      // offset_ modulo the page size
    std::uint64_t offset_ = 0;   // file offset of data_[0]
    Access access_ = Access::ReadOnly;
    std::size_t granule_ = 0;  // page size the kernel maps with: base or huge page size
    int map_flags_ = 0;        // MAP_SHARED/MAP_PRIVATE (+ MAP_ANONYMOUS, MAP_HUGETLB), for resize
    bool anonymous_ = false;   // not a file the caller named (shared anonymous memory is a memfd)
    UniqueFd fd_;              // file's descriptor (a duplicate), the memfd behind shared
                               // anonymous memory, or invalid for private anonymous memory
    std::string name_;         // for error messages
};

// Writes all n bytes at `data`, memory mapped from `source` (a file or a
// segment, named for messages), to fd: a pipe, socket, terminal or file named
// `destination`. write(2) reports a source page that is no longer backed (the
// file was truncated by another process) as EFAULT, never SIGBUS; that throws
// Error("read", source, EIO, "...truncated while it was being read"). Any
// other failure throws Error("write", destination, errno).
void write_mapped(int fd, const void* data, std::size_t n, const std::string& source,
                  const std::string& destination);

}  // namespace pagewire
