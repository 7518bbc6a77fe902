// pagewire::serve::run_server (pagewire/serve.hpp): checks what the server
// needs (listen address, root, openat2, access log), then runs the network
// core with one HttpProtocol per worker.
#include "net/server.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/serve.hpp>
#include <pagewire/unique_fd.hpp>

#include "http/file_cache.hpp"
#include "http/session.hpp"
#include "net/access_log.hpp"

namespace pagewire::serve {

void run_server(const ServeConfig& config, std::FILE* out) {
    net::ServerConfig core;
    core.name = "serve";
    net::parse_listen_address(config.listen, core);
    const int root = ::open(config.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) throw_error("open", config.root);
    UniqueFd root_fd(root);
    // openat2 (Linux 5.6) is what keeps requests inside the root: no fallback.
    const int probe = open_beneath(
        root, "", O_RDONLY, config.follow_symlinks ? Symlinks::Follow : Symlinks::StayBeneath);
    if (probe < 0) throw_error("openat2", config.root, -probe);
    ::close(probe);
    UniqueFd log_fd;
    if (!config.access_log.empty()) log_fd = net::open_access_log(config.access_log);

    core.workers = config.workers;
    core.max_connections = config.max_connections;
    core.max_frame_bytes = http::kMaxRequestHeadBytes;
    core.frame_timeout_ms = config.header_timeout_ms;
    core.idle_timeout_ms = config.keepalive_timeout_ms;
    core.send_timeout_ms = config.send_timeout_ms;
    core.linger_timeout_ms = config.linger_timeout_ms;
    core.shutdown_grace_ms = config.shutdown_grace_ms;
    core.access_log_fd = log_fd.get();
    net::run_server(
        core,
        [&](net::WorkerContext& context) {
            return std::make_unique<http::HttpProtocol>(config, root_fd.get(), context);
        },
        [&](const std::string& address, unsigned workers) {
            std::fprintf(out, "pagewire serve: listening on http://%s/ (%s, %u workers)\n",
                         address.c_str(), config.root.c_str(), workers);
            std::fflush(out);
        });
}

}  // namespace pagewire::serve
