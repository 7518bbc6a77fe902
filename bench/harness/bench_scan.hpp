// The checksum scan of pagewire bench: reads every byte of a buffer once, at
// memory speed, and returns a value that proves it did (so the compiler
// cannot drop the reads and a method that skips or misreads bytes is caught).
// Kept apart from bench_common so the Google Benchmark programs in bench/
// can measure it too.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pagewire::bench {

// Sum (mod 2^64) of the buffer read as little-endian 64-bit words, the last
// partial word zero-padded. Reads every byte exactly once. Because the sum is
// associative, scanning a file in chunks whose offsets are multiples of 8 and
// adding the chunk sums gives the same value as one scan of the whole file.
// Uses AVX2 when the CPU has it (chosen at run time; the build stays baseline
// x86-64), else the compiler's baseline vector code.
std::uint64_t sum_words(const void* data, std::size_t size) noexcept;
// "avx2" or "baseline": which implementation sum_words uses on this CPU.
const char* sum_words_kernel() noexcept;

// Makes the compiler believe `value` is used, so the work producing it stays.
inline void keep(std::uint64_t value) noexcept {
    asm volatile("" : : "r"(value) : "memory");
}

}  // namespace pagewire::bench
