#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <pagewire/error.hpp>
#include <pagewire/mapping.hpp>

#include "sys.hpp"

// Older C library headers may lack the Linux 5.14 populate advice values.
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace pagewire {
namespace {

constexpr const char* kAnonymousName = "[anonymous]";

std::string read_proc_value(const char* path) {
    std::ifstream in(path);
    std::string value;
    in >> value;
    return value.empty() ? "unknown" : value;
}

// Size of the default huge page, from /proc/meminfo ("Hugepagesize: 2048 kB").
std::size_t huge_page_size() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::size_t value = 0;
    std::string unit;
    while (in >> key >> value) {
        std::getline(in, unit);
        if (key == "Hugepagesize:") return value * 1024;
    }
    return 2 * 1024 * 1024;
}

[[noreturn]] void throw_map_error(const std::string& name, int err, bool huge_reserved) {
    if (huge_reserved && (err == ENOMEM || err == EINVAL)) {
        throw_error(
            "map", name, err,
            "no free reserved huge pages (vm.nr_hugepages = " +
                read_proc_value("/proc/sys/vm/nr_hugepages") +
                "); reserve some with sysctl vm.nr_hugepages=N or use HugePages::Transparent");
    }
    if (err == ENODEV) throw_error("map", name, err, "this kind of file cannot be memory-mapped");
    throw_error("map", name, err);
}

[[noreturn]] void throw_lock_error(const std::string& name, std::size_t length, int err) {
    struct rlimit rl {};
    ::getrlimit(RLIMIT_MEMLOCK, &rl);
    const bool over_limit = rl.rlim_cur != RLIM_INFINITY && length > rl.rlim_cur;
    if (err == EPERM || err == EAGAIN || (err == ENOMEM && over_limit)) {
        throw_error("lock", name, err,
                    "cannot lock " + std::to_string(length) + " bytes in memory (" +
                        std::strerror(err) + "; RLIMIT_MEMLOCK is " + std::to_string(rl.rlim_cur) +
                        " bytes)");
    }
    if (err == ENOMEM) {
        throw_error("lock", name, err,
                    "cannot lock " + std::to_string(length) +
                        " bytes in memory: a page could not be faulted in (past end of file?)");
    }
    throw_error("lock", name, err);
}

int advice_value(Advice advice) {
    switch (advice) {
        case Advice::Normal:
            return MADV_NORMAL;
        case Advice::Sequential:
            return MADV_SEQUENTIAL;
        case Advice::Random:
            return MADV_RANDOM;
        case Advice::WillNeed:
            return MADV_WILLNEED;
        case Advice::DontNeed:
            return MADV_DONTNEED;
        case Advice::HugePage:
            return MADV_HUGEPAGE;
        case Advice::NoHugePage:
            return MADV_NOHUGEPAGE;
        case Advice::PopulateRead:
            return MADV_POPULATE_READ;
        case Advice::PopulateWrite:
            return MADV_POPULATE_WRITE;
    }
    return MADV_NORMAL;
}

}  // namespace

std::size_t Mapping::page_size() noexcept {
    return sys::page_size();
}

Mapping Mapping::open(const std::string& path, Access access, std::uint64_t offset,
                      std::size_t length, const MapOptions& options) {
    File file =
        File::open(path, access == Access::ReadWrite ? OpenMode::ReadWrite : OpenMode::ReadOnly);
    return map(file, access, offset, length, options);
}

