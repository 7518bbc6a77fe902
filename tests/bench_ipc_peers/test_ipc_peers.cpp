// The third-party peers of `pagewire bench ipc` (bench/peers/bench_ipc_peers.cpp)
// between two real processes, as the runner uses them: prepare() in the parent,
// fork, connect() in each child, cleanup() after both exited. Every byte and
// the order of every message is checked, and cleanup() must leave nothing of
// the run behind: no RouDi child, no /dev/shm entry, no scratch directory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <pagewire/error.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_ipc.hpp"

namespace ipc = pagewire::bench::ipc;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kSmall = 64;
constexpr std::size_t kLarge = 1024 * 1024;
constexpr int kSmallCount = 1000;
constexpr int kLargeCount = 3;
constexpr int kPings = 20;
constexpr std::size_t kPingSize = 1024;
constexpr auto kChildTimeout = std::chrono::seconds(60);  // then both sides are killed

// The bytes of message `index`: its index in the first bytes, then a
// xorshift stream seeded by it, so any two messages differ.
void fill_message(std::uint32_t index, std::span<std::byte> bytes) {
    std::uint64_t state = 0x9e3779b97f4a7c15ULL * (index + 1);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i % 8 == 0) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
        bytes[i] = static_cast<std::byte>(state >> (8 * (i % 8)));
    }
    std::memcpy(bytes.data(), &index, std::min(sizeof index, bytes.size()));
}

// Empty when `bytes` are message `index` of `size` bytes, else what differs.
std::string check_message(std::uint32_t index, std::size_t size, std::span<const std::byte> bytes) {
    if (bytes.size() != size) {
        return "message " + std::to_string(index) + ": " + std::to_string(bytes.size()) +
               " bytes, expected " + std::to_string(size);
    }
    std::vector<std::byte> expected(size);
    fill_message(index, expected);
    for (std::size_t i = 0; i < size; ++i) {
        if (bytes[i] != expected[i]) {
            std::uint32_t got = 0;
            std::memcpy(&got, bytes.data(), std::min(sizeof got, size));
            return "message " + std::to_string(index) + ": byte " + std::to_string(i) +
                   " differs (the message starts with index " + std::to_string(got) + ")";
        }
    }
    return {};
}

std::size_t message_size(int index) {
    return index < kSmallCount ? kSmall : kLarge;
}

// Side 0: the stream, then pings it expects back unchanged.
void run_side0(ipc::Endpoint& endpoint) {
    for (int i = 0; i < kSmallCount + kLargeCount; ++i) {
        endpoint.send(message_size(i), [&](std::span<std::byte> b) { fill_message(i, b); });
    }
    for (int k = 0; k < kPings; ++k) {
        const auto index = static_cast<std::uint32_t>(10000 + k);
        endpoint.send(kPingSize, [&](std::span<std::byte> b) { fill_message(index, b); });
        std::string error;
        endpoint.receive(
            [&](std::span<const std::byte> b) { error = check_message(index, kPingSize, b); });
        if (!error.empty()) throw std::runtime_error("echo of " + error);
    }
}

// Side 1: receives and checks the stream, then echoes every ping.
void run_side1(ipc::Endpoint& endpoint) {
    for (int i = 0; i < kSmallCount + kLargeCount; ++i) {
        std::string error;
        endpoint.receive([&](std::span<const std::byte> b) {
            error = check_message(static_cast<std::uint32_t>(i), message_size(i), b);
        });
        if (!error.empty()) throw std::runtime_error(error);
    }
    std::vector<std::byte> ping;
    for (int k = 0; k < kPings; ++k) {
        endpoint.receive([&](std::span<const std::byte> b) { ping.assign(b.begin(), b.end()); });
        endpoint.send(ping.size(), [&](std::span<std::byte> b) {
            std::memcpy(b.data(), ping.data(), b.size());
        });
    }
}

// Forked child: connects and runs one side; exit status 0 when every check
// passed, otherwise 1 with the reason on stderr.
[[noreturn]] void child(ipc::Method& method, int side) {
    int status = 0;
    try {
        std::unique_ptr<ipc::Endpoint> endpoint = method.connect(side);
        side == 0 ? run_side0(*endpoint) : run_side1(*endpoint);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "side %d: %s\n", side, e.what());
        status = 1;
    }
    std::fflush(stderr);
    ::_exit(status);
}

