// fork_anon — seed 004's example 2: parent and child share anonymous memory
// (feature S7).
//
// An anonymous shared mapping made before fork() is the same memory in both
// processes: no file, no name. The parent writes 5 people, the child reads
// them and changes the first age to 100, and the parent sees the 100.
//
// The seed orders the two processes with sleep(2) in the child and sleep(5) in
// the parent. Here the child waits for the parent to close a pipe, and the
// parent waits for the child with waitpid(), so the output is always the
// seed's 8 lines in the seed's order.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/mapping.hpp>
#include <span>

namespace {

struct People {  // the seed's `people`, 8 bytes
    char name[4];
    int age;
};

constexpr std::size_t kMapPeople = 10;
constexpr int kWrittenPeople = 5;

int fail(const char* operation) {
    std::fprintf(stderr, "fork_anon: %s: %s\n", operation, std::strerror(errno));
    return 1;
}

}  // namespace

int main() {
    try {
        auto map =
            pagewire::Mapping::anonymous(kMapPeople * sizeof(People), pagewire::Sharing::Shared);
        std::span<People> people = map.records<People>();

        int ready[2];  // the parent closes ready[1] once the people are written
        if (pipe(ready) != 0) return fail("pipe");
        std::fflush(stdout);  // nothing buffered may be printed twice after fork
        const pid_t child = fork();
        if (child < 0) return fail("fork");

        if (child == 0) {
            close(ready[1]);
            char byte;
            ssize_t n = 0;
            do {  // until EOF: the parent has written
                n = read(ready[0], &byte, 1);
            } while (n > 0 || (n < 0 && errno == EINTR));
            for (int i = 0; i < kWrittenPeople; ++i) {
                std::printf("child read: the %d people's age is %d\n", i + 1, people[i].age);
            }
            people[0].age = 100;
            std::fflush(stdout);
            // The mapping goes away with the process, as the seed notes; _exit
            // skips the parent's copies of atexit handlers and stdio buffers.
            _exit(0);
        }

        close(ready[0]);
        char name = 'a';
        for (int i = 0; i < kWrittenPeople; ++i) {
            ++name;
            people[i].name[0] = name;
            people[i].name[1] = '\0';
            people[i].age = 20 + i;
        }
        close(ready[1]);  // let the child read

        int status = 0;
        while (waitpid(child, &status, 0) < 0) {
            if (errno != EINTR) return fail("waitpid");
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            std::fprintf(stderr, "fork_anon: child failed (wait status %d)\n", status);
            return 1;
        }
        std::printf("parent read: the first people,s age is %d\n", people[0].age);
        std::printf("umap\n");
        map = pagewire::Mapping{};  // munmap
        std::printf("umap ok\n");
    } catch (const pagewire::Error& e) {
        std::fprintf(stderr, "fork_anon: %s\n", e.what());
        return 1;
    }
    return 0;
}
