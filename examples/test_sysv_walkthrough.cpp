// Runs examples/sysv_walkthrough as a separate process and checks the steps
// seed 003 describes: attach counts 1 -> 2 (reader) -> 1 -> 0, the reader sees
// the writer's text, the last pid is the reader's, and the segment is gone.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string run_example(int& status) {
    int out[2];
    if (::pipe(out) != 0) return "";
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], STDOUT_FILENO);
        ::close(out[0]);
        ::execl(EXAMPLE_SYSV_WALKTHROUGH, EXAMPLE_SYSV_WALKTHROUGH, static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    ::close(out[0]);
    ::waitpid(pid, &status, 0);
    return text;
}

}  // namespace

TEST(SysvWalkthrough, AttachCountsRiseAndFallAndTheSegmentGoes) {
    int status = 0;
    std::string out = run_example(status);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
    std::vector<std::string> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    ASSERT_EQ(lines.size(), 7u) << out;
    EXPECT_NE(lines[0].find("created  shmid"), std::string::npos) << out;
    EXPECT_NE(lines[0].find("4224 bytes, mode 0600"), std::string::npos)
        << out;  // 4096 + pagewire header
    EXPECT_NE(lines[0].find("attaches 1"), std::string::npos) << out;
    const std::string writer_pid = lines[1].substr(lines[1].rfind(' ') + 1);
    EXPECT_EQ(lines[1], "writer   wrote: hello from pid " + writer_pid);
    EXPECT_NE(lines[2].find("read: hello from pid " + writer_pid), std::string::npos) << out;
    EXPECT_NE(lines[3].find("attaches 2"), std::string::npos) << out;  // writer + reader
    EXPECT_NE(lines[3].find("creator pid " + writer_pid), std::string::npos) << out;
    EXPECT_NE(lines[4].find("attaches 1"), std::string::npos) << out;  // reader detached on exit
    std::string reader_pid = lines[2].substr(std::string("reader   pid ").size());
    reader_pid = reader_pid.substr(0, reader_pid.find(' '));
    EXPECT_NE(lines[4].find("last pid " + reader_pid), std::string::npos) << out;
    EXPECT_NE(lines[5].find("attaches 0"), std::string::npos) << out;
    EXPECT_NE(lines[5].find("last pid " + writer_pid), std::string::npos)
        << out;  // shmdt updates it
    EXPECT_NE(lines[6].find("no System V segment with this shmid"), std::string::npos) << out;
}
