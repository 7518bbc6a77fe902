// pagewire::Checksum — the order-sensitive 64-bit checksum `pagewire send`
// and `pagewire recv` put on the wire, and the guarded way to compute it over
// a file's pages.
#pragma once
#include <cstddef>
#include <cstdint>
#include <pagewire/config.hpp>
#include <pagewire/file.hpp>
#include <pagewire/guard.hpp>

namespace pagewire {

// Fletcher-style sum over little-endian 64-bit words (the tail zero-padded):
// catches reordering, fast enough not to matter next to a transfer. Fed in
// pieces whose sizes are multiples of 8 bytes, except the last. A value type;
// not thread-safe (one per stream).
class Checksum {
  public:
    // Adds n bytes of memory this process owns (a buffer): raw, not guarded.
    void update(const void* data, std::size_t n) noexcept;
    // Adds n bytes of mapped memory, a SIGBUS (page no longer backed by its
    // file) reported as EFAULT instead of killing the process (guard.hpp).
    // On failure the checksum has taken an unspecified prefix: discard it.
    AccessResult update_guarded(const void* data, std::size_t n) noexcept;
    std::uint64_t value() const noexcept { return a_ ^ (b_ * 0x9e3779b97f4a7c15ULL); }

  private:
    std::uint64_t a_ = 0;  // sum of words
    std::uint64_t b_ = 0;  // sum of running sums: catches reordering
};

// Checksum of bytes [offset, offset+length) of an open file, read through
// read-only mappings a window at a time with SIGBUS guarded, so another
// process may truncate the file meanwhile. Throws Error("checksum",
// file.path(), EIO, "...truncated...") when the file holds fewer than
// offset+length bytes, whether before or during the scan; other failures as
// Mapping::map. length 0 reads nothing.
std::uint64_t checksum_file(const File& file, std::uint64_t offset, std::uint64_t length);

}  // namespace pagewire
