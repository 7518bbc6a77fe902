#include <dirent.h>
#include <fcntl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <pagewire/error.hpp>
#include <pagewire/segment.hpp>
#include <set>
#include <thread>

#include "sys.hpp"
#include "sys_ipc.hpp"

#ifndef SHM_STAT_ANY
#define SHM_STAT_ANY 15  // Linux 4.17: SHM_STAT without the read-permission check (as ipcs uses)
#endif

namespace pagewire {
namespace {

// "PWSEGHD1" read as a little-endian integer.
constexpr std::uint64_t kMagic = 0x3144484745535750ULL;
constexpr const char* kDevShm = "/dev/shm/";

// The first Segment::kHeaderSize bytes of a pagewire segment. Written once by
// the creator, magic last (release), so a reader that sees the magic sees the
// rest; read-only afterwards.
struct Header {
    std::uint64_t magic;
    std::uint32_t version;
    std::uint32_t header_size;
    std::uint64_t data_size;
    std::int32_t creator_pid;
    std::uint32_t reserved0;
    std::uint64_t creator_start_ticks;  // /proc/PID/stat field 22
    std::int64_t created_unix_seconds;
    char boot_id[40];  // NUL-padded
    std::byte reserved[128 - 88];
};
static_assert(sizeof(Header) == Segment::kHeaderSize);

Liveness liveness_from_header(const Header& h) {
    std::string boot(h.boot_id, strnlen(h.boot_id, sizeof h.boot_id));
    if (boot != sys::boot_id()) return Liveness::Dead;  // recorded before the last reboot
    auto ticks = sys::process_start_ticks(h.creator_pid);
    if (!ticks) return Liveness::Dead;
    return *ticks == h.creator_start_ticks ? Liveness::Alive : Liveness::Dead;  // recycled pid
}

// System V records no start time; shm_ctime (creation, or a later IPC_SET)
// bounds it instead: a process that started after it cannot be the creator.
Liveness liveness_from_cpid(pid_t cpid, std::time_t ctime) {
    auto started = sys::process_start_epoch(cpid);
    if (!started) return Liveness::Dead;
    // Start times are whole seconds derived from clock ticks: allow one second.
    return *started <= ctime + 1 ? Liveness::Alive : Liveness::Dead;
}

bool header_valid(const Header& h, std::uint64_t object_size) {
    return h.magic == kMagic && h.version == Segment::kLayoutVersion &&
           h.header_size == Segment::kHeaderSize && h.data_size <= object_size - h.header_size;
}

void apply_header(SegmentInfo& info, const Header* h) {
    if (h == nullptr || info.size < Segment::kHeaderSize || !header_valid(*h, info.size)) {
        info.pagewire = false;
        info.data_size = info.size;
        return;
    }
    info.pagewire = true;
    info.data_size = h->data_size;
    if (info.creator_pid == 0) info.creator_pid = h->creator_pid;
    info.creator = liveness_from_header(*h);
}

// Sizes a freshly created object and, for POSIX and file segments, reserves
// its blocks: tmpfs and most filesystems allocate on first touch, and a
// segment that does not fit would SIGBUS whichever process first writes the
// missing page (a full /dev/shm or disk) instead of failing here. A memfd is
// not reserved: it lives outside any size-limited mount, and its users may
// rely on sparse, demand-zero memory.
void size_and_reserve(int fd, Backend backend, const std::string& name, std::size_t object_size) {
    const std::string bytes = std::to_string(object_size) + " bytes";
    if (::ftruncate(fd, static_cast<off_t>(object_size)) != 0) {
        const int err = errno;
        if (err == EFBIG)
            throw_error("create", name, err,
                        "File too large: " + bytes +
                            " exceed the file-size limit (ulimit -f) or the filesystem's maximum");
        throw_error("create", name, err);
    }
    if (backend == Backend::Memfd || object_size == 0) return;
    if (const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(object_size)); err != 0) {
        if (err == EFBIG)
            throw_error("create", name, err,
                        "File too large: cannot reserve " + bytes + " (ulimit -f)");
        throw_error("create", name, err, "cannot reserve " + bytes + ": " + std::strerror(err));
    }
}

// ------------------------------------------------------------------ names

std::string posix_name(const std::string& name, const char* operation) {
    std::string bare = name;
    if (!bare.empty() && bare[0] == '/') bare.erase(0, 1);
    const char* problem = nullptr;
    if (bare.empty())
        problem = "a POSIX segment name must not be empty";
    else if (bare.size() > NAME_MAX)
        problem = "a POSIX segment name must be at most 255 bytes";
    else if (bare.find('/') != std::string::npos)
        problem = "a POSIX segment name must not contain '/' after the first character";
    else if (bare == "." || bare == "..")
        problem = "a POSIX segment name must not be '.' or '..'";
    else if (bare.find('\0') != std::string::npos)
        problem = "a POSIX segment name must not contain NUL";
    if (problem) throw_error(operation, name.empty() ? "\"\"" : name, EINVAL, problem);
    return "/" + bare;
}

std::string key_name(key_t key) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(key));
    return buf;
}

