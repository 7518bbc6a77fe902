// README.md's tour, replayed: every `$ ` command of every ```console block
// of "A tour of the command" runs in a scratch directory with the built
// pagewire first in PATH, and what it prints (stdout and stderr, in order)
// must be the README's lines, once what differs from run to run (times,
// rates, PIDs, ports, dates, timestamps, checksums over them) is masked.
// Blocks run in order in one directory, each in its own bash; a block that
// starts background jobs is compared as a sorted list of lines, because
// its jobs interleave their output with the foreground's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace {

const std::string kCli = PAGEWIRE_CLI;
const std::string kReadme = PAGEWIRE_README;

struct Block {
    int line = 0;  // of the opening fence in README.md
    std::vector<std::string> commands;
    std::vector<std::string> expected;
    bool background = false;
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

// The console blocks between "## A tour of the command" and the next "## ".
std::vector<Block> tour_blocks(const std::string& readme) {
    std::vector<Block> blocks;
    bool in_tour = false, in_block = false;
    int n = 0;
    for (const std::string& l : lines_of(readme)) {
        ++n;
        if (l.rfind("## ", 0) == 0) {
            in_tour = l == "## A tour of the command";
            continue;
        }
        if (!in_tour) continue;
        if (!in_block && l == "```console") {
            in_block = true;
            blocks.push_back({n, {}, {}, false});
        } else if (in_block && l == "```") {
            in_block = false;
        } else if (in_block && l.rfind("$ ", 0) == 0) {
            blocks.back().commands.push_back(l.substr(2));
            if (std::regex_search(l, std::regex(R"(&(\s|$))"))) blocks.back().background = true;
        } else if (in_block) {
            blocks.back().expected.push_back(l);
        }
    }
    return blocks;
}

// Whatever differs between two honest runs, replaced by a placeholder.
std::string mask(std::string l) {
    static const std::vector<std::pair<std::regex, std::string>> rules = {
        {std::regex(R"([A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT)"), "<date>"},
        {std::regex(R"(ETag: "[^"]*")"), "ETag: <etag>"},
        {std::regex(R"(\b\d{13}\b)"), "<ms>"},  // timestamps in milliseconds
        {std::regex(R"(crc: \d+)"), "crc: <crc>"},
        {std::regex(R"(\bid [0-9a-f]{32}\b)"), "id <uuid>"},  // a Kafka topic id, random
        {std::regex(R"(\b(127\.0\.0\.1|localhost):\d+)"), "$1:<port>"},
        {std::regex(R"(\b(pid|shmid|PID) \d+)"), "$1 <n>"},
        {std::regex(R"(127\.0\.0\.1)"), "<loopback>"},  // not a decimal number
        {std::regex(R"(\d+\.\d+)"), "<x>"},             // seconds, rates, percentages, sizes
        {std::regex(R"(<loopback>)"), "127.0.0.1"},
        {std::regex(R"([ \t\r]+$)"), ""},  // and HTTP's CR
    };
    for (const auto& [re, with] : rules) l = std::regex_replace(l, re, with);
    return l;
}

// Output of commands that report the machine's state (the page cache,
// process tables, live segments) says the same thing with other numbers:
// every digit is masked there. So for what a background server says when
// stopped (its summary: how many requests the clients' timing made).
bool machine_state(const std::string& command) {
    static const std::regex re(
        R"(^pagewire (maps|cache stat|shm ls|shm gc|chan stat|chan ls|log stat)|--stats|shm create \S+ --backend sysv|^kill %)");
    return std::regex_search(command, re);
}

// Columns widen with their numbers: runs of blanks count as one there.
std::string mask_digits(const std::string& l) {
    std::string m = mask(l);
    // A size near a unit's edge prints as "1006 bytes" in one run, "1.0 KiB" in the next.
    m = std::regex_replace(m, std::regex(R"(\b\d+ bytes\b|<x> [KMGT]iB\b)"), "<size>");
    m = std::regex_replace(m, std::regex(R"(\b[0-9a-f]{8,16}\b)"), "<address>");
    m = std::regex_replace(m, std::regex(R"(\b[0-9a-f]{2}:[0-9a-f]{2}\b)"), "<device>");
    m = std::regex_replace(m, std::regex(R"(\[[Oo .]*\])"), "[<resident pages>]");
    m = std::regex_replace(m, std::regex(R"(\d+)"), "<n>");
    // The broker's requests by API, most frequent first: ties and counts order it per run.
    m = std::regex_replace(m, std::regex(R"(\([A-Z][A-Za-z]+ <n>(, [A-Z][A-Za-z]+ <n>)*\))"),
                           "(<requests by API>)");
    return std::regex_replace(m, std::regex(R"([ \t]+)"), " ");
}

// Expected lines, masked: a line belongs to the command above it.
std::vector<std::string> masked_expected(const std::string& readme_block_text) {
    std::vector<std::string> out;
    bool digits = false;
    for (const std::string& l : lines_of(readme_block_text)) {
        if (l.rfind("$ ", 0) == 0) {
            digits = machine_state(l.substr(2));
            continue;
        }
        out.push_back(digits ? mask_digits(l) : mask(l));
    }
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& l : v) s += l + "\n";
    return s;
}

TEST(Readme, TourReplaysAsWritten) {
    if (::geteuid() != 0) GTEST_SKIP() << "the tour shows root's view (OWNER root, mode 0600)";
    if (testutil::run({"sh", "-c", "command -v curl"}).exit_code() != 0)
        GTEST_SKIP() << "curl is not installed (the serve example uses it)";
    const std::string readme = testutil::read_file(kReadme);
    const std::vector<Block> blocks = tour_blocks(readme);
    ASSERT_GE(blocks.size(), 8u) << "the tour's console blocks were not found in " << kReadme;
    const std::vector<std::string> readme_lines = lines_of(readme);

    testutil::TempDir dir;
    const std::string bin = kCli.substr(0, kCli.rfind('/'));
    // The tour's names are global (POSIX and System V segments): clear them first and after.
    const std::string cleanup =
        "for n in jobs tiny plain ticks x.bin; do pagewire shm rm $n >/dev/null 2>&1; done; "
        "rm -f /dev/shm/x.bin; pagewire shm rm 0x1234 --backend sysv >/dev/null 2>&1; true\n";
    auto bash = [&](const std::string& script) {
        const std::string path = dir.file(".script");
        testutil::write_file(path, "exec 2>&1\ncd " + dir.path() + "/tour\n" + script);
        testutil::RunOptions o;
        o.extra_env = {"PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"};
        o.timeout = std::chrono::seconds(60);
        return testutil::run({"bash", path}, o);
    };
    ASSERT_EQ(::mkdir(dir.file("tour").c_str(), 0755), 0);
    bash(cleanup);
    for (const Block& b : blocks) {
        SCOPED_TRACE("README.md line " + std::to_string(b.line));
        std::string script, block_text;
        for (std::size_t i = static_cast<std::size_t>(b.line);
             i < readme_lines.size() && readme_lines[i] != "```"; ++i)
            block_text += readme_lines[i] + "\n";
        for (const std::string& c : b.commands) script += c + "\n";
        // Background jobs: time to say what they have to say, then stopped.
        if (b.background) script += "sleep 0.5; kill $(jobs -p) 2>/dev/null; wait\n";
        testutil::RunResult r = bash(script);
        ASSERT_FALSE(r.signaled()) << r;
        // Each line of output belongs to the command that ran last before it;
        // for masking, a block with one machine-state command masks digits
        // in the lines the README gives that command, and so in the output.
        std::vector<std::string> want = masked_expected(block_text);
        std::vector<std::string> got;
        bool any_state = std::any_of(b.commands.begin(), b.commands.end(), machine_state);
        std::vector<std::string> out_lines = lines_of(r.out);
        for (const std::string& l : out_lines) got.push_back(mask(l));
        if (any_state) {
            // Match each README line against the output masked both ways.
            for (std::size_t i = 0; i < got.size(); ++i) {
                std::string digits = mask_digits(out_lines[i]);
                if (std::find(want.begin(), want.end(), digits) != want.end()) got[i] = digits;
            }
        }
        if (b.background) {
            std::sort(want.begin(), want.end());
            std::sort(got.begin(), got.end());
        }
        EXPECT_EQ(join(got), join(want)) << "commands:\n"
                                         << join(b.commands) << "printed:\n"
                                         << r.out;
    }
    bash(cleanup);
}

}  // namespace
