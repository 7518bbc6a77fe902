// RobustMutex, Semaphore, NamedSemaphore and Event across separately exec'd
// processes: owner death by kill -9 (100 times, never a hang), exact counts
// under contention, timeouts, wake-ups. Built with the tsan preset too.
#include <chrono>
#include <cstring>
#include <memory>
#include <pagewire/error.hpp>
#include <pagewire/event.hpp>
#include <pagewire/robust_mutex.hpp>
#include <pagewire/segment.hpp>
#include <pagewire/semaphore.hpp>
#include <thread>

#include "shm_test_util.hpp"

using namespace pagewire;
using namespace std::chrono_literals;
using shmtest::Child;
using shmtest::Cleanup;
using testutil::contains;
using testutil::run;
using Clock = std::chrono::steady_clock;

namespace {

// Must match shm_helper.cpp's SyncArea.
struct SyncArea {
    alignas(64) std::byte mutex[sizeof(RobustMutex)];
    alignas(64) std::byte semaphore[sizeof(Semaphore)];
    alignas(64) std::byte event[sizeof(Event)];
    alignas(64) std::byte reply[sizeof(Event)];
    alignas(64) std::uint64_t counter;
    std::uint64_t consistent;
    std::uint64_t generation;
};

// A POSIX segment holding a SyncArea, initialized, removed at the end.
class SyncSegment {
  public:
    explicit SyncSegment(Event::Mode mode = Event::Mode::AutoReset)
        : name_(shmtest::unique_posix_name()),
          cleanup_(Backend::Posix, name_),
          seg_(Segment::create(Backend::Posix, name_, sizeof(SyncArea))) {
        area_ = reinterpret_cast<SyncArea*>(seg_.data());
        RobustMutex::create_at(area_->mutex);
        Semaphore::create_at(area_->semaphore, 1);
        Event::create_at(area_->event, mode);
        Event::create_at(area_->reply);
        area_->consistent = 1;
    }
    const std::string& name() const { return name_; }
    SyncArea& area() { return *area_; }
    RobustMutex& mutex() { return RobustMutex::attach_at(area_->mutex); }
    Event& event() { return Event::attach_at(area_->event); }
    Event& reply() { return Event::attach_at(area_->reply); }

  private:
    std::string name_;
    Cleanup cleanup_;
    Segment seg_;
    SyncArea* area_ = nullptr;
};

std::vector<std::string> helper(std::initializer_list<std::string> args) {
    std::vector<std::string> v{shmtest::helper()};
    v.insert(v.end(), args);
    return v;
}

// Runs 4 shm_helper processes at once, each doing `command` (mutex-count,
// sem-count: increments of the shared counter under the primitive); each must
// exit 0, and the counter must then hold every increment, which it does only
// if the primitive excludes across processes.
void expect_exact_count_under_contention(SyncSegment& s, const std::string& command) {
    constexpr int kProcesses = 4;
    const long per = testutil::kAsan ? 5000 : 20000;
    std::vector<std::unique_ptr<Child>> workers;
    for (int i = 0; i < kProcesses; ++i)
        workers.push_back(
            std::make_unique<Child>(helper({command, "posix", s.name(), std::to_string(per)})));
    for (auto& w : workers) EXPECT_EQ(testutil::describe_status(w->wait()), "exit 0");
    EXPECT_EQ(s.area().counter, static_cast<std::uint64_t>(kProcesses * per));
}

}  // namespace

// ------------------------------------------------------------------ RobustMutex

TEST(RobustMutex, KilledOwnerIsReportedAndRecovered100Times) {
    SyncSegment s;
    constexpr int kRounds = 100;
    for (int i = 0; i < kRounds; ++i) {
        Child holder(helper({"lock-and-die", "posix", s.name()}));
        std::string line = holder.read_line();
        // The first locker finds a healthy mutex; every later one inherits a dead owner's.
        ASSERT_EQ(line, i == 0 ? "locked acquired" : "locked owner died") << "round " << i;
        holder.kill9();
        int status = holder.wait();
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            << testutil::describe_status(status);
    }
    auto r = run(helper({"lock", "posix", s.name(), "10000"}));
    EXPECT_EQ(r.out, "owner died was-consistent=0\n") << r;
    EXPECT_EQ(s.area().generation, static_cast<std::uint64_t>(kRounds));
    EXPECT_EQ(s.area().consistent, 1u);
    // Healthy again.
    ASSERT_EQ(s.mutex().lock(), RobustMutex::Status::Acquired);
    s.mutex().unlock();
}