struct SysvName {
    enum Kind { Key, Id, Private } kind = Key;
    key_t key = IPC_PRIVATE;
    int id = -1;
};

std::optional<std::uint64_t> parse_number(const std::string& text) {
    if (text.empty()) return std::nullopt;
    int base = 10;
    std::size_t start = 0;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        start = 2;
    }
    std::uint64_t value = 0;
    for (std::size_t i = start; i < text.size(); ++i) {
        int digit;
        char c = text[i];
        if (c >= '0' && c <= '9')
            digit = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            digit = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F')
            digit = c - 'A' + 10;
        else
            return std::nullopt;
        value = value * static_cast<unsigned>(base) + static_cast<unsigned>(digit);
        if (value > 0xffffffffULL) return std::nullopt;
    }
    return value;
}

SysvName sysv_name(const std::string& name, int project, const char* operation) {
    SysvName n;
    if (name == "private" || name == "IPC_PRIVATE") {
        n.kind = SysvName::Private;
        return n;
    }
    if (name.rfind("id:", 0) == 0) {
        auto id = parse_number(name.substr(3));
        if (!id || *id > INT_MAX)
            throw_error(operation, name, EINVAL,
                        "'" + name.substr(3) + "' is not a System V shmid");
        n.kind = SysvName::Id;
        n.id = static_cast<int>(*id);
        return n;
    }
    if (auto key = parse_number(name)) {
        n.key = static_cast<key_t>(static_cast<std::uint32_t>(*key));
        n.kind = n.key == IPC_PRIVATE ? SysvName::Private : SysvName::Key;
        return n;
    }
    if (name.empty()) throw_error(operation, "\"\"", EINVAL, "a System V key must not be empty");
    // Not a number: a path whose inode and device make the key (ftok).
    key_t key = ::ftok(name.c_str(), project);
    if (key == -1) {
        int err = errno;
        throw_error(operation, name, err,
                    std::string("not a System V key (decimal or 0x-hex), \"id:N\", \"private\", "
                                "nor an existing path for ftok: ") +
                        std::strerror(err));
    }
    n.key = key;
    return n;
}

// The shmid of an existing System V segment.
// `access` (0400 read, 0600 read-write) makes shmget check the permission
// bits, so a refused open fails there with EACCES, as open(2) would.
int sysv_lookup(const SysvName& n, const std::string& name, const char* operation, int access = 0) {
    if (n.kind == SysvName::Private)
        throw_error(operation, name, EINVAL,
                    "IPC_PRIVATE names no existing segment; use \"id:N\" with its shmid");
    if (n.kind == SysvName::Id) {
        shmid_ds ds{};
        if (::shmctl(n.id, IPC_STAT, &ds) != 0) {
            int err = errno;
            // The kernel says EINVAL for an id that does not exist; say it plainly.
            if (err == EINVAL)
                throw_error(operation, name, ENOENT, "no System V segment with this shmid");
            throw_error(operation, name, err);
        }
        return n.id;
    }
    int id = ::shmget(n.key, 0, access);
    if (id < 0) {
        int err = errno;
        if (err == ENOENT)
            throw_error(operation, name, err, "no System V segment with key " + key_name(n.key));
        throw_error(operation, name, err);
    }
    return id;
}

