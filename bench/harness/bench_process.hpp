// Child processes and files of the sections that run other programs (serve,
// broker): fork + exec with stdout/stderr to files, CPU time from
// /proc/PID/stat, a free port on 127.0.0.1, small text-file helpers.
#pragma once

#include <fcntl.h>
#include <fmt/core.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <pagewire/error.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace pagewire::bench {

// A child gets this long to end after SIGTERM (pagewire serve finishes
// in-flight responses within 10 s) before it is killed.
constexpr std::chrono::seconds kChildStopTimeout{15};
constexpr std::chrono::milliseconds kChildPollInterval{20};

void write_text(const std::string& path, const std::string& text);
// The whole file, "" when it cannot be read.
std::string read_text(const std::string& path);
// The first line of text (for error messages), "" if none.
std::string first_line(const std::string& text);
// The last non-empty line of text.
std::string last_line(std::string text);
// A program's full path: PATH first, then the sbin directories a non-root
// PATH often lacks (nginx lives in /usr/sbin). Empty when not found.
std::string find_program(const std::string& name);
// A TCP port on 127.0.0.1 free right now (bound to port 0, then released;
// the kernel does not hand the same port out again at once).
int free_port();
// utime + stime of one process (all its threads, live and exited), seconds;
// 0 when it is gone.
double process_cpu_seconds(pid_t pid);
// The pids whose parent is `parent` (nginx's workers), from /proc/*/stat.
std::vector<pid_t> children_of(pid_t parent);

// ---- child processes -------------------------------------------------------

// A program started with fork + exec, stdin from /dev/null, stdout and stderr
// to files; it gets SIGTERM if this process dies first. The destructor stops
// it (SIGTERM, then SIGKILL for it and its children after kChildStopTimeout) and
// reaps it. Not thread-safe; owns the child.
class Child {
  public:
    Child(const std::vector<std::string>& argv, const std::string& out_path,
          const std::string& err_path) {
        std::vector<char*> args;
        for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        const pid_t parent = ::getpid();
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) throw_error("fork", argv[0]);
        if (pid_ == 0) {
            // Only async-signal-safe calls between fork and exec.
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(127);
            const int in = ::open("/dev/null", O_RDONLY);
            const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (in < 0 || out < 0 || err < 0) ::_exit(127);
            ::dup2(in, STDIN_FILENO);
            ::dup2(out, STDOUT_FILENO);
            ::dup2(err, STDERR_FILENO);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
    }
    ~Child() { stop(SIGTERM); }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const noexcept { return pid_; }

    // Whether the child still runs; when it has ended, it is reaped and
    // exit_status() describes how.
    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            record_exit(status);
            return false;
        }
        return true;
    }

    // Waits up to `timeout` for the child to end by itself; false if it still runs.
    bool wait(std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        while (running()) {
            if (Clock::now() >= deadline) return false;
            std::this_thread::sleep_for(kChildPollInterval);
        }
        return true;
    }

    // Sends `sig`, waits kChildStopTimeout, then SIGKILLs the child and its children.
    void stop(int sig) noexcept {
        if (!running()) return;
        std::vector<pid_t> children;
        try {
            children = children_of(pid_);
        } catch (...) {  // out of memory: the children are only the SIGKILL fallback
        }
        ::kill(pid_, sig);
        if (wait(kChildStopTimeout)) return;
        for (pid_t c : children) ::kill(c, SIGKILL);
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        record_exit(status);
    }

    const std::string& exit_status() const noexcept { return exit_status_; }

  private:
    void record_exit(int status) {
        pid_ = -1;
        if (WIFEXITED(status))
            exit_status_ = fmt::format("exit {}", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            exit_status_ = fmt::format("killed by signal {}", WTERMSIG(status));
        else
            exit_status_ = fmt::format("status {}", status);
    }

    pid_t pid_ = -1;           // > 0 while the child has not been reaped
    std::string exit_status_;  // how it ended, once reaped
};

}  // namespace pagewire::bench