TEST(RobustMutex, UnrepairedOwnerDeathMakesItNotRecoverable) {
    SyncSegment s;
    {
        Child holder(helper({"lock-and-die", "posix", s.name()}));
        ASSERT_EQ(holder.read_line(), "locked acquired");
        holder.kill9();
        holder.wait();
    }
    RobustMutex& m = s.mutex();
    ASSERT_EQ(m.lock(), RobustMutex::Status::OwnerDied);
    m.unlock();  // without mark_consistent(): this caller could not repair the data
    EXPECT_EQ(m.lock(), RobustMutex::Status::NotRecoverable);
    EXPECT_EQ(m.try_lock(), RobustMutex::Status::NotRecoverable);
    auto r = run(helper({"lock", "posix", s.name(), "1000"}));
    EXPECT_EQ(r.out, "not recoverable\n") << r;
}

TEST(RobustMutex, TimedLockTimesOutWhileAnotherProcessHoldsIt) {
    SyncSegment s;
    Child holder(helper({"lock-and-die", "posix", s.name()}));
    ASSERT_EQ(holder.read_line(), "locked acquired");
    auto start = Clock::now();
    EXPECT_EQ(s.mutex().lock_for(200ms), RobustMutex::Status::TimedOut);
    EXPECT_GE(Clock::now() - start, 200ms);
    EXPECT_EQ(s.mutex().try_lock(), RobustMutex::Status::Busy);
    auto r = run(helper({"lock", "posix", s.name(), "100"}));
    EXPECT_EQ(r.out, "timed out\n") << r;
}