SegmentInfo sysv_info(int id, const shmid_ds& ds) {
    SegmentInfo info;
    info.backend = Backend::SystemV;
    info.key = ds.shm_perm.__key;
    info.name = key_name(info.key);
    info.id = id;
    info.size = ds.shm_segsz;
    info.data_size = ds.shm_segsz;
    info.mode = ds.shm_perm.mode & 0777;
    info.uid = ds.shm_perm.uid;
    info.gid = ds.shm_perm.gid;
    info.cuid = ds.shm_perm.cuid;
    info.cgid = ds.shm_perm.cgid;
    info.creator_pid = ds.shm_cpid;
    info.last_pid = ds.shm_lpid;
    info.attach_time = ds.shm_atime;
    info.detach_time = ds.shm_dtime;
    info.change_time = ds.shm_ctime;
    info.attach_count = static_cast<long>(ds.shm_nattch);
    info.marked_for_removal = (ds.shm_perm.mode & SHM_DEST) != 0;
    info.locked = (ds.shm_perm.mode & SHM_LOCKED) != 0;
    info.creator = liveness_from_cpid(ds.shm_cpid, ds.shm_ctime);
    return info;
}

shmid_ds sysv_stat(int id, const std::string& name, const char* operation) {
    shmid_ds ds{};
    if (::shmctl(id, IPC_STAT, &ds) != 0) throw_error(operation, name);
    return ds;
}

// Processes that map or hold open each path starting with `prefix` (as far as
// /proc lets this process see), keyed by path.
std::map<std::string, long> process_users(const std::string& prefix) {
    std::map<std::string, std::set<pid_t>> users;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return {};
    while (dirent* e = ::readdir(proc)) {
        char* end = nullptr;
        long pid = std::strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0') continue;
        const std::string base = std::string("/proc/") + e->d_name;
        std::ifstream maps(base + "/maps");
        std::string line;
        while (std::getline(maps, line)) {
            auto slash = line.find('/');
            if (slash == std::string::npos) continue;
            std::string path = line.substr(slash);
            if (path.compare(0, prefix.size(), prefix) == 0 &&
                path.find(" (deleted)") == std::string::npos)
                users[path].insert(static_cast<pid_t>(pid));
        }
        DIR* fds = ::opendir((base + "/fd").c_str());
        if (fds == nullptr) continue;
        while (dirent* f = ::readdir(fds)) {
            if (f->d_name[0] == '.') continue;
            char target[PATH_MAX];
            ssize_t n = ::readlinkat(::dirfd(fds), f->d_name, target, sizeof target - 1);
            if (n <= 0) continue;
            std::string path(target, static_cast<std::size_t>(n));
            if (path.compare(0, prefix.size(), prefix) == 0 &&
                path.find(" (deleted)") == std::string::npos)
                users[path].insert(static_cast<pid_t>(pid));
        }
        ::closedir(fds);
    }
    ::closedir(proc);
    std::map<std::string, long> counts;
    for (const auto& [path, pids] : users) counts[path] = static_cast<long>(pids.size());
    return counts;
}

// Kernel path of a POSIX segment or a file, as /proc shows it in maps and fd links.
std::string proc_path(Backend backend, const std::string& canonical) {
    if (backend == Backend::Posix) return std::string(kDevShm) + canonical.substr(1);
    std::error_code ec;
    auto abs = std::filesystem::weakly_canonical(canonical, ec);
    return ec ? canonical : abs.string();
}

// Info of an fd-backed segment (open descriptor), header read with pread.
SegmentInfo fd_info(Backend backend, const std::string& name, int fd, const char* operation) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw_error(operation, name);
    SegmentInfo info;
    info.backend = backend;
    info.name = name;
    info.size = static_cast<std::uint64_t>(st.st_size);
    info.mode = st.st_mode & 0777;
    info.uid = st.st_uid;
    info.gid = st.st_gid;
    info.cuid = st.st_uid;
    info.cgid = st.st_gid;
    info.change_time = st.st_mtime;
    Header h{};
    bool have = info.size >= Segment::kHeaderSize &&
                sys::pread_full(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h);
    apply_header(info, have ? &h : nullptr);
    return info;
}

std::string describe_mode(mode_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 0777));
    return buf;
}

}  // namespace

const char* backend_name(Backend backend) noexcept {
    switch (backend) {
        case Backend::Posix:
            return "posix";
        case Backend::SystemV:
            return "sysv";
        case Backend::Memfd:
            return "memfd";
        case Backend::File:
            return "file";
    }
    return "?";
}

