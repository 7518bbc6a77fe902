// Section "serve" of pagewire bench (issue 6): `pagewire serve` against nginx
// on the same directory, the same worker count and the same direct-I/O
// threshold, each driven by wrk on 127.0.0.1 in the same run.
//
// Files: 1 KiB and 64 KiB (100 keep-alive connections, requests/s is what
// counts) and one large file (1 GiB; 256 MiB with --quick; 4 connections,
// GB/s is what counts). The direct threshold is the large file's size, so the
// large file takes the direct path (O_DIRECT + asynchronous reads) in both
// servers and the small ones take sendfile.
//
// Per row: requests/s, GB/s (wrk's bytes read, headers included), p99
// latency, and the server's CPU seconds per GB: utime + stime of the server's
// process tree (nginx master + workers with their aio thread pools; pagewire's
// one process) from /proc/PID/stat before and after each wrk run, divided by
// the GB wrk read. Medians over interleaved repetitions (nginx, pagewire,
// then pagewire, nginx, ...). A wrk run with any socket error, timeout,
// non-2xx/3xx status or responses shorter than the file fails its row: a
// server answering errors fast must not win.
//
// Both servers run as children of this process (fork + exec, with
// PR_SET_PDEATHSIG so that they die with it) and are stopped with SIGTERM +
// waitpid by their owners' destructors, also when a measurement throws.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/io.hpp>
#include <sstream>
#include <thread>

#include "bench_common.hpp"
#include "bench_process.hpp"

namespace pagewire::bench {
namespace {

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;
constexpr std::uint64_t kGiB = 1024 * kMiB;
constexpr std::uint64_t kFullLargeBytes = 1 * kGiB;
constexpr std::uint64_t kQuickLargeBytes = 256 * kMiB;
constexpr std::size_t kFillChunkBytes = 1 << 20;

// wrk's load. Durations are whole seconds (wrk's -d takes no fractions).
constexpr int kSmallConnections = 100;
constexpr int kLargeConnections = 4;
constexpr int kWrkThreads = 2;
constexpr int kFullSmallSeconds = 5;
constexpr int kFullLargeSeconds = 10;
constexpr int kQuickSmallSeconds = 1;
constexpr int kQuickLargeSeconds = 2;
constexpr int kFullRounds = 5;
constexpr int kFullWarmupRounds = 1;
constexpr int kQuickRounds = 3;  // --quick: the whole section stays under ~40 s
constexpr int kQuickWarmupRounds = 0;
// wrk's per-request timeout: a large file takes seconds to download.
constexpr int kWrkTimeoutSeconds = 60;
// Extra seconds wrk may take beyond its -d before it is killed as hung.
constexpr int kWrkGraceSeconds = 30;

constexpr std::chrono::seconds kStartTimeout{15};
constexpr std::chrono::milliseconds kPollInterval = kChildPollInterval;
constexpr int kProbeTimeoutSeconds = 2;
// nginx reads O_DIRECT files through its output buffers (default 2 x 32 KiB,
// which would cripple it); pagewire's direct path reads 1 MiB chunks, so
// nginx gets buffers of the same size.
constexpr const char* kNginxOutputBuffers = "2 1m";
constexpr int kNginxWorkerConnections = 4096;

// Targets of issue 6, checked on the same run.
constexpr double kTargetSmallRpsRatio = 1.0;   // pagewire req/s >= nginx's (1 KiB, 64 KiB)
constexpr double kTargetLargeGbpsRatio = 1.0;  // pagewire GB/s >= nginx's (large file)
constexpr double kTargetCpuRatio = 1.0;        // pagewire CPU/GB <= nginx's (every file)

constexpr const char* kNginxName = "nginx";
constexpr const char* kPagewireName = "pagewire";

// The marker wrk's done() prints before its JSON line, so that the line is
// found among wrk's own report.
constexpr const char* kWrkMarker = "PAGEWIRE-WRK ";
constexpr const char* kWrkScript = R"lua(-- written by pagewire bench serve
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "PAGEWIRE-WRK {\"requests\":%.0f,\"bytes\":%.0f,\"duration_us\":%.0f,\"connect\":%.0f," ..
    "\"read\":%.0f,\"write\":%.0f,\"status\":%.0f,\"timeout\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f," ..
    "\"max_us\":%.0f}\n",
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
)lua";

struct ServedFile {
    std::string label;  // the row's file column, e.g. "1 KiB" or "256 MiB (--quick)"
    std::string name;   // URL path component
    std::uint64_t size;
    bool large;
};

// The file content: splitmix64 words, different for every file size, so no
// page is all zeros and no two files share pages.
void create_file(const std::string& path, std::uint64_t size) {
    File f = File::create(path, CreateMode::Truncate, 0644);
    std::vector<std::uint64_t> chunk(kFillChunkBytes / 8);
    SplitMix64 rng{0x7365727665ULL + size};  // "serve"
    for (std::uint64_t off = 0; off < size; off += kFillChunkBytes) {
        for (auto& w : chunk) w = rng.next();
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(kFillChunkBytes, size - off));
        f.write_at(off, std::as_bytes(std::span(chunk)).first(n));
    }
    f.datasync();
}

