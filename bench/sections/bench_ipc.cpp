// Section "ipc" of pagewire bench: every way of moving messages between two
// processes, measured alike in one run (bench_ipc.hpp's Methods: the
// kernel's, pagewire's channels, third-party peers), at 64 B, 1 KiB, 64 KiB
// and 1 MiB.
//
// For each method and size: prepare() in this process, then two forked
// processes, side 0 and side 1, each pinned to its own CPU when there are two,
// connect() and run two phases on the same link:
//   - latency: ping-pong. Every message carries {sequence, send time, size,
//     checksum} (bench_ipc_message.hpp); the send time is taken after the
//     payload is written, right before the send/publish call. The receiver
//     takes its time FIRST, when it has the whole message (a view for
//     zero-copy methods, its buffer filled for copying ones), and verifies
//     sequence and checksum after, so verification is outside the interval.
//     One-way latency = receive time - send time, both directions' samples
//     together, warm-up round trips excluded: p50, p99, p99.9, max.
//   - throughput: side 0 streams bursts, each for a fixed time as fast as
//     the method accepts, its last message flagged; side 1 verifies every
//     message and times each burst from its first to its last message:
//     messages/s and GB/s of the median burst.
// Lost, duplicated and corrupt messages are counted by both sides; any is
// printed loudly and makes the command fail. A pair that fails or hangs is
// killed at a deadline and its row says so; an unavailable method gets a row
// saying why. The sides report through a shared anonymous mapping.
#include "bench_ipc.hpp"

#include <fmt/core.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <pagewire/error.hpp>
#include <pagewire/unique_fd.hpp>
#include <regex>

#include "bench_common.hpp"
#include "bench_ipc_message.hpp"

namespace pagewire::bench {
namespace {

using ipc::Endpoint;
using ipc::LinkLimits;
using ipc::MessageHeader;
using ipc::Method;
using ipc::SequenceChecker;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
const std::vector<std::size_t> kSizes = {64, 1 * kKiB, 64 * kKiB, 1 * kMiB};
// A link holds this many bytes of messages in flight (at least kMinDepth and
// at most kMaxDepth messages): deep enough that a streaming sender runs ahead.
constexpr std::size_t kLinkBytes = 8 * kMiB;
constexpr std::size_t kMinDepth = 8;
constexpr std::size_t kMaxDepth = 1024;

// Round trips, warm-up excluded, per method and size; 1 MiB rows do fewer.
constexpr std::size_t kFullRoundTrips = 20000;
constexpr std::size_t kFullRoundTripsLarge = 2000;
constexpr std::size_t kQuickRoundTrips = 2000;
constexpr std::size_t kQuickRoundTripsLarge = 200;
constexpr std::size_t kWarmupDivisor = 10;  // warm-up = round trips / 10
// The stream is kStreamBursts bursts, each timed first to last message on its
// own; the row shows the median burst, so one preemption by another process
// on this shared machine does not decide the figure.
constexpr int kStreamBursts = 5;
constexpr double kFullStreamSeconds = 1.0;        // all bursts together
constexpr double kQuickStreamSeconds = 0.15;      // all bursts together
constexpr std::uint64_t kMinStreamMessages = 64;  // per burst
// The stream sender reads the clock once per this many messages.
constexpr std::uint64_t kStreamClockEvery = 64;
// A pair still running after this long is killed and its row fails.
constexpr int kFullRowTimeoutSeconds = 120;
constexpr int kQuickRowTimeoutSeconds = 30;

// Targets of the issue, checked on the same run.
constexpr double kTargetBusyPollVsIceoryx = 0.25;      // busy-poll p50 at 64 B <= 0.25x iceoryx's
constexpr double kTargetLoanFlatness = 1.5;            // loan p50 at 1 MiB <= 1.5x at 64 B
constexpr double kTargetSpscMessagesPerSecond = 10e6;  // at 64 B
constexpr double kTargetSleepVsFutex = 1.2;            // sleeping p50 <= 1.2x raw futex

constexpr const char* kBusyPollLoan = "pagewire busy-poll loan";
constexpr const char* kBusyPollCopy = "pagewire busy-poll copy";
constexpr const char* kSleep = "pagewire sleep";
constexpr const char* kRawFutex = "raw futex";
constexpr const char* kIceoryx = "iceoryx";

struct Plan {
    std::size_t warmup = 0;
    std::size_t round_trips = 0;
    double stream_seconds = 0;
};

// What one side reports, in the shared mapping. Written by that side only;
// the flags are how the sides meet (ready) and part (done).
struct SideReport {
    std::atomic<std::uint32_t> ready{0};  // connected
    std::atomic<std::uint32_t> done{0};   // finished both phases
    std::uint64_t received = 0;           // messages checked
    std::uint64_t lost = 0;
    std::uint64_t duplicated = 0;
    std::uint64_t corrupt = 0;
    std::uint64_t samples = 0;          // one-way latencies in this side's sample array
    std::uint64_t stream_messages = 0;  // side 0: sent; side 1: received (all bursts)
    std::uint64_t burst_messages[kStreamBursts] = {};  // side 1: per burst, received
    double burst_seconds[kStreamBursts] = {};          // side 1: per burst, first to last message
    char error[512] = {};                              // why the side failed (NUL-terminated)
};

// The mapping both sides write: two reports, then per side `capacity`
// latencies in nanoseconds (side k's array holds what side k received).
class SharedReport {
  public:
    explicit SharedReport(std::size_t capacity) : capacity_(capacity) {
        bytes_ = sizeof(SideReport) * 2 + 2 * capacity * sizeof(std::int64_t);
        void* p =
            ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw_error("mmap", fmt::format("ipc report ({} bytes)", bytes_));
        base_ = static_cast<std::byte*>(p);
        new (base_) SideReport();
        new (base_ + sizeof(SideReport)) SideReport();
    }
    ~SharedReport() { ::munmap(base_, bytes_); }
    SharedReport(const SharedReport&) = delete;
    SharedReport& operator=(const SharedReport&) = delete;

