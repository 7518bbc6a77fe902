// Truncation safety (S8): a mapped file truncated by another process turns
// SIGBUS into EFAULT for guarded accesses, and leaves every other SIGBUS alone.
// Scenarios that need a pristine process run in guard_helper (see there).
#include <array>
#include <atomic>
#include <cstring>
#include <limits>
#include <pagewire/guard.hpp>
#include <pagewire/mapping.hpp>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using pagewire::AccessResult;
using pagewire::Mapping;
using testutil::TempDir;

namespace {

const std::size_t kPage = testutil::page_size();

std::span<const std::byte> as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// A 3-page file mapped read-write, then truncated to 100 bytes by another
// process (coreutils truncate), as in seed 004's boundary demo.
class Truncated : public ::testing::Test {
  protected:
    void SetUp() override {
        path_ = dir_.file("f");
        data_ = testutil::random_bytes(3 * kPage);
        testutil::write_file(path_, data_);
        map_ = Mapping::open(path_, pagewire::Access::ReadWrite);
        ASSERT_EQ(map_.size(), 3 * kPage);
        auto r = testutil::run({"/usr/bin/truncate", "-s", "100", path_});
        ASSERT_EQ(r.exit_code(), 0) << r;
        ASSERT_EQ(testutil::file_size(path_), 100u);
    }

    std::byte* page(std::size_t n) { return map_.data() + n * kPage; }

    TempDir dir_;
    std::string path_;
    std::string data_;  // the file's content before truncation
    Mapping map_;
};

// Sums bytes one at a time through a volatile pointer: faults exactly at the
// first byte that is not backed.
struct ByteScan {
    const volatile unsigned char* p;
    std::size_t n;
    unsigned long sum = 0;
    void operator()() {
        for (std::size_t i = 0; i < n; ++i) sum += p[i];
    }
};

}  // namespace

TEST_F(Truncated, ReadInsideFileIsOkAndPastEndIsEfault) {
    std::string head(100, '\0');
    AccessResult ok = map_.read(0, std::as_writable_bytes(std::span(head)));
    ASSERT_TRUE(ok.ok()) << ok.message();
    EXPECT_EQ(ok.error, 0);
    EXPECT_EQ(ok.message(), "");
    EXPECT_EQ(head, data_.substr(0, 100));

    // The rest of the last partial page reads as zeros.
    std::string tail(kPage - 100, 'x');
    ASSERT_TRUE(map_.read(100, std::as_writable_bytes(std::span(tail))).ok());
    EXPECT_EQ(tail, std::string(kPage - 100, '\0'));

    std::array<std::byte, 64> buf{};
    AccessResult fault = map_.read(2 * kPage, buf);
    EXPECT_FALSE(fault.ok());
    EXPECT_FALSE(static_cast<bool>(fault));
    EXPECT_EQ(fault.error, EFAULT);
    EXPECT_FALSE(fault.message().empty());
    EXPECT_EQ(fault.message().find('\n'), std::string::npos) << fault.message();
    // The failing byte is in the requested range (counted from the request or,
    // as the header leaves open for Mapping::read, from the view's start).
    EXPECT_TRUE(fault.fault_offset < buf.size() ||
                (fault.fault_offset >= 2 * kPage && fault.fault_offset < 2 * kPage + buf.size()))
        << fault.fault_offset;

    // The process survived and the mapping still works.
    ASSERT_TRUE(map_.read(0, std::as_writable_bytes(std::span(head))).ok());
    EXPECT_EQ(head, data_.substr(0, 100));
}

TEST_F(Truncated, WritePastEndIsEfaultAndNeverGrowsTheFile) {
    AccessResult fault = map_.write(2 * kPage + 10, as_bytes("lost"));
    EXPECT_EQ(fault.error, EFAULT);
    EXPECT_FALSE(fault.message().empty());
    AccessResult page1 = map_.write(kPage, as_bytes("lost too"));
    EXPECT_EQ(page1.error, EFAULT);

    // Inside the last partial page: allowed, and still no growth.
    AccessResult ok = map_.write(50, as_bytes("kept"));
    EXPECT_TRUE(ok.ok()) << ok.message();
    EXPECT_EQ(testutil::file_size(path_), 100u);
    EXPECT_EQ(testutil::pread_file(path_, 50, 4), "kept");
}

TEST_F(Truncated, FaultOffsetOfAWholeViewRead) {
    std::string all(3 * kPage, '\0');
    AccessResult r = map_.read(0, std::as_writable_bytes(std::span(all)));
    EXPECT_EQ(r.error, EFAULT);
    EXPECT_GE(r.fault_offset, kPage) << "page 0 is backed";
    EXPECT_LT(r.fault_offset, 3 * kPage);
}

