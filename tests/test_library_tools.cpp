// The seeds' logic the command is built on, tested through the library alone:
// in-place replace (pagewire/replace.hpp), the atomic output file
// (pagewire/output_file.hpp) and the tree walker (pagewire/file_tree.hpp).
// The umbrella header comes first: it must compile on its own.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <pagewire/pagewire.hpp>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace {

using testutil::read_file;
using testutil::TempDir;
using testutil::write_file;

// ---------------------------------------------------------------- umbrella header

TEST(Umbrella, IncludesEveryPublicHeader) {
    const std::filesystem::path dir = PAGEWIRE_INCLUDE_DIR "/pagewire";
    const std::string umbrella = read_file((dir / "pagewire.hpp").string());
    std::set<std::string> included;
    const std::regex include_line(R"(#include <pagewire/([a-z_0-9]+\.hpp)>)");
    for (std::sregex_iterator it(umbrella.begin(), umbrella.end(), include_line), end; it != end;
         ++it)
        included.insert((*it)[1].str());
    std::size_t headers = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (entry.path().extension() != ".hpp" || name == "pagewire.hpp") continue;
        // serve.hpp is the pagewire_http library's (it needs the HTTP parser) and
        // broker.hpp the pagewire_kafka one's, not libpagewire's.
        if (name == "serve.hpp" || name == "broker.hpp") continue;
        ++headers;
        EXPECT_TRUE(included.count(name)) << "pagewire/pagewire.hpp does not include " << name;
    }
    EXPECT_GT(headers, 10u);
}

// ---------------------------------------------------------------- File on special files

TEST(FileOpen, FifoIsRefusedWithoutWaitingForAWriter) {
    TempDir dir;
    const std::string fifo = dir.file("fifo");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    try {
        pagewire::File::open(fifo);
        FAIL() << "a FIFO was opened as a file";
    } catch (const pagewire::Error& e) {
        EXPECT_EQ(e.error_number(), EINVAL);
        EXPECT_NE(std::string(e.what()).find("a FIFO"), std::string::npos) << e.what();
    }
    EXPECT_THROW(pagewire::File::open("/dev/null"), pagewire::Error);
}

TEST(FileOpen, ProcFilesHaveNoKnownSizeAndAreNotMapped) {
    pagewire::File status = pagewire::File::open("/proc/self/status");
    EXPECT_FALSE(status.size_known());
    try {
        (void)pagewire::Mapping::map(status, pagewire::Access::ReadOnly);
        FAIL() << "a size-less proc file was mapped (as an empty view)";
    } catch (const pagewire::Error& e) {
        EXPECT_EQ(e.error_number(), ENODEV);
    }
    TempDir dir;
    write_file(dir.file("empty"), "");
    EXPECT_TRUE(pagewire::File::open(dir.file("empty")).size_known());
    EXPECT_TRUE(pagewire::Mapping::open(dir.file("empty"), pagewire::Access::ReadOnly).empty());
}

// ---------------------------------------------------------------- replace_in_place

struct ReplaceCase {
    std::string before, from, to, after;
    std::uint64_t count;
};

TEST(ReplaceInPlace, EveryLengthCaseMatchesStringReplace) {
    TempDir dir;
    const std::vector<ReplaceCase> cases = {
        {"this is a test, a test", "test", "map!", "this is a map!, a map!", 2},  // seed 000
        {"test", "test", "map", "map", 1},
        {"aaaa", "aa", "b", "bb", 2},  // non-overlapping, left to right
        {"xtestxtestx", "test", "", "xxx", 2},
        {"ab", "b", "bbbb", "abbbb", 1},
        {"no match here", "zzz", "y", "no match here", 0},
        {"", "a", "b", "", 0},
    };
    for (const ReplaceCase& c : cases) {
        const std::string path = dir.file("f");
        write_file(path, c.before);
        EXPECT_EQ(pagewire::replace_in_place(path, c.from, c.to), c.count) << c.before;
        EXPECT_EQ(read_file(path), c.after) << c.before << ": " << c.from << " -> " << c.to;
    }
}

TEST(ReplaceInPlace, GrowingPastOneChunkOfMatches) {
    // More matches than the growing pass holds positions for at once (2^20).
    TempDir dir;
    const std::string path = dir.file("many");
    const std::size_t n = (1u << 20) + 1000;
    write_file(path, std::string(n, 'a'));
    EXPECT_EQ(pagewire::replace_in_place(path, "a", "bc"), n);
    const std::string out = read_file(path);
    ASSERT_EQ(out.size(), 2 * n);
    EXPECT_EQ(out.find_first_not_of("bc"), std::string::npos);
    EXPECT_EQ(out.substr(0, 4), "bcbc");
}