    SideReport& side(int k) noexcept {
        return *std::launder(reinterpret_cast<SideReport*>(base_ + k * sizeof(SideReport)));
    }
    std::int64_t* samples(int k) noexcept {
        return reinterpret_cast<std::int64_t*>(base_ + 2 * sizeof(SideReport)) + k * capacity_;
    }
    std::size_t capacity() const noexcept { return capacity_; }

  private:
    std::byte* base_ = nullptr;
    std::size_t bytes_ = 0;
    std::size_t capacity_ = 0;  // latencies per side
};

// Sleeps in small steps until `flag` is set or `deadline_ns` passes.
bool wait_flag(const std::atomic<std::uint32_t>& flag, std::int64_t deadline_ns) {
    while (flag.load(std::memory_order_acquire) == 0) {
        if (ipc::monotonic_now_ns() >= deadline_ns) return false;
        ::usleep(100);
    }
    return true;
}

// The state the per-message callbacks reach through one pointer (so each
// std::function holds one pointer, and calling it allocates nothing).
struct SideState {
    std::uint64_t out_sequence = 0;
    std::uint32_t out_flags = 0;
    bool stamp = true;
    std::int64_t latency_ns = 0;
    SequenceChecker checker;
    // stream receiver, per burst
    std::uint64_t stream_count = 0;
    std::int64_t stream_first_ns = 0;
    std::int64_t stream_last_ns = 0;
    bool stream_ended = false;  // the burst's last message arrived
};

void pin_to(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0)
        throw_error("sched_setaffinity", fmt::format("cpu {}", cpu));
}

// One side's work after fork, pinned to `cpu` when given. Returns the exit
// code; a failure is written to the side's report.
int run_side(int side, Method& method, const Plan& plan, std::size_t size, SharedReport& shared,
             std::int64_t deadline_ns, std::optional<int> cpu) {
    SideReport& me = shared.side(side);
    SideReport& peer = shared.side(1 - side);
    try {
        if (cpu) pin_to(*cpu);
        std::unique_ptr<Endpoint> endpoint = method.connect(side);
        me.ready.store(1, std::memory_order_release);
        if (!wait_flag(peer.ready, deadline_ns))
            throw_error("connect", method.name(), ETIMEDOUT, "the other side never connected");

        SideState st;
        const std::function<void(std::span<std::byte>)> fill = [s = &st](std::span<std::byte> out) {
            ipc::write_message(out, s->out_sequence, s->out_flags, s->stamp);
        };
        const std::function<void(std::span<const std::byte>)> on_ping =
            [s = &st](std::span<const std::byte> m) {
                const std::int64_t now =
                    ipc::monotonic_now_ns();  // first: verification is not timed
                s->latency_ns = now - ipc::read_header(m).sent_ns;
                (void)s->checker.check(m);
            };

        // ---- latency: ping-pong
        std::int64_t* samples = shared.samples(side);
        std::uint64_t kept = 0;
        const std::size_t total = plan.warmup + plan.round_trips;
        for (std::size_t r = 0; r < total; ++r) {
            if (side == 0) {
                endpoint->send(size, fill);
                ++st.out_sequence;
                endpoint->receive(on_ping);
            } else {
                endpoint->receive(on_ping);
                endpoint->send(size, fill);
                ++st.out_sequence;
            }
            if (r >= plan.warmup && kept < shared.capacity()) samples[kept++] = st.latency_ns;
        }
        me.samples = kept;

        // ---- throughput: side 0 streams, side 1 verifies and times
        st.stamp = false;
        if (side == 0) {
            const auto burst_ns =
                static_cast<std::int64_t>(plan.stream_seconds / kStreamBursts * 1e9);
            for (int burst = 0; burst < kStreamBursts; ++burst) {
                const std::int64_t end = ipc::monotonic_now_ns() + burst_ns;
                for (std::uint64_t k = 1;; ++k) {
                    const bool last = k >= kMinStreamMessages && k % kStreamClockEvery == 0 &&
                                      ipc::monotonic_now_ns() >= end;
                    st.out_flags = last ? std::uint32_t{ipc::kLastMessage} : 0U;
                    endpoint->send(size, fill);
                    ++st.out_sequence;
                    if (last) {
                        me.stream_messages += k;
                        break;
                    }
                }
            }
            // The receiver may still be draining: the link must outlive that.
            if (!wait_flag(peer.done, deadline_ns))
                throw_error("stream", method.name(), ETIMEDOUT,
                            "the receiver did not report the end of the stream");
        } else {
            const std::function<void(std::span<const std::byte>)> on_stream =
                [s = &st](std::span<const std::byte> m) {
                    std::uint32_t flags = 0;
                    if (m.size() >= sizeof(MessageHeader))
                        std::memcpy(&flags, m.data() + offsetof(MessageHeader, flags),
                                    sizeof flags);
                    if (s->stream_count++ == 0) s->stream_first_ns = ipc::monotonic_now_ns();
                    if ((flags & ipc::kLastMessage) != 0) {
                        s->stream_last_ns = ipc::monotonic_now_ns();
                        s->stream_ended = true;
                    }
                    (void)s->checker.check(m);
                };
            for (int burst = 0; burst < kStreamBursts; ++burst) {
                st.stream_count = 0;
                st.stream_ended = false;
                while (!st.stream_ended) endpoint->receive(on_stream);
                me.stream_messages += st.stream_count;
                me.burst_messages[burst] = st.stream_count;
                me.burst_seconds[burst] =
                    static_cast<double>(st.stream_last_ns - st.stream_first_ns) / 1e9;
            }
        }
        me.received = st.checker.received();
        me.lost = st.checker.lost();
        me.duplicated = st.checker.duplicated();
        me.corrupt = st.checker.corrupt();
        me.done.store(1, std::memory_order_release);
        endpoint.reset();
        return 0;
    } catch (const std::exception& e) {
        std::snprintf(me.error, sizeof me.error, "side %d: %s", side, e.what());
        return 1;
    }
}

// The CPUs the two sides are pinned to, or none when fewer than two are allowed.
std::optional<std::pair<int, int>> pick_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return std::nullopt;
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c) {
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
    if (cpus.size() < 2) return std::nullopt;
    return std::pair{cpus[0], cpus[1]};
}