// One GET on a fresh connection; the response's status code, or -1 when the
// server does not answer (not listening yet, closed, timed out).
int probe(int port, const std::string& path) {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return -1;
    const timeval tv{kProbeTimeoutSeconds, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
    const std::string request =
        "GET /" + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(s.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
        return -1;
    }
    std::string head;
    char buf[4096];
    while (head.find("\r\n") == std::string::npos) {
        const ssize_t n = retry_eintr([&] { return ::recv(s.get(), buf, sizeof buf, 0); });
        if (n <= 0) return -1;
        head.append(buf, static_cast<std::size_t>(n));
    }
    int status = -1;
    if (std::sscanf(head.c_str(), "HTTP/1.%*d %d", &status) != 1) return -1;
    return status;
}

// A server under test: its process, its port, or why it is not available.
struct Server {
    std::string name;
    std::unique_ptr<Child> process;
    int port = 0;
    std::string unavailable;  // non-empty: why there are no measurements
    std::string err_path;     // its stderr, quoted when it fails

    // CPU seconds of the server's process tree (nginx: master + workers).
    double cpu_seconds() const {
        if (!process || process->pid() <= 0) return 0;
        double sum = process_cpu_seconds(process->pid());
        for (pid_t c : children_of(process->pid())) sum += process_cpu_seconds(c);
        return sum;
    }
    // The failure to report when the process has ended.
    std::string ended() const {
        // Its first stderr line: pagewire's one-line error, CLI11's reason, nginx's emerg.
        std::string err = read_text(err_path);
        err = first_line(err.substr(std::min(err.size(), err.find_first_not_of("\n"))));
        return fmt::format("{} exited ({}{}{})", name, process->exit_status(),
                           err.empty() ? "" : ": ", err);
    }
};

// Waits until `server` answers a GET for `path` with 200; sets unavailable otherwise.
void wait_until_serving(Server& server, const std::string& path) {
    const auto deadline = Clock::now() + kStartTimeout;
    int status = -1;
    while (Clock::now() < deadline) {
        if (!server.process->running()) {
            server.unavailable = server.ended();
            return;
        }
        status = probe(server.port, path);
        if (status == 200) return;
        std::this_thread::sleep_for(kPollInterval);
    }
    server.unavailable =
        status < 0 ? fmt::format("{} did not answer on port {} within {} s", server.name,
                                 server.port, kStartTimeout.count())
                   : fmt::format("{} answered GET /{} with {}", server.name, path, status);
    server.process->stop(SIGTERM);
}

// nginx as the issue describes it, configuration generated in the scratch
// directory: sendfile, tcp_nopush, aio threads, directio at the same
// threshold as pagewire, keep-alive, no access log, N workers, reuseport.
// As root the workers would switch to `nobody`, who cannot enter the 0700
// scratch directory: they run as root instead (`user root;`).
Server start_nginx(Context& ctx, const std::string& nginx, const std::string& root, int workers,
                   const std::string& threshold, const std::string& probe_path) {
    Server server;
    server.name = kNginxName;
    const std::string prefix = root + "/serve-nginx";
    std::filesystem::create_directories(prefix);
    const std::string conf = ctx.scratch.file("serve-nginx.conf");
    server.err_path = prefix + "/stderr.log";
    server.port = free_port();
    std::string text;
    text += "# generated by pagewire bench serve\n";
    if (::geteuid() == 0) text += "user root;\n";
    text += fmt::format("daemon off;\nmaster_process on;\nworker_processes {};\n", workers);
    text += fmt::format("pid {0}/nginx.pid;\nerror_log {0}/error.log warn;\n", prefix);
    text += fmt::format("events {{\n    worker_connections {};\n}}\n", kNginxWorkerConnections);
    text += "http {\n";
    text += "    sendfile on;\n    tcp_nopush on;\n    aio threads;\n";
    text +=
        fmt::format("    directio {};\n    output_buffers {};\n", threshold, kNginxOutputBuffers);
    text += "    keepalive_timeout 75;\n    keepalive_requests 1000000;\n    access_log off;\n";
    text += "    open_file_cache max=1000 inactive=60s;\n";
    text += "    default_type application/octet-stream;\n";
    for (const char* temp : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
        text += fmt::format("    {0}_temp_path {1}/{0}_temp;\n", temp, prefix);
    }
    text += fmt::format(
        "    server {{\n        listen 127.0.0.1:{} reuseport;\n        root {};\n    }}\n",
        server.port, root);
    text += "}\n";
    write_text(conf, text);
    ctx.progress(fmt::format("starting nginx ({} workers, directio {}) on 127.0.0.1:{}", workers,
                             threshold, server.port));
    server.process =
        std::make_unique<Child>(std::vector<std::string>{nginx, "-p", prefix + "/", "-e",
                                                         prefix + "/error.log", "-c", conf},
                                prefix + "/stdout.log", server.err_path);
    wait_until_serving(server, probe_path);
    if (!server.unavailable.empty()) {
        const std::string log = last_line(read_text(prefix + "/error.log"));
        if (!log.empty()) server.unavailable += " (error.log: " + log + ")";
    }
    return server;
}

// `pagewire serve` from this very binary, on a port it picks itself (its
// startup line names it).
Server start_pagewire(Context& ctx, const std::string& root, int workers,
                      const std::string& threshold, const std::string& probe_path) {
    Server server;
    server.name = kPagewireName;
    const std::string self = pagewire_command();
    const std::string out_path = ctx.scratch.file("serve-pagewire.out");
    server.err_path = ctx.scratch.file("serve-pagewire.err");
    ctx.progress(fmt::format("starting pagewire serve ({} workers, --direct-threshold {})", workers,
                             threshold));
    server.process = std::make_unique<Child>(
        std::vector<std::string>{self, "serve", root, "--listen", "127.0.0.1:0", "--workers",
                                 std::to_string(workers), "--direct-threshold", threshold},
        out_path, server.err_path);
    // "pagewire serve: listening on http://127.0.0.1:PORT/ (DIR, N workers)"
    const auto deadline = Clock::now() + kStartTimeout;
    while (server.port == 0) {
        const std::string out = read_text(out_path);
        const auto at = out.find("http://127.0.0.1:");
        if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
            server.port = std::atoi(out.c_str() + at + std::strlen("http://127.0.0.1:"));
            if (server.port <= 0) {
                server.unavailable =
                    "pagewire serve printed no port: " + first_line(out.substr(at));
                return server;
            }
            break;
        }
        if (!server.process->running()) {
            server.unavailable = "pagewire serve not available: " + server.ended();
            server.process.reset();
            return server;
        }
        if (Clock::now() >= deadline) {
            server.unavailable = fmt::format("pagewire serve printed no listening line within {} s",
                                             kStartTimeout.count());
            server.process->stop(SIGTERM);
            return server;
        }
        std::this_thread::sleep_for(kPollInterval);
    }
    ctx.progress(fmt::format("pagewire serve listening on 127.0.0.1:{}", server.port));
    wait_until_serving(server, probe_path);
    return server;
}

