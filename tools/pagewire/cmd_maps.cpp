// pagewire maps [PID] — a process's mappings (VMAs) with resident, shared and
// private sizes, like pmap -X; from pagewire/proc_maps.hpp.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <pagewire/proc_maps.hpp>

#include "commands.hpp"

namespace pagewire::cli {
namespace {

// Any pid_t; one above the kernel's pid_max is then "No such process".
constexpr int kPidMax = std::numeric_limits<pid_t>::max();

struct MapsArgs {
    pid_t pid = 0;
    bool json = false;
};

constexpr std::uint64_t kKiB = 1024;

// Column width for a size field: its name, at least 8 characters.
std::size_t width(const VmaField& f) {
    return std::max<std::size_t>(8, std::strlen(f.name));
}

void print_json(const std::vector<Vma>& vmas, pid_t pid) {
    nlohmann::ordered_json out{{"pid", pid == 0 ? ::getpid() : pid},
                               {"mappings", nlohmann::ordered_json::array()}};
    nlohmann::ordered_json totals;
    for (const VmaField& f : vma_size_fields()) totals[f.key] = 0;
    for (const Vma& v : vmas) {
        nlohmann::ordered_json j{{"start", fmt::format("{:x}", v.start)},
                                 {"end", fmt::format("{:x}", v.end)},
                                 {"perms", v.perms},
                                 {"offset", v.offset},
                                 {"device", v.device},
                                 {"inode", v.inode},
                                 {"path", v.path}};
        for (const VmaField& f : vma_size_fields()) {
            j[f.key] = v.*(f.member);
            totals[f.key] = totals[f.key].get<std::uint64_t>() + v.*(f.member);
        }
        j["vm_flags"] = v.vm_flags;
        out["mappings"].push_back(std::move(j));
    }
    out["totals"] = std::move(totals);
    fmt::print("{}\n", out.dump(2));
}

void print_table(const std::vector<Vma>& vmas, pid_t pid) {
    if (vmas.empty()) {  // a kernel thread has no user-space mappings at all
        fmt::print("{}: no mappings (a kernel thread)\n", pid == 0 ? ::getpid() : pid);
        return;
    }
    fmt::print("{}:   (sizes in KiB)\n", pid == 0 ? ::getpid() : pid);
    fmt::print("{:>16} {:4} {:>8} {:>6} {:>9}", "Address", "Perm", "Offset", "Device", "Inode");
    for (const VmaField& f : vma_size_fields()) fmt::print(" {:>{}}", f.name, width(f));
    fmt::print(" {:6} {}\n", "Flags", "Mapping");
    const auto fields = vma_size_fields();
    std::vector<std::uint64_t> totals(fields.size());
    for (const Vma& v : vmas) {
        fmt::print("{:>16x} {:4} {:>8x} {:>6} {:>9}", v.start, v.perms, v.offset, v.device,
                   v.inode);
        for (std::size_t i = 0; i < fields.size(); ++i) {
            const std::uint64_t value = v.*(fields[i].member);
            totals[i] += value;
            fmt::print(" {:>{}}", value / kKiB, width(fields[i]));
        }
        // The flags the seeds talk about: locked, huge-page advised, shared.
        std::string flags;
        flags += v.has_flag("lo") ? 'L' : '-';
        flags += v.has_flag("hg") ? 'H' : '-';
        flags += v.is_shared() ? 'S' : '-';
        fmt::print(" {:6} {}\n", flags, v.path.empty() ? "[anon]" : v.path);
    }
    fmt::print("{:>16} {:4} {:>8} {:>6} {:>9}", "total", "", "", "", "");
    for (std::size_t i = 0; i < fields.size(); ++i)
        fmt::print(" {:>{}}", totals[i] / kKiB, width(fields[i]));
    fmt::print(" {:6} {} mapping{}\n", "", vmas.size(), vmas.size() == 1 ? "" : "s");
}

}  // namespace

void register_maps(CLI::App& app) {
    auto args = std::make_shared<MapsArgs>();
    CLI::App* cmd = app.add_subcommand(
        "maps",
        "A process's memory mappings with resident, shared and private sizes (like pmap -X)");
    // Checked as text before CLI11 converts it, so the message says what a pid is
    // (not a range of doubles, not "Could not convert").
    const CLI::Validator pid_text(
        [](std::string& text) -> std::string {
            int value = 0;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
            if (text.empty() || end != text.data() + text.size() || ec != std::errc() ||
                value < 1 || value > kPidMax) {
                return fmt::format("'{}' is not a process id (1 to {})", text, kPidMax);
            }
            return {};
        },
        "PID");
    cmd->add_option("PID", args->pid, "Process id (default: pagewire itself)")->check(pid_text);
    cmd->add_flag("--json", args->json, "Print JSON instead of a table");
    cmd->callback([args] {
        const auto vmas = read_smaps(args->pid);
        if (args->json) {
            print_json(vmas, args->pid);
        } else {
            print_table(vmas, args->pid);
        }
    });
}

}  // namespace pagewire::cli