TEST(RobustMutex, ErrorCheckingAndAttachToGarbage) {
    SyncSegment s;
    RobustMutex& m = s.mutex();
    ASSERT_EQ(m.lock(), RobustMutex::Status::Acquired);
    EXPECT_EQ(m.lock(), RobustMutex::Status::WouldDeadlock);
    auto e = testutil::catch_as<Error>([&] { m.mark_consistent(); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EINVAL);
    m.unlock();
    if (!testutil::kTsan) {  // ThreadSanitizer reports the deliberate bad unlock and stops
        e = testutil::catch_as<Error>([&] { m.unlock(); });
        ASSERT_TRUE(e);
        EXPECT_EQ(e->error_number(), EPERM);
    }
    alignas(64) std::byte garbage[sizeof(RobustMutex)] = {};
    e = testutil::catch_as<Error>([&] { RobustMutex::attach_at(garbage); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EPROTO);
    EXPECT_TRUE(contains(e->what(), "no initialized robust mutex")) << e->what();
}

TEST(RobustMutex, CountsAreExactUnderContention) {
    SyncSegment s;
    expect_exact_count_under_contention(s, "mutex-count");
}

// ------------------------------------------------------------------ Semaphore

TEST(Semaphore, BinarySemaphoreCountsAreExactUnderContention) {
    SyncSegment s;
    expect_exact_count_under_contention(s, "sem-count");
    EXPECT_EQ(Semaphore::attach_at(s.area().semaphore).value(), 1);
}

TEST(Semaphore, TryWaitAndTimedWait) {
    SyncSegment s;
    Semaphore& sem = Semaphore::attach_at(s.area().semaphore);
    EXPECT_EQ(sem.try_wait(), SemaphoreStatus::Acquired);
    EXPECT_EQ(sem.try_wait(), SemaphoreStatus::Busy);
    auto start = Clock::now();
    EXPECT_EQ(sem.wait_for(150ms), SemaphoreStatus::TimedOut);
    EXPECT_GE(Clock::now() - start, 150ms);
    sem.post();
    EXPECT_EQ(sem.value(), 1);
    EXPECT_EQ(sem.wait_for(1s), SemaphoreStatus::Acquired);
}

TEST(NamedSemaphore, PostsFromTwoProcessesReachAThird) {
    const std::string name = "pwtest-sem-" + std::to_string(::getpid());
    struct Unlink {
        std::string n;
        ~Unlink() {
            try {
                NamedSemaphore::remove(n);
            } catch (...) {
            }
        }
    } unlink{name};
    NamedSemaphore sem = NamedSemaphore::create(name, 0);
    EXPECT_EQ(testutil::stat_of("/dev/shm/sem." + name).st_mode & 0777, 0600u);
    auto e = testutil::catch_as<Error>([&] { NamedSemaphore::create(name, 0); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EEXIST);

    Child waiter(helper({"named-sem-wait", name, "1000", "20000"}));
    auto p1 = run(helper({"named-sem-post", name, "500"}));
    auto p2 = run(helper({"named-sem-post", name, "500"}));
    EXPECT_EQ(p1.exit_code(), 0) << p1;
    EXPECT_EQ(p2.exit_code(), 0) << p2;
    EXPECT_EQ(waiter.read_line(), "1000");
    EXPECT_EQ(sem.value(), 0);
    EXPECT_EQ(sem.wait_for(50ms), SemaphoreStatus::TimedOut);

    auto missing = testutil::catch_as<Error>([&] { NamedSemaphore::open(name + "-missing"); });
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->error_number(), ENOENT);
    auto bad = testutil::catch_as<Error>([&] { NamedSemaphore::open("a/b"); });
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->error_number(), EINVAL);
}

// ------------------------------------------------------------------ Event

TEST(Event, WakesASleepingProcess) {
    SyncSegment s;
    Child waiter(helper({"event-wait", "posix", s.name(), "20000"}));
    ASSERT_EQ(waiter.read_line(), "waiting");
    std::this_thread::sleep_for(100ms);  // well past the spin: the waiter sleeps in FUTEX_WAIT
    s.event().set();
    EXPECT_EQ(waiter.read_line(), "signaled");
    EXPECT_EQ(s.reply().wait_for(10s), Event::Status::Signaled);
    EXPECT_FALSE(s.event().is_set());  // auto-reset: the waiter consumed it
}

TEST(Event, TimesOutWhenNobodySets) {
    SyncSegment s;
    auto start = Clock::now();
    auto r = run(helper({"event-wait", "posix", s.name(), "150"}));
    EXPECT_EQ(r.out, "waiting\ntimed out\n") << r;
    EXPECT_GE(Clock::now() - start, 150ms);
    EXPECT_EQ(s.event().wait_for(20ms, 0ns), Event::Status::TimedOut);
    EXPECT_EQ(s.event().wait_for(0ns), Event::Status::TimedOut);
}

TEST(Event, ManualResetWakesEveryWaiter) {
    SyncSegment s(Event::Mode::ManualReset);
    Child a(helper({"event-wait", "posix", s.name(), "20000"}));
    Child b(helper({"event-wait", "posix", s.name(), "20000"}));
    ASSERT_EQ(a.read_line(), "waiting");
    ASSERT_EQ(b.read_line(), "waiting");
    std::this_thread::sleep_for(100ms);
    s.event().set();
    EXPECT_EQ(a.read_line(), "signaled");
    EXPECT_EQ(b.read_line(), "signaled");
    EXPECT_TRUE(s.event().is_set());
    s.event().reset();
    EXPECT_FALSE(s.event().is_set());
}

TEST(Event, PingPongLosesNoWakeUpWithOrWithoutSpin) {
    for (auto spin : {0ns, std::chrono::nanoseconds(Event::kDefaultSpin)}) {
        SyncSegment s;
        s.event().set_spin(spin);
        s.reply().set_spin(spin);
        const long rounds = testutil::kAsan ? 2000 : 10000;
        Child peer(helper({"ping-pong", "posix", s.name(), std::to_string(rounds)}));
        for (long i = 0; i < rounds; ++i) {
            s.event().set();
            ASSERT_EQ(s.reply().wait_for(20s), Event::Status::Signaled)
                << "round " << i << " spin " << spin.count();
        }
        EXPECT_EQ(testutil::describe_status(peer.wait()), "exit 0");
        EXPECT_EQ(s.area().counter, static_cast<std::uint64_t>(rounds));
    }
}

TEST(Event, AttachToGarbageIsRefused) {
    alignas(64) std::byte garbage[sizeof(Event)] = {};
    auto e = testutil::catch_as<Error>([&] { Event::attach_at(garbage); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EPROTO);
    e = testutil::catch_as<Error>([&] { Event::create_at(garbage + 1); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error_number(), EINVAL);
}
