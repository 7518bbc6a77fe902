// Small helpers shared by the pagewire subcommands.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <pagewire/file.hpp>
#include <string>
#include <vector>

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

// -q/--quiet, given before or after the subcommand: status lines ("created
// ...", "sent ...", progress bars) are not printed; data, tables, warnings and
// errors still are.
bool& quiet() noexcept;

// Prints a status line on stdout (unless --quiet), flushed at once so that it
// keeps its place among output written with write(2); a failed write throws.
void status(const std::string& text);

// "-" where a file to read is expected: standard input, as a File named
// "stdin" (a duplicate of descriptor 0, so the caller may close it).
// Anything else: File::open(path).
File open_input(const std::string& path);

// Runs `each` on every name, as rm and ipcrm do: a failure (pagewire::Error)
// does not stop the others; all but the last are printed here, the last is
// rethrown once every name was tried (main prints it and exits 1).
void for_each_name(const std::vector<std::string>& names,
                   const std::function<void(const std::string&)>& each);

}  // namespace pagewire::cli
