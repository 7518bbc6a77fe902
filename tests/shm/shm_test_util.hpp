// Helpers for the shm tests: unique segment names (pid + counter) that are
// removed even when a test fails, and a child process with pipes for the
// helper programs that must keep running while the test looks at them.
#pragma once

#include <sys/ipc.h>
#include <sys/shm.h>

#include <atomic>
#include <chrono>
#include <pagewire/segment.hpp>
#include <string>
#include <vector>

#include "../test_util.hpp"

namespace shmtest {

inline std::string helper() {
    return SHM_HELPER;
}

inline int next_serial() {
    static std::atomic<int> serial{0};
    return ++serial;
}

// A POSIX name unique to this test process: "/pwtest-<pid>-<n>".
inline std::string unique_posix_name() {
    return "/pwtest-" + std::to_string(::getpid()) + "-" + std::to_string(next_serial());
}

// A System V key unique to this test process, as 0x-hex: 0x5e<pid low 16 bits><n>.
inline std::string unique_sysv_key() {
    unsigned key = 0x5e000000u | ((static_cast<unsigned>(::getpid()) & 0xffffu) << 8) |
                   (static_cast<unsigned>(next_serial()) & 0xffu);
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", key);
    return buf;
}

// Removes the named segment when the scope ends, whatever happened (also the
// System V segment behind a key, and a named semaphore).
class Cleanup {
  public:
    Cleanup(pagewire::Backend backend, std::string name)
        : backend_(backend), name_(std::move(name)) {}
    ~Cleanup() {
        try {
            pagewire::Segment::remove(backend_, name_);
        } catch (...) {
        }
    }
    Cleanup(const Cleanup&) = delete;
    Cleanup& operator=(const Cleanup&) = delete;

  private:
    pagewire::Backend backend_;
    std::string name_;
};

// A running child with stdin/stdout pipes; killed (SIGKILL) and reaped on
// destruction if still running, so a failed test leaves no process behind.
class Child {
  public:
    explicit Child(const std::vector<std::string>& argv) {
        int in[2], out[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) testutil::die("pipe2");
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) testutil::die("fork");
        if (pid_ == 0) {
            ::dup2(in[0], STDIN_FILENO);
            ::dup2(out[1], STDOUT_FILENO);
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        ::close(in[0]);
        ::close(out[1]);
        stdin_ = in[1];
        stdout_ = out[0];
    }
    ~Child() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            testutil::wait_for(pid_);
        }
        if (stdin_ >= 0) ::close(stdin_);
        if (stdout_ >= 0) ::close(stdout_);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const { return pid_; }

    // One line of output (without '\n'), or "<timeout>" / "<eof>" after `seconds`.
    std::string read_line(int seconds = 20) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        for (;;) {
            auto nl = buffer_.find('\n');
            if (nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return line;
            }
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return "<timeout>";
            pollfd p{stdout_, POLLIN, 0};
            int r = ::poll(&p, 1, static_cast<int>(left.count()));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) continue;
            char buf[4096];
            ssize_t n = ::read(stdout_, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return "<eof>";
            buffer_.append(buf, static_cast<std::size_t>(n));
        }
    }
    void close_stdin() {
        if (stdin_ >= 0) ::close(stdin_);
        stdin_ = -1;
    }
    void kill9() { ::kill(pid_, SIGKILL); }
    // Waits for the child to end (after a kill or on its own); returns the raw status.
    int wait() {
        int status = testutil::wait_for(pid_);
        pid_ = -1;
        return status;
    }

  private:
    pid_t pid_ = -1;
    int stdin_ = -1;
    int stdout_ = -1;
    std::string buffer_;  // output read but not yet returned
};

}  // namespace shmtest
