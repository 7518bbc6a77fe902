// Range header parsing: see range.hpp.
#include "http/range.hpp"

#include <strings.h>

#include <algorithm>

namespace pagewire::http {
namespace {

bool is_space(char c) noexcept {
    return c == ' ' || c == '\t';
}

// Digits at text[pos...]; false on none or overflow.
bool parse_number(std::string_view text, std::size_t& pos, std::uint64_t& value) noexcept {
    const std::size_t start = pos;
    value = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
        const auto digit = static_cast<std::uint64_t>(text[pos] - '0');
        if (value > (UINT64_MAX - digit) / 10) return false;
        value = value * 10 + digit;
        ++pos;
    }
    return pos > start;
}

}  // namespace

RangeStatus parse_range(std::string_view header, std::uint64_t size, std::vector<ByteRange>& out) {
    out.clear();
    std::size_t pos = 0;
    while (pos < header.size() && is_space(header[pos])) ++pos;
    constexpr std::string_view kUnit = "bytes=";
    if (header.size() - pos < kUnit.size() ||
        ::strncasecmp(header.data() + pos, kUnit.data(), kUnit.size()) != 0) {
        return RangeStatus::Ignore;
    }
    pos += kUnit.size();
    std::size_t specs = 0;
    for (;;) {
        while (pos < header.size() && is_space(header[pos])) ++pos;
        if (pos < header.size() && header[pos] != ',') {
            std::uint64_t first = 0;
            std::uint64_t last = 0;
            bool suffix = false;
            bool open_ended = false;
            if (header[pos] == '-') {
                suffix = true;
                ++pos;
                if (!parse_number(header, pos, last)) return RangeStatus::Ignore;
            } else {
                if (!parse_number(header, pos, first)) return RangeStatus::Ignore;
                if (pos >= header.size() || header[pos] != '-') return RangeStatus::Ignore;
                ++pos;
                open_ended = !parse_number(header, pos, last);
                if (!open_ended && last < first) return RangeStatus::Ignore;
            }
            if (++specs > kMaxRanges) return RangeStatus::Ignore;
            if (suffix) {
                if (last > 0 && size > 0) {
                    out.push_back({size - (last < size ? last : size), size - 1});
                }
            } else if (first < size) {
                out.push_back({first, open_ended || last >= size ? size - 1 : last});
            }
            while (pos < header.size() && is_space(header[pos])) ++pos;
        }
        if (pos == header.size()) break;
        if (header[pos] != ',') return RangeStatus::Ignore;
        ++pos;
    }
    if (specs == 0) return RangeStatus::Ignore;
    return out.empty() ? RangeStatus::Unsatisfiable : RangeStatus::Satisfiable;
}

bool coalesce_ranges(std::vector<ByteRange>& ranges, std::uint64_t size) noexcept {
    std::uint64_t total = 0;
    for (const ByteRange& r : ranges) {
        if (r.length() > size - total) return false;  // total + length > size, no overflow
        total += r.length();
    }
    std::sort(ranges.begin(), ranges.end(),
              [](const ByteRange& a, const ByteRange& b) { return a.first < b.first; });
    std::size_t kept = 0;
    for (std::size_t i = 1; i < ranges.size(); ++i) {
        ByteRange& last = ranges[kept];
        if (ranges[i].first <= last.last + 1) {
            last.last = std::max(last.last, ranges[i].last);
        } else {
            ranges[++kept] = ranges[i];
        }
    }
    if (!ranges.empty()) ranges.resize(kept + 1);
    return true;
}

}  // namespace pagewire::http
