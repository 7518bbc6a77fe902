// pagewire serve: the open-file cache (nginx's open_file_cache), which opens
// request paths with pagewire::open_beneath: a descriptor, its stat and the
// header strings derived from it are reused for `valid_ms`, then the path
// is opened again and the entry kept if it still names the same unchanged
// file. One cache per worker thread; not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <pagewire/unique_fd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>

#include "net/protocol.hpp"

namespace pagewire::http {

// An open file or directory and what responses need of it. Shared (by
// shared_ptr) between the cache and the responses in flight, so eviction
// never closes a descriptor a response still sends from. The
// net::FileSource part: fd is O_RDONLY, opened beneath the root; its
// O_DIRECT twin is cached with it.
struct CachedFile : net::FileSource {
    bool directory = false;
    std::uint64_t size = 0;
    std::time_t mtime = 0;
    std::string etag;           // "\"<mtime hex>-<size hex>\"", nginx's form
    std::string last_modified;  // HTTP date of mtime
    std::string_view content_type;
    // What identifies an unchanged file on revalidation.
    dev_t dev = 0;
    ino_t ino = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;
};

struct CacheLookup {
    std::shared_ptr<CachedFile> file;
    int error = 0;  // errno of open or fstat when file is null
};

class OpenFileCache {
  public:
    OpenFileCache(int root_fd, bool follow_symlinks, unsigned valid_ms,
                  std::size_t max_entries = kDefaultMaxEntries);
    // The file at `relative`, from the cache while it is valid.
    CacheLookup open(const std::string& relative, std::uint64_t now_ms);
    std::size_t size() const noexcept { return entries_.size(); }

    static constexpr std::size_t kDefaultMaxEntries = 4096;  // nginx example: max=1000..
    // Entries unused this long are dropped when room is needed (nginx inactive=60s).
    static constexpr std::uint64_t kInactiveMs = 60'000;

  private:
    struct Entry {
        std::shared_ptr<CachedFile> file;
        std::uint64_t validated_ms = 0;
        std::uint64_t used_ms = 0;
    };
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    struct Equal {
        using is_transparent = void;
        bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
    };

    void make_room(std::uint64_t now_ms);

    int root_fd_;
    bool follow_symlinks_;
    unsigned valid_ms_;
    std::size_t max_entries_;
    std::unordered_map<std::string, Entry, Hash, Equal> entries_;
};

}  // namespace pagewire::http