pid_t fork_side(int side, Method& method, const Plan& plan, std::size_t size, SharedReport& shared,
                std::int64_t deadline_ns, std::optional<int> cpu) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw_error("fork", fmt::format("{} side {}", method.name(), side));
    if (pid != 0) return pid;
    // The child: dies with the bench, leaves the bench's scratch files to it,
    // sees a closed link as an error instead of a signal.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
    ::signal(SIGPIPE, SIG_IGN);
    ::_exit(run_side(side, method, plan, size, shared, deadline_ns, cpu));
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return fmt::format("exit {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return fmt::format("killed by signal {} ({})", WTERMSIG(status),
                           strsignal(WTERMSIG(status)));
    return fmt::format("status {}", status);
}

// Waits for both sides; when one fails the other is killed (it may be
// blocked on the dead one), and both are killed at the deadline. Returns
// nothing on success, else why the pair failed.
std::optional<std::string> wait_pair(const pid_t (&pids)[2], std::int64_t deadline_ns,
                                     SharedReport& shared) {
    int status[2] = {0, 0};
    bool alive[2] = {true, true};
    UniqueFd pidfd[2];
    for (int k = 0; k < 2; ++k)
        pidfd[k].reset(static_cast<int>(::syscall(SYS_pidfd_open, pids[k], 0)));
    std::optional<std::string> failure;
    bool killed = false;
    while (alive[0] || alive[1]) {
        for (int k = 0; k < 2; ++k) {
            if (!alive[k]) continue;
            const pid_t r = ::waitpid(pids[k], &status[k], WNOHANG);
            if (r != pids[k]) continue;
            alive[k] = false;
            const bool ok = WIFEXITED(status[k]) && WEXITSTATUS(status[k]) == 0;
            if (!ok && !failure) {
                const char* error = shared.side(k).error;
                failure = error[0] != 0 ? std::string(error)
                                        : fmt::format("side {}: {}", k, describe_status(status[k]));
            }
            if (!ok && alive[1 - k] && !killed) {
                ::kill(pids[1 - k], SIGKILL);
                killed = true;
            }
        }
        if (!alive[0] && !alive[1]) break;
        const std::int64_t left_ns = deadline_ns - ipc::monotonic_now_ns();
        if (left_ns <= 0) {
            for (int k = 0; k < 2; ++k) {
                if (alive[k]) ::kill(pids[k], SIGKILL);
            }
            if (!failure) failure = "timed out: killed both sides";
            deadline_ns = INT64_MAX;  // now only reap them
            continue;
        }
        pollfd fds[2];
        nfds_t n = 0;
        for (int k = 0; k < 2; ++k) {
            if (alive[k] && pidfd[k]) fds[n++] = {pidfd[k].get(), POLLIN, 0};
        }
        // Without pidfds (old kernel), look again every 10 ms.
        const int timeout_ms =
            n == 0 ? 10 : static_cast<int>(std::min<std::int64_t>(left_ns / 1'000'000 + 1, 1000));
        ::poll(fds, n, timeout_ms);
    }
    return failure;
}

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<std::int64_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    const double rank = std::ceil(p * static_cast<double>(sorted.size()));
    const std::size_t index =
        std::min(sorted.size() - 1, static_cast<std::size_t>(std::max(1.0, rank)) - 1);
    return static_cast<double>(sorted[index]);
}

