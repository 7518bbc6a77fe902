// pagewire copy SRC DST — copy one file like cp, through the transfer engine
// (copy_file_range by default, any method on request). DST may be a
// directory. The bytes go to a temporary file next to DST that is renamed
// over it only when the copy is complete, so a failed or interrupted copy
// leaves no half-written DST; the mode of SRC is kept; an existing DST is
// replaced only with --force.
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/output_file.hpp>
#include <pagewire/transfer.hpp>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

struct CopyArgs {
    std::string source;
    std::string destination;
    std::string method = "auto";
    std::string direct_threshold;
    std::string buffer;
    bool force = false;
    bool reflink = false;
    bool stats = false;
    bool drop_cache = false;
    bool no_fallback = false;
};

std::vector<std::string> method_names(bool with_msg_zerocopy) {
    std::vector<std::string> names{"auto"};
    for (TransferMethod m : transfer_methods()) {
        if (m == TransferMethod::MsgZerocopy && !with_msg_zerocopy) continue;
        names.emplace_back(method_name(m));
    }
    return names;
}

std::uint64_t size_option(const std::string& text, const char* what) {
    auto value = parse_size(text);
    if (!value) {
        throw CLI::ValidationError(what, "'" + text + "' is not a byte count (e.g. 1G, 512M)");
    }
    return *value;
}

TransferOptions options_of(const CopyArgs& args, const struct stat& source_stat) {
    TransferOptions options;
    options.method = *parse_method(args.method);
    if (!args.direct_threshold.empty()) {
        options.direct_threshold = size_option(args.direct_threshold, "--direct-threshold");
    }
    if (!args.buffer.empty()) {
        const std::uint64_t bytes = size_option(args.buffer, "--buffer");
        if (bytes == 0 || bytes > (1ULL << 30)) {
            throw CLI::ValidationError("--buffer", "must be between 1 byte and 1G");
        }
        options.buffer_bytes = static_cast<std::size_t>(bytes);
    }
    options.reflink = args.reflink;
    options.fallback = !args.no_fallback;
    options.drop_source_pages = args.drop_cache;
    options.progress = progress_bar(static_cast<std::uint64_t>(source_stat.st_size));
    return options;
}

void run_copy(const CopyArgs& args) {
    File source = open_input(args.source);
    struct stat source_stat {};
    if (::fstat(source.fd(), &source_stat) != 0) throw_error("stat", source.path());
    if (!S_ISREG(source_stat.st_mode)) {
        throw_error("copy", source.path(), EINVAL, "not a regular file");
    }

    TransferOptions options = options_of(args, source_stat);
    if (args.destination == "-") {  // to stdout, whatever it is (file, pipe, socket, tty)
        const TransferStats stats = transfer(Endpoint{source.fd(), source.path()},
                                             Endpoint{STDOUT_FILENO, "stdout"}, options);
        if (args.stats) fmt::print(stderr, "{} -> stdout: {}\n", source.path(), summary(stats));
        return;
    }
    std::string destination = args.destination;
    struct stat st {};
    if (::stat(destination.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        destination =
            (std::filesystem::path(destination) / std::filesystem::path(source.path()).filename())
                .string();
    }
    if (::stat(destination.c_str(), &st) == 0 && st.st_dev == source_stat.st_dev &&
        st.st_ino == source_stat.st_ino) {
        throw_error("copy", destination, EINVAL, "is the same file as " + source.path());
    }

    OutputFile out(destination, source_stat.st_mode, args.force);
    const TransferStats stats = transfer(source, out.file(), options);
    out.commit();
    if (args.stats) fmt::print("{} -> {}: {}\n", source.path(), destination, summary(stats));
}

}  // namespace

void register_copy(CLI::App& app) {
    auto args = std::make_shared<CopyArgs>();
    CLI::App* cmd = app.add_subcommand(
        "copy",
        "Copy SRC to DST (a file or a directory) through the zero-copy transfer engine; DST "
        "appears only when complete");
    cmd->add_option("SRC", args->source, "File to copy (- : standard input, if it is a file)")
        ->required();
    cmd->add_option("DST", args->destination,
                    "Destination file or directory (- : standard output; --stats then on stderr)")
        ->required();
    cmd->add_option("--method", args->method,
                    "auto (copy-file-range; direct at or above --direct-threshold), read-write, "
                    "mmap-write, sendfile, splice, copy-file-range, io-uring, direct")
        ->check(CLI::IsMember(method_names(false)))
        ->type_name("M");
    cmd->add_option("--direct-threshold", args->direct_threshold,
                    "auto: files at least this large go direct (O_DIRECT + io_uring); 0 = never "
                    "(default 1G)")
        ->type_name("N");
    cmd->add_option("--buffer", args->buffer, "Buffer / chunk size (default 128K)")->type_name("N");
    cmd->add_flag("--force,-f", args->force, "Replace DST if it exists");
    cmd->add_flag("--reflink", args->reflink,
                  "Share the blocks (FICLONE) where the filesystem can, else copy");
    cmd->add_flag("--stats", args->stats,
                  "Print what moved the bytes: method, time, CPU, syscalls, page cache");
    cmd->add_flag("--drop-cache", args->drop_cache,
                  "Drop SRC's pages from the page cache afterwards");
    cmd->add_flag("--no-fallback", args->no_fallback,
                  "Fail if the method cannot run here instead of running the next one");
    cmd->callback([args] { run_copy(*args); });
}

}  // namespace pagewire::cli
