#include "cli_util.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <pagewire/error.hpp>

namespace pagewire::cli {

std::optional<std::uint64_t> parse_size(const std::string& text) {
    if (text.empty() || text[0] == '-' || text[0] == '+' || text[0] == ' ') return std::nullopt;
    errno = 0;
    char* end = nullptr;
    const int base =
        text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X') ? 16 : 10;
    unsigned long long value = std::strtoull(text.c_str(), &end, base);
    if (errno != 0 || end == text.c_str()) return std::nullopt;
    std::uint64_t scale = 1;
    if (*end != '\0') {
        switch (*end) {
            case 'K':
            case 'k':
                scale = 1ULL << 10;
                break;
            case 'M':
            case 'm':
                scale = 1ULL << 20;
                break;
            case 'G':
            case 'g':
                scale = 1ULL << 30;
                break;
            case 'T':
            case 't':
                scale = 1ULL << 40;
                break;
            default:
                return std::nullopt;
        }
        ++end;
        if (*end == 'i' && end[1] == 'B')
            end += 2;  // 4KiB
        else if (*end == 'B')
            ++end;  // 4KB, still binary
        if (*end != '\0') return std::nullopt;
    }
    if (value > UINT64_MAX / scale) return std::nullopt;
    return value * scale;
}

namespace {

constexpr std::uint64_t kProgressMinBytes = 64ULL << 20;
constexpr double kProgressIntervalSeconds = 0.1;

class ProgressBar {
  public:
    void operator()(std::uint64_t done, std::uint64_t total) {
        const auto now = std::chrono::steady_clock::now();
        if (done < total &&
            std::chrono::duration<double>(now - last_).count() < kProgressIntervalSeconds) {
            return;
        }
        last_ = now;
        const double seconds = std::chrono::duration<double>(now - start_).count();
        const double mib = 1024.0 * 1024.0;
        fmt::print(stderr, "\r{:3}%  {:.1f} MiB / {:.1f} MiB  {:.2f} GB/s ",
                   total > 0 ? done * 100 / total : 100, static_cast<double>(done) / mib,
                   static_cast<double>(total) / mib,
                   seconds > 0 ? static_cast<double>(done) / seconds / 1e9 : 0.0);
        if (done == total) fmt::print(stderr, "\n");
    }

  private:
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_{};
};

}  // namespace

std::function<void(std::uint64_t done, std::uint64_t total)> progress_bar(std::uint64_t total) {
    if (quiet() || total < kProgressMinBytes || !::isatty(STDERR_FILENO)) return {};
    auto bar = std::make_shared<ProgressBar>();
    return [bar](std::uint64_t done, std::uint64_t all) { (*bar)(done, all); };
}

bool& quiet() noexcept {
    static bool value = false;
    return value;
}

void status(const std::string& text) {
    if (quiet()) return;
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
        throw_error("write", "stdout");
}

File open_input(const std::string& path) {
    if (path != "-") return File::open(path);
    UniqueFd fd(::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0));
    if (!fd) throw_error("dup", "stdin");
    return File::adopt(std::move(fd), "stdin", false);
}

void for_each_name(const std::vector<std::string>& names,
                   const std::function<void(const std::string&)>& each) {
    std::vector<Error> failures;
    for (const std::string& name : names) {
        try {
            each(name);
        } catch (const Error& e) {
            failures.push_back(e);
        }
    }
    if (failures.empty()) return;
    for (std::size_t k = 0; k + 1 < failures.size(); ++k)
        fmt::print(stderr, "pagewire: {}\n", failures[k].what());
    throw failures.back();
}

}  // namespace pagewire::cli