// ---- wrk -------------------------------------------------------------------

struct WrkRun {
    std::string error;  // non-empty: the run does not count
    double requests = 0;
    double bytes = 0;
    double seconds = 0;
    double p50_ms = 0;
    double p99_ms = 0;
};

WrkRun run_wrk(const std::string& wrk, const std::string& script, const std::string& out_path,
               int port, const ServedFile& file, int connections, int seconds) {
    WrkRun result;
    const std::string url = fmt::format("http://127.0.0.1:{}/{}", port, file.name);
    Child child({wrk, "-t", std::to_string(std::min(kWrkThreads, connections)), "-c",
                 std::to_string(connections), "-d", std::to_string(seconds) + "s", "--timeout",
                 std::to_string(kWrkTimeoutSeconds) + "s", "-s", script, url},
                out_path, out_path + ".err");
    if (!child.wait(std::chrono::seconds(seconds + kWrkGraceSeconds))) {
        child.stop(SIGKILL);
        result.error = fmt::format("wrk hung (killed after {} s)", seconds + kWrkGraceSeconds);
        return result;
    }
    const std::string out = read_text(out_path);
    const auto at = out.find(kWrkMarker);
    if (child.exit_status() != "exit 0" || at == std::string::npos) {
        std::string err = last_line(read_text(out_path + ".err"));
        if (err.empty()) err = last_line(out);
        result.error = fmt::format("wrk failed ({}): {}", child.exit_status(), err);
        return result;
    }
    Json j;
    try {
        j = Json::parse(first_line(out.substr(at + std::strlen(kWrkMarker))));
    } catch (const std::exception& e) {
        result.error = std::string("wrk's summary unreadable: ") + e.what();
        return result;
    }
    result.requests = j["requests"];
    result.bytes = j["bytes"];
    result.seconds = j["duration_us"].get<double>() / 1e6;
    result.p50_ms = j["p50_us"].get<double>() / 1e3;
    result.p99_ms = j["p99_us"].get<double>() / 1e3;
    std::string errors;
    for (const char* kind : {"connect", "read", "write", "status", "timeout"}) {
        const double n = j[kind];
        if (n > 0)
            errors += fmt::format("{}{} {}", errors.empty() ? "" : ", ", n,
                                  kind == std::string("status") ? "non-2xx/3xx" : kind);
    }
    if (!errors.empty()) {
        result.error = "wrk saw errors: " + errors;
    } else if (result.bytes <= 0 || result.seconds <= 0) {
        result.error = "wrk read nothing";
    } else if (result.bytes < result.requests * static_cast<double>(file.size)) {
        result.error =
            fmt::format("responses shorter than the file: {:.0f} bytes for {:.0f} requests of {} B",
                        result.bytes, result.requests, file.size);
    } else if (!file.large && result.requests <= 0) {
        result.error = "wrk completed no request";
    }
    return result;
}

