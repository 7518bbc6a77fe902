// pagewire::File — an open regular file with the operations mapping needs.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <pagewire/config.hpp>
#include <pagewire/unique_fd.hpp>
#include <span>
#include <string>

namespace pagewire {

enum class OpenMode {
    ReadOnly,   // O_RDONLY
    ReadWrite,  // O_RDWR; the file must exist
};

enum class CreateMode {
    CreateOrOpen,     // O_CREAT: open if it exists, create otherwise
    CreateExclusive,  // O_CREAT|O_EXCL: fail with EEXIST if it exists
    Truncate,         // O_CREAT|O_TRUNC: create or empty an existing file
};

// An open file: owns its descriptor (O_CLOEXEC) and remembers its path for
// error messages. Move-only. Methods are thread-safe as far as the kernel's
// calls are (positional I/O only; there is no shared file offset in use).
// Every failure throws pagewire::Error naming the operation and the path.
class File {
  public:
    // Opens an existing file: a regular file or a block device. Directories are
    // refused with EISDIR; FIFOs, sockets and character devices with EINVAL
    // ("not a regular file (a FIFO)"), without waiting for a FIFO's writer.
    static File open(const std::string& path, OpenMode mode = OpenMode::ReadOnly);
    // Creates (or opens, per `how`) a file for reading and writing with
    // permission bits `mode` (before umask).
    static File create(const std::string& path, CreateMode how = CreateMode::CreateOrOpen,
                       mode_t mode = 0644);
    // Adopts an already open descriptor; `name` is used in error messages.
    static File adopt(UniqueFd fd, std::string name, bool writable);

    int fd() const noexcept { return fd_.get(); }
    // Gives up the descriptor to the caller, who closes it; the File is then
    // closed (fd() == -1).
    UniqueFd release() noexcept { return std::move(fd_); }
    const std::string& path() const noexcept { return path_; }
    bool writable() const noexcept { return writable_; }

    std::uint64_t size() const;  // fstat st_size
    // False for a file whose size the kernel does not report: size 0 on a
    // pseudo filesystem (/proc/cpuinfo, /proc/self/status) while reads return
    // content. Such a file cannot be mapped; read it as a stream.
    bool size_known() const;
    void resize(std::uint64_t new_size);  // ftruncate: grows sparse or shrinks
    // Reserves disk blocks for [offset, offset+length) (posix_fallocate), growing
    // the file if needed, so later writes through a mapping cannot hit ENOSPC.
    void allocate(std::uint64_t offset, std::uint64_t length);
    void sync();      // fsync: data and metadata on stable storage
    void datasync();  // fdatasync: data (and the size) on stable storage

    // Positional I/O that handles EINTR and short transfers. read_at returns
    // fewer bytes than asked only at end of file; write_at writes everything.
    std::size_t read_at(std::uint64_t offset, std::span<std::byte> out) const;
    void write_at(std::uint64_t offset, std::span<const std::byte> in);

  private:
    File(UniqueFd fd, std::string path, bool writable)
        : fd_(std::move(fd)), path_(std::move(path)), writable_(writable) {}

    UniqueFd fd_;       // open, O_CLOEXEC
    std::string path_;  // as given by the caller, for messages only
    bool writable_ = false;
};

// How open_beneath() treats symlinks whose target lies outside the root.
enum class Symlinks {
    StayBeneath,  // RESOLVE_BENEATH: ".." past the root or such a symlink fails with EXDEV
    Follow,       // no confinement but RESOLVE_NO_MAGICLINKS: symlinks and ".." resolve as
                  // openat(2) would, so the caller must have removed ".." itself
};

// Opens `path` ("" or "." = the root itself) relative to the directory
// `root_fd` with openat2(2) (Linux 5.6), so that resolving it can never
// leave the root: RESOLVE_BENEATH (unless Symlinks::Follow) and always
// RESOLVE_NO_MAGICLINKS (no /proc/PID/fd/N jumps). `flags` are open(2)
// flags; O_CLOEXEC is added. Returns the new descriptor or -errno (EXDEV:
// the path leads out of the root; ENOSYS: no openat2). noexcept and
// allocation-free for a server's hot path: the caller names the failure.
int open_beneath(int root_fd, const std::string& path, int flags,
                 Symlinks symlinks = Symlinks::StayBeneath) noexcept;

}  // namespace pagewire
