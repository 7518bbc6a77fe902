// `pagewire cache stat|evict|warm|lock` run as a real process on a real tree
// whose residency the test sets page by page: totals, per-file lines, page
// maps and JSON; vmtouch and fincore report the same counts; symlinks inside
// trees are not followed, hard links count once; unreadable files, missing
// paths, FIFOs and devices are reported and skipped without hanging; a lock
// daemon holds the pages until it is killed.
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/page_cache.hpp>
#include <pagewire/proc_maps.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cache_test_util.hpp"

using cachetest::contains;
using cachetest::DiskDir;
using cachetest::make_file;
using cachetest::RunOptions;
using cachetest::RunResult;
using Json = nlohmann::json;

namespace {

const std::uint64_t kPage = cachetest::page_size();

RunResult cli(std::vector<std::string> args, const RunOptions& options = cachetest::run_options()) {
    return testutil::run_pagewire(std::move(args), options);
}

RunOptions within(std::chrono::milliseconds limit) {
    return cachetest::run_options(limit);
}

// Parses the JSON document a `--json` run printed; fails the test on bad JSON.
Json parse(const RunResult& r) {
    try {
        return Json::parse(r.out);
    } catch (const Json::exception& e) {
        ADD_FAILURE() << "not JSON: " << e.what() << "\n" << r;
        return Json::object();
    }
}

std::uint64_t cached_of(const std::string& path) {
    return pagewire::cache_stat(pagewire::File::open(path)).cached;
}

void read_whole(const std::string& path) {
    std::vector<std::uint64_t> all(cachetest::pages_of(std::filesystem::file_size(path)));
    std::iota(all.begin(), all.end(), 0);
    cachetest::read_pages(path, all);
}

void symlink_or_die(const std::string& target, const std::string& link) {
    if (::symlink(target.c_str(), link.c_str()) != 0) cachetest::die("symlink " + link);
}

// A tree with known residency, plus things beside it the walk must not reach:
//
//   tree/a             100 pages, all cached
//   tree/sub/b         11 pages (10 and a byte), pages 0, 5 and 10 cached
//   tree/sub/deep/c    1 byte, not cached
//   tree/sub/empty     empty
//   tree/sub/a_link    hard link to tree/a: counted once
//   tree/link_file  -> outside        (50 pages, cached: must not be counted)
//   tree/link_dir   -> outside_dir/   (holds x, 20 pages, cached)
//   tree/fifo          a FIFO: skipped, never opened
struct Tree {
    explicit Tree(const DiskDir& dir)
        : root(dir / "tree"),
          a(root + "/a"),
          b(root + "/sub/b"),
          c(root + "/sub/deep/c"),
          empty(root + "/sub/empty"),
          a_link(root + "/sub/a_link"),
          outside(dir / "outside"),
          outside_x(dir / "outside_dir/x"),
          fifo(root + "/fifo") {
        std::filesystem::create_directories(root + "/sub/deep");
        std::filesystem::create_directories(dir / "outside_dir");
        make_file(a, 100 * kPage, 1);
        make_file(b, 10 * kPage + 1, 2);
        make_file(c, 1, 3);
        make_file(empty, 0);
        make_file(outside, 50 * kPage, 4);
        make_file(outside_x, 20 * kPage, 5);
        if (::link(a.c_str(), a_link.c_str()) != 0) cachetest::die("link " + a_link);
        symlink_or_die(outside, root + "/link_file");
        symlink_or_die(dir / "outside_dir", root + "/link_dir");
        if (::mkfifo(fifo.c_str(), 0644) != 0) cachetest::die("mkfifo " + fifo);
        set_residency();
    }

    // a all, b pages 0, 5, 10, c none; the outside files all.
    void set_residency() const {
        for (const auto& f : {a, b, c, outside, outside_x}) cachetest::drop_pages(f);
        read_whole(a);
        cachetest::read_pages(b, b_pages);
        read_whole(outside);
        read_whole(outside_x);
    }

    std::vector<std::string> files() const { return {a, b, c, empty}; }

