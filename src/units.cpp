#include <cstdio>
#include <pagewire/units.hpp>

namespace pagewire {
namespace {

// Scales `bytes` to the largest binary unit it reaches; returns the unit's index.
int scale(std::uint64_t bytes, double& value) noexcept {
    value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024.0 && unit < 6) {
        value /= 1024.0;
        ++unit;
    }
    // 1023.96 KiB would print as "1024.0 KiB": say "1.0 MiB" instead.
    if (unit > 0 && unit < 6 && value >= 1023.95) {
        value /= 1024.0;
        ++unit;
    }
    return unit;
}

}  // namespace

std::string format_bytes(std::uint64_t bytes) {
    static constexpr const char* kUnits[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double value = 0;
    const int unit = scale(bytes, value);
    if (unit == 0) return counted(bytes, "byte");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
    return buf;
}

std::string format_bytes_short(std::uint64_t bytes) {
    static constexpr char kUnits[] = {'B', 'K', 'M', 'G', 'T', 'P', 'E'};
    double value = 0;
    const int unit = scale(bytes, value);
    char buf[32];
    if (unit == 0)
        std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(bytes));
    else
        std::snprintf(buf, sizeof buf, "%.1f%c", value, kUnits[unit]);
    return buf;
}

std::string counted(std::uint64_t n, std::string_view singular, std::string_view plural) {
    std::string text = std::to_string(n) + ' ';
    if (n == 1)
        text += singular;
    else if (!plural.empty())
        text += plural;
    else
        (text += singular) += 's';
    return text;
}

}  // namespace pagewire
