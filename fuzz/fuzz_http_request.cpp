// libFuzzer target: arbitrary bytes as a client's input to pagewire serve's
// request handling — RequestReader (framing + http_parser) fed in two
// pieces, pipelined requests answered by the Responder over a scratch
// directory (files, index, listing, symlinks in and out, a dotfile). Beyond
// what ASan/UBSan catch, it checks the response invariants: segments lie
// inside the response's memory or file, Content-Length equals the body the
// segments carry, and no request escapes the root.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "http/file_cache.hpp"
#include "http/http_date.hpp"
#include "http/http_request.hpp"
#include "http/response.hpp"

namespace serve = pagewire::http;

namespace {

std::string g_root;
int g_root_fd = -1;
pagewire::serve::ServeConfig g_config;
serve::ClockStrings g_clock;
std::vector<std::pair<dev_t, ino_t>> g_files;  // every regular file under the root

void write(const std::string& path, const std::string& content) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 ||
        ::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
        std::abort();
    }
    ::close(fd);
}

void remove_root() {
    std::error_code ec;
    std::filesystem::remove_all(g_root, ec);
}

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "invariant violated: %s\n", what);
        std::abort();
    }
}

// Content-Length from the header block, or -1.
long long content_length(const std::string& head) {
    const std::size_t at = head.find("\r\nContent-Length: ");
    if (at == std::string::npos) return -1;
    return std::atoll(head.c_str() + at + 18);
}

void verify(const serve::Request* request, const serve::Response& r) {
    check(!r.segments.empty() && !r.segments[0].file, "a header block first");
    const std::string head = r.data.substr(0, r.segments[0].length);
    check(head.size() >= 4 && head.compare(head.size() - 4, 4, "\r\n\r\n") == 0,
          "head ends with CRLF CRLF");
    check(head.find("\r\nServer: pagewire\r\n") != std::string::npos, "Server header");
    std::uint64_t body = 0;
    for (std::size_t i = 0; i < r.segments.size(); ++i) {
        const serve::Segment& s = r.segments[i];
        if (s.file) {
            check(r.file != nullptr && s.offset + s.length <= r.file->size,
                  "file segment inside the file");
        } else {
            check(s.offset + s.length <= r.data.size(), "memory segment inside the data");
        }
        if (i > 0) body += s.length;
    }
    check(body == r.body_bytes, "body_bytes matches the segments");
    const bool head_only = request != nullptr && request->method == serve::Method::Head;
    if (!head_only && r.status != 304) {
        check(content_length(head) == static_cast<long long>(body),
              "Content-Length equals the body");
    }
    if (r.file != nullptr) {
        // Whatever is served is one of the scratch files, never /etc/passwd
        // through "out", "e/up" or an encoded "..".
        bool known = false;
        for (const auto& [dev, ino] : g_files)
            known = known || (r.file->dev == dev && r.file->ino == ino);
        check(known, "served file is one of the root's files");
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    char templ[] = "/tmp/pagewire-fuzz-XXXXXX";
    if (::mkdtemp(templ) == nullptr) std::abort();
    g_root = templ;
    std::atexit(remove_root);
    write(g_root + "/a.txt", "0123456789abcdef");
    write(g_root + "/page.html", "<p>page</p>");
    write(g_root + "/.dot", "hidden");
    write(g_root + "/empty", "");
    ::mkdir((g_root + "/d").c_str(), 0755);
    write(g_root + "/d/index.html", "<p>index</p>");
    ::mkdir((g_root + "/e").c_str(), 0755);
    write(g_root + "/e/x y.txt", "x");
    // The symlinks are the containment cases the fuzzer must reach: without them it
    // would run, find nothing, and prove nothing.
    if (::symlink("a.txt", (g_root + "/in").c_str()) != 0 ||
        ::symlink("/etc/passwd", (g_root + "/out").c_str()) != 0 ||
        ::symlink("../../..", (g_root + "/e/up").c_str()) != 0) {
        std::abort();
    }
    for (const char* name : {"a.txt", "page.html", ".dot", "empty", "d/index.html", "e/x y.txt"}) {
        struct stat st {};
        if (::stat((g_root + "/" + name).c_str(), &st) != 0) std::abort();
        g_files.emplace_back(st.st_dev, st.st_ino);
    }
    g_root_fd = ::open(g_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (g_root_fd < 0) std::abort();
    g_config.root = g_root;
    g_config.list_directories = true;
    g_config.direct_threshold = 8;  // exercise the direct flag on small files
    g_clock.update();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    serve::OpenFileCache cache(g_root_fd, false, 1000);
    serve::Responder responder(g_config, cache, g_clock);
    serve::RequestReader reader;
    serve::Request request;
    serve::Response response;
    std::size_t start = 0;
    // The first half arrives first: framing must give the same answers
    // whatever the split.
    std::size_t available = size / 2;
    for (int requests = 0; requests < 64; ++requests) {
        const serve::ParseResult r = reader.parse(input.data() + start, available - start, request);
        if (r.kind == serve::ParseResult::Kind::NeedMore) {
            if (available == size) break;
            available = size;
            continue;
        }
        check(r.consumed <= available - start, "consumed within the input");
        if (r.kind == serve::ParseResult::Kind::Error) {
            check(r.status == 400 || r.status == 405 || r.status == 414 || r.status == 431 ||
                      r.status == 505,
                  "reader errors are 400, 405, 414, 431 or 505");
            responder.respond_error(r.status, r.status == 405 ? &request : nullptr, response);
            verify(nullptr, response);
            check(response.close, "an error closes");
            break;
        }
        responder.respond(request, response);
        verify(&request, response);
        start += r.consumed;
        reader.reset();
        if (response.close) break;
    }
    return 0;
}
