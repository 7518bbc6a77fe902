// map_normalfile2 FILE — the reader of seed 004's example 1 (feature S6, S8).
//
// Maps room for 10 people of FILE and prints them. Run it while
// map_normalfile1 FILE waits: it prints the 10 people that process wrote, 5 of
// them past the file's end. Run it after map_normalfile1 has unmapped: the
// last 5 are zeros ("name:  age 0;"), because nothing past end of file is kept.
#include <cstdio>
#include <pagewire/error.hpp>
#include <pagewire/mapping.hpp>
#include <span>

namespace {

struct People {  // the seed's `people`, 8 bytes
    char name[4];
    int age;
};

constexpr std::size_t kMapPeople = 10;

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: map_normalfile2 FILE\n");
        return 2;
    }
    try {
        // The seed maps read-write; reading needs only ReadOnly, which is still
        // a shared mapping and sees the writer's memory.
        auto map = pagewire::Mapping::open(argv[1], pagewire::Access::ReadOnly, 0,
                                           kMapPeople * sizeof(People),
                                           pagewire::MapOptions{.allow_past_eof = true});

        // Copy the people out with a guarded read. All 80 bytes lie in the
        // file's first page, which is backed as long as the file is not empty,
        // so raw access (map.records<People>()) would work too; the guarded
        // read also turns an empty or truncated FILE into an error message
        // instead of a SIGBUS.
        People people[kMapPeople] = {};
        if (auto result = map.read(0, std::as_writable_bytes(std::span(people))); !result) {
            std::fprintf(stderr, "map_normalfile2: read %s: %s\n", argv[1],
                         result.message().c_str());
            return 1;
        }
        for (const People& p : people) {
            // %.*s: a name fills 4 bytes and need not end in '\0'.
            std::printf("name: %.*s age %d;\n", static_cast<int>(sizeof p.name), p.name, p.age);
        }
    } catch (const pagewire::Error& e) {
        std::fprintf(stderr, "map_normalfile2: %s\n", e.what());
        return 1;
    }
    return 0;
}
