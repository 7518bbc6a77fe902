// quickstart FILE — pagewire in five lines: read a file as memory, then edit
// it in place (the first line becomes upper case).
#include <cctype>
#include <cstdio>
#include <pagewire/error.hpp>
#include <pagewire/mapping.hpp>
#include <string_view>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: quickstart FILE\n");
        return 2;
    }
    try {
        // Read: the whole file, read-only, as a string_view. No read() calls.
        auto view = pagewire::Mapping::open(argv[1]);
        std::string_view first_line = view.chars().substr(0, view.chars().find('\n'));
        std::printf("%zu bytes, first line: %.*s\n", view.size(),
                    static_cast<int>(first_line.size()), first_line.data());

        // Edit: a read-write map; stores go to the file, flush() waits for the disk.
        auto edit = pagewire::Mapping::open(argv[1], pagewire::Access::ReadWrite);
        for (char& c : edit.records<char>().first(first_line.size())) {
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        edit.flush();
    } catch (const pagewire::Error& e) {  // one line: "<operation> <path>: <reason>"
        std::fprintf(stderr, "quickstart: %s\n", e.what());
        return 1;
    }
    return 0;
}