Mapping Mapping::map(const File& file, Access access, std::uint64_t offset, std::size_t length,
                     const MapOptions& options) {
    const std::string& name = file.path();
    if (access == Access::ReadWrite && !file.writable()) {
        throw_error("map", name, EACCES, "a read-write mapping needs a file opened for writing");
    }
    if (options.huge_pages == HugePages::Reserved) {
        throw_error("map", name, EINVAL,
                    "reserved huge pages (MAP_HUGETLB) apply to anonymous memory; use "
                    "HugePages::Transparent for files");
    }
    const std::uint64_t file_size = file.size();
    if (file_size == 0 && !file.size_known()) {
        throw_error(
            "map", name, ENODEV,
            "the kernel reports no size for files of this filesystem (proc, sysfs): read it "
            "instead of mapping it");
    }
    const bool empty_file_at_start = file_size == 0 && offset == 0;
    if (offset >= file_size && !empty_file_at_start) {
        throw_error("map", name, EINVAL,
                    "offset " + std::to_string(offset) + " is past end of file (size " +
                        std::to_string(file_size) + ")");
    }
    const std::uint64_t available = file_size - offset;
    std::uint64_t view = length == kToEnd ? available : length;
    if (!options.allow_past_eof) view = std::min<std::uint64_t>(view, available);
    if (view > std::numeric_limits<std::size_t>::max() / 2) {
        throw_error("map", name, EOVERFLOW, "length " + std::to_string(view) + " is too large");
    }

    Mapping m;
    m.name_ = name;
    m.access_ = access;
    m.offset_ = offset;
    m.granule_ = sys::page_size();
    m.delta_ = static_cast<std::size_t>(offset % m.granule_);
    m.map_flags_ = access == Access::CopyOnWrite ? MAP_PRIVATE : MAP_SHARED;
    int dup = ::fcntl(file.fd(), F_DUPFD_CLOEXEC, 0);
    if (dup < 0) throw_error("map", name);
    m.fd_.reset(dup);
    if (view == 0) return m;  // an empty view: nothing to map

    const int prot = access == Access::ReadOnly ? PROT_READ : PROT_READ | PROT_WRITE;
    int flags = m.map_flags_;
    if (options.populate) flags |= MAP_POPULATE;
    if (options.lock) flags |= MAP_LOCKED;
    const std::size_t map_length = m.delta_ + static_cast<std::size_t>(view);
    void* addr =
        ::mmap(nullptr, map_length, prot, flags, file.fd(), static_cast<off_t>(offset - m.delta_));
    if (addr == MAP_FAILED) throw_map_error(name, errno, false);
    m.data_ = static_cast<std::byte*>(addr) + m.delta_;
    m.size_ = static_cast<std::size_t>(view);

    if (options.huge_pages == HugePages::Transparent) {
        // EINVAL means the kernel has no transparent huge pages for this
        // mapping; the option is a hint, so normal pages are fine.
        ::madvise(addr, map_length, MADV_HUGEPAGE);
    }
    if (options.lock) m.lock();  // MAP_LOCKED alone fails silently
    return m;
}

Mapping Mapping::anonymous(std::size_t length, Sharing sharing, const MapOptions& options) {
    Mapping m;
    m.name_ = kAnonymousName;
    m.anonymous_ = true;
    m.access_ = Access::ReadWrite;
    m.granule_ = sys::page_size();
    const bool reserved = options.huge_pages == HugePages::Reserved;
    if (reserved) m.granule_ = huge_page_size();
    if (sharing == Sharing::Shared) {
        // MAP_SHARED|MAP_ANONYMOUS memory has a fixed size (growing it with
        // mremap gives pages that raise SIGBUS); a memfd can be resized.
        unsigned memfd_flags = MFD_CLOEXEC;
        if (reserved) memfd_flags |= MFD_HUGETLB;
        m.fd_.reset(::memfd_create("pagewire-anonymous", memfd_flags));
        if (!m.fd_) throw_error("map", m.name_);
        m.map_flags_ = MAP_SHARED;
        if (sys::retry_eintr([&] {
                return ::ftruncate(m.fd_.get(),
                                   static_cast<off_t>(sys::round_up(length, m.granule_)));
            }) != 0) {
            throw_error("map", m.name_);
        }
    } else {
        m.map_flags_ = MAP_ANONYMOUS | MAP_PRIVATE | (reserved ? MAP_HUGETLB : 0);
    }
    if (length == 0) return m;

    int flags = m.map_flags_;
    if (options.populate) flags |= MAP_POPULATE;
    if (options.lock) flags |= MAP_LOCKED;
    const std::size_t map_length = sys::round_up(length, m.granule_);
    void* addr = ::mmap(nullptr, map_length, PROT_READ | PROT_WRITE, flags, m.fd_.get(), 0);
    if (addr == MAP_FAILED) throw_map_error(m.name_, errno, reserved);
    m.data_ = static_cast<std::byte*>(addr);
    m.size_ = length;
    if (options.huge_pages == HugePages::Transparent) ::madvise(addr, map_length, MADV_HUGEPAGE);
    if (options.lock) m.lock();
    return m;
}