TEST_F(Truncated, ReadAcrossTheEndOfTheLastPage) {
    std::array<std::byte, 20> buf{};
    AccessResult r = map_.read(kPage - 10, buf);
    EXPECT_EQ(r.error, EFAULT);
    EXPECT_TRUE((r.fault_offset >= 10 && r.fault_offset < 20) ||
                (r.fault_offset >= kPage && r.fault_offset < kPage + 10))
        << r.fault_offset;
}

TEST_F(Truncated, OutOfViewRequestsAreErange) {
    std::array<std::byte, 10> buf{};
    AccessResult r = map_.read(map_.size() - 5, buf);
    EXPECT_EQ(r.error, ERANGE);
    EXPECT_FALSE(r.message().empty());
    EXPECT_EQ(map_.read(map_.size(), buf).error, ERANGE);
    EXPECT_EQ(map_.read(map_.size() + 4096, buf).error, ERANGE);
    // offset + length overflows size_t: still ERANGE, never a wild access.
    EXPECT_EQ(map_.read(std::numeric_limits<std::size_t>::max() - 2, buf).error, ERANGE);
    EXPECT_EQ(map_.write(map_.size() - 1, as_bytes("ab")).error, ERANGE);
    EXPECT_EQ(map_.write(std::numeric_limits<std::size_t>::max(), as_bytes("ab")).error, ERANGE);
    // ERANGE is checked before touching memory: a range that is both out of
    // the view and over a truncated page is ERANGE, not EFAULT.
    EXPECT_EQ(map_.read(2 * kPage, std::span<std::byte>(buf.data(), buf.size())).error, EFAULT);
    std::vector<std::byte> big(kPage + 1);
    EXPECT_EQ(map_.read(2 * kPage, big).error, ERANGE);
}

TEST(Guard, EmptyMappingReads) {
    std::array<std::byte, 10> buf{};
    Mapping empty;
    EXPECT_EQ(empty.read(0, buf).error, ERANGE);
    EXPECT_EQ(empty.write(0, buf).error, ERANGE);
    // Zero bytes at offset 0 lie inside the (empty) view.
    // (The empty view's data() is null: a memcpy of 0 bytes from it is UB
    // that UBSan reports, so guarded_copy must not call it.)
    EXPECT_TRUE(empty.read(0, std::span<std::byte>()).ok());
}

// Not in the header's list of AccessResult errors (0, EFAULT, ERANGE), but what
// src does: a guarded write to a read-only view is refused, not a SIGSEGV.
TEST(Guard, WriteToReadOnlyMappingIsRefused) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, "read only");
    Mapping m = Mapping::open(path);
    AccessResult r = m.write(0, as_bytes("X"));
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.error, EACCES);
    EXPECT_FALSE(r.message().empty());
    EXPECT_EQ(testutil::read_file(path), "read only");
}

TEST_F(Truncated, GrowingTheFileAgainMakesPagesReadableAsZeros) {
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(3 * kPage)), 0);
    std::string page2(kPage, 'x');
    AccessResult r = map_.read(2 * kPage, std::as_writable_bytes(std::span(page2)));
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(page2, std::string(kPage, '\0'));
}

TEST_F(Truncated, GuardedCopyDirectly) {
    std::string out(100, '\0');
    AccessResult ok = pagewire::guarded_copy(out.data(), map_.data(), 100);
    ASSERT_TRUE(ok.ok()) << ok.message();
    EXPECT_EQ(out, data_.substr(0, 100));

    // Source faults.
    std::string dst(300, '\0');
    AccessResult src_fault = pagewire::guarded_copy(dst.data(), page(2) + 7, 300);
    EXPECT_EQ(src_fault.error, EFAULT);
    EXPECT_LT(src_fault.fault_offset, 300u);
    EXPECT_FALSE(src_fault.message().empty());

    // Source straddles the end of the last backed page.
    AccessResult straddle = pagewire::guarded_copy(dst.data(), page(1) - 10, 20);
    EXPECT_EQ(straddle.error, EFAULT);
    EXPECT_GE(straddle.fault_offset, 10u);
    EXPECT_LT(straddle.fault_offset, 20u);

    // Destination faults.
    std::string src(64, 's');
    AccessResult dst_fault = pagewire::guarded_copy(page(1) + 5, src.data(), src.size());
    EXPECT_EQ(dst_fault.error, EFAULT);
    EXPECT_LT(dst_fault.fault_offset, 64u);

    // Nothing to copy; ordinary memory.
    EXPECT_TRUE(pagewire::guarded_copy(dst.data(), page(2), 0).ok());
    char a[32] = "plain heap to stack";
    std::vector<char> b(32);
    EXPECT_TRUE(pagewire::guarded_copy(b.data(), a, sizeof a).ok());
    EXPECT_STREQ(b.data(), "plain heap to stack");
}

