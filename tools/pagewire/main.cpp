// pagewire — command-line front end. Exit codes: 0 ok, 1 failure (one line on
// stderr: "pagewire: <operation> <path>: <reason>"), 2 usage error.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <pagewire/error.hpp>
#include <string>

#include "cli_util.hpp"
#include "commands.hpp"
#include "pagewire_build_info.hpp"  // generated: cmake/write_build_info.cmake

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Usage errors in the one format: "pagewire: <what was wrong>", then a hint.
std::string usage_failure(const CLI::App* /*app*/, const CLI::Error& e) {
    return fmt::format(
        "pagewire: {}\nRun 'pagewire --help' (or 'pagewire SUBCOMMAND --help') for usage.\n",
        e.what());
}

// "bogus" where a subcommand is expected: named, with the list, instead of
// CLI11's "A subcommand is required".
bool unknown_subcommand(const CLI::App& app, int argc, char** argv) {
    if (argc < 2 || argv[1][0] == '-') return false;
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) {
        if (sub->get_name() == argv[1]) return false;
        names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    fmt::print(stderr, "pagewire: unknown subcommand '{}' (one of: {})\n", argv[1], names);
    return true;
}

// What was printed must have reached stdout: a full disk or a closed pipe is
// a failure, not an exit 0 with output lost.
int check_stdout(int status) {
    if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return status;
    const int err = errno != 0 ? errno : EIO;
    fmt::print(stderr, "pagewire: write stdout: {}\n", std::strerror(err));
    return kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
    // A file-size limit (ulimit -f, RLIMIT_FSIZE) is then EFBIG from the call
    // that hit it, reported in one line after the command has removed what it
    // half made, instead of SIGXFSZ killing the process on the spot.
    std::signal(SIGXFSZ, SIG_IGN);
    CLI::App app{"pagewire: memory-mapped files, shared memory and zero-copy transfer", "pagewire"};
    app.require_subcommand(1);
    // First line "pagewire VERSION" as GNU tools print it (help2man reads it).
    app.set_version_flag(
        "--version",
        fmt::format("pagewire {}\nbuild type: {}\ncommit: {}", pagewire::cli::build_info::kVersion,
                    pagewire::cli::build_info::kBuildType, pagewire::cli::build_info::kCommit));
    app.failure_message(usage_failure);
    // -q/--quiet anywhere on the line: subcommands pass options they do not
    // know on to here (fallthrough is inherited by every subcommand).
    app.fallthrough();
    app.add_flag("--quiet,-q", pagewire::cli::quiet(),
                 "No status lines ('created ...', 'sent ...') or progress bars; data, warnings "
                 "and errors still print");
    app.footer(
        "Exit status: 0 success; 1 failure, said in one line on stderr "
        "(pagewire: <operation> <path>: <reason>); 2 usage error.");
    pagewire::cli::register_cat(app);
    pagewire::cli::register_replace(app);
    pagewire::cli::register_cache(app);
    pagewire::cli::register_maps(app);
    pagewire::cli::register_shm(app);
    pagewire::cli::register_chan(app);
    pagewire::cli::register_copy(app);
    pagewire::cli::register_send(app);  // send and recv
    pagewire::cli::register_serve(app);
    pagewire::cli::register_log(app);
    pagewire::cli::register_broker(app);
    pagewire::cli::register_bench(app);
    if (unknown_subcommand(app, argc, argv)) return kExitUsage;

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return check_stdout(app.exit(e));
    } catch (const CLI::CallForAllHelp& e) {
        return check_stdout(app.exit(e));
    } catch (const CLI::CallForVersion& e) {
        return check_stdout(app.exit(e));
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return kExitUsage;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        fmt::print(stderr, "pagewire: {}\n", e.what());
        return kExitFailure;
    }
    return check_stdout(0);
}
