// Small helpers shared by the pagewire subcommands.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pagewire::cli {

// Parses a byte count or offset: decimal, or 0x-hex, optionally followed by a
// binary suffix K, M, G or T (KiB...). Returns nullopt for anything else
// (negative numbers, trailing garbage, overflow).
std::optional<std::uint64_t> parse_size(const std::string& text);

}  // namespace pagewire::cli