Json base_row(const std::string& method, std::size_t size, const LinkLimits& limits) {
    Json row;
    row["method"] = method;
    row["size"] = format_bytes(size);
    row["size_bytes"] = size;
    row["depth"] = limits.depth;
    return row;
}

// One method at one size: a full row, or a row saying why there is none.
Json measure(Context& ctx, Method& method, std::size_t size, const Plan& plan,
             const std::optional<std::pair<int, int>>& cpus) {
    const LinkLimits limits{size, std::clamp(kLinkBytes / size, kMinDepth, kMaxDepth)};
    Json row = base_row(method.name(), size, limits);
    std::optional<std::string> why;
    try {
        why = method.unavailable(limits);
    } catch (const std::exception& e) {
        row["status"] = "failed";
        row["note"] = fmt::format("FAILED: checking availability: {}", e.what());
        return row;
    }
    if (why) {
        row["status"] = "unavailable";
        row["note"] = "unavailable: " + *why;
        return row;
    }
    ctx.progress(fmt::format("{} {}", method.name(), format_bytes(size)));
    SharedReport shared(plan.round_trips);
    const int timeout_s = ctx.options.quick ? kQuickRowTimeoutSeconds : kFullRowTimeoutSeconds;
    const std::int64_t deadline = ipc::monotonic_now_ns() + std::int64_t{timeout_s} * 1'000'000'000;
    std::optional<std::string> failure;
    try {
        method.prepare(limits);
        pid_t pids[2] = {-1, -1};
        try {
            pids[1] = fork_side(1, method, plan, size, shared, deadline,
                                cpus ? std::optional<int>(cpus->second) : std::nullopt);
            pids[0] = fork_side(0, method, plan, size, shared, deadline,
                                cpus ? std::optional<int>(cpus->first) : std::nullopt);
        } catch (const Error&) {
            if (pids[1] > 0) {
                ::kill(pids[1], SIGKILL);
                ::waitpid(pids[1], nullptr, 0);
            }
            throw;
        }
        failure = wait_pair(pids, deadline, shared);
    } catch (const std::exception& e) {
        failure = e.what();
    }
    method.cleanup();

    const SideReport& a = shared.side(0);
    const SideReport& b = shared.side(1);
    row["lost"] = a.lost + b.lost;
    row["duplicated"] = a.duplicated + b.duplicated;
    row["corrupt"] = a.corrupt + b.corrupt;
    row["received"] = a.received + b.received;
    if (failure) {
        row["status"] = "failed";
        row["note"] = "FAILED: " + *failure;
        return row;
    }
    std::vector<std::int64_t> samples;
    samples.reserve(a.samples + b.samples);
    for (int k = 0; k < 2; ++k) {
        const std::int64_t* s = shared.samples(k);
        std::vector<std::int64_t> one_way(s, s + shared.side(k).samples);
        std::sort(one_way.begin(), one_way.end());
        // Side k's samples are of the messages it received.
        row[k == 1 ? "p50_us_side0_to_1" : "p50_us_side1_to_0"] = percentile(one_way, 0.50) / 1e3;
        samples.insert(samples.end(), one_way.begin(), one_way.end());
    }
    std::sort(samples.begin(), samples.end());
    row["status"] = "ok";
    row["samples"] = samples.size();
    row["p50_us"] = percentile(samples, 0.50) / 1e3;
    row["p99_us"] = percentile(samples, 0.99) / 1e3;
    row["p999_us"] = percentile(samples, 0.999) / 1e3;
    row["max_us"] = samples.empty() ? 0.0 : static_cast<double>(samples.back()) / 1e3;
    row["stream_sent"] = a.stream_messages;
    row["stream_received"] = b.stream_messages;
    std::vector<double> rates;  // per burst, messages/s from its first to its last message
    for (int k = 0; k < kStreamBursts; ++k) {
        if (b.burst_seconds[k] > 0 && b.burst_messages[k] > 1)
            rates.push_back(static_cast<double>(b.burst_messages[k] - 1) / b.burst_seconds[k]);
    }
    const Summary burst = summarize(rates);
    const double rate = burst.median;
    row["stream_bursts"] = rates.size();
    row["msgs_per_s"] = rate;
    row["msgs_per_s_min"] = burst.min;
    row["msgs_per_s_max"] = burst.max;
    row["mmsgs_per_s"] = rate / 1e6;
    row["gbps"] = rate * static_cast<double>(size) / 1e9;
    if (a.stream_messages != b.stream_messages) {
        row["status"] = "failed";
        row["note"] = fmt::format("FAILED: {} messages streamed, {} received", a.stream_messages,
                                  b.stream_messages);
    }
    return row;
}

