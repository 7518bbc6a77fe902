// pagewire bench ... — runs the benchmark program, pagewire-bench (built from
// bench/, installed beside the command), with the same arguments. The
// benchmarks and their peers live apart from the command, so the command
// builds and installs without Boost, ZeroMQ, iceoryx, nginx or wrk.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <pagewire/error.hpp>
#include <string>
#include <system_error>
#include <vector>

#include "commands.hpp"

namespace pagewire::cli {
namespace {

constexpr const char* kBenchProgram = "pagewire-bench";

// pagewire-bench in the directory of the running pagewire (the build tree's
// bin/ and an installation alike); empty when it is not there.
std::string bench_program_path() {
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return {};
    std::filesystem::path candidate = self.parent_path() / kBenchProgram;
    if (::access(candidate.c_str(), X_OK) != 0) return {};
    return candidate.string();
}

[[noreturn]] void run_bench_program(const std::vector<std::string>& args) {
    const std::string path = bench_program_path();
    if (path.empty())
        throw_error("bench", kBenchProgram, ENOENT,
                    "the benchmark program is not installed beside pagewire (build bench/)");
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(kBenchProgram));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::fflush(stdout);
    ::execv(path.c_str(), argv.data());
    throw_error("exec", path);
}

}  // namespace

void register_bench(CLI::App& app) {
    CLI::App* cmd = app.add_subcommand(
        "bench",
        "Measure the seeds' performance claims on this machine against their peers "
        "(runs pagewire-bench; `pagewire bench --help` lists the sections)");
    // Every argument, --help included, is pagewire-bench's.
    cmd->set_help_flag();
    cmd->prefix_command();
    cmd->allow_extras();
    // Everything after `bench` is pagewire-bench's, even -q: not passed up to
    // pagewire's own options (main sets fallthrough for every subcommand).
    cmd->fallthrough(false);
    cmd->callback([cmd] { run_bench_program(cmd->remaining()); });
}

}  // namespace pagewire::cli