    std::string root, a, b, c, empty, a_link, outside, outside_x, fifo;
    const std::vector<std::uint64_t> b_pages = {0, 5, 10};
    static constexpr std::uint64_t kFiles = 4;
    static constexpr std::uint64_t kDirectories = 3;  // tree, sub, deep
    static constexpr std::uint64_t kSkipped = 3;      // link_file, link_dir, fifo
    static constexpr std::uint64_t kPages = 100 + 11 + 1;
    static constexpr std::uint64_t kCached = 100 + 3;
};

void expect_totals(const Json& j, std::uint64_t files, std::uint64_t cached, std::uint64_t pages) {
    EXPECT_EQ(j["files"], files) << j.dump(2);
    EXPECT_EQ(j["totals"]["cached"], cached) << j.dump(2);
    EXPECT_EQ(j["totals"]["pages"], pages) << j.dump(2);
}

// The line of `text` that contains `needle` ("" if none); a needle ending
// in '\n' matches at the end of a line only.
std::string line_with(const std::string& text, const std::string& needle) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (contains(line + "\n", needle)) return line;
    }
    return "";
}

}  // namespace

TEST(CacheCli, StatTreeCountsEachRegularFileOnce) {
    DiskDir dir;
    const Tree t(dir);

    const RunResult r = cli({"cache", "stat", "--json", t.root}, within(std::chrono::seconds(10)));
    ASSERT_FALSE(r.timed_out) << "the walk hung (on the FIFO?)\n" << r;
    ASSERT_EQ(r.exit_code(), 0) << r;
    EXPECT_EQ(r.err, "");
    const Json j = parse(r);
    EXPECT_EQ(j["action"], "stat");
    expect_totals(j, Tree::kFiles, Tree::kCached, Tree::kPages);
    EXPECT_EQ(j["directories"], Tree::kDirectories);
    EXPECT_EQ(j["skipped"], Tree::kSkipped);
    EXPECT_EQ(j["errors"], 0);
    EXPECT_EQ(j["totals"]["bytes"], (100 + 10) * kPage + 1 + 1);
    EXPECT_EQ(j["probe"], pagewire::kernel_has_cachestat() ? "cachestat" : "mincore");
    EXPECT_FALSE(j.contains("files_detail")) << "per-file detail only with -v or --map";

    // The peers on the same tree, unchanged in between.
    const cachetest::VmtouchCount v = cachetest::vmtouch_count({t.root});
    EXPECT_EQ(v.resident, Tree::kCached);
    EXPECT_EQ(v.pages, Tree::kPages);
    EXPECT_EQ(cachetest::fincore_pages(t.files()), Tree::kCached);

    // The same totals as text.
    const RunResult text = cli({"cache", "stat", t.root});
    ASSERT_EQ(text.exit_code(), 0) << text;
    EXPECT_TRUE(contains(text.out, "Files: 4\n")) << text;
    EXPECT_TRUE(contains(text.out, "Directories: 3\n")) << text;
    EXPECT_TRUE(contains(text.out, "Skipped: 3\n")) << text;
    EXPECT_TRUE(contains(text.out, "Resident pages: 103/112 ")) << text;
    EXPECT_TRUE(contains(text.out, "92.0%")) << text;

    // Nothing outside the tree was reached through the symlinks: the
    // outside files are still fully cached, and the walk did not add them.
    EXPECT_EQ(cached_of(t.outside), 50u);
}

