// pagewire serve as a real process on 127.0.0.1, driven by curl (Debian) and
// raw sockets: every feature of docs/SERVE-CONTRACT.md, byte-exact bodies
// (sendfile and direct paths), a sparse file over 2 GiB, timeouts, limits,
// 200 concurrent clients and a graceful SIGTERM.
#include <atomic>
#include <filesystem>
#include <regex>
#include <thread>

#include "serve_test_util.hpp"

using servetest::HttpResponse;
using servetest::Server;
using testutil::contains;
using testutil::TempDir;

namespace {

bool have_curl() {
    return testutil::run({"curl", "--version"}).exit_code() == 0;
}

#define REQUIRE_CURL()                                                            \
    do {                                                                          \
        if (!have_curl()) GTEST_SKIP() << "curl is not installed (Debian: curl)"; \
    } while (0)

// curl's exit code, the status and the body it saved.
struct CurlResult {
    int status = 0;
    std::string body;
    std::string headers;
};

CurlResult curl(const TempDir& scratch, std::vector<std::string> args, const std::string& url) {
    const std::string body = scratch.file("curl.body");
    const std::string headers = scratch.file("curl.headers");
    std::vector<std::string> argv = {"curl", "-s", "-o", body, "-D", headers, "-w", "%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(url);
    ::unlink(body.c_str());  // curl writes no file for an empty body (304)
    const testutil::RunResult r = testutil::run(argv);
    EXPECT_EQ(r.exit_code(), 0) << r;
    CurlResult c;
    c.status = std::atoi(r.out.c_str());
    c.body = ::access(body.c_str(), F_OK) == 0 ? testutil::read_file(body) : std::string();
    c.headers = testutil::read_file(headers);
    return c;
}

// Whether process `pid` holds `path` open with O_DIRECT (/proc/PID/fdinfo
// flags): how a test tells the direct path from sendfile.
bool holds_open_direct(pid_t pid, const std::string& path) {
    const std::string dir = "/proc/" + std::to_string(pid);
    for (const auto& entry : std::filesystem::directory_iterator(dir + "/fd")) {
        std::error_code ec;
        if (std::filesystem::read_symlink(entry.path(), ec).string() != path) continue;
        const std::string info =
            testutil::read_file(dir + "/fdinfo/" + entry.path().filename().string());
        const std::size_t at = info.find("flags:");
        if (at == std::string::npos) continue;
        const unsigned long flags = std::stoul(info.substr(at + 6), nullptr, 8);
        if ((flags & O_DIRECT) != 0) return true;
    }
    return false;
}

class ServeHttp : public ::testing::Test {
  protected:
    void SetUp() override {
        small_ = "hello, pagewire\n";
        testutil::write_file(dir_.file("small.txt"), small_);
        data_ = testutil::random_bytes(3 << 20, 7);
        testutil::write_file(dir_.file("data.bin"), data_);
        testutil::write_file(dir_.file("page.html"), "<p>page</p>");
        testutil::write_file(dir_.file("x.json"), "{}");
        testutil::write_file(dir_.file(".hidden"), "secret");
        ::mkdir(dir_.file("dir").c_str(), 0755);
        testutil::write_file(dir_.file("dir/index.html"), "<p>index</p>");
        ::mkdir(dir_.file("list").c_str(), 0755);
        ::mkdir(dir_.file("list/sub").c_str(), 0755);
        testutil::write_file(dir_.file("list/a.txt"), "a");
        testutil::write_file(dir_.file("list/.secret"), "s");
        testutil::write_file(outside_.file("outside.txt"), "outside");
        ASSERT_EQ(::symlink(outside_.file("outside.txt").c_str(), dir_.file("link_out").c_str()),
                  0);
        ASSERT_EQ(::symlink("small.txt", dir_.file("link_in").c_str()), 0);
    }

    TempDir dir_;
    TempDir outside_;
    TempDir scratch_;
    std::string small_;
    std::string data_;
};

}  // namespace

TEST_F(ServeHttp, StartupLineAndByteExactGetWithCurl) {
    REQUIRE_CURL();
    Server server(dir_.path(), {"--workers", "2"});
    EXPECT_TRUE(
        std::regex_match(server.startup_line(),
                         std::regex("pagewire serve: listening on http://127\\.0\\.0\\.1:[0-9]+/ "
                                    "\\(.*, 2 workers\\)\n")))
        << server.startup_line();
    CurlResult r = curl(scratch_, {}, server.url("/data.bin"));
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.body == data_) << "body differs (" << r.body.size() << " bytes)";
    r = curl(scratch_, {}, server.url("/small.txt"));
    EXPECT_EQ(r.body, small_);
    EXPECT_TRUE(contains(r.headers, "Content-Type: text/plain\r\n")) << r.headers;
    EXPECT_TRUE(contains(curl(scratch_, {}, server.url("/page.html")).headers,
                         "Content-Type: text/html\r\n"));
    EXPECT_TRUE(contains(curl(scratch_, {}, server.url("/x.json")).headers,
                         "Content-Type: application/json\r\n"));
    EXPECT_TRUE(contains(curl(scratch_, {}, server.url("/data.bin")).headers,
                         "Content-Type: application/octet-stream\r\n"));
}

