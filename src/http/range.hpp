// pagewire serve: the Range header (RFC 9110 14.1.2), bytes unit only.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace pagewire::http {

// More ranges than this in one Range header make it "malformed" (full 200):
// overlapping ranges would otherwise multiply the response size without
// bound. Apache's MaxRanges default.
inline constexpr std::size_t kMaxRanges = 200;

struct ByteRange {
    std::uint64_t first;
    std::uint64_t last;  // inclusive
    std::uint64_t length() const noexcept { return last - first + 1; }
};

enum class RangeStatus {
    Ignore,         // malformed, another unit, or too many ranges: send the whole file
    Satisfiable,    // `out` holds the satisfiable ranges, in request order, clamped to the size
    Unsatisfiable,  // none is: 416
};

// Parses `header` against a representation of `size` bytes. `out` is reused.
RangeStatus parse_range(std::string_view header, std::uint64_t size, std::vector<ByteRange>& out);

// The multi-range policy (RFC 9110 14.2 lets a server coalesce; nginx and
// Apache after CVE-2011-3192 refuse to amplify): when the satisfiable
// ranges `ranges` (as parse_range gives them) add up to more bytes than
// the representation's `size`, returns false: answer with the whole
// representation (200). Otherwise sorts them and merges the overlapping and
// adjacent ones, so no byte is sent twice, and returns true.
bool coalesce_ranges(std::vector<ByteRange>& ranges, std::uint64_t size) noexcept;

}  // namespace pagewire::http