TEST_F(Truncated, GuardedLambdaScanningMemory) {
    ByteScan head{reinterpret_cast<const volatile unsigned char*>(map_.data()), 100};
    AccessResult ok = pagewire::guarded(map_.data(), 100, head);
    ASSERT_TRUE(ok.ok()) << ok.message();
    unsigned long expected = 0;
    for (std::size_t i = 0; i < 100; ++i) expected += static_cast<unsigned char>(data_[i]);
    EXPECT_EQ(head.sum, expected);

    ByteScan all{reinterpret_cast<const volatile unsigned char*>(map_.data()), map_.size()};
    AccessResult fault = pagewire::guarded(map_.data(), map_.size(), all);
    EXPECT_EQ(fault.error, EFAULT);
    EXPECT_EQ(fault.fault_offset, kPage) << "a forward byte scan faults first at page 1";

    // fault_offset counts from the declared base.
    const std::byte* base = map_.data() + kPage / 2;
    ByteScan from_middle{reinterpret_cast<const volatile unsigned char*>(base),
                         map_.size() - kPage / 2};
    AccessResult mid = pagewire::guarded(base, from_middle.n, from_middle);
    EXPECT_EQ(mid.error, EFAULT);
    EXPECT_EQ(mid.fault_offset, kPage / 2);

    // A lambda that captures by reference works the same way.
    int touched = 0;
    AccessResult lam = pagewire::guarded(page(2), kPage, [&] {
        ++touched;
        (void)*reinterpret_cast<const volatile char*>(page(2) + 1);
        ++touched;  // never reached
    });
    EXPECT_EQ(lam.error, EFAULT);
    EXPECT_EQ(lam.fault_offset, 1u);
    EXPECT_EQ(touched, 1);
}

TEST_F(Truncated, GuardedRunWithFunctionPointer) {
    struct Arg {
        const volatile char* p;
        char seen;
    } arg{reinterpret_cast<const volatile char*>(map_.data()), 0};
    AccessResult ok = pagewire::guarded_run(
        map_.data(), 1,
        [](void* a) {
            auto* x = static_cast<Arg*>(a);
            x->seen = x->p[0];
        },
        &arg);
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(arg.seen, data_[0]);
    arg.p = reinterpret_cast<const volatile char*>(page(2));
    AccessResult fault = pagewire::guarded_run(
        page(2), kPage,
        [](void* a) {
            auto* x = static_cast<Arg*>(a);
            x->seen = x->p[0];
        },
        &arg);
    EXPECT_EQ(fault.error, EFAULT);
    EXPECT_EQ(fault.fault_offset, 0u);
}

TEST_F(Truncated, NestedGuards) {
    // Inner guard catches its fault; the outer one carries on and succeeds.
    AccessResult inner{};
    ByteScan head{reinterpret_cast<const volatile unsigned char*>(map_.data()), 100};
    AccessResult outer = pagewire::guarded(map_.data(), map_.size(), [&] {
        ByteScan bad{reinterpret_cast<const volatile unsigned char*>(page(2)), 10};
        inner = pagewire::guarded(page(2), 10, bad);
        head();
    });
    EXPECT_TRUE(outer.ok()) << outer.message();
    EXPECT_EQ(inner.error, EFAULT);
    EXPECT_EQ(inner.fault_offset, 0u);
    EXPECT_GT(head.sum, 0u);

    // Inner guard succeeds; the outer range is restored for what follows.
    AccessResult inner_ok{};
    AccessResult outer_fault = pagewire::guarded(map_.data(), map_.size(), [&] {
        ByteScan good{reinterpret_cast<const volatile unsigned char*>(map_.data()), 100};
        inner_ok = pagewire::guarded(map_.data(), 100, good);
        (void)*reinterpret_cast<const volatile char*>(page(2) + 3);
    });
    EXPECT_TRUE(inner_ok.ok());
    EXPECT_EQ(outer_fault.error, EFAULT);
    EXPECT_EQ(outer_fault.fault_offset, 2 * kPage + 3);

    // Mapping::read nests inside guarded() too.
    AccessResult read_inside{};
    std::array<std::byte, 8> buf{};
    AccessResult around =
        pagewire::guarded(map_.data(), 100, [&] { read_inside = map_.read(2 * kPage, buf); });
    EXPECT_TRUE(around.ok());
    EXPECT_EQ(read_inside.error, EFAULT);

    // After all of it, an ordinary guarded read still works.
    EXPECT_TRUE(map_.read(0, buf).ok());
}

