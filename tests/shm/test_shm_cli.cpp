// `pagewire shm` run as a real process: round trips per backend, one-line
// errors with exit 1 (usage errors exit 2), `ls` compared row by row with
// `ipcs -m`, `rm` compared with `ipcrm`, and `gc` removing only stale
// pagewire segments (never another program's, never a live or attached one).
#include <nlohmann/json.hpp>
#include <pagewire/error.hpp>
#include <pagewire/segment.hpp>
#include <sstream>
#include <thread>

#include "shm_test_util.hpp"

using namespace pagewire;
using shmtest::Child;
using shmtest::Cleanup;
using testutil::contains;
using testutil::RunResult;

namespace {

RunResult cli(std::vector<std::string> args, std::string_view input = {}) {
    return testutil::run_pagewire(std::move(args), input);
}

void expect_one_line_failure(const RunResult& r, std::string_view prefix) {
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_EQ(r.out, "") << r;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
    EXPECT_EQ(r.err.rfind(prefix, 0), 0u) << r;
}

struct IpcsRow {
    std::string key, shmid, owner, perms, bytes, nattch, status;
};

// `ipcs -m` rows (after its three header lines), keyed by shmid.
std::map<std::string, IpcsRow> ipcs_rows() {
    RunResult r = testutil::run({PAGEWIRE_IPCS, "-m"});
    EXPECT_EQ(r.exit_code(), 0) << r;
    std::map<std::string, IpcsRow> rows;
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("0x", 0) != 0) continue;
        std::istringstream f(line);
        IpcsRow row;
        f >> row.key >> row.shmid >> row.owner >> row.perms >> row.bytes >> row.nattch;
        std::getline(f, row.status);
        row.status.erase(0, row.status.find_first_not_of(' '));
        row.status.erase(row.status.find_last_not_of(' ') + 1);
        rows[row.shmid] = row;
    }
    return rows;
}

nlohmann::json ls_json() {
    RunResult r = cli({"shm", "ls", "--json"});
    EXPECT_EQ(r.exit_code(), 0) << r;
    return nlohmann::json::parse(r.out);
}

std::string to_key_text(const std::string& key) {  // "0x5e001234" -> ipcs' "0x5e001234"
    return key;
}

}  // namespace

TEST(ShmCli, RoundTripOnEveryBackend) {
    testutil::TempDir dir;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"posix", shmtest::unique_posix_name()},
        {"sysv", shmtest::unique_sysv_key()},
        {"file", dir.file("segment")}};
    for (const auto& [backend, name] : cases) {
        Cleanup cleanup(backend == "posix"  ? Backend::Posix
                        : backend == "sysv" ? Backend::SystemV
                                            : Backend::File,
                        name);
        RunResult r = cli({"shm", "create", name, "--size", "1K", "--backend", backend});
        ASSERT_EQ(r.exit_code(), 0) << r;
        EXPECT_TRUE(contains(r.out, "created " + backend)) << r;
        EXPECT_TRUE(
            contains(r.out, ": 1.0 KiB of data (1152 bytes in all with the header), mode 0600"))
            << r;
        r = cli({"shm", "write", name, "100", "-b", backend}, "payload through the segment");
        EXPECT_EQ(r.exit_code(), 0) << r;
        EXPECT_TRUE(contains(r.out, "wrote 27 bytes")) << r;
        r = cli({"shm", "read", name, "100", "27", "-b", backend});
        EXPECT_EQ(r.out, "payload through the segment") << r;
        r = cli({"shm", "read", name, "1020", "-b", backend});  // clamped at the end
        EXPECT_EQ(r.out.size(), 4u) << r;
        r = cli({"shm", "stat", name, "-b", backend, "--json"});
        ASSERT_EQ(r.exit_code(), 0) << r;
        auto j = nlohmann::json::parse(r.out);
        EXPECT_EQ(j["bytes"], 1152);
        EXPECT_EQ(j["data_bytes"], 1024);
        EXPECT_EQ(j["mode"], "0600");
        EXPECT_EQ(j["pagewire"], true);
        EXPECT_EQ(j["creator_alive"], "no");  // `pagewire shm create` has exited
        r = cli({"shm", "rm", name, "-b", backend});
        EXPECT_EQ(r.exit_code(), 0) << r;
        expect_one_line_failure(cli({"shm", "stat", name, "-b", backend}), "pagewire: stat ");
    }
}

