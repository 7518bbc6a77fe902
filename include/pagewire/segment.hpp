// pagewire::Segment — a shared memory segment, one API over four backends.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <pagewire/config.hpp>
#include <pagewire/mapping.hpp>
#include <pagewire/unique_fd.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pagewire {

// Where the pages live and how other processes find them.
enum class Backend {
    Posix,    // shm_open: a name in /dev/shm ("/name" or "name"); persists until removed or reboot
    SystemV,  // shmget: a key (decimal, 0x-hex, or a path turned into a key with ftok),
              // "id:N" for an existing shmid, "private" (IPC_PRIVATE) to create an unnamed one
    Memfd,    // memfd_create: no name anyone can open; shared by fork or by passing the fd
    File,     // a plain file (S6): the name is its path
};

const char* backend_name(Backend backend) noexcept;  // "posix", "sysv", "memfd", "file"

// memfd seals (fcntl F_ADD_SEALS), combinable with |.
enum Seal : unsigned {
    kSealShrink = 0x2,  // F_SEAL_SHRINK: the size can never drop, so a mapping can never SIGBUS
    kSealGrow = 0x4,    // F_SEAL_GROW
    kSealWrite = 0x8,   // F_SEAL_WRITE: contents frozen (no writable mapping may exist)
    kSealSeal = 0x1,    // F_SEAL_SEAL: no further seals
};

struct SegmentOptions {
    mode_t mode = 0600;            // permission bits at creation, exactly (umask is not applied,
                                   // as with shmget); owner only by default
    bool read_only = false;        // map (or shmat with SHM_RDONLY) read-only
    bool remove_on_close = false;  // this handle unlinks / IPC_RMIDs the segment when destroyed
    // No pagewire header: every byte is data. Needed for segments other
    // programs made (ipcmk, a C program); a raw open never checks a header.
    bool raw = false;
    // System V attach address (nullptr: the kernel picks); with
    // round_attach_address (SHM_RND) it is rounded down to SHMLBA.
    const void* attach_address = nullptr;
    bool round_attach_address = false;
    // System V: the ftok project id used when the name is a path.
    int ftok_project = 1;
};

enum class Liveness { Alive, Dead, Unknown };
const char* liveness_name(Liveness liveness) noexcept;  // "yes", "no", "?"

// What `ipcs` shows, for any backend (fields a backend lacks are 0 / -1).
struct SegmentInfo {
    Backend backend = Backend::Posix;
    std::string name;             // "/name", "0x0000abcd" (System V key), or a path
    key_t key = 0;                // System V
    int id = -1;                  // System V shmid
    std::uint64_t size = 0;       // bytes of the object (the kernel's size; ipcs "bytes")
    std::uint64_t data_size = 0;  // bytes after the pagewire header (== size when raw)
    mode_t mode = 0;              // permission bits
    uid_t uid = 0;
    gid_t gid = 0;
    uid_t cuid = 0;  // System V creator uid/gid
    gid_t cgid = 0;
    pid_t creator_pid = 0;        // System V shm_cpid, or the pagewire header's
    pid_t last_pid = 0;           // System V shm_lpid (last shmat/shmdt)
    std::time_t attach_time = 0;  // System V shm_atime
    std::time_t detach_time = 0;  // System V shm_dtime
    std::time_t change_time = 0;  // System V shm_ctime; mtime for files
    long attach_count = -1;       // System V shm_nattch; POSIX/file: processes mapping it
                                  // or holding it open, as far as /proc shows (-1: unknown)
    // A valid pagewire header is present; nullopt when not looked at (list()
    // never attaches System V segments, so as not to change their shm_lpid/atime).
    std::optional<bool> pagewire;
    bool marked_for_removal = false;       // System V SHM_DEST: removed once the last attach goes
    bool locked = false;                   // System V SHM_LOCKED
    Liveness creator = Liveness::Unknown;  // creator pid + start time (+ boot id) still running?
};

// A shared memory segment mapped into this process. Move-only; unmapped
// (shmdt for System V) on destruction, and removed too when
// SegmentOptions::remove_on_close. The bytes are shared with every process
// that maps the segment: synchronize with RobustMutex, Semaphore or Event.
//
// Unless SegmentOptions::raw, a segment pagewire creates starts with a
// 128-byte header (magic, layout version, sizes, creator pid + start time +
// boot id) and data() points after it; open() refuses a segment without a
// valid header (foreign or corrupt) with a clear error. The object's size is
// then size() + kHeaderSize. Creation writes the header last: an open that
// races a creation waits up to kInitWait for it.
class Segment {
  public:
    static constexpr std::size_t kHeaderSize = 128;
    static constexpr std::uint32_t kLayoutVersion = 1;
    static constexpr int kInitWaitMilliseconds = 1000;

