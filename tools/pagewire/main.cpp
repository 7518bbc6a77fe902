// pagewire — command-line front end. Exit codes: 0 ok, 1 failure (one line on
// stderr: "pagewire: <operation> <path>: <reason>"), 2 usage error.
#include "commands.hpp"
#include "pagewire_build_info.hpp"  // generated: cmake/write_build_info.cmake

#include <pagewire/error.hpp>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>
#include <exception>

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"pagewire: memory-mapped files, shared memory and zero-copy transfer", "pagewire"};
    app.require_subcommand(1);
    // First line "pagewire VERSION" as GNU tools print it (help2man reads it).
    app.set_version_flag(
        "--version",
        fmt::format("pagewire {}\nbuild type: {}\ncommit: {}", pagewire::cli::build_info::kVersion,
                    pagewire::cli::build_info::kBuildType, pagewire::cli::build_info::kCommit));
    pagewire::cli::register_cat(app);
    pagewire::cli::register_replace(app);
    pagewire::cli::register_cache(app);
    pagewire::cli::register_maps(app);
    pagewire::cli::register_shm(app);
    pagewire::cli::register_chan(app);
    pagewire::cli::register_copy(app);
    pagewire::cli::register_send(app);  // send and recv
    pagewire::cli::register_serve(app);
    pagewire::cli::register_bench(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return kExitUsage;
    } catch (const pagewire::Error& e) {
        std::fflush(stdout);
        fmt::print(stderr, "pagewire: {}\n", e.what());
        return kExitFailure;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        fmt::print(stderr, "pagewire: {}\n", e.what());
        return kExitFailure;
    }
    return 0;
}