TEST(ReplaceInPlace, EmptyFromAndMissingFileAreErrors) {
    TempDir dir;
    const std::string path = dir.file("f");
    write_file(path, "abc");
    try {
        pagewire::replace_in_place(path, "", "x");
        FAIL() << "empty FROM accepted";
    } catch (const pagewire::Error& e) {
        EXPECT_EQ(e.error_number(), EINVAL);
    }
    EXPECT_THROW(pagewire::replace_in_place(dir.file("missing"), "a", "b"), pagewire::Error);
    EXPECT_EQ(read_file(path), "abc");
}

TEST(ReplaceInPlace, GrowthPastFileSizeLimitLeavesTheFileAsItWas) {
    // RLIMIT_FSIZE below the grown size: an Error (EFBIG), not SIGXFSZ, and the
    // file keeps its size and contents. In a child: the limit is per process.
    TempDir dir;
    const std::string path = dir.file("f");
    const std::string before(8192, 'a');
    write_file(path, before);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::signal(SIGXFSZ, SIG_IGN);
        rlimit rl{12000, 12000};
        ::setrlimit(RLIMIT_FSIZE, &rl);
        try {
            pagewire::replace_in_place(path, "a", "bb");
        } catch (const pagewire::Error& e) {
            std::_Exit(e.error_number() == EFBIG ? 0 : 3);
        }
        std::_Exit(4);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(read_file(path), before);
}

// ---------------------------------------------------------------- OutputFile

TEST(OutputFile, AppearsOnlyOnCommitWithTheMode) {
    TempDir dir;
    const std::string path = dir.file("out");
    {
        pagewire::OutputFile out(path, 0640, false);
        const std::string data = "hello";
        out.file().write_at(0, std::as_bytes(std::span(data)));
        EXPECT_FALSE(std::filesystem::exists(path));
        out.commit();
    }
    EXPECT_EQ(read_file(path), "hello");
    EXPECT_EQ(testutil::stat_of(path).st_mode & 07777, 0640u);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                            std::filesystem::directory_iterator()),
              1);
}

TEST(OutputFile, UncommittedLeavesNothingAndExistingIsRefused) {
    TempDir dir;
    const std::string path = dir.file("out");
    { pagewire::OutputFile out(path, 0644, false); }
    EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
    write_file(path, "old");
    try {
        pagewire::OutputFile out(path, 0644, false);
        FAIL() << "an existing destination was accepted without overwrite";
    } catch (const pagewire::Error& e) {
        EXPECT_EQ(e.error_number(), EEXIST);
    }
    {
        pagewire::OutputFile out(path, 0644, true);
        out.commit();
    }
    EXPECT_EQ(read_file(path), "");
}

TEST(OutputFile, CreatedMeanwhileIsNotClobbered) {
    TempDir dir;
    const std::string path = dir.file("out");
    pagewire::OutputFile out(path, 0644, false);
    write_file(path, "someone else's");
    EXPECT_THROW(out.commit(), pagewire::Error);
    EXPECT_EQ(read_file(path), "someone else's");
}

TEST(OutputFile, KilledBySigtermRemovesTheTemporaryFile) {
    TempDir dir;
    const std::string path = dir.file("out");
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        pagewire::OutputFile out(path, 0644, false);
        (void)!::write(ready[1], "r", 1);
        ::pause();
        std::_Exit(1);
    }
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::kill(pid, SIGTERM);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
    ::close(ready[0]);
    ::close(ready[1]);
}

// ---------------------------------------------------------------- walk_files

// Records what the walk hands over.
class Recorder final : public pagewire::WalkVisitor {
  public:
    void file(pagewire::File& f, const std::string& path, const struct stat& st) override {
        files[path] = static_cast<std::uint64_t>(st.st_size);
        EXPECT_EQ(f.size(), static_cast<std::uint64_t>(st.st_size));
    }
    void error(const std::string& path, std::string_view reason) override {
        errors[path] = std::string(reason);
    }
    std::map<std::string, std::uint64_t> files;
    std::map<std::string, std::string> errors;
};

