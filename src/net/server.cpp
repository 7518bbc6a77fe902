// A server's setup and shutdown: see server.hpp.
#include "net/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <pagewire/address.hpp>
#include <pagewire/error.hpp>
#include <pagewire/unique_fd.hpp>
#include <thread>
#include <vector>

#include "net/worker.hpp"
#include "sys.hpp"

namespace pagewire::net {
namespace {

constexpr int kListenBacklog = 4096;

// A listening socket bound to addr; reuse_port for the workers' sockets.
UniqueFd bind_socket(const sockaddr_storage& addr, socklen_t len, bool reuse_port,
                     const std::string& name, bool listen) {
    const int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_error("socket", name);
    UniqueFd sock(fd);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        throw_error("setsockopt SO_REUSEPORT", name);
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) throw_error("bind", name);
    if (listen && ::listen(fd, kListenBacklog) != 0) throw_error("listen", name);
    return sock;
}

// nginx's worker_rlimit_nofile: every connection is a descriptor.
void raise_open_file_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &lim);
    }
}

}  // namespace

void parse_listen_address(const std::string& text, ServerConfig& config) {
    std::string reason;
    const std::optional<HostPort> where = split_host_port(text, &reason);
    if (!where) throw_error("--listen", text, EINVAL, reason + " (expected HOST:PORT)");
    // The first address the name resolves to, as nginx's `listen localhost:80` does.
    const SocketAddress first = resolve_tcp(*where, true).front();
    config.addr = first.storage;
    config.addr_len = first.length;
    config.listen = text;
}

std::string format_address(const sockaddr_storage& addr) {
    SocketAddress s;
    s.storage = addr;
    return s.text();
}

void run_server(
    const ServerConfig& config, const ProtocolFactory& factory,
    const std::function<void(const std::string& address, unsigned workers)>& on_listening) {
    sockaddr_storage addr = config.addr;
    socklen_t addr_len = config.addr_len;
    raise_open_file_limit();

    unsigned workers = config.workers;
    if (workers == 0) {
        const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
        workers = cpus > 0 ? static_cast<unsigned>(cpus) : 1;
    }

    // "Address in use" must be an error even when the holder uses
    // SO_REUSEPORT too: one plain bind first (it also picks port 0's port),
    // then every worker's socket joins that port with SO_REUSEPORT.
    {
        UniqueFd probe_sock = bind_socket(addr, addr_len, false, config.listen, false);
        socklen_t len = sizeof addr;
        if (::getsockname(probe_sock.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            throw_error("getsockname", config.listen);
        }
        addr_len = len;
    }

    // Signals: SIGPIPE never kills (sendfile to a reset peer); SIGTERM and
    // SIGINT are blocked in every thread and taken by sigwait() below.
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    const int stop = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (stop < 0) throw_error("eventfd", config.name);
    UniqueFd stop_fd(stop);
    WorkerShared shared;
    shared.config = &config;
    shared.stop_fd = stop_fd.get();

    std::vector<std::unique_ptr<Worker>> pool;
    for (unsigned i = 0; i < workers; ++i) {
        pool.push_back(std::make_unique<Worker>(
            shared, bind_socket(addr, addr_len, true, config.listen, true), factory));
    }
    std::vector<std::thread> threads;
    for (auto& worker : pool) {
        threads.emplace_back([&worker, &config] {
            try {
                worker->run();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "pagewire %s: worker: %s\n", config.name.c_str(), e.what());
                ::kill(::getpid(), SIGTERM);  // the others stop too
            }
        });
    }
    on_listening(format_address(addr), workers);

    int signal = 0;
    while (::sigwait(&stop_signals, &signal) != 0) {
    }
    const std::uint64_t one = 1;
    if (sys::write_full(stop_fd.get(), &one, sizeof one) < 0) {
        // The workers cannot be told to stop, so joining them would wait forever.
        std::fprintf(stderr, "pagewire: write serve stop eventfd: %s\n", std::strerror(errno));
        std::_Exit(1);
    }
    for (std::thread& t : threads) t.join();
}

}  // namespace pagewire::net
