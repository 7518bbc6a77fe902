// Micro-benchmarks for process-shared synchronization (issue 3): uncontended
// RobustMutex lock/unlock and Semaphore post/wait, and the cross-process
// wake-up latency of a ping-pong between two processes (fork) through Event
// (no spin and default spin), a raw futex and a pipe, in the same run.
// Not ctest tests. Results and commands: docs/BENCHMARKS.md.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <pagewire/event.hpp>
#include <pagewire/mapping.hpp>
#include <pagewire/robust_mutex.hpp>
#include <pagewire/semaphore.hpp>

#include "raw_futex.hpp"

namespace {

using namespace pagewire;

struct alignas(64) Shared {
    alignas(64) std::byte mutex[sizeof(RobustMutex)];
    alignas(64) std::byte semaphore[sizeof(Semaphore)];
    alignas(64) std::byte ping[sizeof(Event)];
    alignas(64) std::byte pong[sizeof(Event)];
    alignas(64) std::atomic<std::uint32_t> futex_ping{0};
    alignas(64) std::atomic<std::uint32_t> futex_pong{0};
    alignas(64) std::atomic<std::uint32_t> stop{0};
};

Mapping shared_memory() {
    return Mapping::anonymous(sizeof(Shared), Sharing::Shared);
}

void BM_PthreadMutexPrivate(benchmark::State& state) {
    std::mutex m;  // baseline: process-private, not robust
    for (auto _ : state) {
        m.lock();
        m.unlock();
    }
}
BENCHMARK(BM_PthreadMutexPrivate);

void BM_RobustMutexLockUnlock(benchmark::State& state) {
    Mapping mem = shared_memory();
    RobustMutex& m = RobustMutex::create_at(reinterpret_cast<Shared*>(mem.data())->mutex);
    for (auto _ : state) {
        if (m.lock() != RobustMutex::Status::Acquired) state.SkipWithError("lock failed");
        m.unlock();
    }
}
BENCHMARK(BM_RobustMutexLockUnlock);

void BM_SemaphorePostWait(benchmark::State& state) {
    Mapping mem = shared_memory();
    Semaphore& s = Semaphore::create_at(reinterpret_cast<Shared*>(mem.data())->semaphore, 0);
    for (auto _ : state) {
        s.post();
        if (s.wait() != SemaphoreStatus::Acquired) state.SkipWithError("wait failed");
    }
}
BENCHMARK(BM_SemaphorePostWait);

void BM_EventSetWaitUncontended(benchmark::State& state) {
    Mapping mem = shared_memory();
    Event& e = Event::create_at(reinterpret_cast<Shared*>(mem.data())->ping);
    for (auto _ : state) {
        e.set();
        if (e.wait() != Event::Status::Signaled) state.SkipWithError("wait failed");
    }
}
BENCHMARK(BM_EventSetWaitUncontended);

// ------------------------------------------------------------------ ping-pong

// One round trip = two cross-process wake-ups; "one_way" reports half.
template <class Ping, class Pong, class Stop>
void ping_pong(benchmark::State& state, Ping ping_child, Pong serve, Stop stop) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        state.SkipWithError("fork failed");
        return;
    }
    if (pid == 0) {
        serve();
        ::_exit(0);
    }
    for (auto _ : state) ping_child();
    stop();
    int status = 0;
    ::waitpid(pid, &status, 0);
    // Seconds per one-way wake-up (printed with an SI prefix, e.g. 1.2u).
    state.counters["one_way"] =
        benchmark::Counter(static_cast<double>(state.iterations()) * 2,
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_PingPongEvent(benchmark::State& state) {
    Mapping mem = shared_memory();
    auto* sh = reinterpret_cast<Shared*>(mem.data());
    const auto spin = std::chrono::nanoseconds(state.range(0));
    Event& ping = Event::create_at(sh->ping, Event::Mode::AutoReset, spin);
    Event& pong = Event::create_at(sh->pong, Event::Mode::AutoReset, spin);
    ping_pong(
        state,
        [&] {
            ping.set();
            (void)pong.wait();
        },
        [&] {
            for (;;) {
                (void)ping.wait();
                if (sh->stop.load()) return;
                pong.set();
            }
        },
        [&] {
            sh->stop.store(1);
            ping.set();
        });
}
BENCHMARK(BM_PingPongEvent)
    ->Arg(0)
    ->Arg(2000)
    ->Arg(10000)
    ->Arg(Event::kDefaultSpin.count())
    ->ArgName("spin_ns")
    ->UseRealTime();

// The same protocol on bare futex words: no spin, FUTEX_WAKE on every post.
void futex_post(std::atomic<std::uint32_t>& w) {
    w.store(1);
    pagewire::bench::raw_futex_wake(reinterpret_cast<std::uint32_t*>(&w), 1);
}
void futex_take(std::atomic<std::uint32_t>& w) {
    for (;;) {
        std::uint32_t one = 1;
        if (w.compare_exchange_strong(one, 0)) return;
        pagewire::bench::raw_futex_wait(reinterpret_cast<std::uint32_t*>(&w), 0, nullptr);
    }
}

void BM_PingPongRawFutex(benchmark::State& state) {
    Mapping mem = shared_memory();
    auto* sh = new (mem.data()) Shared();
    ping_pong(
        state,
        [&] {
            futex_post(sh->futex_ping);
            futex_take(sh->futex_pong);
        },
        [&] {
            for (;;) {
                futex_take(sh->futex_ping);
                if (sh->stop.load()) return;
                futex_post(sh->futex_pong);
            }
        },
        [&] {
            sh->stop.store(1);
            futex_post(sh->futex_ping);
        });
}
BENCHMARK(BM_PingPongRawFutex)->UseRealTime();

void BM_PingPongPipe(benchmark::State& state) {
    int to_child[2], to_parent[2];
    if (::pipe(to_child) != 0 || ::pipe(to_parent) != 0) {
        state.SkipWithError("pipe failed");
        return;
    }
    char byte = 'p';
    ping_pong(
        state,
        [&] {
            (void)!::write(to_child[1], &byte, 1);
            (void)!::read(to_parent[0], &byte, 1);
        },
        [&] {
            char b = 0;
            while (::read(to_child[0], &b, 1) == 1 && b != 'q') (void)!::write(to_parent[1], &b, 1);
        },
        [&] {
            char q = 'q';
            (void)!::write(to_child[1], &q, 1);
        });
    for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) ::close(fd);
}
BENCHMARK(BM_PingPongPipe)->UseRealTime();

}  // namespace
