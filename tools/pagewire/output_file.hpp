// A destination file that appears only when complete: bytes go to a temporary
// file in the destination's directory, which is renamed over the destination
// by commit() (refusing to replace an existing file unless asked) and
// removed otherwise — by the destructor, or by a SIGINT/SIGTERM/SIGHUP handler
// (async-signal-safe unlink, then the signal re-raised). For `pagewire copy`
// and `pagewire recv`. One instance at a time per process; not thread-safe.
#pragma once

#include <pagewire/file.hpp>

#include <optional>
#include <string>
#include <sys/types.h>

namespace pagewire::cli {

class OutputFile {
public:
    // Fails early (EEXIST) when `path` exists and !overwrite; `mode` is applied
    // to the temporary file (mkstemp makes 0600) before any byte is written.
    OutputFile(std::string path, mode_t mode, bool overwrite);
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    File& file() noexcept { return *file_; }
    const std::string& path() const noexcept { return path_; }
    // Renames the temporary file to the destination (renameat2 RENAME_NOREPLACE
    // unless overwrite, so a file created meanwhile is not clobbered).
    void commit();

private:
    std::string path_;            // the destination
    std::string temporary_;       // the temporary file while not committed, else empty
    bool overwrite_;
    std::optional<File> file_;    // the open temporary file
};

}  // namespace pagewire::cli
