// map_normalfile1 FILE — the writer of seed 004's example 1 (feature S6, S8).
//
// Two unrelated processes share memory through one ordinary file. This one
// empties FILE, gives it room for 5 people, maps room for 10 and fills all 10.
// While it waits, run `map_normalfile2 FILE` elsewhere: it sees all 10, because
// both processes map the same page-cache page. After this program unmaps, a
// new map_normalfile2 sees only the first 5: a map never grows its file, and
// the bytes past end of file never reach it.
//
// The seed sleeps 10 s to leave time for the reader; this program instead
// waits until a line arrives on stdin or stdin is closed (press Enter), so a
// script or test decides when it goes on.
#include <cstdio>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/mapping.hpp>
#include <span>

namespace {

// The seed's `people`: 8 bytes, so 10 of them fit in the first page.
struct People {
    char name[4];
    int age;
};

constexpr std::size_t kFilePeople = 5;  // what the file holds: 40 bytes
constexpr std::size_t kMapPeople = 10;  // what is mapped and written: 80 bytes

void wait_for_stdin() {
    int c = 0;
    while ((c = std::getchar()) != EOF && c != '\n') {
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: map_normalfile1 FILE\n");
        return 2;
    }
    try {
        pagewire::Mapping map;
        {
            auto file = pagewire::File::create(argv[1], pagewire::CreateMode::Truncate);
            file.resize(kFilePeople * sizeof(People));  // the seed's lseek + write of one byte
            // 80 bytes of a 40-byte file: without allow_past_eof pagewire would
            // clamp the view to the file's 40 bytes.
            map = pagewire::Mapping::map(file, pagewire::Access::ReadWrite, 0,
                                         kMapPeople * sizeof(People),
                                         pagewire::MapOptions{.allow_past_eof = true});
        }  // the file is closed here, as in the seed; the mapping stays valid

        // Raw access is safe here: all 80 bytes lie in the file's first page,
        // which exists because the file is not empty. Only pages wholly past
        // end of file raise SIGBUS (see the boundary example).
        std::span<People> people = map.records<People>();
        char name = 'a';
        for (std::size_t i = 0; i < people.size(); ++i) {
            ++name;
            people[i].name[0] = name;  // "b", "c", ... "k"
            people[i].name[1] = '\0';
            people[i].age = 20 + static_cast<int>(i);
        }
        std::printf("initialize over\n");
        std::fflush(stdout);

        wait_for_stdin();

        // The seed: "only munmap or msync writes the memory back to the file,
        // and never more than the file's size". Writeback also zeroes the
        // cached bytes past end of file (the page may be mapped elsewhere), so
        // flushing now makes the next reader see zeros there, as the seed
        // shows; without it they would linger until the kernel's own writeback.
        // (tmpfs has no writeback: there they linger until the page is freed.)
        map.flush(pagewire::Flush::Sync);
        map = pagewire::Mapping{};  // munmap
        std::printf("umap ok\n");
    } catch (const pagewire::Error& e) {
        std::fprintf(stderr, "map_normalfile1: %s\n", e.what());
        return 1;
    }
    return 0;
}
