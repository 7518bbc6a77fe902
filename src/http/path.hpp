// pagewire serve: from a request path to a name under the served root.
// Pure string work; opening the name safely (openat2 RESOLVE_BENEATH) is the
// open-file cache's job.
#pragma once

#include <string>
#include <string_view>

namespace pagewire::http {

struct NormalizedPath {
    int status = 0;               // 0 ok; 400 bad encoding, NUL or escaping "..", 404 dotfile
    bool trailing_slash = false;  // asked as a directory ("/a/", "/a/.", "/")
};

// Percent-decodes `raw` (a request path starting with '/'), then resolves
// ".", ".." and empty segments. `relative` receives the result without a
// leading '/' ("" for the root, "a/b.txt"). A segment starting with '.' is
// 404 unless show_dotfiles. `relative` is reused (no allocation once it has
// grown).
NormalizedPath normalize_path(std::string_view raw, bool show_dotfiles, std::string& relative);

// Percent-encodes what may not stand in a URL path (for Location and
// listing links); '/' is kept.
std::string encode_path(std::string_view path);
// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string escape_html(std::string_view text);

}  // namespace pagewire::http