const char* liveness_name(Liveness liveness) noexcept {
    switch (liveness) {
        case Liveness::Alive:
            return "yes";
        case Liveness::Dead:
            return "no";
        case Liveness::Unknown:
            return "?";
    }
    return "?";
}

// ------------------------------------------------------------------ lifetime

Segment::Segment(Segment&& other) noexcept {
    *this = std::move(other);
}

Segment& Segment::operator=(Segment&& other) noexcept {
    if (this != &other) {
        release();
        backend_ = other.backend_;
        name_ = std::move(other.name_);
        options_ = other.options_;
        created_ = other.created_;
        fd_ = std::move(other.fd_);
        mapping_ = std::move(other.mapping_);
        sysv_id_ = std::exchange(other.sysv_id_, -1);
        sysv_address_ = std::exchange(other.sysv_address_, nullptr);
        object_size_ = std::exchange(other.object_size_, 0);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        other.options_.remove_on_close = false;
    }
    return *this;
}

Segment::~Segment() {
    release();
}

void Segment::release() noexcept {
    if (options_.remove_on_close && (sysv_id_ >= 0 || !name_.empty())) {
        try {
            remove();
        } catch (...) {
            // Already removed by someone else: nothing left to do.
        }
    }
    options_.remove_on_close = false;
    if (sysv_address_ != nullptr) ::shmdt(sysv_address_);
    sysv_address_ = nullptr;
    sysv_id_ = -1;
    mapping_ = Mapping();
    fd_.reset();
    data_ = nullptr;
    size_ = 0;
    object_size_ = 0;
}

// ------------------------------------------------------------------ making

Segment Segment::create(Backend backend, const std::string& name, std::size_t size,
                        const SegmentOptions& options) {
    return make(backend, name, size, How::Create, options);
}

Segment Segment::open(Backend backend, const std::string& name, const SegmentOptions& options) {
    return make(backend, name, 0, How::Open, options);
}

Segment Segment::open_or_create(Backend backend, const std::string& name, std::size_t size,
                                const SegmentOptions& options) {
    return make(backend, name, size, How::OpenOrCreate, options);
}

Segment Segment::make(Backend backend, const std::string& name, std::size_t size, How how,
                      const SegmentOptions& options) {
    const char* operation = how == How::Open ? "open" : "create";
    if (how != How::Open && options.read_only)
        throw_error(operation, name, EINVAL, "a segment cannot be created read-only");
    if ((options.mode & ~static_cast<mode_t>(0777)) != 0)
        throw_error(operation, name, EINVAL,
                    "mode " + describe_mode(options.mode) + " has bits outside 0777");
    if (!options.raw && size > SIZE_MAX - kHeaderSize)
        throw_error(operation, name, EFBIG, "size too large");
    if (backend == Backend::SystemV) return make_sysv(name, size, how, options);
    return make_fd_backed(backend, name, size, how, options);
}

