// cow FILE — a private copy-on-write mapping (feature S2, seeds 000 and 002:
// "MAP_PRIVATE: writes to the region do not change the file; a write makes a
// copy of the page").
//
// Writes a line to FILE (created or overwritten), maps it CopyOnWrite and
// writes through the map. The map shows the change; the file does not; and
// another process that maps the file shared does not see it either.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/mapping.hpp>
#include <span>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view kText = "hello, file\n";

std::string read_file(const pagewire::File& file) {
    std::string text(file.size(), '\0');
    text.resize(file.read_at(0, std::as_writable_bytes(std::span(text))));
    return text;
}

// Runs in a forked child: a fresh shared mapping of the file, as any other
// process would make. The parent's private pages are not in it.
int print_as_other_process(const char* path) {
    try {
        auto shared = pagewire::Mapping::open(path, pagewire::Access::ReadOnly);
        std::printf("other process: %.*s", static_cast<int>(shared.size()), shared.chars().data());
    } catch (const pagewire::Error& e) {
        std::fprintf(stderr, "cow: %s\n", e.what());
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: cow FILE\n");
        return 2;
    }
    try {
        auto file = pagewire::File::create(argv[1], pagewire::CreateMode::Truncate);
        file.write_at(0, std::as_bytes(std::span(kText)));

        auto map = pagewire::Mapping::map(file, pagewire::Access::CopyOnWrite);
        std::memcpy(map.data(), "HELLO", 5);  // the kernel copies the page; the copy is ours

        std::printf("private map:   %.*s", static_cast<int>(map.size()), map.chars().data());
        std::printf("file:          %s", read_file(file).c_str());

        std::fflush(stdout);  // nothing buffered may be printed twice after fork
        const pid_t child = fork();
        if (child < 0) {
            std::fprintf(stderr, "cow: fork: %s\n", std::strerror(errno));
            return 1;
        }
        if (child == 0) {
            const int code = print_as_other_process(argv[1]);
            std::fflush(stdout);
            _exit(code);
        }
        int status = 0;
        while (waitpid(child, &status, 0) < 0) {
            if (errno != EINTR) {
                std::fprintf(stderr, "cow: waitpid: %s\n", std::strerror(errno));
                return 1;
            }
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    } catch (const pagewire::Error& e) {
        std::fprintf(stderr, "cow: %s\n", e.what());
        return 1;
    }
    return 0;
}