// ---- measurement -----------------------------------------------------------

// What one (file, server) row accumulates over its repetitions.
struct Tally {
    std::vector<double> rps;
    std::vector<double> gbps;
    std::vector<double> p50_ms;
    std::vector<double> p99_ms;
    std::vector<double> cpu_s_per_gb;
    double requests = 0;
    double bytes = 0;
    std::string error;  // the first failure; later repetitions are skipped
    int calls = 0;      // run() calls so far, warm-up included
};

Json make_row(const ServedFile& file, const Server& server, const Tally& t, int connections,
              int seconds) {
    Json row;
    row["file"] = file.label;
    row["size_bytes"] = file.size;
    row["server"] = server.name;
    row["connections"] = connections;
    row["wrk_seconds"] = seconds;
    const bool measured = t.error.empty() && server.unavailable.empty() && !t.rps.empty();
    auto median = [&](const std::vector<double>& v) {
        return measured ? Json(summarize(v).median) : Json(nullptr);
    };
    row["rps"] = median(t.rps);
    row["gbps"] = median(t.gbps);
    row["p50_ms"] = median(t.p50_ms);
    row["p99_ms"] = median(t.p99_ms);
    row["cpu_s_per_gb"] = median(t.cpu_s_per_gb);
    row["ratio_rps"] = nullptr;
    row["ratio_gbps"] = nullptr;
    row["ratio_p99"] = nullptr;
    row["ratio_cpu"] = nullptr;
    row["status"] = !server.unavailable.empty() ? server.unavailable
                    : !t.error.empty()          ? "FAILED: " + t.error
                                                : "ok";
    row["repetitions"] = t.rps.size();
    row["rps_samples"] = t.rps;
    row["gbps_samples"] = t.gbps;
    row["p99_ms_samples"] = t.p99_ms;
    row["cpu_s_per_gb_samples"] = t.cpu_s_per_gb;
    row["requests"] = t.requests;
    row["bytes"] = t.bytes;
    return row;
}