TEST(CacheCli, VerboseLinesAndPageMaps) {
    DiskDir dir;
    const Tree t(dir);

    const RunResult r = cli({"cache", "stat", "-v", "--map", t.root});
    ASSERT_EQ(r.exit_code(), 0) << r;
    // One line per file: a or its hard link (whichever the walk met first), not both.
    const bool a_first = !line_with(r.out, t.a + "\n").empty();
    const std::string a_line = line_with(r.out, (a_first ? t.a : t.a_link) + "\n");
    EXPECT_FALSE(a_line.empty()) << r;
    EXPECT_TRUE(line_with(r.out, (a_first ? t.a_link : t.a) + "\n").empty()) << "counted twice\n"
                                                                             << r;
    EXPECT_TRUE(contains(a_line, "100.0%")) << a_line;
    EXPECT_TRUE(contains(a_line, "100/100")) << a_line;
    const std::string b_line = line_with(r.out, t.b + "\n");
    EXPECT_TRUE(contains(b_line, "27.3%")) << b_line;
    EXPECT_TRUE(contains(b_line, " 3/11 ")) << b_line;
    EXPECT_TRUE(contains(line_with(r.out, t.c + "\n"), " 0/1 ")) << r;
    EXPECT_FALSE(line_with(r.out, t.empty + "\n").empty()) << r;
    EXPECT_TRUE(line_with(r.out, "outside").empty()) << "a symlink was followed\n" << r;
    // Page maps like vmtouch -v: one column per page when there are few.
    EXPECT_TRUE(contains(r.out, "[O    O    O] 3/11\n")) << r;
    // Named first: `"literal" + <temporary string>` trips a GCC 12 -O3 -Wrestrict false
    // positive (GCC bug 105329).
    const std::string full_map(60, 'O');
    EXPECT_TRUE(contains(r.out, "[" + full_map + "] 100/100\n")) << r;
    EXPECT_TRUE(contains(r.out, "[ ] 0/1\n")) << r;

    // The same as JSON, with exact per-page maps.
    const RunResult jr = cli({"cache", "stat", "--json", "--map", t.root});
    ASSERT_EQ(jr.exit_code(), 0) << jr;
    const Json j = parse(jr);
    ASSERT_TRUE(j.contains("files_detail")) << j.dump(2);
    ASSERT_EQ(j["files_detail"].size(), Tree::kFiles) << j.dump(2);
    for (const Json& f : j["files_detail"]) {
        const std::string path = f["path"];
        if (path == t.b) {
            EXPECT_EQ(f["map"], "10000100001");
            EXPECT_EQ(f["cached"], 3);
            EXPECT_EQ(f["pages"], 11);
            EXPECT_EQ(f["bytes"], 10 * kPage + 1);
        } else if (path == t.a || path == t.a_link) {
            EXPECT_EQ(f["map"], std::string(100, '1'));
        } else if (path == t.c) {
            EXPECT_EQ(f["map"], "0");
        } else {
            EXPECT_EQ(path, t.empty);
            EXPECT_EQ(f["map"], "");
        }
    }
}

TEST(CacheCli, FilesNamedDirectlyAndLinksOnTheCommandLine) {
    DiskDir dir;
    const Tree t(dir);
    // A symlink named on the command line is followed (like vmtouch).
    const RunResult r = cli({"cache", "stat", "--json", t.a, t.root + "/link_file", t.b});
    ASSERT_EQ(r.exit_code(), 0) << r;
    expect_totals(parse(r), 3, 100 + 50 + 3, 100 + 50 + 11);

    // Two names of one file count once.
    const RunResult twice = cli({"cache", "stat", "--json", t.a, t.a_link});
    ASSERT_EQ(twice.exit_code(), 0) << twice;
    expect_totals(parse(twice), 1, 100, 100);
}