TEST(Guard, TruncatedByAForkedChildCallingFtruncate) {
    TempDir dir;
    auto path = dir.file("f");
    testutil::write_file(path, testutil::random_bytes(3 * kPage));
    Mapping m = Mapping::open(path);
    int status = testutil::run_in_child([&] {
        int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        return fd >= 0 && ::ftruncate(fd, 100) == 0 ? 0 : 1;
    });
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::array<std::byte, 16> buf{};
    EXPECT_TRUE(m.read(84, buf).ok());
    EXPECT_EQ(m.read(2 * kPage, buf).error, EFAULT);
    EXPECT_EQ(m.read(kPage, buf).error, EFAULT);
}

TEST_F(Truncated, ManyThreadsGuardAtOnce) {
    constexpr int kThreads = 4;
    constexpr int kIterations = 1000;
    std::atomic<int> wrong{0};
    std::atomic<int> faults{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::array<std::byte, 100> buf{};
            for (int i = 0; i < kIterations; ++i) {
                AccessResult good = map_.read(0, buf);
                if (!good.ok() || std::memcmp(buf.data(), data_.data(), 100) != 0) ++wrong;
                std::size_t bad_page = 1 + static_cast<std::size_t>((i + t) % 2);
                AccessResult bad =
                    map_.read(bad_page * kPage + static_cast<std::size_t>(i % 50), buf);
                if (bad.error == EFAULT)
                    ++faults;
                else
                    ++wrong;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(faults.load(), kThreads * kIterations);
}

// ---------------------------------------------------------------- scenarios in a fresh process

namespace {

testutil::RunResult helper(const char* scenario) {
    return testutil::run({PAGEWIRE_GUARD_HELPER, scenario});
}

// Runs a scenario that must die of SIGBUS. Under ASan the helper runs with
// handle_sigbus=0: otherwise ASan's own SIGBUS handler, installed at startup,
// is the "previous handler" pagewire forwards to, and it reports a deadly
// signal and aborts instead of letting the default action happen.
void expect_sigbus_death(const char* scenario) {
    std::vector<std::string> env;
    if (testutil::kAsan) {
        const char* asan = std::getenv("ASAN_OPTIONS");
        env.push_back(std::string("ASAN_OPTIONS=") + (asan ? asan : "") + ":handle_sigbus=0");
    }
    testutil::RunResult r = testutil::run({PAGEWIRE_GUARD_HELPER, scenario}, {}, env);
    EXPECT_TRUE(r.signaled() && r.term_signal() == SIGBUS)
        << scenario << ": expected death by SIGBUS, got:\n"
        << r;
}

}  // namespace

TEST(GuardProcess, ChainsToPreviousSiginfoHandler) {
    auto r = helper("chain-siginfo");
    EXPECT_EQ(r.exit_code(), 0) << r;
}

TEST(GuardProcess, ChainsToPreviousPlainHandler) {
    auto r = helper("chain-plain");
    EXPECT_EQ(r.exit_code(), 0) << r;
}

TEST(GuardProcess, UnguardedFaultKillsWithSigbus) {
    expect_sigbus_death("unrelated-fault");
}

TEST(GuardProcess, RaisedSigbusKeepsDefaultAction) {
    expect_sigbus_death("raise-default");
}

TEST(GuardProcess, KilledWithSigbusKeepsDefaultAction) {
    expect_sigbus_death("kill-default");
}

TEST(GuardProcess, FaultOutsideTheDeclaredRangeIsNotCaught) {
    expect_sigbus_death("outside-range");
}

TEST(GuardProcess, FaultInAnotherThreadIsNotCaught) {
    expect_sigbus_death("other-thread");
}

// The same as UnguardedFaultKillsWithSigbus, in a forked child of this test.
TEST_F(Truncated, RawAccessInForkedChildDiesOfSigbus) {
    std::array<std::byte, 8> buf{};
    ASSERT_EQ(map_.read(2 * kPage, buf).error, EFAULT);  // the guard is installed
    int status = testutil::run_in_child([&] {
        (void)*reinterpret_cast<const volatile char*>(page(2));
        return 3;
    });
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) return;
    // Under ASan this process has ASan's SIGBUS handler behind pagewire's: it
    // reports a deadly signal and aborts (abort_on_error=1) or exits 1.
    if (testutil::kAsan &&
        ((WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) ||
         (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 3)))
        return;
    ADD_FAILURE() << "child ended with " << testutil::describe_status(status);
}
