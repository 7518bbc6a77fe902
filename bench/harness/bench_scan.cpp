#include "bench_scan.hpp"

#include <cstring>

namespace pagewire::bench {

namespace {

// GCC/Clang vector extension: the same source compiles to SSE2 pairs in the
// baseline build and to single AVX2 instructions in the avx2 clone. Eight
// independent accumulators keep enough loads in flight for the scan to run
// at memory speed instead of at the latency of one dependency chain.
using Vec = std::uint64_t __attribute__((vector_size(32)));
constexpr std::size_t kVecBytes = sizeof(Vec);
constexpr std::size_t kBlockBytes = 8 * kVecBytes;  // bytes per loop iteration
constexpr std::size_t kWordBytes = sizeof(std::uint64_t);

// By reference: passing a 32-byte vector by value would change the ABI
// between the baseline and the AVX2 code (GCC's -Wpsabi).
[[gnu::always_inline]] inline void add_vec(Vec& acc, const unsigned char* p) noexcept {
    Vec v;
    std::memcpy(&v, p, sizeof v);  // unaligned load; no aliasing questions
    acc += v;
}

[[gnu::always_inline]] inline std::uint64_t sum_words_body(const unsigned char* p,
                                                           std::size_t n) noexcept {
    Vec a0{}, a1{}, a2{}, a3{}, a4{}, a5{}, a6{}, a7{};
    std::size_t i = 0;
    for (; i + kBlockBytes <= n; i += kBlockBytes) {
        add_vec(a0, p + i + 0 * kVecBytes);
        add_vec(a1, p + i + 1 * kVecBytes);
        add_vec(a2, p + i + 2 * kVecBytes);
        add_vec(a3, p + i + 3 * kVecBytes);
        add_vec(a4, p + i + 4 * kVecBytes);
        add_vec(a5, p + i + 5 * kVecBytes);
        add_vec(a6, p + i + 6 * kVecBytes);
        add_vec(a7, p + i + 7 * kVecBytes);
    }
    const Vec a = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    std::uint64_t sum = a[0] + a[1] + a[2] + a[3];
    for (; i + kWordBytes <= n; i += kWordBytes) {
        std::uint64_t w;
        std::memcpy(&w, p + i, kWordBytes);
        sum += w;
    }
    if (i < n) {  // the last partial word, zero-padded (little-endian)
        std::uint64_t w = 0;
        std::memcpy(&w, p + i, n - i);
        sum += w;
    }
    return sum;
}

std::uint64_t sum_words_baseline(const unsigned char* p, std::size_t n) noexcept {
    return sum_words_body(p, n);
}

#if defined(__x86_64__)
[[gnu::target("avx2")]] std::uint64_t sum_words_avx2(const unsigned char* p,
                                                     std::size_t n) noexcept {
    return sum_words_body(p, n);
}
#endif

using SumFunction = std::uint64_t (*)(const unsigned char*, std::size_t) noexcept;

struct SumChoice {
    SumFunction function;
    const char* name;
};

SumChoice choose_sum() noexcept {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return {sum_words_avx2, "avx2"};
#endif
    return {sum_words_baseline, "baseline"};
}

const SumChoice& sum_choice() noexcept {
    static const SumChoice choice = choose_sum();
    return choice;
}

}  // namespace

std::uint64_t sum_words(const void* data, std::size_t size) noexcept {
    return sum_choice().function(static_cast<const unsigned char*>(data), size);
}

const char* sum_words_kernel() noexcept {
    return sum_choice().name;
}

}  // namespace pagewire::bench
