// pagewire::walk_files — visits every regular file of a set of paths, walking
// directories recursively the way vmtouch and du do; the tree walker of
// `pagewire cache` (S17), usable for any per-file job.
#pragma once
#include <sys/stat.h>

#include <cstdint>
#include <pagewire/config.hpp>
#include <pagewire/file.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace pagewire {

struct WalkOptions {
    // Do not descend into directories on another filesystem than the path
    // they were reached from (du -x, find -xdev).
    bool one_file_system = false;
    // Do not descend into pseudo filesystems (proc, sysfs, cgroup, devpts,
    // debugfs, tracefs, securityfs, bpf, pstore, configfs, ...) met inside a
    // tree: their files have no page cache to speak of and walking /proc takes
    // long and fails often. A pseudo-filesystem path named at the top is walked.
    bool skip_pseudo_filesystems = true;
    // Open a directory's files through io_uring, up to 64 per system call,
    // closing the previous batch's descriptors in the same call (one openat
    // and one close per file otherwise, and where io_uring is not available).
    // The visits, their order and the counts are the same either way.
    bool batch_opens = true;
};

// What the walk found. Files reached by several hard links count once.
struct WalkCounts {
    std::uint64_t files = 0;               // regular files handed to the visitor
    std::uint64_t directories = 0;         // directories read
    std::uint64_t skipped = 0;             // entries not walked: symlinks, FIFOs, sockets, devices
    std::uint64_t other_filesystems = 0;   // directories not entered (one_file_system)
    std::uint64_t pseudo_filesystems = 0;  // directories not entered (skip_pseudo_filesystems)
    std::uint64_t errors = 0;              // paths reported to the visitor's error()
};

// Called by walk_files, on the calling thread, in directory order.
class WalkVisitor {
  public:
    virtual ~WalkVisitor() = default;
    // A regular file, open read-only (O_NOATIME where allowed, O_NONBLOCK, not
    // following a symlink inside a tree), with its fstat. `path` is the path
    // named by the caller joined with the names below it. An exception thrown
    // here ends the walk and propagates.
    virtual void file(File& file, const std::string& path, const struct stat& st) = 0;
    // A path that could not be opened, read or stat'ed; the walk goes on.
    // `reason` is the errno text or what was wrong ("not a regular file ...").
    virtual void error(const std::string& path, std::string_view reason) = 0;
};

// Walks `paths` in order: a file is visited, a directory walked recursively
// (symlinks are followed only when named in `paths`). Each directory is
// opened relative to its parent's descriptor (openat, no lookup from the root
// per file) and one descriptor is held per level of depth. Returns the counts;
// throws only what the visitor throws.
WalkCounts walk_files(const std::vector<std::string>& paths, const WalkOptions& options,
                      WalkVisitor& visitor);

// True for the type of a pseudo filesystem (statfs f_type) walk_files skips.
bool is_pseudo_filesystem(long f_type) noexcept;

}  // namespace pagewire
