#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/file_tree.hpp>

#include "sys.hpp"

namespace pagewire {
namespace {

const char* kind_name(mode_t mode) noexcept {
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    return "not a file";
}

// Opens with O_CLOEXEC and refuses what is not a file with a size: mapping or
// reading a directory, FIFO, socket or character device would fail later with
// a less helpful error, or wait. O_NONBLOCK while opening: a FIFO without a
// writer must be refused, not waited for.
UniqueFd open_checked(const std::string& path, int flags, mode_t mode) {
    int fd = sys::retry_eintr(
        [&] { return ::open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK, mode); });
    if (fd < 0) throw_error("open", path);
    UniqueFd owned(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw_error("stat", path);
    if (S_ISDIR(st.st_mode)) throw_error("open", path, EISDIR);
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        throw_error("open", path, EINVAL,
                    std::string("not a regular file (") + kind_name(st.st_mode) + ")");
    }
    const int status = ::fcntl(fd, F_GETFL);
    if (status < 0 || ::fcntl(fd, F_SETFL, status & ~O_NONBLOCK) != 0) throw_error("fcntl", path);
    return owned;
}

}  // namespace

File File::open(const std::string& path, OpenMode mode) {
    const bool writable = mode == OpenMode::ReadWrite;
    return File(open_checked(path, writable ? O_RDWR : O_RDONLY, 0), path, writable);
}

File File::create(const std::string& path, CreateMode how, mode_t mode) {
    int flags = O_RDWR | O_CREAT;
    if (how == CreateMode::CreateExclusive) flags |= O_EXCL;
    if (how == CreateMode::Truncate) flags |= O_TRUNC;
    return File(open_checked(path, flags, mode), path, true);
}

File File::adopt(UniqueFd fd, std::string name, bool writable) {
    if (!fd.valid()) throw_error("adopt", name, EBADF);
    return File(std::move(fd), std::move(name), writable);
}

std::uint64_t File::size() const {
    struct stat st {};
    if (::fstat(fd(), &st) != 0) throw_error("stat", path_);
    return static_cast<std::uint64_t>(st.st_size);
}

bool File::size_known() const {
    struct stat st {};
    if (::fstat(fd(), &st) != 0) throw_error("stat", path_);
    if (st.st_size != 0 || !S_ISREG(st.st_mode)) return true;
    struct statfs fs {};
    return ::fstatfs(fd(), &fs) != 0 || !is_pseudo_filesystem(static_cast<long>(fs.f_type));
}

void File::resize(std::uint64_t new_size) {
    if (sys::retry_eintr([&] { return ::ftruncate(fd(), static_cast<off_t>(new_size)); }) != 0) {
        throw_error("resize", path_);
    }
}

void File::allocate(std::uint64_t offset, std::uint64_t length) {
    // posix_fallocate returns the error instead of setting errno.
    int err;
    do {
        err = ::posix_fallocate(fd(), static_cast<off_t>(offset), static_cast<off_t>(length));
    } while (err == EINTR);
    if (err != 0) throw_error("allocate", path_, err);
}

void File::sync() {
    if (sys::retry_eintr([&] { return ::fsync(fd()); }) != 0) throw_error("fsync", path_);
}

void File::datasync() {
    if (sys::retry_eintr([&] { return ::fdatasync(fd()); }) != 0) throw_error("fdatasync", path_);
}

std::size_t File::read_at(std::uint64_t offset, std::span<std::byte> out) const {
    ssize_t r = sys::pread_full(fd(), out.data(), out.size(), offset);
    if (r < 0) throw_error("read", path_);
    return static_cast<std::size_t>(r);
}

void File::write_at(std::uint64_t offset, std::span<const std::byte> in) {
    if (sys::pwrite_full(fd(), in.data(), in.size(), offset) < 0) throw_error("write", path_);
}

int open_beneath(int root_fd, const std::string& path, int flags, Symlinks symlinks) noexcept {
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_NO_MAGICLINKS | (symlinks == Symlinks::StayBeneath ? RESOLVE_BENEATH : 0);
    const char* name = path.empty() ? "." : path.c_str();
    const long fd =
        sys::retry_eintr([&] { return ::syscall(SYS_openat2, root_fd, name, &how, sizeof how); });
    return fd < 0 ? -errno : static_cast<int>(fd);
}

}  // namespace pagewire
