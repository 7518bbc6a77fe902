// HTTP dates and the cached clock strings: see http_date.hpp.
#include "http/http_date.hpp"

#include <time.h>

#include <array>
#include <cstdio>

namespace pagewire::http {
namespace {

// HTTP's names, whatever the locale says (strftime's %a and %b follow it).
constexpr std::array<const char*, 7> kDays{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<const char*, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

std::string format_http_date(std::time_t t) {
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                                kDays[static_cast<std::size_t>(tm.tm_wday)], tm.tm_mday,
                                kMonths[static_cast<std::size_t>(tm.tm_mon)], tm.tm_year + 1900,
                                tm.tm_hour, tm.tm_min, tm.tm_sec);
    return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::optional<std::time_t> parse_http_date(std::string_view text) {
    if (text.empty() || text.size() > 64) return std::nullopt;
    char buf[65];
    text.copy(buf, text.size());
    buf[text.size()] = '\0';
    static constexpr const char* kFormats[] = {
        "%a, %d %b %Y %H:%M:%S GMT",  // IMF-fixdate
        "%A, %d-%b-%y %H:%M:%S GMT",  // RFC 850
        "%a %b %e %H:%M:%S %Y",       // asctime
    };
    for (const char* format : kFormats) {
        std::tm tm{};
        const char* end = ::strptime(buf, format, &tm);
        if (end != nullptr && *end == '\0') return ::timegm(&tm);
    }
    return std::nullopt;
}

void ClockStrings::update() {
    timespec mono{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &mono);
    now_ms_ = static_cast<std::uint64_t>(mono.tv_sec) * 1000 +
              static_cast<std::uint64_t>(mono.tv_nsec) / 1'000'000;
    const std::time_t t = ::time(nullptr);
    if (t == second_) return;
    second_ = t;
    http_date_ = format_http_date(t);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday,
                                kMonths[static_cast<std::size_t>(tm.tm_mon)], tm.tm_year + 1900,
                                tm.tm_hour, tm.tm_min, tm.tm_sec);
    log_time_.assign(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

}  // namespace pagewire::http