TEST(ShmCli, BadInputGivesOneLineErrors) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    expect_one_line_failure(cli({"shm", "read", name}),
                            "pagewire: open " + name + ": No such file or directory");
    expect_one_line_failure(cli({"shm", "create", "a/b", "--size", "1"}),
                            "pagewire: create a/b: a POSIX segment name");
    expect_one_line_failure(cli({"shm", "stat", "0x7fffff01", "-b", "sysv"}),
                            "pagewire: stat 0x7fffff01: no System V segment with key 0x7fffff01");
    ASSERT_EQ(cli({"shm", "create", name, "--size", "16"}).exit_code(), 0);
    expect_one_line_failure(cli({"shm", "create", name, "--size", "16"}),
                            "pagewire: create " + name + ": File exists");
    expect_one_line_failure(cli({"shm", "write", name, "10"}, "this is more than six bytes"),
                            "pagewire: write " + name + ": 27 bytes at offset 10 do not fit");
    expect_one_line_failure(cli({"shm", "read", name, "17"}),
                            "pagewire: read " + name + ": offset 17 is past the end");
    // Usage errors: exit 2.
    EXPECT_EQ(cli({"shm", "create", "x", "--size", "lots"}).exit_code(), 2);
    EXPECT_EQ(cli({"shm", "create", "x"}).exit_code(), 2);
    EXPECT_EQ(cli({"shm", "create", "x", "--size", "1", "--mode", "999"}).exit_code(), 2);
    EXPECT_EQ(cli({"shm", "ls", "--backend", "sysv"}).exit_code(), 2);
    EXPECT_EQ(cli({"shm", "stat", "x", "--backend", "memfd"}).exit_code(), 2);
    EXPECT_EQ(cli({"shm"}).exit_code(), 2);
    // A foreign segment is refused unless --raw.
    const std::string foreign = shmtest::unique_posix_name();
    Cleanup c2(Backend::Posix, foreign);
    ASSERT_EQ(cli({"shm", "create", foreign, "--size", "300", "--raw"}).exit_code(), 0);
    expect_one_line_failure(cli({"shm", "read", foreign}),
                            "pagewire: open " + foreign + ": not a pagewire segment");
    EXPECT_EQ(cli({"shm", "read", foreign, "--raw"}).out, std::string(300, '\0'));
}

TEST(ShmCli, NobodyGetsPermissionDenied) {
    const std::string name = shmtest::unique_posix_name();
    Cleanup cleanup(Backend::Posix, name);
    ASSERT_EQ(cli({"shm", "create", name, "--size", "64"}).exit_code(), 0);
    // The pagewire binary itself as `nobody` (util-linux setpriv drops root, then execs it).
    RunResult as_nobody = testutil::run({"setpriv", "--reuid=65534", "--regid=65534",
                                         "--clear-groups", PAGEWIRE_CLI, "shm", "read", name});
    expect_one_line_failure(as_nobody, "pagewire: open " + name + ": Permission denied");
    // And the library in a helper that dropped privileges itself.
    auto r = testutil::run({shmtest::helper(), "--as-nobody", "read", "posix", name, "0", "1"});
    EXPECT_EQ(r.out, "error: open " + name + ": Permission denied [errno 13]\n") << r;
}