TEST(CacheCli, EvictThenWarmThroughTheCommand) {
    DiskDir dir;
    const Tree t(dir);

    const RunResult evicted = cli({"cache", "evict", "--json", t.root});
    ASSERT_EQ(evicted.exit_code(), 0) << evicted;
    const Json e = parse(evicted);
    EXPECT_EQ(e["action"], "evict");
    expect_totals(e, Tree::kFiles, 0, Tree::kPages);

    const RunResult cold = cli({"cache", "stat", t.root});
    ASSERT_EQ(cold.exit_code(), 0) << cold;
    EXPECT_TRUE(contains(cold.out, "Resident pages: 0/112 ")) << cold;
    EXPECT_TRUE(contains(cold.out, " 0.0%")) << cold;
    EXPECT_EQ(cachetest::vmtouch_count({t.root}).resident, 0u);
    EXPECT_EQ(cachetest::fincore_pages(t.files()), 0u);
    // Files reached only through symlinks were left alone.
    EXPECT_EQ(cached_of(t.outside), 50u);
    EXPECT_EQ(cached_of(t.outside_x), 20u);

    const RunResult warmed = cli({"cache", "warm", "--json", t.root});
    ASSERT_EQ(warmed.exit_code(), 0) << warmed;
    expect_totals(parse(warmed), Tree::kFiles, Tree::kPages, Tree::kPages);

    const RunResult hot = cli({"cache", "stat", t.root});
    ASSERT_EQ(hot.exit_code(), 0) << hot;
    EXPECT_TRUE(contains(hot.out, "Resident pages: 112/112 ")) << hot;
    EXPECT_TRUE(contains(hot.out, " 100.0%")) << hot;
    const cachetest::VmtouchCount v = cachetest::vmtouch_count({t.root});
    EXPECT_EQ(v.resident, Tree::kPages);
    EXPECT_EQ(cachetest::fincore_pages(t.files()), Tree::kPages);
}

// Run as an unprivileged user (root reads anything): a file and a directory
// it may not read are reported on stderr and skipped, everything else counts.
// The kernel shows a file's residency only to its owner or to users who may
// write it (vmtouch and fincore then print 100 %): the tree's files are made
// the user's, and one more, readable but not theirs, is counted as hidden.
TEST(CacheCli, UnreadableFilesAreReportedAndSkipped) {
    DiskDir dir;
    const Tree t(dir);
    const std::string secret = t.root + "/sub/secret";
    const std::string closed = t.root + "/closed";
    const std::string theirs = t.root + "/theirs";
    make_file(secret, 7 * kPage, 9, 0000);
    std::filesystem::create_directories(closed);
    make_file(closed + "/inside", 3 * kPage, 10);
    make_file(theirs, 5 * kPage, 11, 0644);
    ::chmod(closed.c_str(), 0000);
    ::chmod(dir.path().c_str(), 0755);  // mkdtemp made it 0700

    RunOptions options = cachetest::run_options();
    std::uint64_t hidden = 0;
    if (::geteuid() == 0) {
        options.as_user = cachetest::nobody();
        if (!options.as_user) GTEST_SKIP() << "running as root and there is no user 'nobody'";
        for (const std::string& f : {t.a, t.b}) {
            ASSERT_EQ(::chown(f.c_str(), options.as_user->uid, options.as_user->gid), 0) << f;
        }
        ::chmod(t.c.c_str(), 0666);  // not theirs, but writable: visible
        hidden = 1;                  // theirs
    }
    const RunResult r = cli({"cache", "stat", "--json", "-v", t.root}, options);
    ::chmod(closed.c_str(), 0755);  // so the directory can be removed afterwards by anyone
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_TRUE(contains(r.err, "pagewire: cache stat " + secret + ": Permission denied\n")) << r;
    EXPECT_TRUE(contains(r.err, "pagewire: cache stat " + closed + ": Permission denied\n")) << r;
    EXPECT_FALSE(contains(r.err, theirs)) << "a hidden file is not an error\n" << r;
    const Json j = parse(r);
    // The walk went on: the readable files, from the same fresh residency.
    expect_totals(j, Tree::kFiles + 1 - hidden, Tree::kCached + 5 * (1 - hidden),
                  Tree::kPages + 5 * (1 - hidden));
    EXPECT_EQ(j["errors"], 2);
    EXPECT_EQ(j["hidden"], hidden);
    if (hidden != 0) {
        bool listed = false;
        for (const Json& f : j["files_detail"])
            listed = listed || (f["path"] == theirs && f["hidden"] == true);
        EXPECT_TRUE(listed) << j.dump(2);

        // Hidden files alone are not a failure; the text says why they are missing.
        const RunResult only = cli({"cache", "stat", theirs}, options);
        EXPECT_EQ(only.exit_code(), 0) << only;
        EXPECT_TRUE(contains(only.out, "Hidden: 1 (the kernel shows page-cache residency only"))
            << only;
        EXPECT_TRUE(contains(only.out, "Resident pages: 0/0 ")) << only;
        // What vmtouch says about the same file for the same user: all
        // resident, though none is (the case pagewire refuses to report).
        cachetest::drop_pages(theirs);
        const RunResult peer = testutil::run({PAGEWIRE_VMTOUCH, theirs}, options);
        EXPECT_TRUE(contains(peer.out, "Resident Pages: 5/5 ")) << peer;
        EXPECT_EQ(cached_of(theirs), 0u);
    }
}

