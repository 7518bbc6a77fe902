// pagewire send FILE HOST:PORT and pagewire recv PORT — move one file over
// TCP: zero copy on the sending side (sendfile by default), splice on the
// receiving side (socket -> pipe -> file).
//
// The stream: a 32-byte header (magic "PAGEWIRE", version, flags, length,
// checksum of the payload), the payload, then the receiver's 8-byte answer
// ("PWOK" or "PWNO" + a 32-bit code) once it has every byte and has checked
// them, so the sender knows the file arrived whole. Integers are little-endian.
#include <fmt/core.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <pagewire/address.hpp>
#include <pagewire/checksum.hpp>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/io.hpp>
#include <pagewire/output_file.hpp>
#include <pagewire/transfer.hpp>
#include <vector>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

constexpr char kMagic[8] = {'P', 'A', 'G', 'E', 'W', 'I', 'R', 'E'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 32;
constexpr std::size_t kAnswerBytes = 8;
constexpr std::uint32_t kAnswerChecksumMismatch = 1;
constexpr std::size_t kStdoutChunkBytes = 1 << 20;  // recv to a stream: read/write in this size

struct Header {
    std::uint64_t length = 0;
    std::uint64_t checksum = 0;
};

void put64(std::byte* p, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
std::uint64_t get64(const std::byte* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
}

// Reads exactly n bytes; false at end of stream before that.
bool read_exact(int fd, void* buf, std::size_t n, const std::string& peer) {
    auto* p = static_cast<char*>(buf);
    std::size_t done = 0;
    while (done < n) {
        ssize_t r = retry_eintr([&] { return ::read(fd, p + done, n - done); });
        if (r < 0) throw_error("read", peer);
        if (r == 0) return false;
        done += static_cast<std::size_t>(r);
    }
    return true;
}

void send_all(int fd, const void* buf, std::size_t n, const std::string& peer) {
    if (write_full(fd, buf, n) < 0) throw_error("write", peer);
}

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
    File file = File::open(args.path);
    struct stat st {};
    if (::fstat(file.fd(), &st) != 0) throw_error("stat", args.path);
    if (!S_ISREG(st.st_mode)) throw_error("send", args.path, EINVAL, "not a regular file");
    const auto length = static_cast<std::uint64_t>(st.st_size);

    TransferOptions options;
    options.method = *parse_method(args.method);
    if (!args.direct_threshold.empty()) {
        options.direct_threshold = size_option(args.direct_threshold, "--direct-threshold");
    }
    options.send_zc = args.send_zc == "always"  ? ZeroCopySend::Always
                      : args.send_zc == "never" ? ZeroCopySend::Never
                                                : ZeroCopySend::Auto;
    options.length = length;  // a file growing meanwhile must not outrun the header

    std::array<std::byte, kHeaderBytes> header{};
    std::memcpy(header.data(), kMagic, sizeof kMagic);
    put64(header.data() + 8, kVersion);  // version (32 bits) + flags (32 bits, none)
    put64(header.data() + 16, length);
    put64(header.data() + 24, checksum_file(file, 0, length));

    UniqueFd sock = connect_tcp(where);
    send_all(sock.get(), header.data(), header.size(), args.address);
    const TransferStats stats =
        transfer({file.fd(), args.path}, {sock.get(), args.address}, options);
    if (::shutdown(sock.get(), SHUT_WR) != 0) throw_error("shutdown", args.address);

    std::array<char, kAnswerBytes> answer{};
    if (!read_exact(sock.get(), answer.data(), answer.size(), args.address)) {
        throw_error("send", args.address, ECONNRESET,
                    "the receiver closed the connection without confirming");
    }
    if (std::memcmp(answer.data(), "PWOK", 4) != 0) {
        throw_error("send", args.address, EIO,
                    std::memcmp(answer.data(), "PWNO", 4) == 0
                        ? "the receiver reports a checksum mismatch"
                        : "the receiver's answer is not a pagewire answer");
    }
    fmt::print("sent {} bytes of {} to {}\n", stats.bytes, args.path, args.address);
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

Header read_header(int sock, const std::string& peer) {
    std::array<std::byte, kHeaderBytes> header{};
    if (!read_exact(sock, header.data(), header.size(), peer)) {
        throw_error("recv", peer, EPROTO, "the sender closed the connection before the header");
    }
    if (std::memcmp(header.data(), kMagic, sizeof kMagic) != 0) {
        throw_error("recv", peer, EPROTO, "not a pagewire stream (bad magic)");
    }
    const std::uint64_t version = get64(header.data() + 8) & 0xffffffffu;
    if (version != kVersion) {
        throw_error("recv", peer, EPROTO, fmt::format("unsupported stream version {}", version));
    }
    return {get64(header.data() + 16), get64(header.data() + 24)};
}

void answer(int sock, bool ok, const std::string& peer) {
    std::array<char, kAnswerBytes> a{};
    std::memcpy(a.data(), ok ? "PWOK" : "PWNO", 4);
    if (!ok) std::memcpy(a.data() + 4, &kAnswerChecksumMismatch, 4);
    send_all(sock, a.data(), a.size(), peer);
}

[[noreturn]] void checksum_mismatch(int sock, const std::string& peer) {
    try {
        answer(sock, false, peer);
    } catch (const Error&) {
        // The sender is gone; the mismatch is the error worth reporting.
    }
    throw_error("recv", peer, EIO, "checksum mismatch: the data differs from what was sent");
}

// To stdout (a pipe or terminal): the bytes pass through this process, so the
// checksum is computed on the way.
std::uint64_t receive_to_stdout(int sock, const Header& header, const std::string& peer) {
    std::vector<std::byte> buf(kStdoutChunkBytes);
    Checksum sum;
    for (std::uint64_t left = header.length; left > 0;) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
        if (!read_exact(sock, buf.data(), n, peer)) {
            throw_error("recv", peer, EIO, "the sender closed the connection early");
        }
        sum.update(buf.data(), n);
        if (write_full(STDOUT_FILENO, buf.data(), n) < 0) throw_error("write", "stdout");
        left -= n;
    }
    return sum.value();
}

void run_recv(const RecvArgs& args) {
    ::signal(SIGPIPE, SIG_IGN);
    // The destination first, before anyone can connect: an existing FILE without
    // --force, a missing directory or no write permission fails here, not after
    // a sender has started.
    std::optional<OutputFile> out;
    if (!args.output.empty()) {
        const mode_t mask = ::umask(0);
        ::umask(mask);
        out.emplace(args.output, 0666 & ~mask, args.force);
    }
    std::string where;
    UniqueFd listener = listen_on(args.bind, args.port, where);
    fmt::print(stderr, "listening on {}\n", where);
    std::fflush(stderr);

    UniqueFd sock(
        retry_eintr([&] { return ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC); }));
    if (!sock) throw_error("accept", where);
    listener.reset();
    const std::string peer = peer_address(sock.get()).text();
    const Header header = read_header(sock.get(), peer);

    if (!out) {
        if (receive_to_stdout(sock.get(), header, peer) != header.checksum) {
            checksum_mismatch(sock.get(), peer);
        }
        answer(sock.get(), true, peer);
        return;
    }

    TransferOptions options;
    options.method = *parse_method(args.method);
    options.length = header.length;
    TransferStats stats;
    try {
        stats = transfer({sock.get(), peer}, {out->file().fd(), args.output}, options);
    } catch (const Error& e) {
        if (e.error_number() == EIO && e.path() == peer) {
            throw_error("recv", peer, EIO,
                        fmt::format("the sender closed the connection after {} of {} bytes",
                                    out->file().size(), header.length));
        }
        throw;
    }
    // The temporary file has a name another process could truncate: read it guarded.
    if (checksum_file(out->file(), 0, header.length) != header.checksum) {
        checksum_mismatch(sock.get(), peer);
    }
    out->commit();
    answer(sock.get(), true, peer);
    fmt::print("received {} bytes from {} into {} (checksum ok)\n", stats.bytes, peer, args.output);
    if (args.stats) fmt::print("{}\n", summary(stats));
}

}  // namespace

void register_send(CLI::App& app) {
    auto args = std::make_shared<SendArgs>();
    CLI::App* cmd = app.add_subcommand(
        "send", "Send FILE to a `pagewire recv` at HOST:PORT over TCP, zero copy (sendfile)");
    cmd->add_option("FILE", args->path, "File to send")->required();
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
                     "File to write (appears only when complete and checked); default stdout, "
                     "through a buffer")
        ->type_name("FILE");
    rcmd->add_option("--method", rargs->method, "auto (splice), splice, read-write")
        ->check(CLI::IsMember({"auto", "splice", "read-write"}))
        ->type_name("M");
    rcmd->add_flag("--force,-f", rargs->force, "Replace FILE if it exists");
    rcmd->add_flag("--stats", rargs->stats, "Print what moved the bytes");
    rcmd->callback([rargs] { run_recv(*rargs); });
}

}  // namespace pagewire::cli