// Why a child's wait status is a failure, or "" for exit status 0.
std::string describe(int status) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return "exit status " + std::to_string(WEXITSTATUS(status));
}

// Waits for both sides until kChildTimeout; when one fails the other is
// killed (it may wait for the dead one), when late both are. What each
// side's end was, "" for success.
std::array<std::string, 2> wait_pair(const std::array<pid_t, 2>& pids) {
    const auto deadline = std::chrono::steady_clock::now() + kChildTimeout;
    std::array<std::string, 2> result;
    std::array<bool, 2> alive{true, true};
    while (alive[0] || alive[1]) {
        for (int k = 0; k < 2; ++k) {
            int status = 0;
            if (!alive[k] || ::waitpid(pids[k], &status, WNOHANG) != pids[k]) continue;
            alive[k] = false;
            result[k] = describe(status);
            if (!result[k].empty() && alive[1 - k]) ::kill(pids[1 - k], SIGKILL);
        }
        if ((alive[0] || alive[1]) && std::chrono::steady_clock::now() > deadline) {
            for (int k = 0; k < 2; ++k) {
                if (alive[k]) ::kill(pids[k], SIGKILL);
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return result;
}

// Process ids of this process's children running `command`.
std::vector<pid_t> children_named(const std::string& command) {
    std::vector<pid_t> found;
    for (const auto& entry : fs::directory_iterator("/proc")) {
        const std::string pid = entry.path().filename();
        if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat(entry.path() / "stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        // "pid (comm) state ppid ..."; comm may hold spaces, so parse from the last ')'.
        const std::size_t open = line.find('('), close = line.rfind(')');
        if (open == std::string::npos || close == std::string::npos) continue;
        const std::string comm = line.substr(open + 1, close - open - 1);
        std::istringstream rest(line.substr(close + 1));
        char state = 0;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (comm == command && ppid == ::getpid() && state != 'Z') found.push_back(std::stoi(pid));
    }
    return found;
}

// Entries of `dir` this run left: named after this process, or RouDi's (its
// segment in /dev/shm, its socket and locks in /tmp).
std::vector<std::string> leftovers(const fs::path& dir) {
    const std::string mine = "pagewire-peers-" + std::to_string(::getpid()) + "-";
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename();
        if (name.starts_with(mine) || name == "iceoryx_mgmt" || name == "roudi" ||
            name == "roudi.lock" || name == "iox-unique-roudi.lock") {
            found.push_back(entry.path());
        }
    }
    return found;
}

std::unique_ptr<ipc::Method> find_method(const std::string& name) {
    for (auto& method : ipc::peer_methods()) {
        if (method->name() == name) return std::move(method);
    }
    return nullptr;
}

bool uses_roudi(const std::string& name) {
    return name.starts_with("iceoryx");
}

// One method between two processes: the stream and the echoes arrive whole
// and in order, and cleanup() leaves nothing of the run behind.
void run_link(const std::string& name) {
    const std::unique_ptr<ipc::Method> method = find_method(name);
    ASSERT_NE(method, nullptr) << name << " is not among peer_methods()";
    const ipc::LinkLimits limits{kLarge, 64};
    if (const auto reason = method->unavailable(limits)) GTEST_SKIP() << *reason;

    try {
        method->prepare(limits);
    } catch (const pagewire::Error& e) {
        // A RouDi of another program started since unavailable() looked.
        if (e.error_number() == EBUSY) GTEST_SKIP() << e.what();
        FAIL() << e.what();
    }
    if (uses_roudi(name)) {
        EXPECT_EQ(children_named("iox-roudi").size(), 1U) << "prepare() starts RouDi";
    }
    std::array<pid_t, 2> pids{};
    for (int side = 0; side < 2; ++side) {
        pids[side] = ::fork();
        if (pids[side] == 0) child(*method, side);
    }
    ASSERT_GT(pids[0], 0);
    ASSERT_GT(pids[1], 0);
    const std::array<std::string, 2> ends = wait_pair(pids);
    method->cleanup();

    EXPECT_EQ(ends[0], "") << "side 0 (stream, ping)";
    EXPECT_EQ(ends[1], "") << "side 1 (check, echo)";
    EXPECT_TRUE(children_named("iox-roudi").empty()) << "cleanup() stops RouDi";
    EXPECT_EQ(leftovers("/dev/shm"), std::vector<std::string>{});
    EXPECT_EQ(leftovers(fs::temp_directory_path()), std::vector<std::string>{});
}

TEST(IpcPeers, BoostMessageQueue) {
    run_link("boost message_queue");
}
TEST(IpcPeers, ZeromqIpc) {
    run_link("zeromq ipc");
}
TEST(IpcPeers, Iceoryx) {
    run_link("iceoryx");
}
TEST(IpcPeers, IceoryxWait) {
    run_link("iceoryx wait");
}

TEST(IpcPeers, EveryMethodIsListedOnce) {
    std::vector<std::string> names;
    for (const auto& method : ipc::peer_methods()) names.push_back(method->name());
    EXPECT_EQ(names, (std::vector<std::string>{"boost message_queue", "zeromq ipc", "iceoryx",
                                               "iceoryx wait"}));
}

// A RouDi that crashed or was killed leaves its segments: cleanup() removes
// them, and the next prepare() starts a fresh RouDi.
TEST(IpcPeers, KilledRoudiIsCleanedUpAndRestarted) {
    const std::unique_ptr<ipc::Method> method = find_method("iceoryx");
    ASSERT_NE(method, nullptr);
    const ipc::LinkLimits limits{kSmall, 16};
    if (const auto reason = method->unavailable(limits)) GTEST_SKIP() << *reason;

    ASSERT_NO_THROW(method->prepare(limits));
    const std::vector<pid_t> roudi = children_named("iox-roudi");
    ASSERT_EQ(roudi.size(), 1U);
    ASSERT_TRUE(fs::exists("/dev/shm/iceoryx_mgmt"));
    ::kill(roudi[0], SIGKILL);
    method->cleanup();
    EXPECT_FALSE(fs::exists("/dev/shm/iceoryx_mgmt"));
    EXPECT_TRUE(children_named("iox-roudi").empty());

    ASSERT_NO_THROW(method->prepare(limits));
    EXPECT_EQ(children_named("iox-roudi").size(), 1U);
    method->cleanup();
    EXPECT_TRUE(children_named("iox-roudi").empty());
    EXPECT_EQ(leftovers("/dev/shm"), std::vector<std::string>{});
}

// A RouDi the harness did not start (here: one this test starts by hand)
// makes the iceoryx methods unavailable with the reason, and prepare() fail
// with one clear line instead of hanging.
TEST(IpcPeers, ForeignRoudiIsReportedNotShared) {
    const std::unique_ptr<ipc::Method> method = find_method("iceoryx");
    ASSERT_NE(method, nullptr);
    const ipc::LinkLimits limits{kSmall, 16};
    if (const auto reason = method->unavailable(limits)) GTEST_SKIP() << *reason;

    char dir_template[] = "/tmp/pagewire-peers-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    const fs::path dir = dir_template;
    const std::string config = (dir / "roudi.toml").string();
    std::ofstream(config) << "[general]\nversion = 1\n\n[[segment]]\n\n[[segment.mempool]]\n"
                             "size = 128\ncount = 16\n";
    const pid_t foreign = ::fork();
    ASSERT_GE(foreign, 0);
    if (foreign == 0) {
        const int log = ::open((dir / "roudi.log").c_str(), O_WRONLY | O_CREAT, 0600);
        ::dup2(log, STDOUT_FILENO);
        ::dup2(log, STDERR_FILENO);
        ::execl("/usr/bin/iox-roudi", "iox-roudi", "-c", config.c_str(), nullptr);
        ::_exit(127);
    }
    // Ready once its log says so.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool ready = false;
    while (!ready && std::chrono::steady_clock::now() < deadline) {
        std::ifstream log(dir / "roudi.log");
        const std::string text{std::istreambuf_iterator<char>(log), {}};
        ready = text.find("RouDi is ready for clients") != std::string::npos;
        if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }

    const std::optional<std::string> reason = method->unavailable(limits);
    std::string error;
    try {
        method->prepare(limits);
    } catch (const pagewire::Error& e) {
        error = e.what();
    }
    method->cleanup();
    ::kill(foreign, SIGTERM);
    ::waitpid(foreign, nullptr, 0);
    fs::remove_all(dir);

    ASSERT_TRUE(ready) << "the hand-started RouDi did not come up";
    ASSERT_TRUE(reason.has_value());
    EXPECT_NE(reason->find("another RouDi is running"), std::string::npos) << *reason;
    EXPECT_NE(error.find("another RouDi is running"), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

}  // namespace
