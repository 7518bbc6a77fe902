// consumer FILE — maps FILE with an installed pagewire and prints its size
// and first byte; used by tests/test_install.cmake.
#include <cstdio>
#include <exception>
#include <pagewire/pagewire.hpp>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: consumer FILE\n");
        return 2;
    }
    try {
        pagewire::Mapping m = pagewire::Mapping::open(argv[1]);
        std::printf("size %zu first '%c'\n", m.size(),
                    m.empty() ? '-' : static_cast<char>(m.data()[0]));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return 1;
    }
    return 0;
}
