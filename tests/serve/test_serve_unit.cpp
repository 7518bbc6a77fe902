// pagewire serve's request handling without sockets: RequestReader (framing
// and http_parser), path normalization, Range parsing, HTTP dates, the
// Responder against a real directory, and the transfer engine's
// non-blocking step (return_on_would_block) on a full socket.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pagewire/transfer.hpp>
#include <string>
#include <vector>

#include "http/file_cache.hpp"
#include "http/http_date.hpp"
#include "http/http_request.hpp"
#include "http/mime.hpp"
#include "http/path.hpp"
#include "http/range.hpp"
#include "http/response.hpp"
#include "test_util.hpp"

namespace serve = pagewire::http;
using serve::ParseResult;
using testutil::TempDir;

namespace {

struct Parsed {
    ParseResult result;
    serve::Request request;
};

Parsed parse_all(std::string_view bytes) {
    serve::RequestReader reader;
    Parsed p;
    p.result = reader.parse(bytes.data(), bytes.size(), p.request);
    return p;
}

}  // namespace

TEST(ServeRequest, ParsesASimpleGet) {
    const std::string req =
        "GET /a/b.txt?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n"
        "User-Agent: t/1\r\n\r\n";
    Parsed p = parse_all(req);
    ASSERT_EQ(p.result.kind, ParseResult::Kind::Ready);
    EXPECT_EQ(p.result.consumed, req.size());
    EXPECT_EQ(p.request.method, serve::Method::Get);
    EXPECT_EQ(p.request.target, "/a/b.txt?x=1");
    EXPECT_EQ(p.request.path, "/a/b.txt");
    EXPECT_EQ(p.request.range, "bytes=0-1");
    EXPECT_EQ(p.request.user_agent, "t/1");
    EXPECT_EQ(p.request.request_line, "GET /a/b.txt?x=1 HTTP/1.1");
    EXPECT_TRUE(p.request.keep_alive);
    EXPECT_FALSE(p.request.has_body);
}

TEST(ServeRequest, KeepAliveFollowsVersionAndConnection) {
    EXPECT_FALSE(parse_all("GET / HTTP/1.0\r\n\r\n").request.keep_alive);
    EXPECT_TRUE(parse_all("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").request.keep_alive);
    EXPECT_FALSE(
        parse_all("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").request.keep_alive);
}

TEST(ServeRequest, ByteAtATimeAndPipelined) {
    const std::string two =
        "\r\nGET /1 HTTP/1.1\r\nHost: t\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n";
    serve::RequestReader reader;
    serve::Request request;
    std::size_t start = 0;
    std::vector<std::string> paths;
    for (std::size_t end = 1; end <= two.size(); ++end) {
        ParseResult r = reader.parse(two.data() + start, end - start, request);
        ASSERT_NE(r.kind, ParseResult::Kind::Error);
        if (r.kind == ParseResult::Kind::Ready) {
            paths.emplace_back(request.path);
            start += r.consumed;
            reader.reset();
        }
    }
    EXPECT_EQ(paths, (std::vector<std::string>{"/1", "/2"}));
    EXPECT_EQ(start, two.size());
}

TEST(ServeRequest, Limits) {
    // Request line over 8 KiB: 414, whether or not its end has arrived.
    const std::string long_target(9000, 'a');
    EXPECT_EQ(parse_all("GET /" + long_target).result.status, 414);
    EXPECT_EQ(parse_all("GET /" + long_target + " HTTP/1.1\r\nHost: t\r\n\r\n").result.status, 414);
    const std::string fits(8000, 'a');
    EXPECT_EQ(parse_all("GET /" + fits + " HTTP/1.1\r\nHost: t\r\n\r\n").result.kind,
              ParseResult::Kind::Ready);
    // Header section over 16 KiB: 431.
    std::string big = "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(17000, 'b') + "\r\n\r\n";
    EXPECT_EQ(parse_all(big).result.status, 431);
    // 100 header lines (Host and 99 more) pass, 101 do not.
    std::string hundred = "GET / HTTP/1.1\r\nHost: t\r\n";
    for (int i = 0; i < 99; ++i) hundred += "X-" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(parse_all(hundred + "\r\n").result.kind, ParseResult::Kind::Ready);
    EXPECT_EQ(parse_all(hundred + "X-Last: v\r\n\r\n").result.status, 431);
}