Mapping::Mapping(Mapping&& other) noexcept {
    *this = std::move(other);
}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
    if (this == &other) return *this;
    unmap();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    delta_ = std::exchange(other.delta_, 0);
    offset_ = std::exchange(other.offset_, 0);
    access_ = std::exchange(other.access_, Access::ReadOnly);
    granule_ = std::exchange(other.granule_, 0);
    anonymous_ = std::exchange(other.anonymous_, false);
    map_flags_ = std::exchange(other.map_flags_, 0);
    fd_ = std::move(other.fd_);
    name_ = std::move(other.name_);
    other.name_.clear();
    return *this;
}

Mapping::~Mapping() {
    unmap();
}

void Mapping::unmap() noexcept {
    if (size_ != 0) ::munmap(page_start(), mapped_length());
    data_ = nullptr;
    size_ = 0;
}

std::size_t Mapping::mapped_length() const noexcept {
    return size_ == 0 ? 0 : sys::round_up(delta_ + size_, granule_);
}

// Checks [offset, offset+length) against the view (clamping length to the
// view's end) and returns the page-aligned start of it relative to page_start().
std::size_t Mapping::aligned_range(std::size_t offset, std::size_t& length,
                                   const char* operation) const {
    if (offset > size_) {
        throw_error(operation, name_, ERANGE,
                    "offset " + std::to_string(offset) + " is outside the mapped view (size " +
                        std::to_string(size_) + ")");
    }
    length = std::min(length, size_ - offset);
    const std::size_t begin = sys::round_down(delta_ + offset, granule_);
    length = delta_ + offset + length - begin;
    return begin;
}

void Mapping::check_records(std::size_t record_size, std::size_t record_align) const {
    if (size_ % record_size != 0) {
        throw_error("records", name_, EINVAL,
                    "size " + std::to_string(size_) + " is not a whole number of " +
                        std::to_string(record_size) + "-byte records");
    }
    if (reinterpret_cast<std::uintptr_t>(data_) % record_align != 0) {
        throw_error("records", name_, EINVAL,
                    "offset " + std::to_string(offset_) + " is not aligned for the record type");
    }
}

AccessResult Mapping::read(std::size_t offset, std::span<std::byte> out) const noexcept {
    if (offset > size_ || out.size() > size_ - offset) return {ERANGE, 0};
    AccessResult r = guarded_copy(out.data(), data_ + offset, out.size());
    if (!r.ok()) r.fault_offset += offset;
    return r;
}

AccessResult Mapping::write(std::size_t offset, std::span<const std::byte> in) noexcept {
    if (offset > size_ || in.size() > size_ - offset) return {ERANGE, 0};
    if (access_ == Access::ReadOnly) return {EACCES, 0};
    AccessResult r = guarded_copy(data_ + offset, in.data(), in.size());
    if (!r.ok()) r.fault_offset += offset;
    return r;
}

void Mapping::flush(Flush mode, std::size_t offset, std::size_t length) {
    const std::size_t begin = aligned_range(offset, length, "flush");
    if (length == 0) return;
    int flags = MS_SYNC;
    if (mode == Flush::Async) flags = MS_ASYNC;
    if (mode == Flush::Invalidate) flags = MS_SYNC | MS_INVALIDATE;
    if (::msync(page_start() + begin, length, flags) != 0) throw_error("flush", name_);
}

void Mapping::advise(Advice advice, std::size_t offset, std::size_t length) {
    const std::size_t begin = aligned_range(offset, length, "advise");
    if (length == 0) return;
    int r = sys::retry_eintr(
        [&] { return ::madvise(page_start() + begin, length, advice_value(advice)); });
    if (r == 0) return;
    const int err = errno;
    if (err == EFAULT && (advice == Advice::PopulateRead || advice == Advice::PopulateWrite)) {
        throw_error("advise", name_, err, "populate reached a page not backed by the file");
    }
    if (err == EINVAL && (advice == Advice::PopulateRead || advice == Advice::PopulateWrite)) {
        throw_error("advise", name_, err,
                    "populate not supported here (needs Linux 5.14+, and write access for "
                    "PopulateWrite)");
    }
    throw_error("advise", name_, err);
}

