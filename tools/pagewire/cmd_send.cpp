// pagewire send FILE HOST:PORT and pagewire recv PORT: move one file over
// TCP as a pagewire file stream (pagewire/file_stream.hpp): zero copy on the
// sending side (sendfile by default), splice on the receiving side (socket ->
// pipe -> file), the receiver's verdict back to the sender.
#include <fmt/core.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <pagewire/address.hpp>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/file_stream.hpp>
#include <pagewire/io.hpp>
#include <pagewire/output_file.hpp>
#include <pagewire/transfer.hpp>
#include <pagewire/units.hpp>
#include <vector>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

std::vector<std::string> method_names() {
    std::vector<std::string> names{"auto"};
    for (TransferMethod m : transfer_methods()) names.emplace_back(method_name(m));
    return names;
}

std::uint64_t size_option(const std::string& text, const char* what) {
    auto value = parse_size(text);
    if (!value) throw CLI::ValidationError(what, "'" + text + "' is not a byte count (e.g. 1G)");
    return *value;
}

// ---- send -------------------------------------------------------------------

struct SendArgs {
    std::string path;
    std::string address;
    std::string method = "auto";
    std::string direct_threshold;
    std::string send_zc = "auto";
    bool stats = false;
};

// HOST:PORT (pagewire/address.hpp); a usage error when it is not that shape.
HostPort host_port_argument(const std::string& address) {
    std::string reason;
    std::optional<HostPort> where = split_host_port(address, &reason);
    if (!where) throw CLI::ValidationError("HOST:PORT", "'" + address + "': " + reason);
    return *where;
}

void run_send(const SendArgs& args) {
    ::signal(SIGPIPE, SIG_IGN);  // a receiver that leaves is EPIPE, reported
    const HostPort where = host_port_argument(args.address);  // usage errors before any I/O
    File file = open_input(args.path);
    struct stat st {};
    if (::fstat(file.fd(), &st) != 0) throw_error("stat", file.path());
    if (!S_ISREG(st.st_mode))  // the length goes first: a pipe's is not known
        throw_error("send", file.path(), EINVAL, "not a regular file");
    const auto length = static_cast<std::uint64_t>(st.st_size);

    TransferOptions options;
    options.method = *parse_method(args.method);
    if (!args.direct_threshold.empty()) {
        options.direct_threshold = size_option(args.direct_threshold, "--direct-threshold");
    }
    options.send_zc = args.send_zc == "always"  ? ZeroCopySend::Always
                      : args.send_zc == "never" ? ZeroCopySend::Never
                                                : ZeroCopySend::Auto;
    options.progress = progress_bar(length);

    UniqueFd sock = connect_tcp(where);
    const TransferStats stats =
        send_stream(file, file.path(), length, sock.get(), args.address, options);
    status(fmt::format("sent {} of {} to {}\n", counted(stats.bytes, "byte"), file.path(),
                       args.address));
    if (args.stats) fmt::print("{}\n", summary(stats));
}

// ---- recv -------------------------------------------------------------------

struct RecvArgs {
    int port = 0;
    std::string bind = "127.0.0.1";  // as serve: exposing a port is asked for, never a default
    std::string output;
    std::string method = "auto";
    bool force = false;
    bool stats = false;
};

// A listening socket on HOST (an address or a name: its first address) and PORT.
UniqueFd listen_on(const std::string& bind, int port, std::string& shown) {
    if (bind.empty()) throw CLI::ValidationError("--bind", "empty address");
    const HostPort where{bind, static_cast<std::uint16_t>(port)};
    const std::string name = join_host_port(bind, where.port);
    const SocketAddress addr = resolve_tcp(where, true).front();
    UniqueFd s(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw_error("socket", name);
    const int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.get(), addr.get(), addr.length) != 0) throw_error("bind", name);
    if (::listen(s.get(), 1) != 0) throw_error("listen", name);
    shown = local_address(s.get()).text();
    return s;
}

