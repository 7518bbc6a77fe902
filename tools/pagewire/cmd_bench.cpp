#include "commands.hpp"
namespace pagewire::cli {
void register_bench(CLI::App&) {}
}  // namespace pagewire::cli