TEST(ServeRequest, MalformedAndBodies) {
    EXPECT_EQ(parse_all("GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n").result.status, 400);
    EXPECT_EQ(parse_all("GET /\x01 HTTP/1.1\r\nHost: t\r\n\r\n").result.status, 400);
    // Issue 12: another major version is 505 (RFC 9110 15.6.6), no longer 400.
    EXPECT_EQ(parse_all("GET / HTTP/2.0\r\n\r\n").result.status, 505);
    EXPECT_EQ(parse_all("FOO / HTTP/1.1\r\nHost: t\r\n\r\n").result.status, 405);
    EXPECT_EQ(parse_all("BROKEN REQUEST\r\n\r\n").result.status, 400);
    Parsed post = parse_all("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n");
    ASSERT_EQ(post.result.kind, ParseResult::Kind::Ready);
    EXPECT_EQ(post.request.method, serve::Method::Other);
    EXPECT_TRUE(post.request.has_body);
    EXPECT_TRUE(parse_all("GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .request.has_body);
    EXPECT_FALSE(
        parse_all("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").request.has_body);
    Parsed absolute = parse_all("GET http://example.com/x/y?q HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_EQ(absolute.result.kind, ParseResult::Kind::Ready);
    EXPECT_EQ(absolute.request.path, "/x/y");
}

TEST(ServePath, NormalizesAndRefusesEscapes) {
    std::string rel;
    auto norm = [&](std::string_view raw, bool dots = false) {
        serve::NormalizedPath n = serve::normalize_path(raw, dots, rel);
        return n.status;
    };
    EXPECT_EQ(norm("/a//b/./c/../d.txt"), 0);
    EXPECT_EQ(rel, "a/b/d.txt");
    EXPECT_EQ(norm("/"), 0);
    EXPECT_EQ(rel, "");
    EXPECT_EQ(norm("/%61%2Fb"), 0);
    EXPECT_EQ(rel, "a/b");
    EXPECT_EQ(norm("/.."), 400);
    EXPECT_EQ(norm("/a/../../etc/passwd"), 400);
    EXPECT_EQ(norm("/%2e%2e/etc/passwd"), 400);
    EXPECT_EQ(norm("/%2E%2E%2fetc"), 400);
    EXPECT_EQ(norm("/a%00.txt"), 400);
    EXPECT_EQ(norm("/a%zz"), 400);
    EXPECT_EQ(norm("/a%4"), 400);
    EXPECT_EQ(norm("/.git/config"), 404);
    EXPECT_EQ(norm("/a/.env"), 404);
    EXPECT_EQ(norm("/a/.env", true), 0);
    EXPECT_EQ(rel, "a/.env");
    EXPECT_TRUE(serve::normalize_path("/dir/", false, rel).trailing_slash);
    EXPECT_TRUE(serve::normalize_path("/dir/sub/..", false, rel).trailing_slash);
    EXPECT_EQ(rel, "dir");
    EXPECT_FALSE(serve::normalize_path("/dir", false, rel).trailing_slash);
    EXPECT_EQ(serve::encode_path("/a b/<x>"), "/a%20b/%3Cx%3E");
    EXPECT_EQ(serve::escape_html("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
}

TEST(ServeRange, ParsesTheForms) {
    std::vector<serve::ByteRange> r;
    using serve::RangeStatus;
    ASSERT_EQ(serve::parse_range("bytes=0-9", 100, r), RangeStatus::Satisfiable);
    EXPECT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].first, 0u);
    EXPECT_EQ(r[0].last, 9u);
    ASSERT_EQ(serve::parse_range("bytes=90-", 100, r), RangeStatus::Satisfiable);
    EXPECT_EQ(r[0].first, 90u);
    EXPECT_EQ(r[0].last, 99u);
    ASSERT_EQ(serve::parse_range("bytes=-10", 100, r), RangeStatus::Satisfiable);
    EXPECT_EQ(r[0].first, 90u);
    ASSERT_EQ(serve::parse_range("bytes=-1000", 100, r), RangeStatus::Satisfiable);
    EXPECT_EQ(r[0].first, 0u);
    ASSERT_EQ(serve::parse_range("bytes=50-1000", 100, r), RangeStatus::Satisfiable);
    EXPECT_EQ(r[0].last, 99u);
    ASSERT_EQ(serve::parse_range("bytes= 0-0 , 5-6,, 200-300", 100, r), RangeStatus::Satisfiable);
    EXPECT_EQ(r.size(), 2u);
    EXPECT_EQ(serve::parse_range("bytes=100-", 100, r), RangeStatus::Unsatisfiable);
    EXPECT_EQ(serve::parse_range("bytes=-0", 100, r), RangeStatus::Unsatisfiable);
    EXPECT_EQ(serve::parse_range("bytes=0-0", 0, r), RangeStatus::Unsatisfiable);
    EXPECT_EQ(serve::parse_range("bytes=5-1", 100, r), RangeStatus::Ignore);
    EXPECT_EQ(serve::parse_range("items=0-1", 100, r), RangeStatus::Ignore);
    EXPECT_EQ(serve::parse_range("bytes=abc", 100, r), RangeStatus::Ignore);
    EXPECT_EQ(serve::parse_range("bytes=", 100, r), RangeStatus::Ignore);
    EXPECT_EQ(serve::parse_range("bytes=99999999999999999999-", 100, r), RangeStatus::Ignore);
    std::string many = "bytes=0-0";
    for (int i = 0; i < 199; ++i) many += ",0-0";
    EXPECT_EQ(serve::parse_range(many, 100, r), RangeStatus::Satisfiable);  // 200 ranges
    many += ",1-1";
    EXPECT_EQ(serve::parse_range(many, 100, r), RangeStatus::Ignore);
}

TEST(ServeDate, FormatsAndParsesTheThreeForms) {
    EXPECT_EQ(serve::format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    EXPECT_EQ(serve::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    EXPECT_EQ(serve::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    EXPECT_EQ(serve::parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
    EXPECT_FALSE(serve::parse_http_date("yesterday"));
    EXPECT_FALSE(serve::parse_http_date(""));
}

TEST(ServeMime, ByExtension) {
    EXPECT_EQ(serve::content_type_for("a/b.HTML"), "text/html");
    EXPECT_EQ(serve::content_type_for("x.wasm"), "application/wasm");
    EXPECT_EQ(serve::content_type_for("x.json"), "application/json");
    EXPECT_EQ(serve::content_type_for("dir.d/noext"), serve::kDefaultContentType);
    EXPECT_EQ(serve::content_type_for("x.unknown"), serve::kDefaultContentType);
}

// The Responder over a real directory.
class ServeResponder : public ::testing::Test {
  protected:
    void SetUp() override {
        testutil::write_file(dir_.file("a.txt"), "0123456789");
        ::mkdir(dir_.file("d").c_str(), 0755);
        ::mkdir(dir_.file("e").c_str(), 0755);
        testutil::write_file(dir_.file("d/index.html"), "<p>index</p>");
        testutil::write_file(dir_.file("e/x y.txt"), "x");
        ASSERT_EQ(::symlink("/etc/hostname", dir_.file("out").c_str()), 0);
        ASSERT_EQ(::symlink("a.txt", dir_.file("in").c_str()), 0);
        root_ = ::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_GE(root_, 0);
        clock_.update();
    }
    void TearDown() override { ::close(root_); }

    serve::Response respond(const std::string& request_text) {
        serve::OpenFileCache cache(root_, config_.follow_symlinks, 0);
        serve::Responder responder(config_, cache, clock_);
        serve::RequestReader reader;
        serve::Request request;
        serve::Response response;
        ParseResult r = reader.parse(request_text.data(), request_text.size(), request);
        EXPECT_EQ(r.kind, ParseResult::Kind::Ready);
        responder.respond(request, response);
        response.file.reset();
        return response;
    }
    static std::string head(const serve::Response& r) {
        return r.data.substr(0, r.segments[0].length);
    }

    TempDir dir_;
    int root_ = -1;
    pagewire::serve::ServeConfig config_;
    serve::ClockStrings clock_;
};

TEST_F(ServeResponder, FileHeadersAndBodySegment) {
    serve::Response r = respond("GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(r.status, 200);
    const std::string h = head(r);
    EXPECT_TRUE(testutil::contains(h, "Content-Length: 10\r\n")) << h;
    EXPECT_TRUE(testutil::contains(h, "Content-Type: text/plain\r\n")) << h;
    EXPECT_TRUE(testutil::contains(h, "Accept-Ranges: bytes\r\n")) << h;
    ASSERT_EQ(r.segments.size(), 2u);
    EXPECT_TRUE(r.segments[1].file);
    EXPECT_EQ(r.segments[1].length, 10u);
    EXPECT_FALSE(r.close);
    // HEAD: the same headers, no body.
    serve::Response h2 = respond("HEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(h2.segments.size(), 1u);
    EXPECT_TRUE(testutil::contains(head(h2), "Content-Length: 10\r\n"));
}

TEST_F(ServeResponder, ConditionalsAndRanges) {
    const struct stat st = testutil::stat_of(dir_.file("a.txt"));
    char etag[64];
    std::snprintf(etag, sizeof etag, "\"%llx-a\"", static_cast<unsigned long long>(st.st_mtime));
    EXPECT_EQ(respond(std::string("GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\", ") +
                      etag + "\r\n\r\n")
                  .status,
              304);
    EXPECT_EQ(respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\n\r\n").status, 304);
    EXPECT_EQ(respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"other\"\r\n\r\n").status,
              200);
    const std::string lm = serve::format_http_date(st.st_mtime);
    EXPECT_EQ(
        respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: " + lm + "\r\n\r\n").status,
        304);
    EXPECT_EQ(respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: " +
                      serve::format_http_date(st.st_mtime - 10) + "\r\n\r\n")
                  .status,
              200);

    serve::Response one = respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=2-4\r\n\r\n");
    EXPECT_EQ(one.status, 206);
    EXPECT_TRUE(testutil::contains(head(one), "Content-Range: bytes 2-4/10\r\n"));
    EXPECT_EQ(one.segments[1].offset, 2u);
    EXPECT_EQ(one.segments[1].length, 3u);

    serve::Response multi =
        respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0,-2\r\n\r\n");
    EXPECT_EQ(multi.status, 206);
    EXPECT_TRUE(testutil::contains(head(multi), "multipart/byteranges; boundary="));
    // Content-Length equals what the segments carry.
    const std::string h = head(multi);
    const std::size_t cl = h.find("Content-Length: ");
    EXPECT_EQ(std::stoull(h.substr(cl + 16)), multi.total_bytes() - multi.segments[0].length);

    serve::Response bad = respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=10-\r\n\r\n");
    EXPECT_EQ(bad.status, 416);
    EXPECT_TRUE(testutil::contains(head(bad), "Content-Range: bytes */10\r\n"));
    EXPECT_EQ(respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=x\r\n\r\n").status, 200);
    // If-Range with another validator: the whole file.
    EXPECT_EQ(
        respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1\r\nIf-Range: \"old\"\r\n\r\n")
            .status,
        200);
    EXPECT_EQ(
        respond(std::string("GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1\r\nIf-Range: ") +
                etag + "\r\n\r\n")
            .status,
        206);
}

TEST_F(ServeResponder, DirectoriesSymlinksAndErrors) {
    serve::Response redirect = respond("GET /d HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(redirect.status, 301);
    EXPECT_TRUE(testutil::contains(head(redirect), "Location: /d/\r\n"));
    EXPECT_EQ(respond("GET /d/ HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    EXPECT_EQ(respond("GET /e/ HTTP/1.1\r\nHost: t\r\n\r\n").status, 403);
    config_.list_directories = true;
    serve::Response listing = respond("GET /e/ HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(listing.status, 200);
    EXPECT_TRUE(testutil::contains(listing.data, "<a href=\"x%20y.txt\">x y.txt</a>"))
        << listing.data;
    EXPECT_EQ(respond("GET /in HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    EXPECT_EQ(respond("GET /out HTTP/1.1\r\nHost: t\r\n\r\n").status, 403);
    config_.follow_symlinks = true;
    EXPECT_EQ(respond("GET /out HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    EXPECT_EQ(respond("GET /missing HTTP/1.1\r\nHost: t\r\n\r\n").status, 404);
    EXPECT_EQ(respond("GET /a.txt/ HTTP/1.1\r\nHost: t\r\n\r\n").status, 404);
    serve::Response put = respond("PUT /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(put.status, 405);
    EXPECT_TRUE(testutil::contains(head(put), "Allow: GET, HEAD\r\n"));
    EXPECT_FALSE(put.close);
    serve::Response body = respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n");
    EXPECT_EQ(body.status, 400);
    EXPECT_TRUE(body.close);
    EXPECT_TRUE(testutil::contains(head(body), "Connection: close\r\n"));
    // HTTP/1.1 needs Host (RFC 9112 3.2); HTTP/1.0 does not.
    serve::Response no_host = respond("GET /a.txt HTTP/1.1\r\n\r\n");
    EXPECT_EQ(no_host.status, 400);
    EXPECT_TRUE(no_host.close);
    EXPECT_EQ(respond("GET /a.txt HTTP/1.0\r\n\r\n").status, 200);
    EXPECT_EQ(respond("GET /a.txt HTTP/1.1\r\nhost: \r\n\r\n").status, 200);
}

TEST(ServeOpenFileCache, ReusesThenRevalidates) {
    TempDir dir;
    testutil::write_file(dir.file("f"), "one");
    const int root = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root, 0);
    serve::OpenFileCache cache(root, false, 1000);
    auto first = cache.open("f", 0);
    ASSERT_TRUE(first.file);
    EXPECT_EQ(first.file->size, 3u);
    testutil::write_file(dir.file("f"), "three");                  // same inode, new size
    EXPECT_EQ(cache.open("f", 500).file.get(), first.file.get());  // still valid
    auto later = cache.open("f", 1500);                            // revalidated
    ASSERT_TRUE(later.file);
    EXPECT_EQ(later.file->size, 5u);
    ::unlink(dir.file("f").c_str());
    EXPECT_EQ(cache.open("f", 3000).error, ENOENT);
    EXPECT_EQ(cache.size(), 0u);
    ::close(root);
}

// The engine's extension: a full non-blocking socket returns instead of waiting.
TEST(ServeTransferStep, ReturnsWhenTheSocketIsFull) {
    TempDir dir;
    const std::string data = testutil::random_bytes(8 << 20);
    testutil::write_file(dir.file("src"), data);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    const int src = ::open(dir.file("src").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(src, 0);
    for (pagewire::TransferMethod method :
         {pagewire::TransferMethod::Sendfile, pagewire::TransferMethod::ReadWrite,
          pagewire::TransferMethod::MmapWrite}) {
        SCOPED_TRACE(std::string(pagewire::method_name(method)));
        const pagewire::TransferStep step = pagewire::transfer_step(
            src, sv[0], pagewire::EndpointKind::Socket, 0, data.size(), method);
        EXPECT_EQ(step.error, 0);
        EXPECT_TRUE(step.would_block);
        EXPECT_GT(step.bytes, 0u);
        EXPECT_LT(step.bytes, data.size());
        // What arrived is the file's beginning, byte for byte.
        std::string got(step.bytes, '\0');
        std::size_t have = 0;
        while (have < got.size()) {
            const ssize_t n = ::read(sv[1], got.data() + have, got.size() - have);
            ASSERT_GT(n, 0);
            have += static_cast<std::size_t>(n);
        }
        EXPECT_EQ(got, data.substr(0, step.bytes));
    }
    // Through transfer() with the option: stats say it stopped early.
    pagewire::TransferOptions options;
    options.method = pagewire::TransferMethod::Sendfile;
    options.return_on_would_block = true;
    const pagewire::TransferStats stats = pagewire::transfer(
        pagewire::Endpoint{src, "src"}, pagewire::Endpoint{sv[0], "socket"}, options);
    EXPECT_TRUE(stats.would_block);
    EXPECT_LT(stats.bytes, data.size());
    ::close(src);
    ::close(sv[0]);
    ::close(sv[1]);
}

// ---- issue 12: range coalescing, Host, obs-fold, versions -------------------

TEST(ServeRange, CoalescesOverlappingAndAdjacentRangesInOrder) {
    using serve::ByteRange;
    std::vector<ByteRange> r = {{50, 60}, {0, 10}, {11, 20}, {55, 70}, {90, 95}};
    ASSERT_TRUE(serve::coalesce_ranges(r, 100));
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0].first, 0u);
    EXPECT_EQ(r[0].last, 20u);  // adjacent: 0-10 and 11-20
    EXPECT_EQ(r[1].first, 50u);
    EXPECT_EQ(r[1].last, 70u);  // overlapping, given out of order
    EXPECT_EQ(r[2].first, 90u);
    EXPECT_EQ(r[2].last, 95u);
    std::vector<ByteRange> gap = {{0, 0}, {2, 2}};  // a gap of one byte stays two parts
    ASSERT_TRUE(serve::coalesce_ranges(gap, 100));
    EXPECT_EQ(gap.size(), 2u);
    std::vector<ByteRange> halves = {{50, 99}, {0, 49}};  // exactly the file: allowed
    ASSERT_TRUE(serve::coalesce_ranges(halves, 100));
    ASSERT_EQ(halves.size(), 1u);
    EXPECT_EQ(halves[0].first, 0u);
    EXPECT_EQ(halves[0].last, 99u);
}

TEST(ServeRange, RangesAddingUpToMoreThanTheFileAreRefused) {
    using serve::ByteRange;
    std::vector<ByteRange> r;
    ASSERT_EQ(serve::parse_range("bytes=0-,0-", 100, r), serve::RangeStatus::Satisfiable);
    EXPECT_FALSE(serve::coalesce_ranges(r, 100));
    std::vector<ByteRange> one_over = {{0, 50}, {50, 99}};  // 101 bytes asked of 100
    EXPECT_FALSE(serve::coalesce_ranges(one_over, 100));
    std::vector<ByteRange> huge(200, ByteRange{0, UINT64_MAX - 1});  // no overflow
    EXPECT_FALSE(serve::coalesce_ranges(huge, UINT64_MAX));
}

TEST_F(ServeResponder, AmplifyingRangesGetTheWholeFileOverlappingOnesOnePart) {
    std::string spec = "bytes=0-";
    for (int i = 1; i < 200; ++i) spec += ",0-";
    const serve::Response whole =
        respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: " + spec + "\r\n\r\n");
    EXPECT_EQ(whole.status, 200);
    EXPECT_EQ(whole.body_bytes, 10u);
    const serve::Response part =
        respond("GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3,2-5\r\n\r\n");
    EXPECT_EQ(part.status, 206);
    // Two ranges asked: still multipart, with the one coalesced part 0-5.
    EXPECT_NE(head(part).find("multipart/byteranges"), std::string::npos) << head(part);
    std::size_t file_segments = 0;
    for (const serve::Segment& s : part.segments) {
        if (!s.file) continue;
        ++file_segments;
        EXPECT_EQ(s.offset, 0u);
        EXPECT_EQ(s.length, 6u);
    }
    EXPECT_EQ(file_segments, 1u);
    EXPECT_NE(part.data.find("Content-Range: bytes 0-5/10"), std::string::npos);
}

TEST(ServeRequest, DuplicateHostObsFoldAndVersions) {
    auto status_of = [](std::string_view bytes) {
        const Parsed p = parse_all(bytes);
        return p.result.kind == ParseResult::Kind::Error ? p.result.status : 0;
    };
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHOST: a\r\nhost: b\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX-Host: a\r\nHost: b\r\n\r\n"), 0);   // not a repeat
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX: a b\t c\r\nHost: b\r\n\r\n"), 0);  // inner space
    EXPECT_EQ(status_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    EXPECT_EQ(status_of("GET / HTTP/3.1\r\nHost: a\r\n\r\n"), 505);
    const Parsed minor = parse_all("GET / HTTP/1.2\r\nHost: a\r\n\r\n");
    ASSERT_EQ(minor.result.kind, ParseResult::Kind::Ready);
    EXPECT_EQ(minor.request.http_major, 1u);
    EXPECT_TRUE(minor.request.keep_alive);  // 1.1's default
    // Two requests on one buffer: the reader's fold flag does not leak into the next.
    serve::RequestReader reader;
    serve::Request request;
    const std::string two =
        "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    ParseResult first = reader.parse(two.data(), two.size(), request);
    ASSERT_EQ(first.kind, ParseResult::Kind::Error);
    reader.reset();
    ParseResult second =
        reader.parse(two.data() + first.consumed, two.size() - first.consumed, request);
    EXPECT_EQ(second.kind, ParseResult::Kind::Ready);
}

TEST_F(ServeResponder, Http12IsAnsweredAsHttp11) {
    const serve::Response r = respond("GET /a.txt HTTP/1.2\r\nHost: t\r\n\r\n");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(head(r).substr(0, 15), "HTTP/1.1 200 OK");
    EXPECT_FALSE(r.close);
}
