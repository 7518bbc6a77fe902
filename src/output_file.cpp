#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <pagewire/error.hpp>
#include <pagewire/output_file.hpp>

namespace pagewire {
namespace {

// The temporary path the signal handler removes: a fixed array, since the
// handler may only make async-signal-safe calls.
constexpr std::size_t kMaxPathBytes = 4096;
char g_pending[kMaxPathBytes];
volatile sig_atomic_t g_has_pending = 0;
constexpr int kCleanupSignals[] = {SIGINT, SIGTERM, SIGHUP};

void remove_and_reraise(int sig) {
    if (g_has_pending) ::unlink(g_pending);
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

}  // namespace

OutputFile::OutputFile(std::string path, mode_t mode, bool overwrite)
    : path_(std::move(path)), overwrite_(overwrite) {
    struct stat st {};
    if (!overwrite_ && ::lstat(path_.c_str(), &st) == 0) throw_error("open", path_, EEXIST);
    const std::filesystem::path target(path_);
    const std::string dir = target.parent_path().empty() ? "." : target.parent_path().string();
    std::string templ = dir + "/." + target.filename().string() + ".pagewire-XXXXXX";
    if (templ.size() >= kMaxPathBytes) throw_error("open", path_, ENAMETOOLONG);
    int fd = ::mkostemp(templ.data(), O_CLOEXEC);
    if (fd < 0) throw_error("open", path_);  // names the destination the user gave
    temporary_ = templ;
    std::memcpy(g_pending, temporary_.c_str(), temporary_.size() + 1);
    g_has_pending = 1;
    for (int sig : kCleanupSignals) ::signal(sig, remove_and_reraise);
    file_.emplace(File::adopt(UniqueFd(fd), path_, true));
    if (::fchmod(fd, mode & 07777) != 0) {
        const int err = errno;
        discard();  // the destructor does not run for a constructor that throws
        throw_error("chmod", path_, err);
    }
}

OutputFile::~OutputFile() {
    discard();
}

void OutputFile::discard() noexcept {
    if (!temporary_.empty()) ::unlink(temporary_.c_str());
    temporary_.clear();
    g_has_pending = 0;
}

void OutputFile::commit() {
    const int r = overwrite_ ? ::rename(temporary_.c_str(), path_.c_str())
                             : ::renameat2(AT_FDCWD, temporary_.c_str(), AT_FDCWD, path_.c_str(),
                                           RENAME_NOREPLACE);
    if (r != 0) throw_error("rename", path_);
    temporary_.clear();
    g_has_pending = 0;
}

}  // namespace pagewire