    // Creates a new segment of `size` data bytes; EEXIST if the name is taken
    // (IPC_EXCL / O_EXCL). For Backend::Memfd the name is only a label.
    // POSIX and file segments get their blocks reserved (posix_fallocate), so
    // a full /dev/shm or disk is ENOSPC here, never a SIGBUS on a later write.
    // A size over RLIMIT_FSIZE is EFBIG once SIGXFSZ is ignored (its default
    // action kills the process). On any failure nothing is left behind.
    static Segment create(Backend backend, const std::string& name, std::size_t size,
                          const SegmentOptions& options = {});
    // Opens an existing segment (ENOENT if there is none). Its size comes from the segment.
    static Segment open(Backend backend, const std::string& name,
                        const SegmentOptions& options = {});
    // Opens the segment if it exists, creates it with `size` data bytes
    // otherwise (as create(): reserved, cleaned up after a failure).
    static Segment open_or_create(Backend backend, const std::string& name, std::size_t size,
                                  const SegmentOptions& options = {});
    // Wraps a memfd (or any shareable fd) received from another process, e.g. by
    // receive_fd(); `name` is for messages.
    static Segment adopt(UniqueFd fd, const std::string& name, const SegmentOptions& options = {});

    // Removes a segment by name without mapping it: shm_unlink, IPC_RMID (the
    // pages live on until the last process detaches, like ipcrm), unlink.
    static void remove(Backend backend, const std::string& name, int ftok_project = 1);
    // What the kernel (and the header, if readable) says about a segment.
    static SegmentInfo stat(Backend backend, const std::string& name, int ftok_project = 1);
    // Every POSIX segment in /dev/shm (named semaphores excluded) and every
    // System V segment, like `ipcs -m` plus `ls /dev/shm`.
    static std::vector<SegmentInfo> list();

    Segment() noexcept = default;
    Segment(Segment&& other) noexcept;
    Segment& operator=(Segment&& other) noexcept;
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;
    ~Segment();

    std::byte* data() noexcept { return data_; }
    const std::byte* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }  // data bytes
    std::span<std::byte> bytes() noexcept { return {data_, size_}; }
    std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }

    Backend backend() const noexcept { return backend_; }
    const std::string& name() const noexcept { return name_; }  // canonical: "/x", "0x..." or path
    bool created() const noexcept { return created_; }          // this handle created it
    bool writable() const noexcept { return !options_.read_only; }
    int fd() const noexcept { return fd_.get(); }      // -1 for System V
    int sysv_id() const noexcept { return sysv_id_; }  // -1 unless System V

    SegmentInfo info() const;
    // Removes the segment's name now (the mapping stays valid until destroyed).
    void remove();

    // memfd only: adds seals (Seal values); EPERM once kSealSeal is set,
    // EBUSY for kSealWrite while a writable mapping exists.
    void add_seals(unsigned seals);
    unsigned seals() const;
    // Sends the segment's descriptor over a connected Unix socket (SCM_RIGHTS).
    void send(int socket) const;
    // Receives a descriptor sent by send() and maps it.
    static Segment receive(int socket, const SegmentOptions& options = {});

  private:
    enum class How { Create, Open, OpenOrCreate };
    static Segment make(Backend backend, const std::string& name, std::size_t size, How how,
                        const SegmentOptions& options);
    static Segment make_fd_backed(Backend backend, const std::string& name, std::size_t size,
                                  How how, const SegmentOptions& options);
    static Segment make_sysv(const std::string& name, std::size_t size, How how,
                             const SegmentOptions& options);
    void map_fd(std::size_t object_size);
    void finish(bool fresh, std::size_t requested_size);
    void release() noexcept;

    Backend backend_ = Backend::Posix;
    std::string name_;
    SegmentOptions options_;
    bool created_ = false;
    UniqueFd fd_;                   // POSIX, memfd, file: the open object; invalid for System V
    Mapping mapping_;               // POSIX, memfd, file: the whole object
    int sysv_id_ = -1;              // System V shmid
    void* sysv_address_ = nullptr;  // System V: shmat's address, shmdt'ed on destruction
    std::size_t object_size_ = 0;   // bytes mapped (header + data)
    std::byte* data_ = nullptr;     // first data byte: after the header unless raw
    std::size_t size_ = 0;          // data bytes
};

}  // namespace pagewire