TEST(WalkFiles, VisitsRegularFilesOnceAndCountsTheRest) {
    TempDir dir;
    const std::string root = dir.file("t");
    std::filesystem::create_directories(root + "/a/b");
    write_file(root + "/one", "1");
    write_file(root + "/a/two", "22");
    write_file(root + "/a/b/three", "333");
    ASSERT_EQ(::link((root + "/one").c_str(), (root + "/a/one-again").c_str()), 0);
    std::filesystem::create_symlink(root + "/one", root + "/a/link");
    ASSERT_EQ(::mkfifo((root + "/fifo").c_str(), 0600), 0);

    Recorder r;
    const pagewire::WalkCounts c = pagewire::walk_files({root + "/"}, {}, r);
    EXPECT_EQ(c.files, 3u);
    EXPECT_EQ(c.directories, 3u);
    EXPECT_EQ(c.skipped, 2u);  // the symlink and the FIFO
    EXPECT_EQ(c.errors, 0u);
    EXPECT_EQ(r.files.size(), 3u);
    EXPECT_EQ(r.files.count(root + "/a/b/three"), 1u) << "no doubled slash after " << root << "/";
    EXPECT_EQ(r.files[root + "/a/b/three"], 3u);
}

TEST(WalkFiles, MissingPathIsReportedAndTheWalkGoesOn) {
    TempDir dir;
    write_file(dir.file("f"), "x");
    Recorder r;
    const pagewire::WalkCounts c =
        pagewire::walk_files({dir.file("missing"), dir.file("f")}, {}, r);
    EXPECT_EQ(c.errors, 1u);
    EXPECT_EQ(c.files, 1u);
    ASSERT_EQ(r.errors.count(dir.file("missing")), 1u);
    EXPECT_EQ(r.errors[dir.file("missing")], std::strerror(ENOENT));
}

TEST(WalkFiles, PseudoAndOtherFilesystemsAreNotEnteredInsideATree) {
    // A tmpfs (another filesystem) and a proc mount (a pseudo one) below a
    // directory of ours. Needs mount(2): root in a mount namespace of its own.
    TempDir dir;
    const std::string root = dir.file("t");
    std::filesystem::create_directories(root + "/tmp");
    std::filesystem::create_directories(root + "/proc");
    write_file(root + "/f", "x");
    if (::mount("none", (root + "/tmp").c_str(), "tmpfs", 0, "size=1m") != 0)
        GTEST_SKIP() << "mount tmpfs: " << std::strerror(errno) << " (needs root)";
    write_file(root + "/tmp/g", "y");
    const bool proc = ::mount("proc", (root + "/proc").c_str(), "proc", 0, nullptr) == 0;
    struct Unmount {
        std::string a, b;
        bool proc;
        ~Unmount() {
            if (proc) ::umount2(b.c_str(), MNT_DETACH);
            ::umount2(a.c_str(), MNT_DETACH);
        }
    } unmount{root + "/tmp", root + "/proc", proc};

    Recorder all;
    pagewire::WalkCounts c = pagewire::walk_files({root}, {}, all);
    EXPECT_EQ(c.files, 2u);  // f and tmp/g; nothing of proc
    EXPECT_EQ(c.pseudo_filesystems, proc ? 1u : 0u);

    Recorder one;
    pagewire::WalkOptions x;
    x.one_file_system = true;
    c = pagewire::walk_files({root}, x, one);
    EXPECT_EQ(c.files, 1u);
    EXPECT_EQ(c.other_filesystems, proc ? 2u : 1u);
    EXPECT_EQ(one.files.count(root + "/f"), 1u);

    if (proc) {
        Recorder named;  // a pseudo filesystem named at the top is walked
        c = pagewire::walk_files({root + "/proc/self/status"}, {}, named);
        EXPECT_EQ(c.files, 1u);
    }
}

// The descriptors this process has open (entries of /proc/self/fd).
std::size_t open_descriptors() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

// Records the visits in order, with what each file's descriptor reads, and
// throws at the visit numbered `throw_at` (counting from 0) when set.
struct OrderRecorder : pagewire::WalkVisitor {
    void file(pagewire::File& f, const std::string& path, const struct stat&) override {
        if (visits.size() == throw_at) throw std::runtime_error("visitor gave up");
        char buf[64] = {};
        const ssize_t n = ::pread(f.fd(), buf, sizeof buf, 0);
        visits.push_back(path + "=" + std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0));
    }
    void error(const std::string& path, std::string_view reason) override {
        visits.push_back(path + " ERROR " + std::string(reason));
    }
    std::vector<std::string> visits;
    std::size_t throw_at = SIZE_MAX;
};