std::uint64_t error_count(const Json& row) {
    return row.value("lost", std::uint64_t{0}) + row.value("duplicated", std::uint64_t{0}) +
           row.value("corrupt", std::uint64_t{0});
}

const Json* find_row(const std::vector<Json>& rows, std::string_view method, std::size_t size) {
    for (const Json& r : rows) {
        if (r["method"] == method && r["size_bytes"] == size && r["status"] == "ok") return &r;
    }
    return nullptr;
}

// p50 latency by method and size, drawn by gnuplot next to the JSON document.
// Returns the chart's path or why there is none.
std::string draw_ipc_chart(const std::vector<Json>& rows, Context& ctx) {
    std::vector<std::string> order;  // methods in table order
    std::map<std::string, std::string> by_method;
    for (const Json& r : rows) {
        if (r["status"] != "ok") continue;
        const std::string m = r["method"];
        if (!by_method.count(m)) order.push_back(m);
        by_method[m] +=
            fmt::format("{} {}\n", r["size_bytes"].get<std::size_t>(), r["p50_us"].get<double>());
    }
    std::string data;
    for (const std::string& m : order) data += fmt::format("\"{}\"\n{}\n\n", m, by_method[m]);
    auto plot = [&](const std::string& dat) {
        std::string plots;
        for (std::size_t i = 0; i < order.size(); ++i) {
            if (!plots.empty()) plots += ", ";
            // gnuplot has 8 line colours: the dash pattern tells the ninth on apart.
            plots +=
                fmt::format("'{}' index {} using 1:2 with linespoints lc {} pt {} dt {} title '{}'",
                            dat, i, i % 8 + 1, i + 1, i / 8 + 1, order[i]);
        }
        std::string script = "set title 'pagewire bench ipc: one-way latency p50 (ping-pong)'\n";
        std::string tics;
        for (std::size_t size : kSizes)
            tics += fmt::format("{}\"{}\" {}", tics.empty() ? "" : ", ", format_bytes(size), size);
        script += fmt::format(
            "set termoption noenhanced\nset logscale x 2\nset logscale y\nset xtics ({})\n", tics);
        script += "set xlabel 'message size'\nset ylabel 'p50 one-way latency, us'\n";
        return script +
               fmt::format("set key outside right top font ',9'\nset grid\nplot {}\n", plots);
    };
    return draw_chart(ctx.scratch, "ipc", "1200,800", data, plot,
                      order.empty() ? "no method ran" : "");
}