TEST(ShmCli, LsShowsWhatIpcsShows) {
    const std::string mine = shmtest::unique_sysv_key();
    Cleanup c1(Backend::SystemV, mine);
    ASSERT_EQ(
        cli({"shm", "create", mine, "-b", "sysv", "--size", "5000", "--mode", "0640"}).exit_code(),
        0);
    Child holder({shmtest::helper(), "hold", "sysv", mine});
    ASSERT_EQ(holder.read_line(), "holding");
    RunResult mk = testutil::run({PAGEWIRE_IPCMK, "-M", "777", "-p", "0604"});
    ASSERT_EQ(mk.exit_code(), 0) << mk;
    const std::string foreign_id =
        mk.out.substr(mk.out.find(':') + 2, mk.out.find('\n') - mk.out.find(':') - 2);
    Cleanup c2(Backend::SystemV, "id:" + foreign_id);

    auto rows = ipcs_rows();
    auto listed = ls_json();
    ASSERT_GE(rows.size(), 2u);
    std::size_t matched = 0;
    for (const auto& [shmid, row] : rows) {
        const nlohmann::json* found = nullptr;
        for (const auto& j : listed)
            if (j["backend"] == "sysv" && std::to_string(j["shmid"].get<int>()) == shmid)
                found = &j;
        ASSERT_NE(found, nullptr) << "ipcs shmid " << shmid << " missing from pagewire shm ls";
        EXPECT_EQ((*found)["key"], to_key_text(row.key));
        EXPECT_EQ((*found)["owner"], row.owner);
        EXPECT_EQ((*found)["mode"].get<std::string>(), "0" + row.perms);
        EXPECT_EQ(std::to_string((*found)["bytes"].get<std::uint64_t>()), row.bytes);
        EXPECT_EQ(std::to_string((*found)["attach_count"].get<long>()), row.nattch);
        EXPECT_EQ((*found)["marked_for_removal"].get<bool>(), contains(row.status, "dest"));
        ++matched;
    }
    EXPECT_EQ(matched, rows.size());
    EXPECT_EQ(rows.at(foreign_id).bytes, "777");
    EXPECT_EQ(rows.at(foreign_id).perms, "604");
    // The table form carries the same row.
    RunResult table = cli({"shm", "ls"});
    EXPECT_TRUE(contains(table.out, mine)) << table;
    EXPECT_TRUE(contains(table.out, "0640")) << table;
}

