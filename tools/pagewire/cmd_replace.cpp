// pagewire replace FILE FROM TO — seed 000's in-place edit through a shared
// mapping, any lengths, files larger than RAM (pagewire/replace.hpp).
#include <fmt/core.h>

#include <memory>
#include <pagewire/replace.hpp>
#include <pagewire/units.hpp>
#include <string>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

struct ReplaceArgs {
    std::string path;
    std::string from;
    std::string to;
};

void run_replace(const ReplaceArgs& a) {
    if (a.from.empty()) throw CLI::ValidationError("FROM", "must not be empty");
    const std::uint64_t count = replace_in_place(a.path, a.from, a.to);
    status(fmt::format("replaced {} in {}\n", counted(count, "occurrence"), a.path));
}

}  // namespace

void register_replace(CLI::App& app) {
    auto args = std::make_shared<ReplaceArgs>();
    CLI::App* cmd = app.add_subcommand(
        "replace", "Replace every occurrence of FROM with TO in FILE, in place, through a mapping");
    cmd->add_option("FILE", args->path, "File to edit (resized when FROM and TO differ in length)")
        ->required();
    cmd->add_option("FROM", args->from, "Bytes to find (non-empty)")->required();
    cmd->add_option("TO", args->to, "Replacement bytes (may be empty)")->required();
    cmd->callback([args] { run_replace(*args); });
}

}  // namespace pagewire::cli
