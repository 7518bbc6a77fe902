// A process's mappings as the kernel shows them (S21): a child process makes
// known mappings — anonymous private, a shared file mapping, anonymous
// shared, locked — and blocks; read_smaps() and `pagewire maps PID` must show
// each with its size, permissions, resident size, lock state and file.
// parse_smaps() refuses malformed text with EINVAL.
#include <sys/syscall.h>

#include <array>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pagewire/error.hpp>
#include <pagewire/proc_maps.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cache_test_util.hpp"

using cachetest::contains;
using cachetest::DiskDir;
using cachetest::RunResult;
using pagewire::Vma;
using Json = nlohmann::json;

namespace {

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;
constexpr std::uint64_t kAnonBytes = 1 * kMiB;
constexpr std::uint64_t kFileBytes = 2 * kMiB;
constexpr std::uint64_t kSharedBytes = 512 * kKiB;
constexpr std::uint64_t kLockedBytes = 256 * kKiB;

// The child's regions, in the order it reports their addresses.
enum Region { kAnon, kFile, kShared, kLocked, kRegions };

// A child process holding the four mappings until destroyed. Its regions sit
// between PROT_NONE guard pages inside one reservation, so the kernel cannot
// merge them with neighbouring mappings (malloc's anonymous memory, say).
class MappingChild {
  public:
    explicit MappingChild(const std::string& file_path) {
        int to_parent[2], to_child[2];
        if (::pipe2(to_parent, O_CLOEXEC) != 0 || ::pipe2(to_child, O_CLOEXEC) != 0)
            cachetest::die("pipe2");
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) cachetest::die("fork");
        if (pid_ == 0) {
            ::close(to_parent[0]);
            ::close(to_child[1]);
            child(file_path, to_parent[1], to_child[0]);  // does not return
        }
        ::close(to_parent[1]);
        ::close(to_child[0]);
        release_ = to_child[1];
        std::size_t got = 0;
        auto* bytes = reinterpret_cast<char*>(starts_.data());
        while (got < sizeof starts_) {
            const ssize_t n = ::read(to_parent[0], bytes + got, sizeof starts_ - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        ::close(to_parent[0]);
        if (got != sizeof starts_)
            throw std::runtime_error("the mapping child failed (see its stderr)");
    }
    ~MappingChild() {
        ::close(release_);  // the child's read returns 0 and it exits
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }

    pid_t pid() const { return pid_; }
    std::uint64_t start(Region r) const { return starts_[r]; }

  private:
    [[noreturn]] static void child(const std::string& file_path, int report, int wait) {
        const std::uint64_t page = cachetest::page_size();
        const std::uint64_t sizes[kRegions] = {kAnonBytes, kFileBytes, kSharedBytes, kLockedBytes};
        std::uint64_t total = page;
        for (std::uint64_t s : sizes) total += s + page;
        auto fail = [](const char* what) {
            std::fprintf(stderr, "mapping child: %s: %s\n", what, std::strerror(errno));
            ::_exit(1);
        };
        char* base = static_cast<char*>(
            ::mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
        if (base == MAP_FAILED) fail("reserve");
        std::array<std::uint64_t, kRegions> starts{};
        char* at = base + page;
        for (int r = 0; r < kRegions; ++r) {
            starts[r] = reinterpret_cast<std::uint64_t>(at);
            at += sizes[r] + page;
        }
        auto addr = [&](Region r) { return reinterpret_cast<char*>(starts[r]); };

        // Anonymous private, every page touched (written: reading would map the zero page).
        if (::mmap(addr(kAnon), kAnonBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
            fail("anonymous");
        std::memset(addr(kAnon), 0x11, kAnonBytes);

        // A file, shared, read-only, every page read.
        const int fd = ::open(file_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail("open");
        if (::mmap(addr(kFile), kFileBytes, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
            fail("file");
        ::close(fd);
        volatile char sink = 0;
        for (std::uint64_t off = 0; off < kFileBytes; off += page) sink = sink + addr(kFile)[off];

        // Anonymous shared (what a parent shares with children forked later).
        if (::mmap(addr(kShared), kSharedBytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
            fail("shared");
        std::memset(addr(kShared), 0x22, kSharedBytes);

        // Anonymous private, locked (mlock faults every page in). The system
        // call itself: AddressSanitizer replaces mlock() with a no-op.
        if (::mmap(addr(kLocked), kLockedBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
            fail("locked");
        if (::syscall(SYS_mlock, addr(kLocked), kLockedBytes) != 0) fail("mlock");

        if (::write(report, starts.data(), sizeof starts) != static_cast<ssize_t>(sizeof starts))
            fail("report");
        char c;
        while (::read(wait, &c, 1) < 0 && errno == EINTR) {
        }
        ::_exit(0);
    }

    pid_t pid_ = -1;
    int release_ = -1;
    std::array<std::uint64_t, kRegions> starts_{};
};

std::string hex(std::uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lx", static_cast<unsigned long>(v));
    return buf;
}

const Vma* find_vma(const std::vector<Vma>& vmas, std::uint64_t start) {
    for (const Vma& v : vmas) {
        if (v.start == start) return &v;
    }
    return nullptr;
}

const Json* find_json(const Json& doc, std::uint64_t start) {
    for (const Json& m : doc["mappings"]) {
        if (m["start"] == hex(start)) return &m;
    }
    return nullptr;
}

// The pagewire command, when it is built (PAGEWIRE_BUILD_TOOLS).
#ifdef PAGEWIRE_CLI
const char* const kCli = PAGEWIRE_CLI;
#else
const char* const kCli = nullptr;
#endif
#define SKIP_WITHOUT_CLI() \
    if (kCli == nullptr) GTEST_SKIP() << "the pagewire command is not built"

RunResult cli(std::vector<std::string> args,
              const cachetest::RunOptions& options = cachetest::run_options()) {
    args.insert(args.begin(), kCli);
    return testutil::run(args, options);
}

bool has_flag(const Json& m, const std::string& flag) {
    for (const Json& f : m["vm_flags"]) {
        if (f == flag) return true;
    }
    return false;
}

}  // namespace

TEST(ProcMaps, ChildMappingsSeenByReadSmapsAndTheCommand) {
    DiskDir dir;
    const std::string path = dir / "mapped.dat";
    cachetest::make_file(path, kFileBytes);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    MappingChild child(path);

    // ---- the library -----------------------------------------------------------
    const std::vector<Vma> vmas = pagewire::read_smaps(child.pid());
    struct Expect {
        Region region;
        std::uint64_t size;
        const char* perms;
        bool locked;
    };
    const Expect expects[] = {
        {kAnon, kAnonBytes, "rw-p", false},
        {kFile, kFileBytes, "r--s", false},
        {kShared, kSharedBytes, "rw-s", false},
        {kLocked, kLockedBytes, "rw-p", true},
    };
    for (const Expect& e : expects) {
        const Vma* v = find_vma(vmas, child.start(e.region));
        ASSERT_NE(v, nullptr) << "no mapping starts at " << std::hex << child.start(e.region);
        SCOPED_TRACE("region " + std::to_string(e.region) + " at " + hex(v->start) + " (" +
                     v->path + ")");
        EXPECT_EQ(v->end - v->start, e.size);
        EXPECT_EQ(v->size, e.size);
        EXPECT_EQ(v->perms, e.perms);
        EXPECT_EQ(v->is_shared(), e.perms[3] == 's');
        // VmFlags "sh" is VM_SHARED, which the kernel leaves out of a shared
        // mapping of a file opened read-only (nothing can be written through
        // it); the 's' of the permissions is VM_MAYSHARE.
        EXPECT_EQ(v->has_flag("sh"), e.region == kShared);
        EXPECT_EQ(v->rss, e.size) << "every page was touched";
        EXPECT_EQ(v->locked, e.locked ? e.size : 0);
        EXPECT_EQ(v->has_flag("lo"), e.locked);
        EXPECT_EQ(v->kernel_page_size, cachetest::page_size());
        EXPECT_EQ(v->swap, 0u);
    }
    const Vma& anon = *find_vma(vmas, child.start(kAnon));
    EXPECT_EQ(anon.path, "");
    EXPECT_EQ(anon.anonymous, kAnonBytes);
    EXPECT_EQ(anon.private_dirty, kAnonBytes);
    const Vma& file = *find_vma(vmas, child.start(kFile));
    EXPECT_EQ(file.path, path);
    EXPECT_EQ(file.inode, st.st_ino);
    EXPECT_EQ(file.offset, 0u);
    EXPECT_EQ(file.anonymous, 0u);
    EXPECT_EQ(file.private_dirty + file.shared_dirty, 0u) << "the file was only read";
    const Vma& shared = *find_vma(vmas, child.start(kShared));
    EXPECT_EQ(shared.path.rfind("/dev/zero", 0), 0u) << shared.path;  // "/dev/zero (deleted)"
    EXPECT_EQ(shared.shared_dirty + shared.private_dirty, kSharedBytes);

    // ---- the command, JSON ------------------------------------------------------
    SKIP_WITHOUT_CLI();
    const RunResult jr = cli({"maps", std::to_string(child.pid()), "--json"});
    ASSERT_EQ(jr.exit_code(), 0) << jr;
    const Json doc = Json::parse(jr.out);
    EXPECT_EQ(doc["pid"], child.pid());
    EXPECT_EQ(doc["mappings"].size(), vmas.size());
    std::uint64_t rss_total = 0;
    for (const Json& m : doc["mappings"]) rss_total += m["rss"].get<std::uint64_t>();
    EXPECT_EQ(doc["totals"]["rss"], rss_total);
    for (const Expect& e : expects) {
        const Json* m = find_json(doc, child.start(e.region));
        ASSERT_NE(m, nullptr) << jr.out.substr(0, 2000);
        SCOPED_TRACE(m->dump());
        EXPECT_EQ((*m)["end"], hex(child.start(e.region) + e.size));
        EXPECT_EQ((*m)["size"], e.size);
        EXPECT_EQ((*m)["perms"], e.perms);
        EXPECT_EQ((*m)["rss"], e.size);
        EXPECT_EQ((*m)["locked"], e.locked ? e.size : 0);
        EXPECT_EQ(has_flag(*m, "lo"), e.locked);
    }
    EXPECT_EQ((*find_json(doc, child.start(kFile)))["path"], path);
    EXPECT_EQ((*find_json(doc, child.start(kFile)))["inode"], st.st_ino);

    // ---- the command, text ----------------------------------------------------
    const RunResult tr = cli({"maps", std::to_string(child.pid())});
    ASSERT_EQ(tr.exit_code(), 0) << tr;
    EXPECT_TRUE(contains(tr.out, std::to_string(child.pid()) + ":")) << tr;
    // Named first: `"literal" + <temporary string>` trips a GCC 12 -O3 -Wrestrict false
    // positive (GCC bug 105329).
    const std::string vma_count = std::to_string(vmas.size());
    EXPECT_TRUE(contains(tr.out, " " + vma_count + " mappings\n")) << tr;
    std::string last_line = tr.out.substr(0, tr.out.size() - 1);
    last_line = last_line.substr(last_line.rfind('\n') + 1);
    EXPECT_EQ(last_line.find_first_not_of(' '), last_line.find("total")) << last_line;
    std::istringstream lines(tr.out);
    int seen = 0;
    for (std::string line; std::getline(lines, line);) {
        if (line.find(hex(child.start(kFile)) + " ") != std::string::npos) {
            ++seen;
            EXPECT_TRUE(contains(line, " r--s ")) << line;
            EXPECT_TRUE(contains(line, " --S ")) << line;
            EXPECT_TRUE(contains(line, " " + path)) << line;
            EXPECT_TRUE(contains(line, " 2048 ")) << line;  // Size and Rss in KiB
        }
        if (line.find(hex(child.start(kLocked)) + " ") != std::string::npos) {
            ++seen;
            EXPECT_TRUE(contains(line, " L-- ")) << line;
            EXPECT_TRUE(contains(line, " [anon]")) << line;
        }
    }
    EXPECT_EQ(seen, 2) << tr;
}

TEST(ProcMaps, OwnMappingsByDefault) {
    SKIP_WITHOUT_CLI();
    const RunResult r = cli({"maps", "--json"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    const Json doc = Json::parse(r.out);
    EXPECT_GT(doc["pid"].get<int>(), 0);
    bool binary = false;
    for (const Json& m : doc["mappings"]) {
        binary = binary || m["path"] == std::filesystem::canonical(kCli).string();
    }
    EXPECT_TRUE(binary) << "pagewire's own executable is not among its mappings";
    EXPECT_GT(doc["totals"]["rss"].get<std::uint64_t>(), 0u);
}

TEST(ProcMaps, MissingProcessIsOneLineError) {
    SKIP_WITHOUT_CLI();
    // Above pid_max (at most 2^22 on Linux), so no process can have it.
    const std::string pid = "99999999";
    const RunResult r = cli({"maps", pid});
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(cachetest::line_count(r.err), 1u) << r;
    EXPECT_EQ(r.err.rfind("pagewire: maps " + pid + ": ", 0), 0u) << r;
    EXPECT_TRUE(contains(r.err, "No such process")) << r;

    const auto e = [] {
        try {
            pagewire::read_smaps(99999999);
        } catch (const pagewire::Error& err) {
            return err.error_number();
        }
        return 0;
    }();
    EXPECT_EQ(e, ESRCH);
}

TEST(ProcMaps, AnotherUsersProcessIsPermissionDenied) {
    SKIP_WITHOUT_CLI();
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the command as another user";
    const auto user = cachetest::nobody();
    if (!user) GTEST_SKIP() << "no user 'nobody'";
    cachetest::RunOptions options = cachetest::run_options();
    options.as_user = user;
    const RunResult r = cli({"maps", std::to_string(::getpid())}, options);
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_EQ(cachetest::line_count(r.err), 1u) << r;
    EXPECT_TRUE(contains(r.err, "Permission denied")) << r;
}

TEST(ProcMaps, ParsesWellFormedSmaps) {
    const std::string text =
        "00400000-00452000 r-xp 00001000 08:02 173521      /usr/bin/some program\n"
        "Size:                328 kB\n"
        "KernelPageSize:        4 kB\n"
        "Rss:                 300 kB\n"
        "Pss:                 150 kB\n"
        "Shared_Clean:        200 kB\n"
        "Private_Dirty:       100 kB\n"
        "Locked:                8 kB\n"
        "THPeligible:    0\n"
        "ProtectionKey:         0\n"
        "VmFlags: rd ex mr mw me lo\n"
        "7ffd0000-7ffd1000 rw-s 00000000 00:01 42   /dev/zero (deleted)\n"
        "Rss:                   4 kB\n"
        "VmFlags: rd wr sh\n";
    const std::vector<Vma> v = pagewire::parse_smaps(text);
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[0].start, 0x400000u);
    EXPECT_EQ(v[0].end, 0x452000u);
    EXPECT_EQ(v[0].perms, "r-xp");
    EXPECT_EQ(v[0].offset, 0x1000u);
    EXPECT_EQ(v[0].device, "08:02");
    EXPECT_EQ(v[0].inode, 173521u);
    EXPECT_EQ(v[0].path, "/usr/bin/some program");
    EXPECT_EQ(v[0].size, 328 * kKiB);
    EXPECT_EQ(v[0].rss, 300 * kKiB);
    EXPECT_EQ(v[0].pss, 150 * kKiB);
    EXPECT_EQ(v[0].shared_clean, 200 * kKiB);
    EXPECT_EQ(v[0].private_dirty, 100 * kKiB);
    EXPECT_EQ(v[0].locked, 8 * kKiB);
    EXPECT_EQ(v[0].kernel_page_size, 4 * kKiB);
    EXPECT_TRUE(v[0].has_flag("lo"));
    EXPECT_FALSE(v[0].is_shared());
    EXPECT_EQ(v[1].path, "/dev/zero (deleted)");
    EXPECT_TRUE(v[1].is_shared());
    EXPECT_TRUE(v[1].has_flag("sh"));
    EXPECT_FALSE(v[1].has_flag("lo"));
    EXPECT_EQ(v[1].rss, 4 * kKiB);
    EXPECT_TRUE(pagewire::parse_smaps("").empty());
}

TEST(ProcMaps, MalformedSmapsIsEinval) {
    const std::string header = "00400000-00452000 r-xp 00000000 08:02 173521 /bin/x\n";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"garbage\n", "line 1"},
        {"Rss: 4 kB\n" + header, "line 1"},  // a field before any header
        {"00400000-0045zz00 r-xp 00000000 08:02 1 /bin/x\n", "line 1"},  // bad hex
        {"00400000-00452000 r-x 00000000 08:02 1\n", "line 1"},          // three permission letters
        {"00452000-00400000 r-xp 00000000 08:02 1\n", "line 1"},         // end before start
        {"00400000-00452000 r-xp 00000000 08:02\n", "line 1"},           // no inode
        {"00400000-00452000 r-xp 0000zz00 08:02 1\n", "line 1"},         // bad offset
        {header + "Rss: abc kB\n", "line 2"},                            // not a number
        {header + "Size: 12\n", "line 2"},                               // no unit
        {header + "Rss: 4 kB\nSize 4 kB\n", "line 3"},                   // no colon
        {header + "Locked: -4 kB\n", "line 2"},
    };
    for (const auto& [text, where] : cases) {
        SCOPED_TRACE(text);
        try {
            pagewire::parse_smaps(text, "test-input");
            ADD_FAILURE() << "parsed without an error";
        } catch (const pagewire::Error& e) {
            EXPECT_EQ(e.error_number(), EINVAL);
            EXPECT_TRUE(contains(e.what(), "test-input")) << e.what();
            EXPECT_TRUE(contains(e.what(), where)) << e.what();
        }
    }
}

TEST(ProcMaps, PidArgumentIsCheckedAsText) {
    SKIP_WITHOUT_CLI();
    for (const std::string pid : {"abc", "0", "-5", "99999999999", "12x"}) {
        const RunResult r = cli({"maps", pid});
        EXPECT_EQ(r.exit_code(), 2) << pid << ": " << r;
        EXPECT_TRUE(contains(r.err, "pagewire: PID: '" + pid + "' is not a process id (1 to "))
            << r;
        EXPECT_LT(r.err.size(), 200u) << r;  // no 309-digit range
    }
}

TEST(ProcMaps, KernelThreadSaysItHasNoMappings) {
    SKIP_WITHOUT_CLI();
    // kthreadd is pid 2 where the kernel's threads are visible (not in a pid namespace).
    const std::string status = [] {
        std::ifstream in("/proc/2/status");
        std::stringstream all;
        all << in.rdbuf();
        return all.str();
    }();
    if (!contains(status, "Kthread:\t1") && !contains(status, "Name:\tkthreadd"))
        GTEST_SKIP() << "pid 2 is not a kernel thread here (a pid namespace?): case not run";
    const RunResult r = cli({"maps", "2"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(r.out, "2: no mappings (a kernel thread)\n");
}