TEST_F(ServeHttp, HeadHasTheHeadersAndNoBody) {
    Server server(dir_.path(), {"--workers", "1"});
    const int fd = servetest::connect_to(server.port());
    // HEAD then GET on one connection: if HEAD sent a body, the GET's
    // response would not start where the parser expects it.
    servetest::send_all(
        fd,
        "HEAD /small.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string pending;
    auto head = servetest::read_response(fd, pending, true);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 200);
    EXPECT_EQ(head->header("server"), "pagewire");
    EXPECT_TRUE(head->has("date"));
    EXPECT_EQ(head->header("content-length"), std::to_string(small_.size()));
    EXPECT_EQ(head->header("accept-ranges"), "bytes");
    const struct stat st = testutil::stat_of(dir_.file("small.txt"));
    char etag[64];
    std::snprintf(etag, sizeof etag, "\"%llx-%llx\"", static_cast<unsigned long long>(st.st_mtime),
                  static_cast<unsigned long long>(st.st_size));
    EXPECT_EQ(head->header("etag"), etag);
    EXPECT_TRUE(std::regex_match(head->header("last-modified"),
                                 std::regex("[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} "
                                            "[0-9]{2}:[0-9]{2}:[0-9]{2} GMT")));
    auto get = servetest::read_response(fd, pending);
    ASSERT_TRUE(get);
    EXPECT_EQ(get->body, small_);
    ::close(fd);
}

TEST_F(ServeHttp, RangesSingleMultipleUnsatisfiableMalformed) {
    REQUIRE_CURL();
    Server server(dir_.path(), {"--workers", "1"});
    CurlResult r = curl(scratch_, {"-r", "100-199"}, server.url("/data.bin"));
    EXPECT_EQ(r.status, 206);
    EXPECT_EQ(r.body, data_.substr(100, 100));
    EXPECT_TRUE(
        contains(r.headers, "Content-Range: bytes 100-199/" + std::to_string(data_.size())));
    r = curl(scratch_, {"-r", "-5"}, server.url("/data.bin"));
    EXPECT_EQ(r.body, data_.substr(data_.size() - 5));

    auto multi = servetest::request(
        server.port(),
        "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9, 1000-1999,-3\r\n\r\n");
    ASSERT_TRUE(multi);
    EXPECT_EQ(multi->status, 206);
    const std::string type = multi->header("content-type");
    ASSERT_EQ(type.rfind("multipart/byteranges; boundary=", 0), 0u) << type;
    const std::string boundary = type.substr(type.find('=') + 1);
    const std::string size = std::to_string(data_.size());
    const std::string expected =
        "\r\n--" + boundary +
        "\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-9/" + size +
        "\r\n\r\n" + data_.substr(0, 10) + "\r\n--" + boundary +
        "\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 1000-1999/" + size +
        "\r\n\r\n" + data_.substr(1000, 1000) + "\r\n--" + boundary +
        "\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes " +
        std::to_string(data_.size() - 3) + "-" + std::to_string(data_.size() - 1) + "/" + size +
        "\r\n\r\n" + data_.substr(data_.size() - 3) + "\r\n--" + boundary + "--\r\n";
    EXPECT_TRUE(multi->body == expected);

    auto unsat = servetest::request(
        server.port(), "GET /small.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=500-\r\n\r\n");
    ASSERT_TRUE(unsat);
    EXPECT_EQ(unsat->status, 416);
    EXPECT_EQ(unsat->header("content-range"), "bytes */" + std::to_string(small_.size()));
    auto malformed = servetest::request(
        server.port(), "GET /small.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=z-\r\n\r\n");
    ASSERT_TRUE(malformed);
    EXPECT_EQ(malformed->status, 200);
    EXPECT_EQ(malformed->body, small_);
}

