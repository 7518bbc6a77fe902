#include <cstring>
#include <pagewire/error.hpp>

namespace pagewire {
namespace {

std::string describe(const std::string& operation, const std::string& path, int err,
                     const std::string& detail) {
    std::string line = operation;
    if (!path.empty()) line += " " + path;
    line += ": ";
    line += detail.empty() ? std::strerror(err) : detail;
    return line;
}

}  // namespace

Error::Error(std::string operation, std::string path, int err, std::string detail)
    : std::system_error(err, std::generic_category()),
      operation_(std::move(operation)),
      path_(std::move(path)),
      line_(describe(operation_, path_, err, detail)) {}

void throw_error(std::string_view operation, std::string_view path, int err,
                 std::string_view detail) {
    throw Error(std::string(operation), std::string(path), err, std::string(detail));
}

}  // namespace pagewire