// The targets from this run's rows; adds notes, returns the verdicts.
Json check_targets(const std::vector<Json>& rows, std::vector<std::string>& notes) {
    Json verdicts = Json::object();
    auto verdict = [](bool met) { return met ? "met" : "MISSED"; };
    auto missing = [&](const char* target, const std::string& why) {
        verdicts[target] = {{"met", nullptr}, {"why", why}};
        notes.push_back(fmt::format("target {}: not measured ({})", target, why));
    };

    const Json* loan64 = find_row(rows, kBusyPollLoan, 64);
    const Json* ice64 = find_row(rows, kIceoryx, 64);
    if (loan64 && ice64) {
        const double ratio = (*loan64)["p50_us"].get<double>() / (*ice64)["p50_us"].get<double>();
        const bool met = ratio <= kTargetBusyPollVsIceoryx;
        verdicts["busy_poll_vs_iceoryx"] = {
            {"ratio", ratio}, {"max", kTargetBusyPollVsIceoryx}, {"met", met}};
        notes.push_back(fmt::format(
            "target busy-poll p50 @64 B / iceoryx p50 @64 B = {:.3f} / {:.3f} us = {:.3f}x "
            "(<= {:.2f}x): {}",
            (*loan64)["p50_us"].get<double>(), (*ice64)["p50_us"].get<double>(), ratio,
            kTargetBusyPollVsIceoryx, verdict(met)));
    } else {
        missing("busy_poll_vs_iceoryx",
                loan64 ? "no iceoryx row at 64 B" : "no busy-poll loan row at 64 B");
    }

    const Json* loan1m = find_row(rows, kBusyPollLoan, kMiB);
    if (loan64 && loan1m) {
        const double ratio = (*loan1m)["p50_us"].get<double>() / (*loan64)["p50_us"].get<double>();
        const bool met = ratio <= kTargetLoanFlatness;
        verdicts["loan_flatness"] = {{"ratio", ratio}, {"max", kTargetLoanFlatness}, {"met", met}};
        notes.push_back(fmt::format(
            "target loan p50 @1 MiB / @64 B = {:.3f} / {:.3f} us = {:.2f}x (<= {:.1f}x): {}",
            (*loan1m)["p50_us"].get<double>(), (*loan64)["p50_us"].get<double>(), ratio,
            kTargetLoanFlatness, verdict(met)));
    } else {
        missing("loan_flatness", "no busy-poll loan rows at 64 B and 1 MiB");
    }

    if (loan64) {
        const double rate = (*loan64)["msgs_per_s"];
        const Json* copy64 = find_row(rows, kBusyPollCopy, 64);
        const bool met = rate >= kTargetSpscMessagesPerSecond;
        verdicts["spsc_throughput"] = {
            {"msgs_per_s", rate}, {"min", kTargetSpscMessagesPerSecond}, {"met", met}};
        notes.push_back(fmt::format(
            "target SPSC throughput @64 B (busy-poll loan) = {:.2f} M msg/s (>= {:.0f} M){}: {}",
            rate / 1e6, kTargetSpscMessagesPerSecond / 1e6,
            copy64 ? fmt::format("; copy API {:.2f} M msg/s",
                                 (*copy64)["msgs_per_s"].get<double>() / 1e6)
                   : std::string(),
            verdict(met)));
    } else {
        missing("spsc_throughput", "no busy-poll loan row at 64 B");
    }

    const Json* sleep64 = find_row(rows, kSleep, 64);
    const Json* futex64 = find_row(rows, kRawFutex, 64);
    if (sleep64 && futex64) {
        const double ratio =
            (*sleep64)["p50_us"].get<double>() / (*futex64)["p50_us"].get<double>();
        const bool met = ratio <= kTargetSleepVsFutex;
        verdicts["sleep_vs_futex"] = {{"ratio", ratio}, {"max", kTargetSleepVsFutex}, {"met", met}};
        notes.push_back(fmt::format(
            "target sleeping p50 @64 B / raw futex p50 @64 B = {:.3f} / {:.3f} us = {:.2f}x "
            "(<= {:.1f}x): {}",
            (*sleep64)["p50_us"].get<double>(), (*futex64)["p50_us"].get<double>(), ratio,
            kTargetSleepVsFutex, verdict(met)));
    } else {
        missing("sleep_vs_futex", "no pagewire sleep or raw futex row at 64 B");
    }
    return verdicts;
}

