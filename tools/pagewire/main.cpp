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

// The subcommands in the order --help lists them. send and recv register together.
struct Subcommand {
    const char* name;
    void (*add)(CLI::App&);
};
constexpr Subcommand kSubcommands[] = {
    {"cat", pagewire::cli::register_cat},     {"replace", pagewire::cli::register_replace},
    {"cache", pagewire::cli::register_cache}, {"maps", pagewire::cli::register_maps},
    {"shm", pagewire::cli::register_shm},     {"chan", pagewire::cli::register_chan},
    {"copy", pagewire::cli::register_copy},   {"send", pagewire::cli::register_send},
    {"recv", pagewire::cli::register_send},   {"serve", pagewire::cli::register_serve},
    {"log", pagewire::cli::register_log},     {"broker", pagewire::cli::register_broker},
    {"topic", pagewire::cli::register_topic}, {"bench", pagewire::cli::register_bench},
};

// Only the subcommand named first is built when it is one of ours: building
// the options of all of them is most of what a short run such as
// `pagewire cache stat DIR` spends before its first system call (CLI11 makes
// every option's strings, validators and callbacks up front). Anything else
// (--help, -q first, a typo) gets them all, for the full usage and errors.
void register_subcommands(CLI::App& app, int argc, char** argv) {
    if (argc >= 2) {
        for (const Subcommand& s : kSubcommands) {
            if (std::strcmp(s.name, argv[1]) == 0) return s.add(app);
        }
    }
    void (*last)(CLI::App&) = nullptr;
    for (const Subcommand& s : kSubcommands) {
        if (s.add != last) s.add(app);
        last = s.add;
    }
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
    register_subcommands(app, argc, argv);
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
