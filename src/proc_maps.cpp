#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/proc_maps.hpp>
#include <pagewire/unique_fd.hpp>
#include <sstream>
#include <string_view>

#include "sys.hpp"

namespace pagewire {
namespace {

std::uint64_t parse_number(std::string_view s, int base, bool& ok) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    ok = ok && ec == std::errc{} && p == s.data() + s.size();
    return v;
}

// Header line: "start-end perms offset dev inode   [path]".
bool parse_header(std::string_view line, Vma& vma) {
    std::istringstream in{std::string(line)};
    std::string range, offset, inode;
    if (!(in >> range >> vma.perms >> offset >> vma.device >> inode)) return false;
    const auto dash = range.find('-');
    if (dash == std::string::npos || vma.perms.size() != 4) return false;
    bool ok = true;
    vma.start = parse_number(std::string_view(range).substr(0, dash), 16, ok);
    vma.end = parse_number(std::string_view(range).substr(dash + 1), 16, ok);
    vma.offset = parse_number(offset, 16, ok);
    vma.inode = parse_number(inode, 10, ok);
    std::string rest;
    std::getline(in, rest);
    const auto first = rest.find_first_not_of(' ');
    vma.path = first == std::string::npos ? "" : rest.substr(first);
    return ok && vma.end >= vma.start;
}

constexpr VmaField kFields[] = {
    {"Size", "size", &Vma::size},
    {"KernelPageSize", "kernel_page_size", &Vma::kernel_page_size},
    {"Rss", "rss", &Vma::rss},
    {"Pss", "pss", &Vma::pss},
    {"Shared_Clean", "shared_clean", &Vma::shared_clean},
    {"Shared_Dirty", "shared_dirty", &Vma::shared_dirty},
    {"Private_Clean", "private_clean", &Vma::private_clean},
    {"Private_Dirty", "private_dirty", &Vma::private_dirty},
    {"Anonymous", "anonymous", &Vma::anonymous},
    {"AnonHugePages", "anon_huge_pages", &Vma::anon_huge_pages},
    {"FilePmdMapped", "file_pmd_mapped", &Vma::file_pmd_mapped},
    {"Shared_Hugetlb", "shared_hugetlb", &Vma::shared_hugetlb},
    {"Private_Hugetlb", "private_hugetlb", &Vma::private_hugetlb},
    {"Swap", "swap", &Vma::swap},
    {"Locked", "locked", &Vma::locked},
};

// Field line: "Name:   123 kB". Returns "" when applied (or a field we do
// not model, e.g. THPeligible, ProtectionKey), else what is wrong with it.
std::string apply_field(std::string_view line, Vma& vma) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return "is neither a header nor a field";
    const std::string_view key = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    if (key == "VmFlags") {
        std::istringstream in{std::string(value)};
        for (std::string flag; in >> flag;) vma.vm_flags.push_back(flag);
        return "";
    }
    const VmaField* field = nullptr;
    for (const VmaField& f : kFields) {
        if (key == f.name) field = &f;
    }
    if (field == nullptr) return "";
    // Every size field is "<decimal> kB".
    const auto begin = value.find_first_not_of(' ');
    value = begin == std::string_view::npos ? std::string_view() : value.substr(begin);
    const auto space = value.find(' ');
    bool ok = space != std::string_view::npos && value.substr(space + 1) == "kB";
    const std::uint64_t kib = parse_number(value.substr(0, space), 10, ok);
    if (!ok) return "has a malformed " + std::string(key) + " value (expected \"<number> kB\")";
    vma.*(field->member) = kib * 1024;
    return "";
}

bool is_header(std::string_view line) {
    // Headers start with a hex address range; field names start with a capital letter.
    const auto dash = line.find('-');
    const auto space = line.find(' ');
    return dash != std::string_view::npos && space != std::string_view::npos && dash < space &&
           std::isxdigit(static_cast<unsigned char>(line[0])) &&
           !std::isupper(static_cast<unsigned char>(line[0]));
}

}  // namespace

std::span<const VmaField> vma_size_fields() noexcept {
    return kFields;
}

bool Vma::has_flag(const std::string& flag) const {
    for (const auto& f : vm_flags) {
        if (f == flag) return true;
    }
    return false;
}

std::vector<Vma> parse_smaps(const std::string& text, const std::string& source) {
    std::vector<Vma> vmas;
    std::size_t line_no = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        const std::string_view line(text.data() + pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        if (line.empty()) continue;
        if (is_header(line)) {
            Vma vma;
            if (!parse_header(line, vma)) {
                throw_error("parse", source, EINVAL,
                            "line " + std::to_string(line_no) + " is not a mapping header");
            }
            vmas.push_back(std::move(vma));
        } else if (vmas.empty()) {
            throw_error(
                "parse", source, EINVAL,
                "line " + std::to_string(line_no) + " comes before the first mapping header");
        } else if (const std::string problem = apply_field(line, vmas.back()); !problem.empty()) {
            throw_error("parse", source, EINVAL, "line " + std::to_string(line_no) + " " + problem);
        }
    }
    return vmas;
}

std::vector<Vma> read_smaps(pid_t pid) {
    const std::string path =
        pid == 0 ? "/proc/self/smaps" : "/proc/" + std::to_string(pid) + "/smaps";
    UniqueFd fd(sys::retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }));
    if (!fd) {
        if (errno == ENOENT) throw_error("maps", std::to_string(pid), ESRCH);
        throw_error("maps", path);
    }
    std::string text;
    char buf[65536];
    while (true) {
        const ssize_t n = sys::retry_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
        if (n < 0) throw_error("maps", path);
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    return parse_smaps(text, path);
}

}  // namespace pagewire