void run_recv(const RecvArgs& args) {
    ::signal(SIGPIPE, SIG_IGN);
    // The destination first, before anyone can connect: an existing FILE without
    // --force, a missing directory or no write permission fails here, not after
    // a sender has started.
    std::optional<OutputFile> out;
    if (!args.output.empty() && args.output != "-") {
        const mode_t mask = ::umask(0);
        ::umask(mask);
        out.emplace(args.output, 0666 & ~mask, args.force);
    }
    std::string where;
    UniqueFd listener = listen_on(args.bind, args.port, where);
    if (!quiet() || args.port == 0) {  // port 0: the one line that says which port
        fmt::print(stderr, "listening on {}\n", where);
        std::fflush(stderr);
    }

    UniqueFd sock(
        retry_eintr([&] { return ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC); }));
    if (!sock) throw_error("accept", where);
    listener.reset();
    StreamReceiver stream(sock.get(), peer_address(sock.get()).text());
    const std::string& peer = stream.peer();

    if (!out) {
        // The data is on stdout: the status lines go to stderr.
        const TransferStats stats =
            stream.receive_to_stream(STDOUT_FILENO, "stdout", progress_bar(stream.length()));
        stream.confirm();
        if (args.stats) fmt::print(stderr, "{}\n", summary(stats));
        return;
    }

    TransferOptions options;
    options.method = *parse_method(args.method);
    options.progress = progress_bar(stream.length());
    const TransferStats stats = stream.receive(out->file(), args.output, options);
    try {
        out->commit();
    } catch (const Error& e) {
        stream.refuse(e);
        throw;
    }
    stream.confirm();
    status(fmt::format("received {} from {} into {} (checksum ok)\n", counted(stats.bytes, "byte"),
                       peer, args.output));
    if (args.stats) fmt::print("{}\n", summary(stats));
}

}  // namespace

void register_send(CLI::App& app) {
    auto args = std::make_shared<SendArgs>();
    CLI::App* cmd = app.add_subcommand(
        "send", "Send FILE to a `pagewire recv` at HOST:PORT over TCP, zero copy (sendfile)");
    cmd->add_option("FILE", args->path, "File to send (- : standard input, if it is a file)")
        ->required();
    cmd->add_option("HOST:PORT", args->address, "Where `pagewire recv` listens")->required();
    cmd->add_option("--method", args->method,
                    "auto (sendfile; direct at or above --direct-threshold), read-write, "
                    "mmap-write, sendfile, splice, io-uring, direct, msg-zerocopy")
        ->check(CLI::IsMember(method_names()))
        ->type_name("M");
    cmd->add_option("--direct-threshold", args->direct_threshold,
                    "auto: files at least this large go direct; 0 = never (default 1G)")
        ->type_name("N");
    cmd->add_option("--send-zc", args->send_zc,
                    "io-uring and direct: send with io_uring SEND_ZC (no copy of the buffers): "
                    "auto (to peers on other hosts; loopback copies anyway), always, never")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    cmd->add_flag("--stats", args->stats,
                  "Print what moved the bytes: method, time, CPU, syscalls");
    cmd->callback([args] { run_send(*args); });

    auto rargs = std::make_shared<RecvArgs>();
    CLI::App* rcmd = app.add_subcommand(
        "recv",
        "Receive one file from `pagewire send` on PORT (0: any free port; the address is "
        "printed on stderr), splice from the socket to the file, check length and checksum");
    rcmd->add_option("PORT", rargs->port, "TCP port to listen on")
        ->required()
        ->check(CLI::Range(0, 65535));
    rcmd->add_option(
            "--bind", rargs->bind,
            "Address or name to listen on: 0.0.0.0 or :: for every interface (default 127.0.0.1)")
        ->type_name("ADDR");
    rcmd->add_option("--output,-o", rargs->output,
                     "File to write (appears only when complete and checked); default or -: "
                     "stdout, through a buffer")
        ->type_name("FILE");
    rcmd->add_option("--method", rargs->method, "auto (splice), splice, read-write")
        ->check(CLI::IsMember({"auto", "splice", "read-write"}))
        ->type_name("M");
    rcmd->add_flag("--force,-f", rargs->force, "Replace FILE if it exists");
    rcmd->add_flag("--stats", rargs->stats,
                   "Print what moved the bytes (on stderr when the data goes to stdout)");
    rcmd->callback([rargs] { run_recv(*rargs); });
}

}  // namespace pagewire::cli