// A directory of 150 files with subdirectories between them (of 70 files
// each): batches of 64 fill, end at a subdirectory and at the directory's end.
std::string batch_tree(TempDir& dir) {
    const std::string root = dir.file("t");
    std::filesystem::create_directories(root);
    for (int i = 0; i < 150; ++i) {
        write_file(root + "/f" + std::to_string(i), "file " + std::to_string(i));
        if (i % 40 == 39) {
            const std::string sub = root + "/d" + std::to_string(i);
            std::filesystem::create_directories(sub);
            for (int j = 0; j < 70; ++j) write_file(sub + "/g" + std::to_string(j), sub);
        }
    }
    EXPECT_EQ(::link((root + "/f1").c_str(), (root + "/d39/f1-again").c_str()), 0);
    std::filesystem::create_symlink(root + "/f2", root + "/d79/link");
    return root;
}

TEST(WalkFiles, BatchedOpensVisitWhatOneByOneOpensVisitInTheSameOrder) {
    TempDir dir;
    const std::string root = batch_tree(dir);
    const std::size_t fds = open_descriptors();
    OrderRecorder batched;
    const pagewire::WalkCounts b = pagewire::walk_files({root}, {}, batched);
    EXPECT_EQ(open_descriptors(), fds) << "every descriptor of the walk is closed at its end";
    OrderRecorder one;
    pagewire::WalkOptions plain;
    plain.batch_opens = false;
    const pagewire::WalkCounts o = pagewire::walk_files({root}, plain, one);
    EXPECT_EQ(b.files, 150u + 3 * 70);  // the hard link counts once
    EXPECT_EQ(b.files, o.files);
    EXPECT_EQ(b.directories, 4u);
    EXPECT_EQ(b.directories, o.directories);
    EXPECT_EQ(b.skipped, 1u);
    EXPECT_EQ(b.skipped, o.skipped);
    EXPECT_EQ(b.errors, 0u);
    EXPECT_EQ(batched.visits, one.visits);
    ASSERT_FALSE(batched.visits.empty());
    EXPECT_NE(std::find(batched.visits.begin(), batched.visits.end(), root + "/f149=file 149"),
              batched.visits.end());
}

TEST(WalkFiles, AVisitorThatThrowsInABatchLeavesNoDescriptorOpen) {
    TempDir dir;
    const std::string root = batch_tree(dir);
    const std::size_t fds = open_descriptors();
    for (const std::size_t at : {std::size_t{0}, std::size_t{10}, std::size_t{100}}) {
        OrderRecorder r;
        r.throw_at = at;
        EXPECT_THROW(pagewire::walk_files({root}, {}, r), std::runtime_error);
        EXPECT_EQ(r.visits.size(), at);
        EXPECT_EQ(open_descriptors(), fds) << "thrown at visit " << at;
    }
}

}  // namespace

TEST(Units, BytesInBinaryUnits) {
    EXPECT_EQ(pagewire::format_bytes(0), "0 bytes");
    EXPECT_EQ(pagewire::format_bytes(1), "1 byte");
    EXPECT_EQ(pagewire::format_bytes(1023), "1023 bytes");
    EXPECT_EQ(pagewire::format_bytes(1024), "1.0 KiB");
    EXPECT_EQ(pagewire::format_bytes(1536), "1.5 KiB");
    EXPECT_EQ(pagewire::format_bytes(3000000), "2.9 MiB");
    EXPECT_EQ(pagewire::format_bytes((1ULL << 20) - 1), "1.0 MiB");  // not "1024.0 KiB"
    EXPECT_EQ(pagewire::format_bytes(1ULL << 30), "1.0 GiB");
    EXPECT_EQ(pagewire::format_bytes(UINT64_MAX), "16.0 EiB");
    EXPECT_EQ(pagewire::format_bytes_short(512), "512B");
    EXPECT_EQ(pagewire::format_bytes_short(4096), "4.0K");
    EXPECT_EQ(pagewire::format_bytes_short(5ULL << 40), "5.0T");
}

TEST(Units, CountedNounsAgree) {
    EXPECT_EQ(pagewire::counted(1, "syscall"), "1 syscall");
    EXPECT_EQ(pagewire::counted(0, "syscall"), "0 syscalls");
    EXPECT_EQ(pagewire::counted(2, "file"), "2 files");
    EXPECT_EQ(pagewire::counted(1, "entry", "entries"), "1 entry");
    EXPECT_EQ(pagewire::counted(3, "entry", "entries"), "3 entries");
}