TEST(ShmCli, RmDoesWhatIpcrmDoes) {
    // Two attached segments: one removed by ipcrm -M, one by pagewire shm rm.
    const std::string a = shmtest::unique_sysv_key(), b = shmtest::unique_sysv_key();
    Cleanup ca(Backend::SystemV, a), cb(Backend::SystemV, b);
    ASSERT_EQ(cli({"shm", "create", a, "-b", "sysv", "--size", "100"}).exit_code(), 0);
    ASSERT_EQ(cli({"shm", "create", b, "-b", "sysv", "--size", "100"}).exit_code(), 0);
    const int id_a = Segment::stat(Backend::SystemV, a).id,
              id_b = Segment::stat(Backend::SystemV, b).id;
    Child ha({shmtest::helper(), "hold", "sysv", a}), hb({shmtest::helper(), "hold", "sysv", b});
    ASSERT_EQ(ha.read_line(), "holding");
    ASSERT_EQ(hb.read_line(), "holding");
    ASSERT_EQ(testutil::run({PAGEWIRE_IPCRM, "-M", a}).exit_code(), 0);
    RunResult r = cli({"shm", "rm", b, "-b", "sysv"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    auto rows = ipcs_rows();
    const IpcsRow& ra = rows.at(std::to_string(id_a));
    const IpcsRow& rb = rows.at(std::to_string(id_b));
    // Both: the key is gone (ipcs shows 0x00000000), the pages stay for the attacher, status dest.
    EXPECT_EQ(ra.key, "0x00000000");
    EXPECT_EQ(rb.key, ra.key);
    EXPECT_EQ(ra.status, "dest");
    EXPECT_EQ(rb.status, ra.status);
    EXPECT_EQ(rb.nattch, ra.nattch);
    // By shmid, like ipcrm -m: after the holders go, both are gone.
    ha.close_stdin();
    hb.close_stdin();
    ha.wait();
    hb.wait();
    rows = ipcs_rows();
    EXPECT_EQ(rows.count(std::to_string(id_a)), 0u);
    EXPECT_EQ(rows.count(std::to_string(id_b)), 0u);
    // Missing: both fail with exit 1.
    RunResult ipcrm_missing = testutil::run({PAGEWIRE_IPCRM, "-M", a});
    EXPECT_EQ(ipcrm_missing.exit_code(), 1) << ipcrm_missing;
    expect_one_line_failure(cli({"shm", "rm", a, "-b", "sysv"}),
                            "pagewire: remove " + a + ": no System V segment");
    // By shmid.
    const std::string c = shmtest::unique_sysv_key();
    Cleanup cc(Backend::SystemV, c);
    ASSERT_EQ(cli({"shm", "create", c, "-b", "sysv", "--size", "10"}).exit_code(), 0);
    const int id_c = Segment::stat(Backend::SystemV, c).id;
    EXPECT_EQ(cli({"shm", "rm", "id:" + std::to_string(id_c), "-b", "sysv"}).exit_code(), 0);
    EXPECT_EQ(ipcs_rows().count(std::to_string(id_c)), 0u);
}

TEST(ShmCli, GcRemovesOnlyStalePagewireSegments) {
    const std::string stale_posix = shmtest::unique_posix_name(),
                      stale_sysv = shmtest::unique_sysv_key();
    const std::string held = shmtest::unique_posix_name(), live = shmtest::unique_posix_name();
    const std::string foreign_posix = shmtest::unique_posix_name(),
                      foreign_sysv = shmtest::unique_sysv_key();
    Cleanup c1(Backend::Posix, stale_posix), c2(Backend::SystemV, stale_sysv),
        c3(Backend::Posix, held), c4(Backend::Posix, live), c5(Backend::Posix, foreign_posix),
        c6(Backend::SystemV, foreign_sysv);
    // Stale: created by processes that have exited, attached by nobody.
    ASSERT_EQ(cli({"shm", "create", stale_posix, "--size", "10"}).exit_code(), 0);
    ASSERT_EQ(cli({"shm", "create", stale_sysv, "-b", "sysv", "--size", "10"}).exit_code(), 0);
    // Creator dead but mapped by another process: kept.
    ASSERT_EQ(cli({"shm", "create", held, "--size", "10"}).exit_code(), 0);
    Child holder({shmtest::helper(), "hold", "posix", held});
    ASSERT_EQ(holder.read_line(), "holding");
    // Creator alive (this process), nobody maps it: kept.
    { Segment mine = Segment::create(Backend::Posix, live, 10); }
    // Other programs' segments, creators dead: never touched.
    ASSERT_EQ(cli({"shm", "create", foreign_posix, "--size", "500", "--raw"}).exit_code(), 0);
    RunResult mk = testutil::run({PAGEWIRE_IPCMK, "-M", "500"});  // ipcmk: a random key
    ASSERT_EQ(mk.exit_code(), 0) << mk;
    const std::string ipcmk_id =
        mk.out.substr(mk.out.find(':') + 2, mk.out.find('\n') - mk.out.find(':') - 2);
    Cleanup c7(Backend::SystemV, "id:" + ipcmk_id);
    ASSERT_EQ(
        cli({"shm", "create", foreign_sysv, "-b", "sysv", "--size", "500", "--raw"}).exit_code(),
        0);

    RunResult dry = cli({"shm", "gc", "--dry-run"});
    ASSERT_EQ(dry.exit_code(), 0) << dry;
    EXPECT_TRUE(contains(dry.out, "would remove posix " + stale_posix)) << dry;
    EXPECT_TRUE(contains(dry.out, "would remove sysv " + stale_sysv)) << dry;
    EXPECT_NO_THROW(Segment::stat(Backend::Posix, stale_posix));  // dry run: still there

    RunResult gc = cli({"shm", "gc"});
    ASSERT_EQ(gc.exit_code(), 0) << gc;
    EXPECT_TRUE(contains(gc.out, "removed posix " + stale_posix)) << gc;
    EXPECT_TRUE(contains(gc.out, "removed sysv " + stale_sysv)) << gc;
    EXPECT_THROW(Segment::stat(Backend::Posix, stale_posix), Error);
    EXPECT_THROW(Segment::stat(Backend::SystemV, stale_sysv), Error);
    for (const auto& kept : {held, live, foreign_posix}) {
        EXPECT_NO_THROW(Segment::stat(Backend::Posix, kept)) << kept;
        EXPECT_FALSE(contains(gc.out, kept)) << gc;
    }
    EXPECT_NO_THROW(Segment::stat(Backend::SystemV, foreign_sysv));
    // The ipcmk segment is still there too (gc never removes other programs' segments).
    EXPECT_EQ(ipcs_rows().count(ipcmk_id), 1u);
}

// ------------------------------------------------------------------ resource limits (issue 12)

// `ulimit -f` set before exec, SIGXFSZ at its default (kill): every create
// command is one line naming "File too large", exit 1, and leaves no segment.
TEST(ShmCli, CreateUnderFileSizeLimitFailsCleanly) {
    testutil::TempDir dir;
    const std::string posix = shmtest::unique_posix_name();
    const std::string chan = shmtest::unique_posix_name();
    const std::string file = dir.file("seg");
    Cleanup c1(Backend::Posix, posix), c2(Backend::Posix, chan);
    struct Case {
        std::vector<std::string> args;
        std::string left;  // what must not exist afterwards
    };
    const std::vector<Case> cases = {
        {{"shm", "create", posix, "--size", "1M"}, "/dev/shm" + posix},
        {{"shm", "create", "-b", "file", file, "--size", "1M"}, file},
        {{"chan", "create", chan.substr(1), "--capacity", "64", "--max-message", "64K"},
         "/dev/shm" + chan},
    };
    testutil::RunOptions options;
    options.limits = {{RLIMIT_FSIZE, 64 * 1024}};
    for (const Case& c : cases) {
        SCOPED_TRACE(c.args[0] + " " + c.args[1]);
        RunResult r = testutil::run_pagewire(c.args, options);
        expect_one_line_failure(r, "pagewire: create ");
        EXPECT_TRUE(contains(r.err, "File too large")) << r;
        EXPECT_FALSE(std::filesystem::exists(c.left)) << c.left << " was left behind";
    }
}

// A file segment on a full filesystem: create refuses what does not fit
// (ENOSPC, nothing left), and writing a segment that was created never
// raises SIGBUS.
TEST(ShmCli, FullFilesystemIsRefusedAtCreate) {
    testutil::SmallTmpfs fs("1m");
    if (!fs.mounted()) GTEST_SKIP() << "needs a small tmpfs: " << fs.why();
    const std::string a = fs.file("a"), b = fs.file("b");
    RunResult r = cli({"shm", "create", "-b", "file", a, "--size", "600K"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    r = cli({"shm", "create", "-b", "file", b, "--size", "600K"});
    expect_one_line_failure(r, "pagewire: create " + b + ": cannot reserve");
    EXPECT_TRUE(contains(r.err, "No space left on device")) << r;
    EXPECT_FALSE(std::filesystem::exists(b));
    const std::string data = testutil::random_bytes(600 * 1024, 4);
    r = cli({"shm", "write", "-b", "file", a}, data);
    EXPECT_EQ(r.exit_code(), 0) << r;
    r = cli({"shm", "read", "-b", "file", a});
    EXPECT_EQ(r.exit_code(), 0) << r;
    EXPECT_TRUE(r.out == data);
}

// `shm read SEG | slow reader` (and `cat FILE | slow reader`) with the
// segment truncated meanwhile: write(2) from the mapping fails with EFAULT,
// and the message names the segment, not stdout.
TEST(ShmCli, ReadOfASegmentTruncatedMeanwhileNamesTheSegment) {
    testutil::TempDir dir;
    const std::string seg = dir.file("seg");
    const std::string plain = dir.file("plain");
    RunResult r = cli({"shm", "create", "-b", "file", seg, "--size", "8M"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    testutil::write_file(plain, testutil::random_bytes(8 << 20, 6));
    for (const auto& [path, command] :
         {std::pair{seg, std::string("shm read -b file")}, std::pair{plain, std::string("cat")}}) {
        SCOPED_TRACE(command);
        // The reader waits until the file is truncated (the pipe is full and
        // pagewire blocked in write by then), then drains the pipe.
        const std::string done = dir.file("truncated");
        std::filesystem::remove(done);
        const std::string script =
            "{ \"$0\" " + command +
            " \"$1\"; echo \"exit $?\" >&2; } | "
            "{ while [ ! -e \"$2\" ]; do sleep 0.01; done; cat >/dev/null; }";
        std::thread truncator([&, path = path] {
            // Once pagewire maps the file, give it a moment to fill the pipe.
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
            while (Segment::stat(Backend::File, path).attach_count < 1 &&
                   std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            if (::truncate(path.c_str(), 0) == 0) testutil::write_file(done, "");
        });
        r = testutil::run({"/bin/sh", "-c", script, PAGEWIRE_CLI, path, done});
        truncator.join();
        EXPECT_EQ(r.err, "pagewire: read " + path +
                             ": truncated while it was being read (a mapped page is no longer "
                             "backed)\nexit 1\n")
            << r;
    }
}

// The table's columns are as wide as their widest cell, sizes are human, and
// STATUS says what `gc` would do with a segment.
TEST(ShmCli, LsTableAlignsAndSaysWhatGcWouldRemove) {
    const std::string name =
        shmtest::unique_posix_name() + "-with-a-rather-long-name-for-a-segment";
    Cleanup cleanup(Backend::Posix, name);
    ASSERT_EQ(cli({"shm", "create", name, "--size", "3G"}).exit_code(), 0);
    RunResult r = cli({"shm", "ls"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    std::vector<std::string> lines;
    for (std::size_t at = 0; at < r.out.size(); at = r.out.find('\n', at) + 1)
        lines.push_back(r.out.substr(at, r.out.find('\n', at) - at));
    ASSERT_GE(lines.size(), 2u) << r;
    const std::string& header = lines[0];
    const std::size_t size_end = header.find("SIZE") + 4, status_at = header.find("STATUS");
    ASSERT_NE(status_at, std::string::npos) << r;
    bool found = false;
    for (const std::string& line : lines) {
        // Right-aligned SIZE ends where its header ends; STATUS starts where its header does.
        EXPECT_EQ(line[size_end], ' ') << line;
        EXPECT_NE(line[size_end - 1], ' ') << line;
        EXPECT_NE(line[status_at], ' ') << line;
        if (line.find(name + " ") == std::string::npos) continue;
        found = true;
        EXPECT_TRUE(contains(line, " 3.0 GiB ")) << line;
        // Its creator (that `shm create`) is gone and nobody maps it: stale.
        EXPECT_EQ(line.substr(status_at), "stale") << line;
    }
    EXPECT_TRUE(found) << r;
    // Held by a live process, it is not stale.
    Child holder({shmtest::helper(), "hold", "posix", name});
    ASSERT_EQ(holder.read_line(), "holding");
    RunResult held = cli({"shm", "ls"});
    const std::size_t at = held.out.find(name + " ");
    ASSERT_NE(at, std::string::npos) << held;
    const std::string line = held.out.substr(at, held.out.find('\n', at) - at);
    EXPECT_FALSE(contains(line, "stale")) << line;
}
