// pagewire cat FILE [OFFSET [LENGTH]] — seed 003's mmap program as a tool:
// write LENGTH bytes of FILE starting at any byte OFFSET to stdout, through a
// mapping. LENGTH is clamped at end of file; an offset at or past the end of
// a non-empty file is an error; an empty file prints nothing. A file whose
// size the kernel does not report (/proc/cpuinfo) cannot be mapped: it is
// read instead, from its start. FIFOs, sockets and devices are refused;
// FILE "-" is standard input, which may be a pipe (read from its start).
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <pagewire/error.hpp>
#include <pagewire/io.hpp>
#include <pagewire/mapping.hpp>
#include <pagewire/transfer.hpp>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

struct CatArgs {
    std::string path;
    std::string offset = "0";
    std::string length;
};

std::uint64_t size_argument(const std::string& text, const char* what) {
    auto value = parse_size(text);
    if (!value) {
        throw CLI::ValidationError(what,
                                   "'" + text + "' is not a byte count (e.g. 4096, 0x1000, 4K)");
    }
    return *value;
}

void run_cat(const CatArgs& args) {
    const std::uint64_t offset = size_argument(args.offset, "OFFSET");
    std::size_t length = Mapping::kToEnd;
    if (!args.length.empty()) {
        std::uint64_t requested = size_argument(args.length, "LENGTH");
        length =
            requested >= Mapping::kToEnd ? Mapping::kToEnd : static_cast<std::size_t>(requested);
    }
    File file = open_input(args.path);
    struct stat st {};
    if (::fstat(file.fd(), &st) != 0) throw_error("stat", file.path());
    if (!S_ISREG(st.st_mode) || !file.size_known()) {  // only stdin may be a pipe or a device here
        if (offset != 0)
            throw_error("cat", file.path(), ESPIPE,
                        S_ISREG(st.st_mode)
                            ? "the kernel reports no size for this file: only OFFSET 0 can be read"
                            : "a pipe or device is read from its start: only OFFSET 0");
        TransferOptions options;
        options.method = TransferMethod::ReadWrite;
        options.measure_cache = false;
        if (length != Mapping::kToEnd) options.length = length;
        transfer(Endpoint{file.fd(), file.path()}, Endpoint{STDOUT_FILENO, "stdout"}, options);
        return;
    }
    Mapping view = Mapping::map(file, Access::ReadOnly, offset, length);
    if (view.empty()) return;
    // Whole files may be larger than RAM: read ahead aggressively and let the
    // kernel drop pages behind us.
    view.advise(Advice::Sequential);
    write_mapped(STDOUT_FILENO, view.data(), view.size(), args.path, "stdout");
}

}  // namespace

void register_cat(CLI::App& app) {
    auto args = std::make_shared<CatArgs>();
    CLI::App* cmd = app.add_subcommand(
        "cat", "Print LENGTH bytes of FILE from OFFSET (any byte offset) through a memory mapping");
    cmd->add_option("FILE", args->path, "File to print (- : standard input)")->required();
    cmd->add_option("OFFSET", args->offset, "First byte to print (default 0; suffixes K, M, G)");
    cmd->add_option("LENGTH", args->length,
                    "Bytes to print (default: to end of file; clamped at end of file)");
    cmd->callback([args] { run_cat(*args); });
}

}  // namespace pagewire::cli
