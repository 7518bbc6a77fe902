// Checksum and checksum_file. See checksum.hpp for the contract.
#include <algorithm>
#include <cstring>
#include <pagewire/checksum.hpp>
#include <pagewire/error.hpp>
#include <pagewire/mapping.hpp>
#include <string>

namespace pagewire {
namespace {

// Bytes mapped at a time: the address space a huge file needs stays bounded,
// and map/unmap cost is noise next to reading 64 MiB. A multiple of 8 (the
// checksum's word) and of every page size.
constexpr std::uint64_t kChecksumWindowBytes = 64ULL << 20;  // 64 MiB

[[noreturn]] void truncated(const File& file, std::uint64_t at, std::uint64_t length) {
    throw_error("checksum", file.path(), EIO,
                "the file was truncated while its checksum was computed (byte " +
                    std::to_string(at) + " of " + std::to_string(length) + " is gone)");
}

}  // namespace

void Checksum::update(const void* data, std::size_t n) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);
        a_ += w;
        b_ += a_;
    }
    if (i < n) {
        std::uint64_t w = 0;
        std::memcpy(&w, p + i, n - i);
        a_ += w;
        b_ += a_;
    }
}

AccessResult Checksum::update_guarded(const void* data, std::size_t n) noexcept {
    // update() owns nothing and takes no lock: safe to abandon midway.
    return guarded(data, n, [&] { update(data, n); });
}

std::uint64_t checksum_file(const File& file, std::uint64_t offset, std::uint64_t length) {
    Checksum sum;
    for (std::uint64_t done = 0; done < length;) {
        const auto want = static_cast<std::size_t>(std::min(length - done, kChecksumWindowBytes));
        Mapping view;
        try {
            view = Mapping::map(file, Access::ReadOnly, offset + done, want);
        } catch (const Error& e) {
            // An offset at or past end of file: it shrank since the caller looked.
            if (e.error_number() == EINVAL && file.size() <= offset + done) {
                truncated(file, offset + done, offset + length);
            }
            throw;
        }
        // Mapping clamps at end of file: a short view is a shorter file.
        if (view.size() < want) truncated(file, offset + done + view.size(), offset + length);
        view.advise(Advice::Sequential);
        if (AccessResult r = sum.update_guarded(view.data(), view.size()); !r) {
            truncated(file, offset + done + r.fault_offset, offset + length);
        }
        done += want;
    }
    return sum.value();
}

}  // namespace pagewire