// Both servers on one file, interleaved; one row per server.
std::vector<Json> measure_file(Context& ctx, const ServedFile& file, std::vector<Server*> servers,
                               const std::string& wrk, const std::string& script, int rounds,
                               int warmup) {
    const bool quick = ctx.options.quick;
    const int connections = file.large ? kLargeConnections : kSmallConnections;
    const int seconds = file.large ? (quick ? kQuickLargeSeconds : kFullLargeSeconds)
                                   : (quick ? kQuickSmallSeconds : kFullSmallSeconds);
    std::vector<Tally> tallies(servers.size());
    std::vector<Trial> trials;
    for (std::size_t i = 0; i < servers.size(); ++i) {
        if (!servers[i]->unavailable.empty()) continue;
        trials.push_back({servers[i]->name,
                          [&ctx, &file, &wrk, &script, &server = *servers[i], &t = tallies[i],
                           warmup, connections, seconds]() -> double {
                              const bool measured = t.calls++ >= warmup;
                              if (!t.error.empty() || !server.unavailable.empty()) return 0;
                              if (!server.process->running()) {
                                  t.error = server.ended();
                                  return 0;
                              }
                              const double cpu_before = server.cpu_seconds();
                              const WrkRun w =
                                  run_wrk(wrk, script, ctx.scratch.file("serve-wrk.out"),
                                          server.port, file, connections, seconds);
                              const double cpu = server.cpu_seconds() - cpu_before;
                              if (!server.process->running()) {
                                  t.error = server.ended();
                                  return 0;
                              }
                              if (!w.error.empty()) {
                                  t.error = w.error;
                                  return 0;
                              }
                              if (measured) {
                                  const double gb = w.bytes / 1e9;
                                  t.rps.push_back(w.requests / w.seconds);
                                  t.gbps.push_back(gb / w.seconds);
                                  t.p50_ms.push_back(w.p50_ms);
                                  t.p99_ms.push_back(w.p99_ms);
                                  t.cpu_s_per_gb.push_back(cpu / gb);
                                  t.requests += w.requests;
                                  t.bytes += w.bytes;
                              }
                              return w.seconds;
                          },
                          {}});
    }
    ctx.progress(fmt::format("{}: wrk -c{} -d{}s, {} round(s) of {}", file.label, connections,
                             seconds, warmup + rounds,
                             trials.size() == 2 ? "nginx and pagewire" : "one server"));
    run_interleaved(trials, rounds, warmup);

    std::vector<Json> rows;
    for (std::size_t i = 0; i < servers.size(); ++i) {
        rows.push_back(make_row(file, *servers[i], tallies[i], connections, seconds));
    }
    // pagewire / nginx on the pagewire row.
    const Json& base = rows.front();
    Json& pw = rows.back();
    auto ratio = [&](const char* key) {
        if (base[key].is_null() || pw[key].is_null() || base[key].get<double>() <= 0)
            return Json(nullptr);
        return Json(pw[key].get<double>() / base[key].get<double>());
    };
    pw["ratio_rps"] = ratio("rps");
    pw["ratio_gbps"] = ratio("gbps");
    pw["ratio_p99"] = ratio("p99_ms");
    pw["ratio_cpu"] = ratio("cpu_s_per_gb");
    // The same ratios taken round by round (nginx and pagewire ran back to
    // back in each round), then the median: a slow phase of a noisy machine
    // then hits both sides of a ratio instead of one server's median.
    const Tally& n = tallies.front();
    const Tally& p = tallies.back();
    auto paired = [&](const std::vector<double>& a, const std::vector<double>& b) {
        std::vector<double> ratios;
        if (!pw["ratio_rps"].is_null() && a.size() == b.size()) {
            for (std::size_t r = 0; r < a.size(); ++r) {
                if (b[r] > 0) ratios.push_back(a[r] / b[r]);
            }
        }
        return ratios.empty() ? Json(nullptr) : Json(summarize(ratios).median);
    };
    pw["paired_ratio_rps"] = paired(p.rps, n.rps);
    pw["paired_ratio_gbps"] = paired(p.gbps, n.gbps);
    pw["paired_ratio_cpu"] = paired(p.cpu_s_per_gb, n.cpu_s_per_gb);
    return rows;
}

