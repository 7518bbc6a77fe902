#include "cli_util.hpp"

#include <cerrno>
#include <cstdlib>

namespace pagewire::cli {

std::optional<std::uint64_t> parse_size(const std::string& text) {
    if (text.empty() || text[0] == '-' || text[0] == '+' || text[0] == ' ') return std::nullopt;
    errno = 0;
    char* end = nullptr;
    const int base =
        text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X') ? 16 : 10;
    unsigned long long value = std::strtoull(text.c_str(), &end, base);
    if (errno != 0 || end == text.c_str()) return std::nullopt;
    std::uint64_t scale = 1;
    if (*end != '\0') {
        switch (*end) {
            case 'K':
            case 'k':
                scale = 1ULL << 10;
                break;
            case 'M':
            case 'm':
                scale = 1ULL << 20;
                break;
            case 'G':
            case 'g':
                scale = 1ULL << 30;
                break;
            case 'T':
            case 't':
                scale = 1ULL << 40;
                break;
            default:
                return std::nullopt;
        }
        ++end;
        if (*end == 'i' && end[1] == 'B')
            end += 2;  // 4KiB
        else if (*end == 'B')
            ++end;  // 4KB, still binary
        if (*end != '\0') return std::nullopt;
    }
    if (value > UINT64_MAX / scale) return std::nullopt;
    return value * scale;
}

}  // namespace pagewire::cli
