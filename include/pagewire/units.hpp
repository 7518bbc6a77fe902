// pagewire/units.hpp — sizes and counts as people read them, in the one style
// every pagewire message uses: binary units (1 KiB = 1024 bytes) with one
// decimal ("2.9 MiB"), exact below 1 KiB ("512 bytes"), and counted nouns
// that agree with their number ("1 syscall", "3 syscalls").
#pragma once

#include <cstdint>
#include <pagewire/config.hpp>
#include <string>
#include <string_view>

namespace pagewire {

// "0 bytes", "1 byte", "1023 bytes", "1.0 KiB", "2.9 MiB", "1.0 GiB", ... up to EiB.
std::string format_bytes(std::uint64_t bytes);

// The compact form for table columns, like du -h and vmtouch: "512B", "4.0K",
// "2.9M", "1.0G".
std::string format_bytes_short(std::uint64_t bytes);

// "1 syscall", "0 syscalls", "2 files"; `plural` when the noun does not take
// an "s" ("1 entry", "2 entries").
std::string counted(std::uint64_t n, std::string_view singular, std::string_view plural = {});

}  // namespace pagewire
