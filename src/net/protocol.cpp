// Responses: see protocol.hpp.
#include "net/protocol.hpp"

namespace pagewire::net {

void Response::clear() noexcept {
    data.clear();
    segments.clear();
    source = nullptr;
    direct = false;
    close = false;
}

std::uint64_t Response::total_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const Segment& s : segments) n += s.length;
    return n;
}

}  // namespace pagewire::net