// requests/s, GB/s and CPU s/GB by file and server as clustered bars, drawn
// by gnuplot next to the JSON document. Returns the chart's path or why not.
std::string draw_serve_chart(const std::vector<Json>& rows, ScratchDir& scratch) {
    // One line per file: "label" nginx_rps pagewire_rps nginx_gbps pagewire_gbps nginx_cpu
    // pagewire_cpu
    std::vector<std::string> order;
    std::map<std::string, std::map<std::string, const Json*>> by_file;
    for (const Json& r : rows) {
        const std::string label = format_bytes(r["size_bytes"].get<std::uint64_t>());
        if (by_file.find(label) == by_file.end()) order.push_back(label);
        by_file[label][r["server"].get<std::string>()] = &r;
    }
    auto value = [](const Json* r, const char* key) {
        return r == nullptr || (*r)[key].is_null() ? std::string("?")
                                                   : fmt::format("{}", (*r)[key].get<double>());
    };
    std::string data;
    for (const std::string& label : order) {
        const Json* n = by_file[label][kNginxName];
        const Json* p = by_file[label][kPagewireName];
        data += fmt::format("\"{}\" {} {} {} {} {} {}\n", label, value(n, "rps"), value(p, "rps"),
                            value(n, "gbps"), value(p, "gbps"), value(n, "cpu_s_per_gb"),
                            value(p, "cpu_s_per_gb"));
    }
    return draw_chart(scratch, "serve", "1500,500", data, [](const std::string& dat) {
        std::string script =
            "set datafile missing '?'\nset style data histogram\nset style histogram "
            "cluster gap 1\n"
            "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset grid ytics\nset "
            "yrange [0:*]\n"
            "set key left top\n"
            "set multiplot layout 1,3 title 'pagewire bench serve: nginx vs pagewire serve "
            "(wrk, 127.0.0.1)'\n";
        const char* titles[3] = {"requests/s", "GB/s", "server CPU s/GB (lower is better)"};
        for (int m = 0; m < 3; ++m) {
            // CPU/GB spans 1 KiB responses' tens of s/GB to the large file's tenths: log scale.
            if (m == 2) script += "set logscale y\nset yrange [*:*]\n";
            script += fmt::format(
                "set title '{}'\nplot '{}' using {}:xtic(1) title 'nginx', '' using {} "
                "title 'pagewire'\n",
                titles[m], dat, 2 + 2 * m, 3 + 2 * m);
        }
        return script + "unset multiplot\n";
    });
}

const Json* find_row(const std::vector<Json>& rows, const std::string& file, const char* server) {
    for (const Json& r : rows) {
        if (r["file"] == file && r["server"] == server) return &r;
    }
    return nullptr;
}

// "1g", "256m": the threshold in the syntax both nginx and pagewire take.
std::string size_option(std::uint64_t bytes) {
    if (bytes % kGiB == 0) return fmt::format("{}g", bytes / kGiB);
    if (bytes % kMiB == 0) return fmt::format("{}m", bytes / kMiB);
    return fmt::format("{}k", bytes / kKiB);
}

