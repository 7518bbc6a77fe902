// pagewire::Error — the one error type thrown by pagewire's setup and cold paths.
#pragma once
#include <cerrno>
#include <pagewire/config.hpp>
#include <string>
#include <string_view>
#include <system_error>

namespace pagewire {

// A failed operation on a named object: a std::system_error in the generic
// category whose code() is the errno value and whose what() is one line,
// "<operation> <path>: <reason>", e.g. "open /tmp/x: No such file or directory".
// `detail` replaces the errno text when the kernel's wording would not explain
// the failure (e.g. "offset 4096 is past end of file (size 100)").
class Error : public std::system_error {
  public:
    Error(std::string operation, std::string path, int err, std::string detail = {});

    const std::string& operation() const noexcept { return operation_; }
    const std::string& path() const noexcept { return path_; }
    int error_number() const noexcept { return code().value(); }
    // The one-line description (std::system_error's own what() would repeat
    // the errno text after it).
    const char* what() const noexcept override { return line_.c_str(); }

  private:
    std::string operation_;
    std::string path_;
    std::string line_;
};

// Throws Error(operation, path, err). The one place errno becomes an error value.
[[noreturn]] void throw_error(std::string_view operation, std::string_view path, int err = errno,
                              std::string_view detail = {});

}  // namespace pagewire