TEST(CacheCli, MissingPathIsReportedAndTheRestCounted) {
    DiskDir dir;
    const Tree t(dir);
    const std::string missing = dir / "no-such-file";
    const RunResult r = cli({"cache", "stat", "--json", missing, t.a});
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_TRUE(
        contains(r.err, "pagewire: cache stat " + missing + ": No such file or directory\n"))
        << r;
    // Every stderr line is one whole message.
    std::istringstream lines(r.err);
    for (std::string line; std::getline(lines, line);)
        EXPECT_EQ(line.rfind("pagewire: ", 0), 0u) << line;
    expect_totals(parse(r), 1, 100, 100);

    const RunResult evict = cli({"cache", "evict", missing});
    EXPECT_EQ(evict.exit_code(), 1) << evict;
    EXPECT_TRUE(contains(evict.err, missing + ": No such file or directory")) << evict;
}

// Opening a FIFO for reading blocks until a writer comes; the walk must not.
TEST(CacheCli, FifoAndDeviceAmongThePathsDoNotHang) {
    DiskDir dir;
    const Tree t(dir);
    for (const char* action : {"stat", "evict", "warm"}) {
        const RunResult r = cli({"cache", action, "--json", t.fifo, "/dev/null", t.a},
                                within(std::chrono::seconds(10)));
        ASSERT_FALSE(r.timed_out) << action << " hung\n" << r;
        EXPECT_EQ(r.exit_code(), 1) << r;
        EXPECT_TRUE(contains(r.err, t.fifo + ": not a regular file or directory\n")) << r;
        EXPECT_TRUE(contains(r.err, "/dev/null: not a regular file or directory\n")) << r;
        const Json j = parse(r);
        EXPECT_EQ(j["files"], 1) << action;
        EXPECT_EQ(j["errors"], 2) << action;
    }
}

TEST(CacheCli, DirtyPagesShownAndWrittenOnRequest) {
    if (!pagewire::kernel_has_cachestat()) {
        GTEST_SKIP()
            << "the kernel has no cachestat(2) (Linux 6.5+): dirty pages cannot be counted";
    }
    DiskDir dir;
    const std::string path = dir / "data";
    make_file(path, 32 * kPage);
    cachetest::drop_pages(path);
    read_whole(path);  // single-page folios: dirtiness is counted per page
    {
        pagewire::File f = pagewire::File::open(path, pagewire::OpenMode::ReadWrite);
        const std::string bytes = "dirty";
        ASSERT_EQ(::pwrite(f.fd(), bytes.data(), bytes.size(), 0),
                  static_cast<ssize_t>(bytes.size()));
        ASSERT_EQ(::pwrite(f.fd(), bytes.data(), bytes.size(), 9 * kPage),
                  static_cast<ssize_t>(bytes.size()));
    }
    const RunResult stat = cli({"cache", "stat", "--json", path});
    ASSERT_EQ(stat.exit_code(), 0) << stat;
    const Json s = parse(stat);
    EXPECT_EQ(s["totals"]["cached"], 32);
    EXPECT_GT(s["totals"]["dirty"].get<std::uint64_t>(), 0u) << s.dump(2);
    EXPECT_LE(s["totals"]["dirty"].get<std::uint64_t>(), 2u) << s.dump(2);
    const RunResult text = cli({"cache", "stat", path});
    EXPECT_TRUE(contains(text.out, "Dirty pages: ")) << text;

    const RunResult evict = cli({"cache", "evict", "--write-dirty", "--json", path});
    ASSERT_EQ(evict.exit_code(), 0) << evict;
    const Json e = parse(evict);
    EXPECT_EQ(e["totals"]["cached"], 0) << e.dump(2);
    EXPECT_EQ(e["totals"]["dirty"], 0) << e.dump(2);
}