Segment Segment::make_fd_backed(Backend backend, const std::string& name, std::size_t size, How how,
                                const SegmentOptions& options) {
    const char* operation = how == How::Open ? "open" : "create";
    Segment s;
    s.backend_ = backend;
    s.options_ = options;
    s.options_.remove_on_close = false;  // armed once the segment exists
    const std::size_t object_size = options.raw ? size : size + kHeaderSize;
    const int access = options.read_only ? O_RDONLY : O_RDWR;

    auto open_it = [&](int flags) -> int {
        switch (backend) {
            case Backend::Posix:
                return ::shm_open(s.name_.c_str(), flags | access, options.mode);
            case Backend::File:
                return ::open(s.name_.c_str(), flags | access | O_CLOEXEC, options.mode);
            default:
                errno = EINVAL;
                return -1;
        }
    };

    if (backend == Backend::Memfd) {
        if (how == How::Open)
            throw_error(
                "open", name, EINVAL,
                "a memfd has no name to open: pass its descriptor (Segment::send/receive) or fork");
        s.name_ = name.empty() ? "memfd" : name;
        int fd = ::memfd_create(s.name_.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) throw_error("create", s.name_);
        s.fd_.reset(fd);
        s.created_ = true;
    } else {
        if (backend == Backend::Posix) {
            s.name_ = posix_name(name, operation);
        } else {
            if (name.empty()) throw_error(operation, "\"\"", EINVAL, "a file segment needs a path");
            s.name_ = name;
        }
        int fd = -1;
        if (how == How::Open) {
            fd = open_it(0);
        } else {
            // Open-or-create tries both ways until one wins a race with another creator/remover.
            for (int attempt = 0; attempt < 100; ++attempt) {
                fd = open_it(O_CREAT | O_EXCL);
                if (fd >= 0) {
                    s.created_ = true;
                    break;
                }
                if (errno != EEXIST || how == How::Create) break;
                fd = open_it(0);
                if (fd >= 0 || errno != ENOENT) break;
            }
        }
        if (fd < 0) throw_error(operation, s.name_);
        s.fd_.reset(fd);
    }
    if (s.created_) {
        // Whatever fails from here on (a size limit, a full filesystem, no
        // address space), the half-made object must not stay behind.
        try {
            // Exactly the mode asked for: the umask is for files users make, and
            // shmget does not apply it either.
            if (backend != Backend::Memfd && ::fchmod(s.fd_.get(), options.mode) != 0) {
                throw_error("create", s.name_);
            }
            size_and_reserve(s.fd_.get(), backend, s.name_, object_size);
            s.map_fd(object_size);
            s.finish(true, size);
        } catch (...) {
            if (backend != Backend::Memfd) ::unlink(proc_path(backend, s.name_).c_str());
            throw;
        }
    } else {
        struct stat st {};
        if (!options.raw) {
            // The creator sizes the object after creating it: wait for that.
            auto deadline =
                std::chrono::steady_clock::now() + std::chrono::milliseconds(kInitWaitMilliseconds);
            while (::fstat(s.fd_.get(), &st) == 0 &&
                   static_cast<std::size_t>(st.st_size) < kHeaderSize &&
                   std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
        if (::fstat(s.fd_.get(), &st) != 0) throw_error(operation, s.name_);
        s.map_fd(static_cast<std::size_t>(st.st_size));
        s.finish(false, size);
    }
    s.options_.remove_on_close = options.remove_on_close;
    return s;
}

Segment Segment::make_sysv(const std::string& name, std::size_t size, How how,
                           const SegmentOptions& options) {
    const char* operation = how == How::Open ? "open" : "create";
    SysvName n = sysv_name(name, options.ftok_project, operation);
    Segment s;
    s.backend_ = Backend::SystemV;
    s.options_ = options;
    s.options_.remove_on_close = false;
    s.name_ = n.kind == SysvName::Id ? name : key_name(n.key);
    const std::size_t object_size = options.raw ? size : size + kHeaderSize;
    const int perms = static_cast<int>(options.mode & 0777);

    int id = -1;
    const int access = options.read_only ? 0400 : 0600;
    if (how == How::Open) {
        id = sysv_lookup(n, name, operation, access);
    } else if (n.kind == SysvName::Id) {
        if (how == How::Create)
            throw_error("create", name, EINVAL,
                        "cannot create a segment with a chosen shmid; use a key or \"private\"");
        id = sysv_lookup(n, name, operation, access);
    } else {
        if (object_size == 0)
            throw_error("create", s.name_, EINVAL,
                        "a System V segment needs a size of at least 1 byte");
        for (int attempt = 0; attempt < 100 && id < 0; ++attempt) {
            id = ::shmget(n.key, object_size, IPC_CREAT | IPC_EXCL | perms);
            if (id >= 0) {
                s.created_ = true;
                break;
            }
            int err = errno;
            if (err != EEXIST || how == How::Create) {
                if (err == EINVAL)
                    throw_error(
                        "create", s.name_, err,
                        "size " + std::to_string(object_size) +
                            " bytes is outside the System V limits (kernel.shmmax / shmall)");
                if (err == EEXIST)
                    throw_error("create", s.name_, err,
                                "a System V segment with key " + s.name_ + " already exists");
                throw_error("create", s.name_, err);
            }
            id = ::shmget(n.key, 0, access);
            if (id < 0 && errno != ENOENT) throw_error("open", s.name_);
        }
        if (id < 0) throw_error("create", s.name_, EAGAIN, "raced with another creator too often");
    }
    if (n.kind == SysvName::Private) s.name_ = "id:" + std::to_string(id);
    s.sysv_id_ = id;
    int flags = (options.read_only ? SHM_RDONLY : 0) | (options.round_attach_address ? SHM_RND : 0);
    void* address = ::shmat(id, options.attach_address, flags);
    if (address == reinterpret_cast<void*>(-1)) {
        int err = errno;
        if (s.created_) ::shmctl(id, IPC_RMID, nullptr);
        throw_error(err == EACCES ? operation : "attach", s.name_, err);
    }
    s.sysv_address_ = address;
    try {
        shmid_ds ds = sysv_stat(id, s.name_, operation);
        s.object_size_ = ds.shm_segsz;
        s.finish(s.created_, size);
    } catch (...) {
        if (s.created_) ::shmctl(id, IPC_RMID, nullptr);  // not left half made
        throw;
    }
    s.options_.remove_on_close = options.remove_on_close;
    return s;
}

Segment Segment::adopt(UniqueFd fd, const std::string& name, const SegmentOptions& options) {
    if (!fd.valid()) throw_error("adopt", name, EBADF);
    Segment s;
    s.backend_ = Backend::Memfd;
    s.options_ = options;
    s.options_.remove_on_close = false;
    s.name_ = name;
    s.fd_ = std::move(fd);
    struct stat st {};
    if (::fstat(s.fd_.get(), &st) != 0) throw_error("adopt", name);
    if (!S_ISREG(st.st_mode))
        throw_error("adopt", name, EINVAL, "the descriptor is not a memfd or regular file");
    s.map_fd(static_cast<std::size_t>(st.st_size));
    s.finish(false, 0);
    return s;
}

void Segment::map_fd(std::size_t object_size) {
    UniqueFd dup(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
    if (!dup) throw_error("map", name_);
    File file = File::adopt(std::move(dup), name_, !options_.read_only);
    mapping_ = Mapping::map(file, options_.read_only ? Access::ReadOnly : Access::ReadWrite, 0,
                            object_size);
    object_size_ = mapping_.size();
}

void Segment::finish(bool fresh, std::size_t requested_size) {
    std::byte* base =
        sysv_address_ != nullptr ? static_cast<std::byte*>(sysv_address_) : mapping_.data();
    if (options_.raw) {
        data_ = base;
        size_ = object_size_;
        return;
    }
    // A POSIX or file segment can be truncated by another process at any
    // moment: the header is only touched through the guard (guard.hpp).
    auto* h = reinterpret_cast<Header*>(base);
    auto check = [&](const AccessResult& r, const char* operation) {
        if (!r)
            throw_error(operation, name_, EIO,
                        "truncated while its header was accessed: " + r.message());
    };
    auto magic_of = [&] {
        std::uint64_t magic = 0;
        check(guarded(h, kHeaderSize,
                      [&] {
                          magic = std::atomic_ref<std::uint64_t>(h->magic).load(
                              std::memory_order_acquire);
                      }),
              "open");
        return magic;
    };
    Header copy{};
    if (fresh) {
        copy.version = kLayoutVersion;
        copy.header_size = kHeaderSize;
        copy.data_size = requested_size;
        copy.creator_pid = ::getpid();
        copy.creator_start_ticks = sys::process_start_ticks(::getpid()).value_or(0);
        copy.created_unix_seconds = static_cast<std::int64_t>(::time(nullptr));
        std::string boot = sys::boot_id();
        std::memcpy(copy.boot_id, boot.data(), std::min(boot.size(), sizeof copy.boot_id - 1));
        // Everything but the magic, then the magic (release): a reader that
        // sees the magic sees the rest.
        constexpr std::size_t kAfterMagic = sizeof copy.magic;
        check(guarded_copy(base + kAfterMagic,
                           reinterpret_cast<const std::byte*>(&copy) + kAfterMagic,
                           kHeaderSize - kAfterMagic),
              "create");
        check(guarded(h, kHeaderSize,
                      [&] {
                          std::atomic_ref<std::uint64_t>(h->magic).store(kMagic,
                                                                         std::memory_order_release);
                      }),
              "create");
    } else {
        const std::string what =
            "not a pagewire segment (no pagewire header; open it raw to use its bytes)";
        if (object_size_ < kHeaderSize) throw_error("open", name_, EPROTO, what);
        auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(kInitWaitMilliseconds);
        std::uint64_t magic = 0;
        // A zero magic may be a creation in flight: give the creator a moment.
        while ((magic = magic_of()) == 0 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (magic != kMagic) throw_error("open", name_, EPROTO, what);
        check(guarded_copy(&copy, h, kHeaderSize), "open");
        if (copy.version != kLayoutVersion)
            throw_error("open", name_, EPROTO,
                        "pagewire segment layout version " + std::to_string(copy.version) +
                            " is not supported (this library reads version " +
                            std::to_string(kLayoutVersion) + ")");
        if (copy.header_size != kHeaderSize || copy.data_size > object_size_ - kHeaderSize)
            throw_error("open", name_, EPROTO,
                        "corrupt pagewire header: " + std::to_string(copy.data_size) +
                            " data bytes after a " + std::to_string(copy.header_size) +
                            "-byte header do not fit in " + std::to_string(object_size_) +
                            " bytes");
    }
    data_ = base + kHeaderSize;
    size_ = static_cast<std::size_t>(copy.data_size);
}

// ------------------------------------------------------------------ by name

void Segment::remove(Backend backend, const std::string& name, int ftok_project) {
    switch (backend) {
        case Backend::Posix: {
            std::string canonical = posix_name(name, "remove");
            if (::shm_unlink(canonical.c_str()) != 0) throw_error("remove", canonical);
            return;
        }
        case Backend::SystemV: {
            SysvName n = sysv_name(name, ftok_project, "remove");
            int id = sysv_lookup(n, name, "remove");
            if (::shmctl(id, IPC_RMID, nullptr) != 0) throw_error("remove", name);
            return;
        }
        case Backend::File:
            if (::unlink(name.c_str()) != 0) throw_error("remove", name);
            return;
        case Backend::Memfd:
            throw_error("remove", name, EINVAL,
                        "a memfd has no name to remove: it goes with its last descriptor");
    }
}

SegmentInfo Segment::stat(Backend backend, const std::string& name, int ftok_project) {
    switch (backend) {
        case Backend::Posix:
        case Backend::File: {
            std::string canonical = backend == Backend::Posix ? posix_name(name, "stat") : name;
            int fd = backend == Backend::Posix
                         ? ::shm_open(canonical.c_str(), O_RDONLY, 0)
                         : ::open(canonical.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
            if (fd < 0) throw_error("stat", canonical);
            UniqueFd owner(fd);
            SegmentInfo info = fd_info(backend, canonical, fd, "stat");
            std::string path = proc_path(backend, canonical);
            auto users = process_users(path);
            auto it = users.find(path);
            // Our own descriptor, opened just now, is not a user.
            info.attach_count = it == users.end() ? 0 : std::max(0L, it->second - 1);
            return info;
        }
        case Backend::SystemV: {
            SysvName n = sysv_name(name, ftok_project, "stat");
            int id = sysv_lookup(n, name, "stat");
            // The kernel's fields first: reading the header attaches, which
            // changes shm_atime, shm_lpid and briefly shm_nattch.
            SegmentInfo info = sysv_info(id, sysv_stat(id, name, "stat"));
            void* address = ::shmat(id, nullptr, SHM_RDONLY);
            if (address == reinterpret_cast<void*>(-1))
                return info;  // no read permission: kernel fields only
            const auto* h = static_cast<const Header*>(address);
            Liveness from_cpid = info.creator;
            apply_header(info, info.size >= kHeaderSize ? h : nullptr);
            if (info.pagewire != true) info.creator = from_cpid;
            ::shmdt(address);
            return info;
        }
        case Backend::Memfd:
            throw_error("stat", name, EINVAL, "a memfd has no name to look up");
    }
    throw_error("stat", name, EINVAL);
}

std::vector<SegmentInfo> Segment::list() {
    std::vector<SegmentInfo> out;
    // POSIX: the files of /dev/shm, without attaching or changing them.
    auto users = process_users(kDevShm);
    if (DIR* dir = ::opendir(kDevShm)) {
        std::vector<std::string> names;
        while (dirent* e = ::readdir(dir)) {
            std::string entry = e->d_name;
            if (entry == "." || entry == ".." || entry.rfind("sem.", 0) == 0)
                continue;  // named semaphores
            names.push_back(entry);
        }
        ::closedir(dir);
        std::sort(names.begin(), names.end());
        for (const auto& entry : names) {
            std::string path = std::string(kDevShm) + entry;
            struct stat st {};
            if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
            SegmentInfo info;
            int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
            if (fd >= 0) {
                UniqueFd owner(fd);
                info = fd_info(Backend::Posix, "/" + entry, fd, "list");
            } else {
                info.backend = Backend::Posix;
                info.name = "/" + entry;
                info.size = info.data_size = static_cast<std::uint64_t>(st.st_size);
                info.mode = st.st_mode & 0777;
                info.uid = info.cuid = st.st_uid;
                info.gid = info.cgid = st.st_gid;
                info.change_time = st.st_mtime;
            }
            auto it = users.find(path);
            info.attach_count = it == users.end() ? 0 : it->second;
            out.push_back(std::move(info));
        }
    }
    // System V: every index the kernel reports, as ipcs walks them.
    shm_info summary{};
    int max_index = ::shmctl(0, SHM_INFO, reinterpret_cast<shmid_ds*>(&summary));
    for (int index = 0; index <= max_index; ++index) {
        shmid_ds ds{};
        int id = ::shmctl(index, SHM_STAT_ANY, &ds);
        if (id < 0) id = ::shmctl(index, SHM_STAT, &ds);
        if (id < 0) continue;
        out.push_back(sysv_info(id, ds));
    }
    return out;
}

// ------------------------------------------------------------------ this segment

SegmentInfo Segment::info() const {
    if (backend_ == Backend::SystemV) {
        SegmentInfo info = sysv_info(sysv_id_, sysv_stat(sysv_id_, name_, "stat"));
        if (!name_.empty() && name_.rfind("id:", 0) == 0 && info.key != IPC_PRIVATE)
            info.name = key_name(info.key);
        Liveness from_cpid = info.creator;
        apply_header(info, options_.raw ? nullptr : reinterpret_cast<const Header*>(sysv_address_));
        if (info.pagewire != true) info.creator = from_cpid;
        return info;
    }
    SegmentInfo info = fd_info(backend_, name_, fd_.get(), "stat");
    if (backend_ != Backend::Memfd) {
        std::string path = proc_path(backend_, name_);
        auto users = process_users(path);
        auto it = users.find(path);
        info.attach_count = it == users.end() ? 0 : it->second;
    }
    return info;
}

void Segment::remove() {
    if (backend_ == Backend::SystemV) {
        if (::shmctl(sysv_id_, IPC_RMID, nullptr) != 0) throw_error("remove", name_);
        return;
    }
    remove(backend_, name_);
}

void Segment::add_seals(unsigned seals) {
    if (::fcntl(fd_.get(), F_ADD_SEALS, static_cast<int>(seals)) != 0) {
        int err = errno;
        if (err == EBUSY && (seals & kSealWrite))
            throw_error("seal", name_, err,
                        "cannot seal against writes while a writable shared mapping exists");
        if (err == EINVAL && backend_ != Backend::Memfd)
            throw_error("seal", name_, err, "only a memfd can be sealed");
        throw_error("seal", name_, err);
    }
}

unsigned Segment::seals() const {
    int seals = ::fcntl(fd_.get(), F_GET_SEALS);
    if (seals < 0) throw_error("seals", name_);
    return static_cast<unsigned>(seals);
}

void Segment::send(int socket) const {
    if (!fd_)
        throw_error("send", name_, EINVAL,
                    "a System V segment has no descriptor to pass; pass its key or id");
    if (sys::send_fd(socket, fd_.get()) != 0) throw_error("send", name_);
}

Segment Segment::receive(int socket, const SegmentOptions& options) {
    int fd = sys::receive_fd(socket);
    if (fd < 0) throw_error("receive", "segment descriptor");
    UniqueFd owner(fd);
    char link[PATH_MAX] = {};
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
    std::string name = n > 0 ? std::string(link, static_cast<std::size_t>(n)) : "received segment";
    return adopt(std::move(owner), name, options);
}

}  // namespace pagewire
