// Opening beneath the root and the open-file cache: see file_cache.hpp.
#include "serve/file_cache.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "serve/http_date.hpp"
#include "serve/mime.hpp"
#include "sys.hpp"

namespace pagewire::serve {
namespace {

// What a fresh descriptor says about itself, or -errno.
int describe(int fd, const std::string& relative, CachedFile& out) noexcept {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return -errno;
    out.directory = S_ISDIR(st.st_mode);
    if (!out.directory && !S_ISREG(st.st_mode)) return -EACCES;  // FIFOs, devices, sockets
    out.size = static_cast<std::uint64_t>(st.st_size);
    out.mtime = st.st_mtim.tv_sec;
    out.dev = st.st_dev;
    out.ino = st.st_ino;
    out.mtime_ns = st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec;
    out.ctime_ns = st.st_ctim.tv_sec * 1'000'000'000LL + st.st_ctim.tv_nsec;
    char etag[64];
    const int n = std::snprintf(etag, sizeof etag, "\"%llx-%llx\"",
                                static_cast<unsigned long long>(st.st_mtim.tv_sec),
                                static_cast<unsigned long long>(st.st_size));
    out.etag.assign(etag, static_cast<std::size_t>(n));
    out.last_modified = format_http_date(st.st_mtim.tv_sec);
    out.content_type = content_type_for(relative);
    return 0;
}

bool same_file(const CachedFile& a, const CachedFile& b) noexcept {
    return a.dev == b.dev && a.ino == b.ino && a.size == b.size && a.mtime_ns == b.mtime_ns &&
           a.ctime_ns == b.ctime_ns && a.directory == b.directory;
}

}  // namespace

int open_beneath(int root_fd, const std::string& relative, bool follow_symlinks) noexcept {
    open_how how{};
    how.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
    how.resolve = RESOLVE_NO_MAGICLINKS | (follow_symlinks ? 0 : RESOLVE_BENEATH);
    const char* name = relative.empty() ? "." : relative.c_str();
    const long fd =
        sys::retry_eintr([&] { return ::syscall(SYS_openat2, root_fd, name, &how, sizeof how); });
    return fd < 0 ? -errno : static_cast<int>(fd);
}

bool prepare_direct(CachedFile& file) noexcept {
    if (file.direct != CachedFile::Direct::Unknown) return file.direct == CachedFile::Direct::Ready;
    file.direct = CachedFile::Direct::Unsupported;
    std::uint32_t mem_align = 0;
    std::uint32_t offset_align = 0;
    if (sys::statx_dio_align(file.fd.get(), &mem_align, &offset_align) != 0 || mem_align == 0 ||
        offset_align == 0 || mem_align > sys::page_size()) {
        return false;
    }
    // A second open file description of the same file: O_DIRECT on the
    // shared one would change how sendfile reads it.
    const std::string self = "/proc/self/fd/" + std::to_string(file.fd.get());
    const int fd = sys::retry_eintr(
        [&] { return ::open(self.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC | O_NONBLOCK); });
    if (fd < 0) return false;
    file.direct_fd.reset(fd);
    file.direct_align = offset_align;
    file.direct = CachedFile::Direct::Ready;
    return true;
}

OpenFileCache::OpenFileCache(int root_fd, bool follow_symlinks, unsigned valid_ms,
                             std::size_t max_entries)
    : root_fd_(root_fd),
      follow_symlinks_(follow_symlinks),
      valid_ms_(valid_ms),
      max_entries_(max_entries > 0 ? max_entries : 1) {}

CacheLookup OpenFileCache::open(const std::string& relative, std::uint64_t now_ms) {
    auto it = entries_.find(std::string_view(relative));
    if (it != entries_.end() && now_ms - it->second.validated_ms < valid_ms_) {
        it->second.used_ms = now_ms;
        return {it->second.file, 0};
    }
    CacheLookup result;
    const int fd = open_beneath(root_fd_, relative, follow_symlinks_);
    if (fd < 0) {
        if (it != entries_.end()) entries_.erase(it);
        result.error = -fd;
        return result;
    }
    auto file = std::make_shared<CachedFile>();
    file->fd.reset(fd);
    if (const int err = describe(fd, relative, *file); err != 0) {
        if (it != entries_.end()) entries_.erase(it);
        result.error = -err;
        return result;
    }
    if (it != entries_.end()) {
        // Revalidated: keep the old entry (and its O_DIRECT descriptor) if
        // the path still names the same, unchanged file.
        if (!same_file(*it->second.file, *file)) it->second.file = std::move(file);
        it->second.validated_ms = it->second.used_ms = now_ms;
        return {it->second.file, 0};
    }
    make_room(now_ms);
    Entry entry{file, now_ms, now_ms};
    entries_.emplace(relative, std::move(entry));
    result.file = std::move(file);
    return result;
}

void OpenFileCache::make_room(std::uint64_t now_ms) {
    if (entries_.size() < max_entries_) return;
    for (auto it = entries_.begin(); it != entries_.end();) {
        it = now_ms - it->second.used_ms >= kInactiveMs ? entries_.erase(it) : std::next(it);
    }
    if (entries_.size() < max_entries_) return;
    // All recently used: drop the least recently used one.
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->second.used_ms < oldest->second.used_ms) oldest = it;
    }
    entries_.erase(oldest);
}

}  // namespace pagewire::serve
