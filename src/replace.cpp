// The in-place replace of pagewire/replace.hpp: one pass per length case
// over a shared mapping, every access to the mapping guarded (SIGBUS -> Error).
#include <pthread.h>

#include <csignal>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/guard.hpp>
#include <pagewire/mapping.hpp>
#include <pagewire/replace.hpp>
#include <vector>

namespace pagewire {
namespace {

// The growing pass remembers every kMatchesPerChunk-th match and re-finds the
// matches of one chunk at a time, so it never holds more than this many positions.
constexpr std::size_t kMatchesPerChunk = 1 << 20;

// What one replacement works on.
struct ReplaceArgs {
    const std::string& path;
    std::string_view from;
    std::string_view to;
};

// Holds off the signals that would interrupt a rewrite halfway (restored on exit).
class SignalHold {
  public:
    SignalHold() {
        sigset_t set;
        sigemptyset(&set);
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, sig);
        pthread_sigmask(SIG_BLOCK, &set, &saved_);
    }
    ~SignalHold() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
    SignalHold(const SignalHold&) = delete;
    SignalHold& operator=(const SignalHold&) = delete;

  private:
    sigset_t saved_;
};

const char* find_next(const char* begin, const char* end, std::string_view needle) {
    return static_cast<const char*>(
        ::memmem(begin, static_cast<std::size_t>(end - begin), needle.data(), needle.size()));
}

void check(const AccessResult& r, const std::string& path) {
    if (!r.ok()) throw_error("replace", path, r.error, r.message());
}

// Equal lengths: overwrite in place.
std::uint64_t replace_same_length(Mapping& m, const ReplaceArgs& a) {
    std::uint64_t count = 0;
    char* base = reinterpret_cast<char*>(m.data());
    char* end = base + m.size();
    check(guarded(base, m.size(),
                  [&] {
                      for (char* p = base; (p = const_cast<char*>(find_next(p, end, a.from)));) {
                          std::memcpy(p, a.to.data(), a.to.size());
                          p += a.from.size();
                          ++count;
                      }
                  }),
          a.path);
    return count;
}

// TO shorter: compact forwards (the write position never passes the read position).
std::uint64_t replace_shrinking(Mapping& m, const ReplaceArgs& a) {
    std::uint64_t count = 0;
    std::size_t w = 0;
    char* base = reinterpret_cast<char*>(m.data());
    const std::size_t size = m.size();
    check(guarded(base, size,
                  [&] {
                      std::size_t r = 0;
                      while (true) {
                          const char* hit = find_next(base + r, base + size, a.from);
                          const std::size_t stop =
                              hit ? static_cast<std::size_t>(hit - base) : size;
                          if (w != r) std::memmove(base + w, base + r, stop - r);
                          w += stop - r;
                          if (!hit) break;
                          std::memcpy(base + w, a.to.data(), a.to.size());
                          w += a.to.size();
                          r = stop + a.from.size();
                          ++count;
                      }
                  }),
          a.path);
    if (count != 0) m.resize(w);
    return count;
}

// TO longer: count, grow, then move stretches backwards from the end.
std::uint64_t replace_growing(File& file, Mapping& m, const ReplaceArgs& a) {
    const std::size_t old_size = m.size();
    std::uint64_t count = 0;
    std::vector<std::size_t> chunk_starts;  // position of match k*kMatchesPerChunk
    chunk_starts.reserve(64);
    {
        const char* base = reinterpret_cast<const char*>(m.data());
        // Collect the chunk starts outside the guard (the vector may allocate):
        // scan one chunk at a time inside it.
        std::size_t pos = 0;
        bool more = true;
        while (more) {
            std::size_t found = 0;
            std::size_t first = old_size;
            check(guarded(base, old_size,
                          [&] {
                              const char* p = base + pos;
                              while (found < kMatchesPerChunk) {
                                  p = find_next(p, base + old_size, a.from);
                                  if (!p) break;
                                  if (found == 0) first = static_cast<std::size_t>(p - base);
                                  ++found;
                                  p += a.from.size();
                              }
                              pos = p ? static_cast<std::size_t>(p - base) : old_size;
                              more = p != nullptr;
                          }),
                  a.path);
            if (found != 0) chunk_starts.push_back(first);
            count += found;
        }
    }
    if (count == 0) return 0;

    const std::size_t growth = a.to.size() - a.from.size();
    const std::size_t new_size = old_size + static_cast<std::size_t>(count) * growth;
    m.resize(new_size);
    try {
        file.allocate(old_size, new_size - old_size);
    } catch (...) {
        m.resize(old_size);
        throw;
    }

    char* base = reinterpret_cast<char*>(m.data());
    std::vector<std::size_t> positions(kMatchesPerChunk);
    std::size_t src_end = old_size;  // old bytes [0, src_end) not yet moved
    std::size_t dst_end = new_size;  // new bytes [dst_end, new_size) are final
    for (std::size_t c = chunk_starts.size(); c-- > 0;) {
        const std::size_t limit = c + 1 < chunk_starts.size() ? chunk_starts[c + 1] : old_size;
        check(guarded(base, new_size,
                      [&] {
                          std::size_t n = 0;
                          for (const char* p = base + chunk_starts[c];
                               n < kMatchesPerChunk && (p = find_next(p, base + limit, a.from));
                               p += a.from.size()) {
                              positions[n++] = static_cast<std::size_t>(p - base);
                          }
                          while (n-- > 0) {
                              const std::size_t tail = positions[n] + a.from.size();
                              const std::size_t len = src_end - tail;
                              dst_end -= len;
                              std::memmove(base + dst_end, base + tail, len);
                              dst_end -= a.to.size();
                              std::memcpy(base + dst_end, a.to.data(), a.to.size());
                              src_end = positions[n];
                          }
                      }),
              a.path);
    }
    return count;
}

}  // namespace

std::uint64_t replace_in_place(const std::string& path, std::string_view from,
                               std::string_view to) {
    if (from.empty()) throw_error("replace", path, EINVAL, "the text to find is empty");
    File file = File::open(path, OpenMode::ReadWrite);
    Mapping m = Mapping::map(file, Access::ReadWrite);
    if (m.empty()) return 0;
    const ReplaceArgs a{path, from, to};
    m.advise(Advice::Sequential);
    if (to.size() == from.size()) {
        // Interrupting this leaves whole replacements only: no need to hold signals.
        return replace_same_length(m, a);
    }
    SignalHold hold;
    return to.size() < from.size() ? replace_shrinking(m, a) : replace_growing(file, m, a);
}

}  // namespace pagewire
