// boundary [--offset-page] [--raw] FILE — seed 004's page-boundary demo (feature S8).
//
// FILE is made pagesize*2-99 bytes long and a 3-page map of it is made, from
// file offset 0 (the seed's version 1) or from offset pagesize (version 2,
// --offset-page). Then one people record is written at each side of every page
// boundary. What is usable is decided by how much of the FILE the map covers,
// in whole pages, not by the map's length:
//
//   version 1: the map covers all pagesize*2-99 bytes -> pages 1 and 2 are
//              usable (page 2 only partly holds file data), page 3 raises SIGBUS;
//   version 2: the map covers pagesize-99 bytes -> page 1 is usable, page 2
//              raises SIGBUS.
//
// (The seed also notes that going past the map's own length gives SIGSEGV;
// this program stays inside its 3 pages.)
//
// By default the writes go through Mapping::write, which turns the SIGBUS into
// an error value: the program reports it and exits 0. With --raw they are
// plain stores through a pointer, exactly like the seed, and the process dies
// of SIGBUS ("Bus error").
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/mapping.hpp>
#include <span>
#include <string>

namespace {

struct People {  // the seed's `people`, 8 bytes
    char name[4];
    int age;
};

constexpr std::size_t kMapPages = 3;
constexpr int kAge = 100;

// Sets the age of people number `index` (on page `page`, counted from 1) of
// the map. Returns false, after printing why, if the write failed.
bool set_age(pagewire::Mapping& map, std::size_t index, int page, bool raw) {
    if (raw) {
        map.records<People>()[index].age = kAge;  // SIGBUS kills us here when unbacked
        return true;
    }
    const std::size_t offset = index * sizeof(People) + offsetof(People, age);
    const pagewire::AccessResult result = map.write(offset, std::as_bytes(std::span(&kAge, 1)));
    if (result) return true;
    std::printf("access page %d: %s: %s\n", page,
                result.error == EFAULT ? "SIGBUS reported as error" : "error",
                result.message().c_str());
    return false;
}

// The seed's loop: for page i, the last-but-one and last people of the page,
// then the first of page i+1; it stops before leaving the map. Returns false
// at the first write that failed (in guarded mode; raw mode dies instead).
bool walk_page_boundaries(pagewire::Mapping& map, std::size_t pagesize, bool raw) {
    const std::size_t per_page = pagesize / sizeof(People);
    for (int i = 1; i < static_cast<int>(kMapPages); ++i) {
        const std::size_t edge = per_page * static_cast<std::size_t>(i);
        if (!set_age(map, edge - 2, i, raw)) return false;
        std::printf("access page %d over\n", i);
        if (!set_age(map, edge - 1, i, raw)) return false;
        std::printf("access page %d edge over, now begin to access page %d\n", i, i + 1);
        if (!set_age(map, edge, i + 1, raw)) return false;
        std::printf("access page %d over\n", i + 1);
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    bool offset_page = false;
    bool raw = false;
    std::string path;
    CLI::App app{"Write across the page boundaries of a map larger than its file (seed 004)",
                 "boundary"};
    app.add_flag("--offset-page", offset_page,
                 "map from file offset pagesize (seed's version 2) instead of 0 (version 1)");
    app.add_flag("--raw", raw, "write through raw pointers like the seed: dies of SIGBUS");
    app.add_option("FILE", path, "file to create (overwritten)")->required();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;  // --help: 0; usage errors: 2, like the other examples
    }

    // Unbuffered, so every line printed before a SIGBUS is visible after it.
    std::setvbuf(stdout, nullptr, _IONBF, 0);
    try {
        const std::size_t pagesize = pagewire::Mapping::page_size();
        std::printf("pagesize is %zu\n", pagesize);

        // The seed's lseek(fd, pagesize*2-100) + write of one byte.
        auto file = pagewire::File::create(path, pagewire::CreateMode::Truncate);
        const std::byte zero{0};
        file.write_at(pagesize * 2 - 100, std::span(&zero, 1));

        const std::uint64_t offset = offset_page ? pagesize : 0;
        auto map =
            pagewire::Mapping::map(file, pagewire::Access::ReadWrite, offset, pagesize * kMapPages,
                                   pagewire::MapOptions{.allow_past_eof = true});

        if (walk_page_boundaries(map, pagesize, raw)) {
            std::printf("no SIGBUS: every page of the map was backed by the file\n");
        }
        // Writing through the map never grows the file.
        std::printf("file size is still %llu bytes\n",
                    static_cast<unsigned long long>(file.size()));
    } catch (const pagewire::Error& e) {
        std::fprintf(stderr, "boundary: %s\n", e.what());
        return 1;
    }
    return 0;
}
