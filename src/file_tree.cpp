#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <pagewire/file_tree.hpp>
#include <pagewire/io.hpp>
#include <set>
#include <utility>

namespace pagewire {
namespace {

// A walk over one call's paths: the counts and the set of multiply-linked
// files already visited. Not thread-safe; lives for one walk_files call.
class Walk {
  public:
    Walk(const WalkOptions& options, WalkVisitor& visitor) : options_(options), visitor_(visitor) {}

    // A path named by the caller: symlinks are followed here (not in trees).
    void top(const std::string& path) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) return report(path, std::strerror(errno));
        if (S_ISDIR(st.st_mode)) {
            const int fd = retry_eintr(
                [&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
            if (fd < 0) return report(path, std::strerror(errno));
            directory(UniqueFd(fd), path, st.st_dev);
        } else if (S_ISREG(st.st_mode)) {
            file(AT_FDCWD, path.c_str(), path);
        } else {
            report(path, "not a regular file or directory");
        }
    }

    const WalkCounts& counts() const noexcept { return counts_; }

  private:
    void report(const std::string& path, std::string_view reason) {
        ++counts_.errors;
        visitor_.error(path, reason);
    }

    // "dir" + "/" + name, without doubling the slash of "/" or "dir/".
    static std::string join(const std::string& dir, const char* name) {
        if (!dir.empty() && dir.back() == '/') return dir + name;
        return dir + "/" + name;
    }

    // Whether a directory met inside a tree (on device `dev`, its parent on
    // `parent_dev`) is entered, per options_.
    bool enter(int fd, dev_t dev, dev_t parent_dev) {
        if (options_.one_file_system && dev != parent_dev) {
            ++counts_.other_filesystems;
            return false;
        }
        struct statfs fs {};
        if (options_.skip_pseudo_filesystems && ::fstatfs(fd, &fs) == 0 &&
            is_pseudo_filesystem(static_cast<long>(fs.f_type))) {
            ++counts_.pseudo_filesystems;
            return false;
        }
        return true;
    }

    void directory(UniqueFd dir_fd, const std::string& path, dev_t dev) {
        const int fd = dir_fd.get();
        DIR* dir = ::fdopendir(fd);
        if (dir == nullptr) return report(path, std::strerror(errno));
        (void)dir_fd.release();  // the DIR owns it now
        std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, ::closedir);
        ++counts_.directories;
        while (true) {
            errno = 0;
            const dirent* e = ::readdir(dir);
            if (e == nullptr) {
                if (errno != 0) report(path, std::strerror(errno));
                break;
            }
            const char* name = e->d_name;
            if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
                continue;
            unsigned char type = e->d_type;
            if (type == DT_UNKNOWN) {
                struct stat st {};
                if (::fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                    report(join(path, name), std::strerror(errno));
                    continue;
                }
                type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
            }
            if (type == DT_DIR) {
                const int sub = retry_eintr([&] {
                    return ::openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                });
                if (sub < 0) {
                    report(join(path, name), std::strerror(errno));
                    continue;
                }
                UniqueFd owned(sub);
                struct stat st {};
                if (::fstat(sub, &st) != 0) {
                    report(join(path, name), std::strerror(errno));
                    continue;
                }
                if (enter(sub, st.st_dev, dev))
                    directory(std::move(owned), join(path, name), st.st_dev);
            } else if (type == DT_REG) {
                file(fd, name, path);
            } else {
                ++counts_.skipped;
            }
        }
    }

    void file(int dir_fd, const char* name, const std::string& parent) {
        auto full = [&] { return dir_fd == AT_FDCWD ? parent : join(parent, name); };
        // O_NONBLOCK: a FIFO swapped in after readdir must not block the walk.
        // Symlinks are followed only when named by the caller (dir_fd == AT_FDCWD).
        int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
        if (dir_fd != AT_FDCWD) flags |= O_NOFOLLOW;
        int fd = retry_eintr([&] { return ::openat(dir_fd, name, flags | O_NOATIME); });
        if (fd < 0 && errno == EPERM)
            fd = retry_eintr([&] { return ::openat(dir_fd, name, flags); });
        if (fd < 0) return report(full(), std::strerror(errno));
        UniqueFd owned(fd);
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
            return report(full(), "not a regular file");
        if (st.st_nlink > 1 && !seen_.insert({st.st_dev, st.st_ino}).second) return;
        const std::string path = full();
        File f = File::adopt(std::move(owned), path, false);
        ++counts_.files;
        visitor_.file(f, path, st);
    }

    const WalkOptions& options_;
    WalkVisitor& visitor_;
    WalkCounts counts_;
    std::set<std::pair<dev_t, ino_t>> seen_;  // multiply-linked files already visited
};

}  // namespace

bool is_pseudo_filesystem(long f_type) noexcept {
    switch (f_type) {
        case PROC_SUPER_MAGIC:
        case SYSFS_MAGIC:
        case DEVPTS_SUPER_MAGIC:
        case CGROUP_SUPER_MAGIC:
        case CGROUP2_SUPER_MAGIC:
        case DEBUGFS_MAGIC:
        case TRACEFS_MAGIC:
        case SECURITYFS_MAGIC:
        case BPF_FS_MAGIC:
        case PSTOREFS_MAGIC:
        case SELINUX_MAGIC:
        case SMACK_MAGIC:
        case EFIVARFS_MAGIC:
        case BINFMTFS_MAGIC:
        case NSFS_MAGIC:
        case 0x62656570:  // configfs (CONFIGFS_MAGIC, not in linux/magic.h)
        case 0x65735543:  // fusectl (FUSE_CTL_SUPER_MAGIC)
        case 0x19800202:  // mqueue (MQUEUE_MAGIC)
            return true;
        default:
            return false;
    }
}

WalkCounts walk_files(const std::vector<std::string>& paths, const WalkOptions& options,
                      WalkVisitor& visitor) {
    Walk walk(options, visitor);
    for (const std::string& path : paths) walk.top(path);
    return walk.counts();
}

}  // namespace pagewire