SectionResult run_ipc(Context& ctx) {
    const bool quick = ctx.options.quick;
    std::optional<std::regex> only;
    if (!ctx.options.only.empty()) {
        try {
            only.emplace(ctx.options.only, std::regex::extended | std::regex::icase);
        } catch (const std::regex_error& e) {
            throw_error("bench ipc --only", ctx.options.only, EINVAL, e.what());
        }
    }
    std::vector<std::unique_ptr<Method>> methods;
    for (auto* group : {&ipc::kernel_methods, &ipc::pagewire_methods, &ipc::peer_methods}) {
        for (std::unique_ptr<Method>& m : (*group)()) {
            if (!only || std::regex_search(m->name(), *only)) methods.push_back(std::move(m));
        }
    }
    if (methods.empty())
        throw_error("bench ipc --only", ctx.options.only, EINVAL, "matches no method");
    const auto cpus = pick_cpus();

    // Size-major, so rows compared by a target (all at 64 B) run close in time.
    std::map<std::pair<std::size_t, std::size_t>, Json> measured;  // (method index, size index)
    for (std::size_t s = 0; s < kSizes.size(); ++s) {
        const std::size_t size = kSizes[s];
        Plan plan;
        plan.round_trips = size >= kMiB ? (quick ? kQuickRoundTripsLarge : kFullRoundTripsLarge)
                                        : (quick ? kQuickRoundTrips : kFullRoundTrips);
        plan.warmup = plan.round_trips / kWarmupDivisor;
        plan.stream_seconds = quick ? kQuickStreamSeconds : kFullStreamSeconds;
        for (std::size_t m = 0; m < methods.size(); ++m) {
            Json row = measure(ctx, *methods[m], size, plan, cpus);
            row["round_trips"] = plan.round_trips;
            row["warmup_round_trips"] = plan.warmup;
            measured[{m, s}] = std::move(row);
        }
    }

    SectionResult result;
    result.title = fmt::format(
        "ipc: one-way latency by ping-pong (us; both directions, {} round trips, {} at 1 MiB) and "
        "streaming "
        "throughput (median of {} bursts, {} s per row), every message's sequence and checksum "
        "verified",
        quick ? kQuickRoundTrips : kFullRoundTrips,
        quick ? kQuickRoundTripsLarge : kFullRoundTripsLarge, kStreamBursts,
        quick ? kQuickStreamSeconds : kFullStreamSeconds);
    result.columns = {
        {"method", "method", -1, ""},       {"size", "size", -1, ""},
        {"p50_us", "p50 us", 3, ""},        {"p99_us", "p99 us", 3, ""},
        {"p999_us", "p99.9 us", 3, ""},     {"max_us", "max us", 1, ""},
        {"mmsgs_per_s", "M msg/s", 3, ""},  {"gbps", "GB/s", 3, ""},
        {"errors", "lost/dup/bad", -1, ""}, {"note", "note", -1, ""},
    };
    std::uint64_t errors = 0;
    std::vector<std::string> failed;
    for (auto& [key, row] : measured) {
        const std::uint64_t e = error_count(row);
        errors += e;
        if (row["status"] == "unavailable") {
            row["errors"] = "-";
        } else {
            row["errors"] =
                e == 0 ? std::string("0")
                       : fmt::format("LOST {} DUP {} CORRUPT {}", row["lost"].get<std::uint64_t>(),
                                     row["duplicated"].get<std::uint64_t>(),
                                     row["corrupt"].get<std::uint64_t>());
        }
        if (row["status"] == "failed")
            failed.push_back(row["method"].get<std::string>() + " " +
                             row["size"].get<std::string>());
        result.rows.push_back(std::move(row));
    }

    if (errors != 0) {
        result.notes.push_back(
            fmt::format("!!! VERIFICATION FAILED: {} lost, duplicated or corrupt messages (see the "
                        "lost/dup/bad column) !!!",
                        errors));
    } else {
        result.notes.push_back(
            "verification: zero lost, duplicated or corrupt messages in every row that ran");
    }
    if (!failed.empty()) {
        std::string list;
        for (const std::string& f : failed) list += (list.empty() ? "" : ", ") + f;
        result.notes.push_back(fmt::format("!!! {} rows FAILED: {} !!!", failed.size(), list));
    }
    const Json verdicts = check_targets(result.rows, result.notes);
    result.notes.push_back(
        cpus ? fmt::format("every method alike: side 0 pinned to CPU {}, side 1 to CPU {} "
                           "(sched_setaffinity); helper "
                           "daemons (RouDi) unpinned",
                           cpus->first, cpus->second)
             : std::string("fewer than 2 CPUs allowed: the sides are not pinned"));
    result.notes.push_back(
        "one-way latency = receiver's CLOCK_MONOTONIC when it holds the whole message (view or "
        "filled buffer) - "
        "sender's, taken after the payload is written and right before the send call; verification "
        "after");
    result.notes.push_back(draw_ipc_chart(result.rows, ctx));

    Json summary;
    summary["sizes"] = Json::array();
    for (std::size_t s : kSizes) summary["sizes"].push_back(s);
    summary["pinned_cpus"] = cpus ? Json::array({cpus->first, cpus->second}) : Json(nullptr);
    summary["errors"] = errors;
    summary["failed_rows"] = failed;
    summary["targets"] = {{"busy_poll_vs_iceoryx_max", kTargetBusyPollVsIceoryx},
                          {"loan_flatness_max", kTargetLoanFlatness},
                          {"spsc_msgs_per_s_min", kTargetSpscMessagesPerSecond},
                          {"sleep_vs_futex_max", kTargetSleepVsFutex}};
    summary["verdicts"] = verdicts;
    summary["verdicts"]["zero_errors"] = {{"lost_duplicated_corrupt", errors},
                                          {"met", errors == 0}};
    result.summary = std::move(summary);
    if (errors != 0 || !failed.empty()) {
        result.failure =
            fmt::format("section ipc: {} lost, duplicated or corrupt messages, {} failed rows",
                        errors, failed.size());
    }
    return result;
}

}  // namespace

Section ipc_section() {
    return {"ipc",
            "message latency (ping-pong p50..max) and throughput between two processes: pagewire "
            "channels vs pipe, "
            "Unix socket, TCP, POSIX mq, raw futex, Boost, ZeroMQ, iceoryx",
            run_ipc};
}

}  // namespace pagewire::bench