TEST_F(ServeHttp, ConditionalRequests) {
    REQUIRE_CURL();
    Server server(dir_.path(), {"--workers", "1"});
    auto first = servetest::request(server.port(), "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(first);
    const std::string etag = first->header("etag");
    const std::string modified = first->header("last-modified");
    CurlResult r =
        curl(scratch_, {"-H", "If-None-Match: \"nope\", " + etag}, server.url("/small.txt"));
    EXPECT_EQ(r.status, 304);
    EXPECT_TRUE(r.body.empty());
    EXPECT_TRUE(contains(r.headers, "ETag: " + etag)) << r.headers;
    EXPECT_EQ(curl(scratch_, {"-H", "If-None-Match: \"nope\""}, server.url("/small.txt")).status,
              200);
    EXPECT_EQ(
        curl(scratch_, {"-H", "If-Modified-Since: " + modified}, server.url("/small.txt")).status,
        304);
    EXPECT_EQ(curl(scratch_, {"-H", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT"},
                   server.url("/small.txt"))
                  .status,
              200);
    // If-Range: the range only while the validator matches.
    EXPECT_EQ(
        curl(scratch_, {"-r", "0-1", "-H", "If-Range: " + etag}, server.url("/small.txt")).status,
        206);
    EXPECT_EQ(
        curl(scratch_, {"-r", "0-1", "-H", "If-Range: \"old\""}, server.url("/small.txt")).status,
        200);
    EXPECT_EQ(curl(scratch_, {"-r", "0-1", "-H", "If-Range: " + modified}, server.url("/small.txt"))
                  .status,
              206);
}

TEST_F(ServeHttp, DirectoriesIndexAndListing) {
    REQUIRE_CURL();
    {
        Server server(dir_.path(), {"--workers", "1"});
        CurlResult r = curl(scratch_, {}, server.url("/dir"));
        EXPECT_EQ(r.status, 301);
        EXPECT_TRUE(contains(r.headers, "Location: /dir/\r\n")) << r.headers;
        r = curl(scratch_, {}, server.url("/dir/"));
        EXPECT_EQ(r.status, 200);
        EXPECT_EQ(r.body, "<p>index</p>");
        EXPECT_EQ(curl(scratch_, {}, server.url("/list/")).status, 403);
    }
    Server server(dir_.path(), {"--workers", "1", "--list-directories"});
    CurlResult r = curl(scratch_, {}, server.url("/list/"));
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(contains(r.body, "<a href=\"a.txt\">a.txt</a>")) << r.body;
    EXPECT_TRUE(contains(r.body, "<a href=\"sub/\">sub/</a>")) << r.body;
    EXPECT_FALSE(contains(r.body, "secret")) << r.body;
}

TEST_F(ServeHttp, NothingOutsideTheRoot) {
    Server server(dir_.path(), {"--workers", "1"});
    auto status = [&](const std::string& target) {
        auto r =
            servetest::request(server.port(), "GET " + target + " HTTP/1.1\r\nHost: t\r\n\r\n");
        return r ? r->status : -1;
    };
    EXPECT_EQ(status("/../outside.txt"), 400);
    EXPECT_EQ(status("/dir/../../etc/passwd"), 400);
    EXPECT_EQ(status("/%2e%2e/%2e%2e/etc/passwd"), 400);
    EXPECT_EQ(status("/%2E%2E%2Fetc%2Fpasswd"), 400);
    EXPECT_EQ(status("/small.txt%00.html"), 400);
    EXPECT_EQ(status("/.hidden"), 404);
    EXPECT_EQ(status("/list/.secret"), 404);
    EXPECT_EQ(status("/link_out"), 403);
    EXPECT_EQ(status("/link_in"), 200);
    EXPECT_EQ(status("/dir/../small.txt"), 200);
    Server open(dir_.path(), {"--workers", "1", "--follow-symlinks", "--show-dotfiles"});
    auto out = servetest::request(open.port(), "GET /link_out HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(out);
    EXPECT_EQ(out->status, 200);
    EXPECT_EQ(out->body, "outside");
    auto hidden = servetest::request(open.port(), "GET /.hidden HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(hidden);
    EXPECT_EQ(hidden->body, "secret");
    auto still = servetest::request(open.port(), "GET /../outside.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(still);
    EXPECT_EQ(still->status, 400);
}

TEST_F(ServeHttp, ErrorStatusesAndLimits) {
    Server server(dir_.path(), {"--workers", "1"});
    {
        // 405 keeps the connection; the next request is answered.
        const int fd = servetest::connect_to(server.port());
        servetest::send_all(fd,
                            "DELETE /small.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /small.txt "
                            "HTTP/1.1\r\nHost: t\r\n\r\n");
        std::string pending;
        auto r = servetest::read_response(fd, pending);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 405);
        EXPECT_EQ(r->header("allow"), "GET, HEAD");
        auto next = servetest::read_response(fd, pending);
        ASSERT_TRUE(next);
        EXPECT_EQ(next->body, small_);
        ::close(fd);
    }
    auto closes_with = [&](const std::string& text, int status) {
        SCOPED_TRACE(text.substr(0, 60));
        const int fd = servetest::connect_to(server.port());
        servetest::send_all(fd, text);
        std::string pending;
        auto r = servetest::read_response(fd, pending);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, status);
        EXPECT_EQ(r->header("connection"), "close");
        EXPECT_TRUE(servetest::closed_by_peer(fd));
        ::close(fd);
    };
    closes_with("FOO /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", 405);
    closes_with("GET /small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody", 400);
    closes_with("GET /small.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                400);
    closes_with("GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n", 400);
    closes_with("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n", 414);
    closes_with("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(17 * 1024, 'b') + "\r\n\r\n",
                431);
    std::string many = "GET / HTTP/1.1\r\nHost: t\r\n";
    for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    closes_with(many + "\r\n", 431);
    auto missing =
        servetest::request(server.port(), "HEAD /missing HTTP/1.1\r\nHost: t\r\n\r\n", true);
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
}

TEST_F(ServeHttp, KeepAliveAndPipelining) {
    Server server(dir_.path(), {"--workers", "1"});
    const int fd = servetest::connect_to(server.port());
    std::string batch;
    std::vector<std::pair<std::string, std::string>> expected;
    for (int i = 0; i < 30; ++i) {
        if (i % 3 == 0) {
            batch +=
                "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=" + std::to_string(i * 1000) +
                "-" + std::to_string(i * 1000 + 4095) + "\r\n\r\n";
            expected.emplace_back("206", data_.substr(static_cast<std::size_t>(i) * 1000, 4096));
        } else if (i % 3 == 1) {
            batch += "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
            expected.emplace_back("200", small_);
        } else {
            batch += "GET /nothing-" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
            expected.emplace_back("404", "");
        }
    }
    batch += "GET /data.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    expected.emplace_back("200", data_);
    servetest::send_all(fd, batch);
    std::string pending;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        auto r = servetest::read_response(fd, pending);
        ASSERT_TRUE(r) << "response " << i;
        EXPECT_EQ(std::to_string(r->status), expected[i].first) << "response " << i;
        if (expected[i].first != "404") {
            EXPECT_TRUE(r->body == expected[i].second) << "response " << i;
        }
    }
    ::close(fd);

    // HTTP/1.0: closed after the response unless it asks for keep-alive.
    const int old = servetest::connect_to(server.port());
    servetest::send_all(old, "GET /small.txt HTTP/1.0\r\n\r\n");
    const std::string all = servetest::read_to_eof(old);
    EXPECT_TRUE(contains(all, "Connection: close\r\n"));
    EXPECT_TRUE(all.size() > small_.size() && all.substr(all.size() - small_.size()) == small_);
    ::close(old);
    const int ka = servetest::connect_to(server.port());
    servetest::send_all(ka, "GET /small.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    pending.clear();
    auto r1 = servetest::read_response(ka, pending);
    ASSERT_TRUE(r1);
    EXPECT_EQ(r1->header("connection"), "keep-alive");
    servetest::send_all(ka, "GET /small.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    auto r2 = servetest::read_response(ka, pending);
    ASSERT_TRUE(r2);
    EXPECT_EQ(r2->body, small_);
    ::close(ka);
}

TEST_F(ServeHttp, HeaderAndKeepAliveTimeouts) {
    Server server(dir_.path(),
                  {"--workers", "1", "--header-timeout", "1", "--keepalive-timeout", "1"});
    // Slowloris: a header section that never ends gets 408 and a close.
    const auto start = std::chrono::steady_clock::now();
    const int slow = servetest::connect_to(server.port());
    servetest::send_all(slow, "GET /small.txt HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n");
    ::usleep(400000);
    servetest::send_all(slow, "X-B: 2\r\n");  // trickling does not extend the deadline
    std::string pending;
    auto r = servetest::read_response(slow, pending);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 408);
    EXPECT_TRUE(servetest::closed_by_peer(slow));
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GE(waited, 0.9);
    EXPECT_LT(waited, 6.0);
    ::close(slow);
    // Idle keep-alive: closed after the timeout, silently.
    const int idle = servetest::connect_to(server.port());
    servetest::send_all(idle, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    pending.clear();
    ASSERT_TRUE(servetest::read_response(idle, pending));
    const auto idle_start = std::chrono::steady_clock::now();
    EXPECT_TRUE(servetest::closed_by_peer(idle));
    EXPECT_TRUE(pending.empty());
    const double idle_wait =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - idle_start).count();
    EXPECT_GE(idle_wait, 0.9);
    EXPECT_LT(idle_wait, 6.0);
    ::close(idle);
}

TEST_F(ServeHttp, SlowClientDoesNotStallOthers) {
    // One worker: a client that never reads a 48 MiB body must not hold it.
    testutil::write_file(dir_.file("huge.bin"), std::string(48 << 20, 'h'));
    Server server(dir_.path(), {"--workers", "1"});
    const int stuck = servetest::connect_to(server.port());
    int small_buf = 4096;
    ::setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &small_buf, sizeof small_buf);
    servetest::send_all(stuck, "GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    ::usleep(200000);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 50; ++i) {
        auto r = servetest::request(server.port(), "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        ASSERT_TRUE(r) << "request " << i;
        EXPECT_EQ(r->body, small_);
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
              10.0);
    ::close(stuck);
}

TEST_F(ServeHttp, ConnectionLimitAnswers503) {
    Server server(dir_.path(), {"--workers", "1", "--max-connections", "2"});
    const int a = servetest::connect_to(server.port());
    const int b = servetest::connect_to(server.port());
    servetest::send_all(a, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    servetest::send_all(b, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string pa, pb;
    ASSERT_TRUE(servetest::read_response(a, pa));
    ASSERT_TRUE(servetest::read_response(b, pb));
    const int c = servetest::connect_to(server.port());
    servetest::send_all(c, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string pc;
    auto r = servetest::read_response(c, pc);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    EXPECT_TRUE(servetest::closed_by_peer(c));
    ::close(c);
    ::close(a);  // room again
    ::usleep(200000);
    auto again = servetest::request(server.port(), "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 200);
    ::close(b);
}

TEST_F(ServeHttp, TwoHundredConcurrentClients) {
    Server server(dir_.path(), {"--workers", "2"});
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < 200; ++i) {
        clients.emplace_back([&, i] {
            try {
                const int fd = servetest::connect_to(server.port(), 30);
                std::string pending;
                bool good = true;
                for (int k = 0; k < 3 && good; ++k) {
                    const bool big = (i + k) % 10 == 0;
                    servetest::send_all(fd, big ? "GET /data.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                                                : "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
                    auto r = servetest::read_response(fd, pending);
                    good = r && r->status == 200 && r->body == (big ? data_ : small_);
                }
                ::close(fd);
                (good ? ok : failed)++;
            } catch (const std::exception&) {
                failed++;
            }
        });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(ok.load(), 200);
    EXPECT_EQ(failed.load(), 0);
}

TEST_F(ServeHttp, DirectPathIsByteExact) {
    REQUIRE_CURL();
    {
        // Under the threshold (default 1 GiB): sendfile, no O_DIRECT descriptor.
        Server server(dir_.path(), {"--workers", "1"});
        EXPECT_TRUE(curl(scratch_, {}, server.url("/data.bin")).body == data_);
        EXPECT_FALSE(holds_open_direct(server.pid(), dir_.file("data.bin")));
    }
    // 3 MiB is over a 1 MiB threshold: O_DIRECT reads through io_uring.
    Server server(dir_.path(), {"--workers", "1", "--direct-threshold", "1m"});
    CurlResult r = curl(scratch_, {}, server.url("/data.bin"));
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.body == data_);
    // The open-file cache keeps the file's O_DIRECT descriptor (ext4 and most
    // disk file systems take O_DIRECT; tmpfs would fall back to sendfile).
    EXPECT_TRUE(holds_open_direct(server.pid(), dir_.file("data.bin")))
        << "no O_DIRECT descriptor: the direct path was not taken";
    r = curl(scratch_, {"-r", "4097-2100000"}, server.url("/data.bin"));
    EXPECT_EQ(r.status, 206);
    EXPECT_TRUE(r.body == data_.substr(4097, 2100000 - 4097 + 1));
    r = curl(scratch_, {"-r", "1-1"}, server.url("/data.bin"));
    EXPECT_EQ(r.body, data_.substr(1, 1));
    auto multi = servetest::request(
        server.port(),
        "GET /data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=10-19,1048570-1048589\r\n\r\n");
    ASSERT_TRUE(multi);
    EXPECT_TRUE(contains(multi->body, data_.substr(10, 10)));
    EXPECT_TRUE(contains(multi->body, data_.substr(1048570, 20)));
}

TEST_F(ServeHttp, SparseFileOverTwoGiB) {
    REQUIRE_CURL();
    const std::uint64_t size = (5ULL << 29) + 12345;  // 2.5 GiB and a bit, sparse
    const std::string path = dir_.file("sparse.bin");
    {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
        const std::string mid = "MIDDLE-MARK";
        const std::string tail = "TAIL-MARKER";
        ASSERT_EQ(::pwrite(fd, mid.data(), mid.size(), static_cast<off_t>((1ULL << 31) - 5)),
                  static_cast<ssize_t>(mid.size()));
        ASSERT_EQ(::pwrite(fd, tail.data(), tail.size(), static_cast<off_t>(size - tail.size())),
                  static_cast<ssize_t>(tail.size()));
        ::close(fd);
    }
    for (const char* threshold : {"1g", "0"}) {  // direct, then sendfile
        SCOPED_TRACE(threshold);
        Server server(dir_.path(), {"--workers", "1", "--direct-threshold", threshold});
        auto head =
            servetest::request(server.port(), "HEAD /sparse.bin HTTP/1.1\r\nHost: t\r\n\r\n", true);
        ASSERT_TRUE(head);
        EXPECT_EQ(head->header("content-length"), std::to_string(size));
        CurlResult r = curl(scratch_, {"-r", "-11"}, server.url("/sparse.bin"));
        EXPECT_EQ(r.status, 206);
        EXPECT_EQ(r.body, "TAIL-MARKER");
        r = curl(scratch_,
                 {"-r", std::to_string((1ULL << 31) - 6) + "-" + std::to_string((1ULL << 31) + 6)},
                 server.url("/sparse.bin"));
        EXPECT_EQ(r.body, std::string(1, '\0') + "MIDDLE-MARK" + std::string(1, '\0'));
        EXPECT_TRUE(contains(r.headers,
                             "Content-Range: bytes 2147483642-2147483654/" + std::to_string(size)));
    }
    // The whole file once (direct path): every byte counted, the end intact.
    Server server(dir_.path(), {"--workers", "1"});
    const testutil::RunResult whole =
        testutil::run({"sh", "-c",
                       "curl -s " + server.url("/sparse.bin") +
                           " | tail -c 11; curl -s -o /dev/null -w ' %{size_download}' -r 0-0 " +
                           server.url("/sparse.bin")});
    EXPECT_EQ(whole.out, "TAIL-MARKER 1") << whole;
}

TEST_F(ServeHttp, SigtermLetsTheInFlightResponseFinish) {
    const std::string big = testutil::random_bytes(24 << 20, 99);
    testutil::write_file(dir_.file("big.bin"), big);
    Server server(dir_.path(), {"--workers", "1"});
    const int fd = servetest::connect_to(server.port());
    int small_buf = 16384;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small_buf, sizeof small_buf);
    servetest::send_all(fd, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string got;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<std::size_t>(n));
    const pid_t pid = server.pid();
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    ::usleep(300000);
    // No longer accepting.
    const int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(server.port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_NE(::connect(probe, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(probe);
    got += servetest::read_to_eof(fd);
    ::close(fd);
    const std::size_t body = got.find("\r\n\r\n");
    ASSERT_NE(body, std::string::npos);
    EXPECT_TRUE(contains(got.substr(0, body), "Content-Length: " + std::to_string(big.size())));
    EXPECT_EQ(got.size() - body - 4, big.size());
    EXPECT_TRUE(got.substr(body + 4) == big);
    const int status = server.stop(0);  // already stopping: just wait
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
}

TEST_F(ServeHttp, AccessLogLines) {
    const std::string log = scratch_.file("access.log");
    Server server(dir_.path(), {"--workers", "1", "--access-log", log});
    ASSERT_TRUE(servetest::request(
        server.port(), "GET /small.txt HTTP/1.1\r\nHost: t\r\nUser-Agent: test/\"1\"\r\n\r\n"));
    ASSERT_TRUE(servetest::request(
        server.port(), "GET /missing HTTP/1.1\r\nHost: t\r\nReferer: http://r/\r\n\r\n"));
    EXPECT_EQ(server.stop(SIGINT), 0);
    const std::string text = testutil::read_file(log);
    const std::regex line(
        "127\\.0\\.0\\.1 - - \\[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} "
        "\\+0000\\] "
        "\"GET /small\\.txt HTTP/1\\.1\" 200 " +
        std::to_string(small_.size()) +
        " \"-\" \"test/\\\\x221\\\\x22\"\n"
        "127\\.0\\.0\\.1 - - \\[[^\\]]+\\] \"GET /missing HTTP/1\\.1\" 404 [0-9]+ \"http://r/\" "
        "\"-\"\n");
    EXPECT_TRUE(std::regex_match(text, line)) << text;
}

TEST(ServeCli, StartupErrors) {
    TempDir dir;
    testutil::write_file(dir.file("file"), "x");
    auto run = [](std::vector<std::string> args) {
        std::vector<std::string> argv = {PAGEWIRE_CLI, "serve"};
        argv.insert(argv.end(), args.begin(), args.end());
        testutil::RunOptions options;
        options.timeout = std::chrono::seconds(20);
        return testutil::run(argv, options);
    };
    testutil::RunResult r = run({dir.file("missing"), "--listen", "127.0.0.1:0"});
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_EQ(r.err, "pagewire serve: " + dir.file("missing") + ": No such file or directory\n");
    r = run({dir.file("file"), "--listen", "127.0.0.1:0"});
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_EQ(r.err, "pagewire serve: " + dir.file("file") + ": Not a directory\n");
    r = run({dir.path(), "--listen", "nowhere"});
    EXPECT_EQ(r.exit_code(), 2) << r;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
    r = run({dir.path(), "--direct-threshold", "lots"});
    EXPECT_EQ(r.exit_code(), 2) << r;
    r = run({dir.path(), "--workers", "0"});
    EXPECT_EQ(r.exit_code(), 2) << r;
    EXPECT_EQ(r.err, "pagewire serve: --workers 0: expected 1 to 1024\n");
    r = run({dir.path(), "--max-connections", "0"});
    EXPECT_EQ(r.exit_code(), 2) << r;

    Server first(dir.path(), {"--workers", "2"});
    r = run({dir.path(), "--listen", "127.0.0.1:" + std::to_string(first.port())});
    EXPECT_EQ(r.exit_code(), 1) << r;
    EXPECT_TRUE(contains(r.err, "Address already in use")) << r;
    EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
}

TEST(ServeCli, ListensOnIpv6Loopback) {
    const int probe = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    const bool have_v6 =
        probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (probe >= 0) ::close(probe);
    if (!have_v6) GTEST_SKIP() << "no IPv6 loopback (::1) here";
    TempDir dir;
    testutil::write_file(dir.file("v6.txt"), "six");
    Server server(dir.path(), {"--workers", "1"}, "[::1]:0");
    EXPECT_TRUE(contains(server.startup_line(), "listening on http://[::1]:"))
        << server.startup_line();
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin6_port = htons(static_cast<std::uint16_t>(server.port()));
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    servetest::send_all(fd, "GET /v6.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string pending;
    auto r = servetest::read_response(fd, pending);
    ::close(fd);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "six");
}
