// pagewire::replace_in_place — seed 000's in-place edit of a mapped file
// ("test" -> "map"), generalised to any lengths and to files larger than RAM (S5, S20).
#pragma once
#include <cstdint>
#include <pagewire/config.hpp>
#include <string>
#include <string_view>

namespace pagewire {

// Replaces every occurrence of `from` (non-overlapping, left to right) with
// `to` in the file at `path`, through a shared read-write mapping of it, and
// returns how many were replaced.
//   equal lengths  bytes are overwritten in place;
//   `to` shorter   one forward pass compacts the file, then it is truncated;
//   `to` longer    a counting pass, the file grows (blocks reserved first, so a
//                  full disk or RLIMIT_FSIZE is an Error and the file keeps its
//                  old size and contents), then one backward pass moves each
//                  stretch to its final place.
// Memory use is bounded (the mapping pages in and out, at most 2^20 match
// positions are held), so files larger than RAM work. While an unequal-length
// rewrite runs, SIGINT/SIGTERM/SIGHUP/SIGQUIT are blocked on the calling
// thread (delivered when it ends); a kill -9 or power loss midway leaves a
// partly rewritten file. A file truncated by another process meanwhile is an
// Error (EFAULT), never a SIGBUS. Throws pagewire::Error naming `path`;
// EINVAL for an empty `from`.
std::uint64_t replace_in_place(const std::string& path, std::string_view from, std::string_view to);

}  // namespace pagewire