// `cache lock --daemon` returns at once; the daemon it leaves holds the pages
// (an eviction does not drop them) until it is killed.
TEST(CacheCli, LockDaemonHoldsPagesUntilKilled) {
    DiskDir dir;
    const Tree t(dir);
    cachetest::drop_pages(t.a);

    const RunResult r = cli({"cache", "lock", "--daemon", t.a}, within(std::chrono::seconds(10)));
    ASSERT_FALSE(r.timed_out) << r;
    ASSERT_EQ(r.exit_code(), 0) << r;
    std::smatch m;
    ASSERT_TRUE(
        std::regex_search(r.out, m, std::regex(R"(cache lock daemon (\d+) holds the pages)")))
        << r;
    const pid_t daemon = static_cast<pid_t>(std::stol(m[1]));
    // Whatever happens below, the daemon does not outlive the test.
    struct Killer {
        pid_t pid;
        ~Killer() { ::kill(pid, SIGKILL); }
    } killer{daemon};
    EXPECT_TRUE(contains(r.out, "Resident pages: 100/100 ")) << r;

    auto daemon_maps_file = [&] {
        try {
            for (const pagewire::Vma& v : pagewire::read_smaps(daemon)) {
                if (v.path == t.a) return v.has_flag("lo") ? 2 : 1;
            }
        } catch (const pagewire::Error&) {  // gone
        }
        return 0;
    };
    EXPECT_EQ(daemon_maps_file(), 2) << "the daemon has no locked mapping of " << t.a;

    pagewire::File f = pagewire::File::open(t.a);
    EXPECT_EQ(pagewire::evict(f, true).cached, 100u) << "the locked pages were evicted";

    ASSERT_EQ(::kill(daemon, SIGTERM), 0);
    // Not our child (it was detached), so it cannot be waited for: wait
    // until it is gone or a zombie. Its smaps looks empty earlier, as soon
    // as it starts exiting, while its memory is still being torn down.
    auto ended = [&] {
        std::ifstream in("/proc/" + std::to_string(daemon) + "/stat");
        std::string stat;
        if (!std::getline(in, stat)) return true;
        const auto paren = stat.rfind(')');
        return paren != std::string::npos && paren + 2 < stat.size() &&
               (stat[paren + 2] == 'Z' || stat[paren + 2] == 'X');
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!ended() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(ended()) << "the daemon did not end on SIGTERM";
    EXPECT_EQ(daemon_maps_file(), 0);
    // Unlocked pages can sit for a moment in per-CPU batches that hold a
    // reference; DONTNEED skips those, so give them a moment.
    std::uint64_t cached = pagewire::evict(f, true).cached;
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (cached != 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        cached = pagewire::evict(f, true).cached;
    }
    EXPECT_EQ(cached, 0u) << "pages still held after the daemon ended";
}

// Without --daemon the command holds the locks itself until a signal.
TEST(CacheCli, LockInForegroundUntilInterrupted) {
    DiskDir dir;
    const Tree t(dir);
    cachetest::drop_pages(t.a);

    int out[2];
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::dup2(out[1], STDOUT_FILENO);
        ::execl(PAGEWIRE_CLI, PAGEWIRE_CLI, "cache", "lock", t.a.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    // Read until the command says it holds the pages.
    std::string text;
    char buf[4096];
    pollfd pfd{out[0], POLLIN, 0};
    while (!contains(text, "holding the pages") && ::poll(&pfd, 1, 10000) > 0) {
        const ssize_t n = ::read(out[0], buf, sizeof buf);
        if (n <= 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    EXPECT_TRUE(contains(text, "holding the pages")) << text;
    pagewire::File f = pagewire::File::open(t.a);
    EXPECT_EQ(pagewire::evict(f, true).cached, 100u);

    ::kill(pid, SIGINT);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(out[0]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    EXPECT_EQ(pagewire::evict(f, true).cached, 0u);
}
