// Seed 003's System V shared memory walk-through, with pagewire: shmget
// creates a segment, shmat attaches it, this process writes, a second process
// (this program re-executed as "reader") attaches and reads it, shmctl
// IPC_STAT shows the attach counts rise and fall, shmdt detaches, IPC_RMID
// removes it.
//
//   sysv_walkthrough            run the walk-through on a new IPC_PRIVATE segment
//   sysv_walkthrough reader ID  (used by the walk-through) read segment id:ID
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/segment.hpp>
#include <string>

using pagewire::Backend;
using pagewire::Segment;

namespace {

void show(const char* step, const pagewire::SegmentInfo& i) {
    std::printf(
        "%-8s shmid %d: %llu bytes, mode %04o, creator pid %d, last pid %d, attaches %ld%s\n", step,
        i.id, static_cast<unsigned long long>(i.size), static_cast<unsigned>(i.mode), i.creator_pid,
        i.last_pid, i.attach_count, i.marked_for_removal ? ", marked for removal" : "");
    std::fflush(stdout);
}

int reader(const std::string& id) {
    pagewire::SegmentOptions ro;
    ro.read_only = true;  // shmat(..., SHM_RDONLY)
    Segment seg = Segment::open(Backend::SystemV, "id:" + id, ro);
    std::printf("reader   pid %d read: %s\n", static_cast<int>(::getpid()),
                reinterpret_cast<const char*>(seg.data()));
    show("reader", seg.info());
    return 0;
}

int walkthrough(const char* self) {
    // shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600) + shmat.
    Segment seg = Segment::create(Backend::SystemV, "private", 4096);
    show("created", seg.info());

    const std::string message = "hello from pid " + std::to_string(::getpid());
    std::memcpy(seg.data(), message.c_str(), message.size() + 1);
    std::printf("writer   wrote: %s\n", message.c_str());
    std::fflush(stdout);

    // Another process attaches and reads.
    const std::string id = std::to_string(seg.sysv_id());
    pid_t pid = ::fork();
    if (pid < 0) pagewire::throw_error("fork", "reader");
    if (pid == 0) {
        ::execl(self, self, "reader", id.c_str(), static_cast<char*>(nullptr));
        std::perror("exec reader");
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "reader failed\n");
        return 1;
    }
    show("after", seg.info());  // the reader detached on exit

    seg = Segment();  // shmdt
    pagewire::SegmentInfo detached = Segment::stat(Backend::SystemV, "id:" + id);
    show("detached", detached);

    Segment::remove(Backend::SystemV, "id:" + id);  // shmctl(IPC_RMID)
    try {
        Segment::stat(Backend::SystemV, "id:" + id);
        std::printf("removed  NOT removed\n");
        return 1;
    } catch (const pagewire::Error& e) {
        std::printf("removed  %s\n", e.what());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 3 && std::string(argv[1]) == "reader") return reader(argv[2]);
        if (argc == 1) return walkthrough(argv[0]);
        std::fprintf(stderr, "usage: %s\n", argv[0]);
        return 2;
    } catch (const pagewire::Error& e) {
        std::fprintf(stderr, "sysv_walkthrough: %s\n", e.what());
        return 1;
    }
}
