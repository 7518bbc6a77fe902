// Helpers for the page-cache and process-maps tests: scratch directories on a
// disk filesystem (page-cache behaviour on tmpfs is not the real thing),
// files of known data, exact control of which pages are resident, and the
// counts that vmtouch and util-linux fincore report. Running programs and
// the rest of the basics come from ../test_util.hpp.
#pragma once

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "../test_util.hpp"

namespace cachetest {

// The shared basics, under the names the cache tests use.
using testutil::contains;
using testutil::die;
using testutil::line_count;
using testutil::nobody;
using testutil::page_size;
using testutil::RunOptions;
using testutil::RunResult;
using testutil::User;

// How long a program the cache tests run may take: well inside ctest's 60 s
// for a cache test, so a hang fails with the program's output.
inline constexpr std::chrono::milliseconds kRunLimit{20000};

// RunOptions with the cache tests' time limit.
inline RunOptions run_options(std::chrono::milliseconds limit = kRunLimit) {
    RunOptions options;
    options.timeout = limit;
    return options;
}

inline std::uint64_t pages_of(std::uint64_t bytes) {
    return (bytes + page_size() - 1) / page_size();
}

// A fresh directory under /var/tmp (mkdtemp, mode 0700), removed with its
// contents on destruction. Refuses a tmpfs /var/tmp: there every file page
// lives in the page cache until deleted, so eviction could not be tested.
class DiskDir : public testutil::TempDir {
  public:
    DiskDir() : TempDir(disk_template()) {}

    std::string operator/(std::string_view name) const { return file(name); }

  private:
    static std::string disk_template() {
        struct statfs fs {};
        if (::statfs("/var/tmp", &fs) != 0) die("statfs /var/tmp");
        if (fs.f_type == TMPFS_MAGIC) {
            throw std::runtime_error("/var/tmp is tmpfs: page-cache tests need a disk filesystem");
        }
        return "/var/tmp/pagewire-cache-test-XXXXXX";
    }
};

// Deterministic, non-zero-run bytes: page `i` of a file differs from page `j`.
inline void fill_pattern(std::vector<char>& buf, std::uint64_t offset, std::uint32_t seed) {
    std::uint64_t x = (offset / 8 + 1) * 0x9e3779b97f4a7c15ULL ^ seed;
    for (std::size_t i = 0; i < buf.size(); ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = static_cast<char>(x);
    }
}

// Creates (or replaces) a file of `size` bytes of data, written back to disk
// so that all its pages are clean.
inline void make_file(const std::string& path, std::uint64_t size, std::uint32_t seed = 1,
                      mode_t mode = 0644) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) die("open " + path);
    std::vector<char> buf(1 << 20);
    for (std::uint64_t off = 0; off < size; off += buf.size()) {
        fill_pattern(buf, off, seed);
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
        for (std::size_t done = 0; done < n;) {
            ssize_t w = ::pwrite(fd, buf.data() + done, n - done, static_cast<off_t>(off + done));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) die("pwrite " + path);
            done += static_cast<std::size_t>(w);
        }
    }
    if (::fdatasync(fd) != 0) die("fdatasync " + path);
    if (::fchmod(fd, mode) != 0) die("fchmod " + path);  // umask left out of it
    ::close(fd);
}

// Writes the file back and drops all its pages from the page cache (the
// test's own way, independent of pagewire::evict).
inline void drop_pages(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    if (::fdatasync(fd) != 0) die("fdatasync " + path);
    const int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
    if (err != 0) die("posix_fadvise " + path, err);
}

// Reads exactly the given pages with pread on a descriptor advised
// POSIX_FADV_RANDOM: no readahead, so afterwards these pages are resident
// and (after drop_pages) no others.
inline void read_pages(const std::string& path, const std::vector<std::uint64_t>& pages) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    const int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    if (err != 0) die("posix_fadvise RANDOM " + path, err);
    std::vector<char> buf(page_size());
    for (std::uint64_t p : pages) {
        if (::pread(fd, buf.data(), 1, static_cast<off_t>(p * page_size())) < 0)
            die("pread " + path);
    }
    ::close(fd);
}

// Per-page residency seen through mincore, independent of pagewire.
inline std::vector<bool> mincore_map(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    struct stat st {};
    ::fstat(fd, &st);
    const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    std::vector<bool> map;
    if (size != 0) {
        void* addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
        if (addr == MAP_FAILED) die("mmap " + path);
        std::vector<unsigned char> vec(pages_of(size));
        if (::mincore(addr, size, vec.data()) != 0) die("mincore " + path);
        ::munmap(addr, size);
        for (unsigned char v : vec) map.push_back((v & 1) != 0);
    }
    ::close(fd);
    return map;
}

inline std::vector<bool> map_with(std::uint64_t pages, const std::vector<std::uint64_t>& resident) {
    std::vector<bool> map(pages, false);
    for (std::uint64_t p : resident) map.at(p) = true;
    return map;
}

// ---- the peers ---------------------------------------------------------------

// Runs a peer (`name`, then args) and returns its stdout; throws with the
// whole result when it does not exit 0.
inline std::string peer_output(const char* name, std::vector<std::string> args,
                               const std::vector<std::string>& paths) {
    args.insert(args.begin(), name);
    args.insert(args.end(), paths.begin(), paths.end());
    const RunResult r = testutil::run(args, run_options());
    if (r.exit_code() != 0) {
        std::ostringstream os;
        os << name << " failed: " << r;
        throw std::runtime_error(os.str());
    }
    return r.out;
}

// What `vmtouch PATH...` reports: "Resident Pages: a/b ...".
struct VmtouchCount {
    std::uint64_t resident = 0;
    std::uint64_t pages = 0;
};

inline VmtouchCount vmtouch_count(const std::vector<std::string>& paths) {
    const std::string out = peer_output(PAGEWIRE_VMTOUCH, {}, paths);
    const auto pos = out.find("Resident Pages:");
    VmtouchCount c;
    if (pos == std::string::npos ||
        std::sscanf(out.c_str() + pos, "Resident Pages: %lu/%lu", &c.resident, &c.pages) != 2) {
        throw std::runtime_error("no 'Resident Pages: a/b' line in vmtouch's output:\n" + out);
    }
    return c;
}

// Sum of `fincore`'s PAGES column over the files (fincore takes files only).
inline std::uint64_t fincore_pages(const std::vector<std::string>& files) {
    const std::string out =
        peer_output(PAGEWIRE_FINCORE,
                    {"--bytes", "--noheadings", "--raw", "--output", "PAGES,RES,FILE"}, files);
    std::istringstream in(out);
    std::uint64_t total = 0;
    std::size_t lines = 0;
    for (std::string line; std::getline(in, line); ++lines) {
        std::uint64_t pages = 0, res = 0;
        if (std::sscanf(line.c_str(), "%lu %lu", &pages, &res) != 2 || res != pages * page_size()) {
            throw std::runtime_error("unexpected fincore line: " + line);
        }
        total += pages;
    }
    if (lines != files.size()) {
        throw std::runtime_error("fincore printed " + std::to_string(lines) + " lines for " +
                                 std::to_string(files.size()) + " files:\n" + out);
    }
    return total;
}

}  // namespace cachetest
