// Opening beneath the root and the open-file cache: see file_cache.hpp.
#include "http/file_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <pagewire/file.hpp>
#include <string>

#include "http/http_date.hpp"
#include "http/mime.hpp"
#include "sys.hpp"

namespace pagewire::http {
namespace {

// A FIFO must not block the worker (O_NONBLOCK), nor a terminal become ours.
constexpr int kOpenFlags = O_RDONLY | O_NONBLOCK | O_NOCTTY;

// A fresh descriptor's stat: 0, or -errno (-EACCES for what is neither a
// regular file nor a directory: FIFOs, devices, sockets).
int stat_file(int fd, struct stat& st) noexcept {
    if (::fstat(fd, &st) != 0) return -errno;
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) return -EACCES;
    return 0;
}

std::int64_t nanoseconds(const timespec& t) noexcept {
    return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}

// What responses need of the file `st` describes.
void describe(const struct stat& st, const std::string& relative, CachedFile& out) {
    out.directory = S_ISDIR(st.st_mode);
    out.size = static_cast<std::uint64_t>(st.st_size);
    out.mtime = st.st_mtim.tv_sec;
    out.dev = st.st_dev;
    out.ino = st.st_ino;
    out.mtime_ns = nanoseconds(st.st_mtim);
    out.ctime_ns = nanoseconds(st.st_ctim);
    char etag[64];
    const int n = std::snprintf(etag, sizeof etag, "\"%llx-%llx\"",
                                static_cast<unsigned long long>(st.st_mtim.tv_sec),
                                static_cast<unsigned long long>(st.st_size));
    out.etag.assign(etag, static_cast<std::size_t>(n));
    out.last_modified = format_http_date(st.st_mtim.tv_sec);
    out.content_type = content_type_for(relative);
}

// Whether `st` is still the cached, unchanged file.
bool same_file(const CachedFile& a, const struct stat& st) noexcept {
    return a.dev == st.st_dev && a.ino == st.st_ino &&
           a.size == static_cast<std::uint64_t>(st.st_size) &&
           a.mtime_ns == nanoseconds(st.st_mtim) && a.ctime_ns == nanoseconds(st.st_ctim) &&
           a.directory == S_ISDIR(st.st_mode);
}

}  // namespace

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
    const int raw_fd = open_beneath(root_fd_, relative, kOpenFlags,
                                    follow_symlinks_ ? Symlinks::Follow : Symlinks::StayBeneath);
    if (raw_fd < 0) {
        if (it != entries_.end()) entries_.erase(it);
        result.error = -raw_fd;
        return result;
    }
    UniqueFd fd(raw_fd);
    struct stat st {};
    if (const int err = stat_file(fd.get(), st); err != 0) {
        if (it != entries_.end()) entries_.erase(it);
        result.error = -err;
        return result;
    }
    auto fresh = [&] {
        auto file = std::make_shared<CachedFile>();
        file->fd = std::move(fd);
        describe(st, relative, *file);
        return file;
    };
    if (it != entries_.end()) {
        // Revalidated: keep the old entry (and its O_DIRECT descriptor) if
        // the path still names the same, unchanged file; the new descriptor
        // is closed and nothing is formatted again.
        if (!same_file(*it->second.file, st)) it->second.file = fresh();
        it->second.validated_ms = it->second.used_ms = now_ms;
        return {it->second.file, 0};
    }
    auto file = fresh();
    make_room(now_ms);
    entries_.emplace(relative, Entry{file, now_ms, now_ms});
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

}  // namespace pagewire::http