void Mapping::lock() {
    if (size_ == 0) return;
    if (::mlock(page_start(), mapped_length()) != 0)
        throw_lock_error(name_, mapped_length(), errno);
}

void Mapping::unlock() {
    if (size_ == 0) return;
    if (::munlock(page_start(), mapped_length()) != 0) throw_error("unlock", name_);
}

void Mapping::resize(std::size_t new_size) {
    if (name_.empty()) throw_error("resize", "[unmapped]", EINVAL, "nothing was mapped");
    if (new_size == size_) return;
    // A file, or the memfd behind shared anonymous memory, is resized with the view.
    const bool file = fd_.valid();
    std::uint64_t file_size = 0;
    if (file) {
        if (access_ != Access::ReadWrite) {
            throw_error("resize", name_, EPERM, "only read-write file mappings can be resized");
        }
        struct stat st {};
        if (::fstat(fd_.get(), &st) != 0) throw_error("resize", name_);
        file_size = static_cast<std::uint64_t>(st.st_size);
        // The view must cover the file's tail, or resizing the file would
        // destroy (or expose) bytes the view does not show.
        if (!anonymous_ && offset_ + size_ < file_size) {
            throw_error("resize", name_, EINVAL,
                        "the view ends at " + std::to_string(offset_ + size_) +
                            " but the file continues to " + std::to_string(file_size));
        }
    }
    // The file grows before the mapping does, and shrinks after the tail is
    // unmapped, so no live page of the view ever loses its backing. A memfd
    // (possibly of huge pages) is sized in whole granules.
    const std::uint64_t new_file_size =
        anonymous_ ? sys::round_up(new_size, granule_) : offset_ + new_size;
    auto resize_file = [&] {
        if (sys::retry_eintr(
                [&] { return ::ftruncate(fd_.get(), static_cast<off_t>(new_file_size)); }) != 0) {
            throw_error("resize", name_);
        }
    };
    if (file && new_file_size > file_size) resize_file();

    const std::size_t old_length = mapped_length();
    const std::size_t new_length = new_size == 0 ? 0 : sys::round_up(delta_ + new_size, granule_);
    if (new_length == 0) {
        unmap();
    } else if (old_length == 0) {
        const int prot = access_ == Access::ReadOnly ? PROT_READ : PROT_READ | PROT_WRITE;
        void* addr = ::mmap(nullptr, new_length, prot, map_flags_, fd_.get(),
                            static_cast<off_t>(offset_ - delta_));
        if (addr == MAP_FAILED) throw_map_error(name_, errno, (map_flags_ & MAP_HUGETLB) != 0);
        data_ = static_cast<std::byte*>(addr) + delta_;
    } else if (new_length != old_length) {
        void* addr = ::mremap(page_start(), old_length, new_length, MREMAP_MAYMOVE);
        if (addr == MAP_FAILED) throw_error("resize", name_);
        data_ = static_cast<std::byte*>(addr) + delta_;
    }
    size_ = new_size;
    if (file && new_file_size < file_size) resize_file();
}

std::vector<bool> Mapping::resident_pages() const {
    const std::size_t page = sys::page_size();
    const std::size_t pages = size_ == 0 ? 0 : sys::round_up(delta_ + size_, page) / page;
    std::vector<unsigned char> vec(pages);
    if (pages != 0 && ::mincore(page_start(), pages * page, vec.data()) != 0) {
        throw_error("mincore", name_);
    }
    std::vector<bool> resident(pages);
    for (std::size_t i = 0; i < pages; ++i) resident[i] = (vec[i] & 1) != 0;
    return resident;
}

std::size_t Mapping::resident_page_count() const {
    const auto pages = resident_pages();
    return static_cast<std::size_t>(std::count(pages.begin(), pages.end(), true));
}

void write_mapped(int fd, const void* data, std::size_t n, const std::string& source,
                  const std::string& destination) {
    if (sys::write_full(fd, data, n) >= 0) return;
    // EFAULT can only concern the buffer, and the buffer is the mapping: the
    // destination's errors are never EFAULT.
    if (errno == EFAULT) {
        throw_error("read", source, EIO,
                    "truncated while it was being read (a mapped page is no longer backed)");
    }
    throw_error("write", destination);
}

}  // namespace pagewire
