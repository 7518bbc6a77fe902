// The pagewire command's subcommands. Each registers itself on the CLI11 app
// and sets a callback; a callback reports failure by throwing pagewire::Error
// (main prints "pagewire: <operation> <path>: <reason>" and exits 1).
#pragma once

#include <CLI/CLI.hpp>

namespace pagewire::cli {

void register_cat(CLI::App& app);
void register_replace(CLI::App& app);
void register_bench(CLI::App& app);
void register_cache(CLI::App& app);
void register_maps(CLI::App& app);
void register_shm(CLI::App& app);
void register_chan(CLI::App& app);
void register_copy(CLI::App& app);
void register_send(CLI::App& app);  // send and recv
void register_serve(CLI::App& app);
void register_log(CLI::App& app);
void register_broker(CLI::App& app);

}  // namespace pagewire::cli
