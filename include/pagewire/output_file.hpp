// pagewire::OutputFile — a destination file that appears only when complete
// (the atomic output file of `pagewire copy` and `pagewire recv`): bytes go to
// a temporary file in the destination's directory, which commit() renames over
// the destination (refusing to replace an existing file unless asked); it is
// removed otherwise — by the destructor, or, when the process is killed by
// SIGINT/SIGTERM/SIGHUP, by a handler this class installs for those signals
// (async-signal-safe unlink, then the signal re-raised with its default
// action). A kill -9 or power loss leaves at most a hidden temporary file
// ".NAME.pagewire-XXXXXX" beside the destination, never a partial destination.
// One instance at a time per process; not thread-safe.
#pragma once
#include <sys/types.h>

#include <optional>
#include <pagewire/config.hpp>
#include <pagewire/file.hpp>
#include <string>

namespace pagewire {

class OutputFile {
  public:
    // Creates the temporary file. Fails early (EEXIST) when `path` exists and
    // !overwrite; `mode` is applied to the temporary file (mkstemp makes 0600)
    // before any byte is written. Throws pagewire::Error naming `path`.
    OutputFile(std::string path, mode_t mode, bool overwrite);
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    File& file() noexcept { return *file_; }
    const std::string& path() const noexcept { return path_; }
    // Renames the temporary file to the destination (renameat2 RENAME_NOREPLACE
    // unless overwrite, so a file created meanwhile is not clobbered). Does not
    // fsync: call file().sync() first where the data must survive a power loss.
    void commit();

  private:
    void discard() noexcept;  // removes the temporary file, if any

    std::string path_;       // the destination
    std::string temporary_;  // the temporary file while not committed, else empty
    bool overwrite_;
    std::optional<File> file_;  // the open temporary file
};

}  // namespace pagewire
