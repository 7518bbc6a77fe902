// Small helpers shared by the pagewire subcommands.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace pagewire::cli {

// Parses a byte count or offset: decimal, or 0x-hex, optionally followed by a
// binary suffix K, M, G or T (KiB...). Returns nullopt for anything else
// (negative numbers, trailing garbage, overflow).
std::optional<std::uint64_t> parse_size(const std::string& text);

// A progress line on stderr for a transfer of `total` bytes:
// "\r 42%  107.5 MiB / 256.0 MiB  1.21 GB/s", redrawn at most every 0.1 s
// and ended with a newline when done. Only where it helps: stderr is a
// terminal and the transfer is large enough (64 MiB) to take a while;
// otherwise an empty function (no callback, no cost).
std::function<void(std::uint64_t done, std::uint64_t total)> progress_bar(std::uint64_t total);

}  // namespace pagewire::cli