SectionResult run_serve(Context& ctx) {
    const bool quick = ctx.options.quick;
    const int rounds = ctx.options.repetitions > 0 ? ctx.options.repetitions
                                                   : (quick ? kQuickRounds : kFullRounds);
    const int warmup = quick ? kQuickWarmupRounds : kFullWarmupRounds;
    const int workers = static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
    const std::uint64_t large = quick ? kQuickLargeBytes : kFullLargeBytes;
    const std::string threshold = size_option(large);
    ::signal(SIGPIPE, SIG_IGN);

    SectionResult result;
    result.title = fmt::format(
        "serve: nginx vs pagewire serve, {} workers each, driven by wrk on 127.0.0.1 (median of {} "
        "interleaved "
        "repetitions; x nginx = pagewire / nginx)",
        workers, rounds);
    result.columns = {
        {"file", "file", -1, ""},
        {"server", "server", -1, ""},
        {"rps", "req/s", 0, ""},
        {"gbps", "GB/s", 3, ""},
        {"p99_ms", "p99 ms", 2, ""},
        {"cpu_s_per_gb", "CPU s/GB", 3, ""},
        {"ratio_rps", "req/s x nginx", 2, "x"},
        {"ratio_gbps", "GB/s x nginx", 2, "x"},
        {"ratio_cpu", "CPU x nginx", 2, "x"},
        {"status", "status", -1, ""},
    };

    std::vector<ServedFile> files = {
        {"1 KiB", "serve-1k.bin", 1 * kKiB, false},
        {"64 KiB", "serve-64k.bin", 64 * kKiB, false},
        {format_bytes(large) + (quick ? " (--quick; 1 GiB in the full run)" : ""),
         "serve-" + threshold + ".bin", large, true},
    };

    const std::string root = ctx.scratch.path();
    const std::string wrk = find_program("wrk");
    const std::string nginx = find_program("nginx");
    std::string missing;
    if (wrk.empty())
        missing = "wrk not found: install the Debian package wrk (apt-get install wrk)";

    // The nginx prefix directory (logs, pid, temp paths) is not a file the
    // scratch directory knows; removed here, also when a measurement throws.
    struct RemoveDir {
        std::string path;
        ~RemoveDir() {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    } remove_prefix{root + "/serve-nginx"};

    std::vector<std::string> failures;  // become result.failure: the command then fails
    if (missing.empty()) {
        for (const ServedFile& f : files) {
            ctx.progress(fmt::format("writing {} ({})", f.name, format_bytes(f.size)));
            create_file(ctx.scratch.file(f.name), f.size);
        }
        const std::string script = ctx.scratch.file("serve-wrk.lua");
        write_text(script, kWrkScript);
        ctx.scratch.file("serve-wrk.out");
        ctx.scratch.file("serve-wrk.out.err");

        Server nginx_server;
        nginx_server.name = kNginxName;
        if (nginx.empty()) {
            nginx_server.unavailable =
                "nginx not found: install the Debian package nginx-light (or nginx)";
        } else {
            nginx_server = start_nginx(ctx, nginx, root, workers, threshold, files.front().name);
        }
        Server pagewire_server = start_pagewire(ctx, root, workers, threshold, files.front().name);
        if (!nginx_server.unavailable.empty()) ctx.progress(nginx_server.unavailable);
        if (!pagewire_server.unavailable.empty()) ctx.progress(pagewire_server.unavailable);

        for (const ServedFile& f : files) {
            for (Json& row : measure_file(ctx, f, {&nginx_server, &pagewire_server}, wrk, script,
                                          rounds, warmup)) {
                result.rows.push_back(std::move(row));
            }
        }
        // Stopped here rather than at scope end so that a server that
        // misbehaves on SIGTERM (the contract: finish, exit 0) is reported.
        for (Server* server : {&nginx_server, &pagewire_server}) {
            if (!server->process || !server->unavailable.empty()) continue;
            server->process->stop(SIGTERM);
            if (server->process->exit_status() != "exit 0") {
                failures.push_back(server->name +
                                   " did not exit cleanly on SIGTERM: " + server->ended());
            }
            server->process.reset();
        }
        // A server that would not start is a failure, except when the
        // package is simply not installed (the rows say which one).
        if (!pagewire_server.unavailable.empty()) failures.push_back(pagewire_server.unavailable);
        if (!nginx.empty() && !nginx_server.unavailable.empty())
            failures.push_back(nginx_server.unavailable);
        for (const Json& row : result.rows) {
            const std::string status = row["status"];
            if (status.rfind("FAILED", 0) == 0) {
                failures.push_back(fmt::format("{} {}: {}", row["server"].get<std::string>(),
                                               row["file"].get<std::string>(), status));
            }
        }
        for (const ServedFile& f : files) {
            std::error_code ec;
            std::filesystem::remove(root + "/" + f.name, ec);
        }
    } else {
        for (const ServedFile& f : files) {
            for (const char* name : {kNginxName, kPagewireName}) {
                Server absent;
                absent.name = name;
                absent.unavailable = missing;
                result.rows.push_back(make_row(f, absent, Tally{}, 0, 0));
            }
        }
    }

    // ---- targets ---------------------------------------------------------------
    Json verdicts = Json::array();
    for (const ServedFile& f : files) {
        const Json* n = find_row(result.rows, f.label, kNginxName);
        const Json* p = find_row(result.rows, f.label, kPagewireName);
        if (n == nullptr || p == nullptr) continue;
        const char* key = f.large ? "gbps" : "rps";
        const char* ratio_key = f.large ? "ratio_gbps" : "ratio_rps";
        const double target = f.large ? kTargetLargeGbpsRatio : kTargetSmallRpsRatio;
        Json v;
        v["file"] = f.label;
        v["metric"] = key;
        if ((*p)[ratio_key].is_null()) {
            v["met"] = nullptr;
            v["cpu_met"] = nullptr;
            result.notes.push_back(fmt::format("{}: no comparison ({} / {})", f.label,
                                               (*n)["status"].get<std::string>(),
                                               (*p)["status"].get<std::string>()));
            verdicts.push_back(v);
            continue;
        }
        const double ratio = (*p)[ratio_key];
        const bool met = ratio >= target;
        const Json& paired = (*p)[f.large ? "paired_ratio_gbps" : "paired_ratio_rps"];
        v["ratio"] = ratio;
        v["paired_ratio"] = paired;
        v["met"] = met;
        result.notes.push_back(fmt::format(
            "{}: pagewire {:.{}f} {} = {:.2f}x nginx's {:.{}f} (target >= {:.1f}x: {}; round by "
            "round: median {})",
            f.label, (*p)[key].get<double>(), f.large ? 3 : 0, f.large ? "GB/s" : "req/s", ratio,
            (*n)[key].get<double>(), f.large ? 3 : 0, target, met ? "met" : "NOT met",
            paired.is_null() ? std::string("-") : fmt::format("{:.2f}x", paired.get<double>())));
        if (!(*p)["ratio_cpu"].is_null()) {
            const double cpu_ratio = (*p)["ratio_cpu"];
            const bool cpu_met = cpu_ratio <= kTargetCpuRatio;
            v["cpu_ratio"] = cpu_ratio;
            v["cpu_met"] = cpu_met;
            result.notes.push_back(fmt::format(
                "{}: server CPU {:.3f} s/GB = {:.2f}x nginx's {:.3f} (target <= {:.1f}x: {})",
                f.label, (*p)["cpu_s_per_gb"].get<double>(), cpu_ratio,
                (*n)["cpu_s_per_gb"].get<double>(), kTargetCpuRatio, cpu_met ? "met" : "NOT met"));
        }
        verdicts.push_back(v);
    }

    result.notes.push_back(draw_serve_chart(result.rows, ctx.scratch));
    result.notes.push_back(
        fmt::format("wrk {} threads: -c{} keep-alive for the small files, -c{} for the large one; "
                    "GB/s and CPU/GB count the "
                    "bytes wrk read (headers included); p99 is the request latency (for the large "
                    "file: a whole download)",
                    kWrkThreads, kSmallConnections, kLargeConnections));
    result.notes.push_back(
        fmt::format("same run, same {} workers, no pinning for either server or wrk; directio / "
                    "--direct-threshold {} for both, "
                    "so the large file goes through O_DIRECT in both; nginx: sendfile, tcp_nopush, "
                    "aio threads, "
                    "output_buffers {} (pagewire's direct chunk), open_file_cache, reuseport{}",
                    workers, threshold, kNginxOutputBuffers,
                    ::geteuid() == 0 ? ", `user root;` (the scratch dir is 0700)" : ""));
    result.notes.push_back(
        "server CPU = utime + stime of the server's processes (/proc/PID/stat, 10 ms ticks; nginx: "
        "master + "
        "workers); this kernel has no IRQ time accounting, so loopback receive work (softirq) can "
        "be charged to "
        "whichever process runs, the servers and wrk alike: the same for both servers, not an "
        "exact split");
    Json summary;
    summary["workers"] = workers;
    summary["direct_threshold"] = threshold;
    summary["repetitions"] = rounds;
    summary["warmup_rounds"] = warmup;
    summary["targets"] = {{"small_rps_ratio_min", kTargetSmallRpsRatio},
                          {"large_gbps_ratio_min", kTargetLargeGbpsRatio},
                          {"cpu_ratio_max", kTargetCpuRatio}};
    bool all_met = !verdicts.empty();
    for (const Json& v : verdicts) all_met = all_met && v["met"] == true && v["cpu_met"] == true;
    summary["verdicts"] = verdicts;
    summary["all_targets_met"] = all_met;
    result.summary = std::move(summary);
    for (const std::string& f : failures)
        result.failure += (result.failure.empty() ? "serve: " : "; ") + f;
    return result;
}

}  // namespace

Section serve_section() {
    return {"serve",
            "pagewire serve vs nginx (sendfile, aio threads, directio) under wrk: 1 KiB and 64 KiB "
            "files with 100 "
            "keep-alive connections and a 1 GiB file; req/s, GB/s, p99, server CPU/GB",
            run_serve};
}

}  // namespace pagewire::bench
