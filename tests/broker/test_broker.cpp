// pagewire broker (issue 15) as a real process on 127.0.0.1: raw Kafka
// requests encoded with the module's codec (every API and its classic and
// flexible versions, pipelining, long polls, hostile frames) and real
// clients (kcat, `pagewire log tail` in another process).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <pagewire/log.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kafka/codec.hpp"
#include "socket_util.hpp"
#include "test_util.hpp"

extern char** environ;

namespace {

using testutil::numbered;

using pagewire::kafka::ApiKey;
using pagewire::kafka::Decoder;
using pagewire::kafka::Encoder;
using namespace std::chrono_literals;

// `pagewire broker --data DIR --listen 127.0.0.1:0 ARGS...`, its port read
// from the startup line; killed at the end unless stop() ended it.
class Broker {
  public:
    explicit Broker(const std::string& dir, std::vector<std::string> args = {},
                    const std::string& listen = "127.0.0.1:0") {
        std::vector<std::string> argv = {PAGEWIRE_CLI, "broker", "--data", dir, "--listen", listen,
                                         "--workers", "2",
                                         // Segments are preallocated: small ones on a shared disk.
                                         "--segment-bytes", "2M"};
        argv.insert(argv.end(), args.begin(), args.end());
        int out[2];
        if (::pipe2(out, O_CLOEXEC) != 0) testutil::die("pipe2");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
        std::vector<char*> a;
        for (auto& s : argv) a.push_back(s.data());
        a.push_back(nullptr);
        if (::posix_spawn(&pid_, a[0], &actions, nullptr, a.data(), environ) != 0)
            testutil::die("posix_spawn");
        posix_spawn_file_actions_destroy(&actions);
        ::close(out[1]);
        out_ = out[0];
        line_ = socktest::read_first_line(out_, std::chrono::steady_clock::now() + 20s);
        const std::string marker = "listening on 127.0.0.1:";
        const std::size_t at = line_.find(marker);
        if (at == std::string::npos) throw std::runtime_error("no startup line: '" + line_ + "'");
        port_ = std::stoi(line_.substr(at + marker.size()));
    }
    ~Broker() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            testutil::wait_for(pid_);
        }
        ::close(out_);
    }
    Broker(const Broker&) = delete;
    Broker& operator=(const Broker&) = delete;

    // SIGTERM, then the exit status (waitpid's).
    int stop() {
        ::kill(pid_, SIGTERM);
        const int status = testutil::wait_for(pid_);
        pid_ = -1;
        return status;
    }
    // SIGKILL: no clean close of anything.
    void kill() {
        ::kill(pid_, SIGKILL);
        testutil::wait_for(pid_);
        pid_ = -1;
    }
    // What it printed after the startup line (all of it: call after stop()).
    std::string rest_of_output() {
        std::string s;
        char buf[4096];
        for (ssize_t n; (n = ::read(out_, buf, sizeof buf)) != 0;) {
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) break;
            s.append(buf, static_cast<std::size_t>(n));
        }
        return s;
    }
    int port() const { return port_; }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    const std::string& startup_line() const { return line_; }

  private:
    pid_t pid_ = -1;
    int out_ = -1;
    int port_ = 0;
    std::string line_;
};

// A request's bytes: size, header v1 (v2 when flexible), body.
std::string frame(ApiKey key, std::int16_t version, std::int32_t correlation,
                  const std::string& body, bool flexible_header) {
    std::string f;
    Encoder e(f);
    const std::size_t at = e.reserve32();
    e.i16(static_cast<std::int16_t>(key));
    e.i16(version);
    e.i32(correlation);
    e.string("broker-test");
    if (flexible_header) e.uvarint(0);
    f += body;
    e.patch32(at, static_cast<std::int32_t>(f.size() - 4));
    return f;
}

class Connection {
  public:
    explicit Connection(int port) : fd_(socktest::connect_to(port)) {}
    ~Connection() { ::close(fd_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void send(const std::string& bytes) { socktest::send_all(fd_, bytes); }
    // One response's bytes after its size ("" at EOF).
    std::string receive() {
        char size[4];
        if (!read_exact(size, 4)) return {};
        const auto n = pagewire::wire::get_be<std::int32_t>(reinterpret_cast<std::byte*>(size));
        std::string body(static_cast<std::size_t>(n), '\0');
        if (n < 0 || !read_exact(body.data(), body.size())) return {};
        return body;
    }
    // Sends a request and returns its response body (after the header,
    // which is checked: correlation id, tagged fields when flexible).
    std::string call(ApiKey key, std::int16_t version, const std::string& body, bool flexible,
                     bool flexible_response_header = true) {
        const std::int32_t correlation = next_++;
        send(frame(key, version, correlation, body, flexible));
        return body_of(receive(), correlation, flexible && flexible_response_header);
    }
    static std::string body_of(const std::string& response, std::int32_t correlation,
                               bool flexible_header) {
        Decoder d(response.data(), response.size(), true);
        EXPECT_EQ(d.i32(), correlation);
        if (flexible_header) d.tagged_fields();
        EXPECT_TRUE(d.ok());
        return std::string(d.position(), d.remaining());
    }
    // True when the broker closed the connection (EOF or reset) within the timeout.
    bool closed_by_peer() {
        char c;
        const ssize_t n = ::recv(fd_, &c, 1, 0);
        return n == 0 || (n < 0 && errno == ECONNRESET);
    }
    int fd() const { return fd_; }

  private:
    bool read_exact(char* p, std::size_t n) {
        while (n > 0) {
            const ssize_t r = ::recv(fd_, p, n, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return false;
            p += r;
            n -= static_cast<std::size_t>(r);
        }
        return true;
    }
    int fd_;
    std::int32_t next_ = 1;
};

struct ApiVersion {
    std::int16_t min = -1, max = -1;
};

std::map<std::int16_t, ApiVersion> api_list(Decoder& d) {
    std::map<std::int16_t, ApiVersion> apis;
    const std::size_t n = d.count(6);
    for (std::size_t i = 0; i < n && d.ok(); ++i) {
        const std::int16_t key = d.i16();
        apis[key].min = d.i16();
        apis[key].max = d.i16();
        d.tagged_fields();
    }
    return apis;
}

void expect_broker_apis(const std::map<std::int16_t, ApiVersion>& apis) {
    const auto expect = [&](ApiKey key, int min, int max) {
        const auto it = apis.find(static_cast<std::int16_t>(key));
        ASSERT_NE(it, apis.end()) << "API " << static_cast<int>(key) << " not advertised";
        EXPECT_EQ(it->second.min, min) << static_cast<int>(key);
        EXPECT_EQ(it->second.max, max) << static_cast<int>(key);
    };
    expect(ApiKey::Produce, 0, 9);
    expect(ApiKey::Fetch, 4, 13);
    expect(ApiKey::ListOffsets, 1, 7);
    expect(ApiKey::Metadata, 0, 12);
    expect(ApiKey::ApiVersions, 0, 3);
}

// Metadata v1 (classic) for one topic: its error and partition count.
std::pair<std::int16_t, std::size_t> metadata_v1(Connection& c, const std::string& topic) {
    std::string body;
    Encoder e(body);
    e.array_length(1);
    e.string(topic);
    const std::string r = c.call(ApiKey::Metadata, 1, body, false);
    Decoder d(r.data(), r.size());
    const std::size_t brokers = d.count();
    for (std::size_t i = 0; i < brokers; ++i) {
        EXPECT_EQ(d.i32(), 0);  // node id
        EXPECT_EQ(d.string(), "127.0.0.1");
        EXPECT_GT(d.i32(), 0);  // port
        (void)d.nullable_string();
    }
    EXPECT_EQ(brokers, 1u);
    EXPECT_EQ(d.i32(), 0);  // controller
    EXPECT_EQ(d.count(), 1u);
    const std::int16_t error = d.i16();
    EXPECT_EQ(d.string(), topic);
    (void)d.boolean();
    const std::size_t parts = d.count();
    for (std::size_t p = 0; p < parts; ++p) {
        EXPECT_EQ(d.i16(), 0);
        EXPECT_EQ(d.i32(), static_cast<std::int32_t>(p));
        EXPECT_EQ(d.i32(), 0);  // leader
        EXPECT_EQ(d.count(), 1u);
        (void)d.i32();
        EXPECT_EQ(d.count(), 1u);
        (void)d.i32();
    }
    EXPECT_TRUE(d.ok());
    EXPECT_EQ(d.remaining(), 0u);
    return {error, parts};
}

// One RecordBatch v2 of `values` (keys "k<i>"), baseOffset 0.
std::string batch_of(const std::vector<std::string>& values) {
    std::vector<std::string> keys;
    for (std::size_t i = 0; i < values.size(); ++i)
        keys.push_back(numbered("k", static_cast<long long>(i)));
    std::vector<pagewire::Record> records;
    for (std::size_t i = 0; i < values.size(); ++i) records.push_back({keys[i], values[i]});
    std::string out(pagewire::encoded_batch_size(records), '\0');
    pagewire::encode_batch(std::span(reinterpret_cast<std::byte*>(out.data()), out.size()), 0,
                           1'700'000'000'000, records);
    return out;
}

std::string produce_body(std::int16_t version, const std::string& topic, std::int32_t partition,
                         const std::string& records, std::int16_t acks = 1) {
    std::string body;
    Encoder e(body, version >= 9);
    if (version >= 3) e.nullable_string(std::nullopt);
    e.i16(acks);
    e.i32(5000);
    e.array_length(1);
    e.string(topic);
    e.array_length(1);
    e.i32(partition);
    e.bytes(records);
    e.tagged_fields();
    e.tagged_fields();
    e.tagged_fields();
    return body;
}

struct ProduceAnswer {
    std::int16_t error = -99;
    std::int64_t base_offset = -99;
};

ProduceAnswer produce(Connection& c, std::int16_t version, const std::string& topic,
                      std::int32_t partition, const std::string& records) {
    const std::string r = c.call(ApiKey::Produce, version,
                                 produce_body(version, topic, partition, records), version >= 9);
    Decoder d(r.data(), r.size(), version >= 9);
    EXPECT_EQ(d.count(), 1u);
    EXPECT_EQ(d.string(), topic);
    EXPECT_EQ(d.count(), 1u);
    EXPECT_EQ(d.i32(), partition);
    ProduceAnswer a;
    a.error = d.i16();
    a.base_offset = d.i64();
    EXPECT_TRUE(d.ok());
    return a;
}

std::string fetch_body(std::int16_t version, const std::string& topic,
                       const pagewire::kafka::Uuid& id, std::int64_t offset, std::int32_t max_wait,
                       std::int32_t min_bytes = 1) {
    std::string body;
    Encoder e(body, version >= 12);
    e.i32(-1);
    e.i32(max_wait);
    e.i32(min_bytes);
    e.i32(1 << 20);
    e.i8(0);
    if (version >= 7) {
        e.i32(0);   // session id
        e.i32(-1);  // session epoch
    }
    e.array_length(1);
    if (version >= 13)
        e.uuid(id);
    else
        e.string(topic);
    e.array_length(1);
    e.i32(0);
    if (version >= 9) e.i32(-1);  // current leader epoch
    e.i64(offset);
    if (version >= 12) e.i32(-1);  // last fetched epoch
    if (version >= 5) e.i64(-1);   // log start offset
    e.i32(1 << 20);
    e.tagged_fields();
    e.tagged_fields();
    if (version >= 7) e.array_length(0);  // forgotten topics
    if (version >= 11) e.string("");      // rack
    e.tagged_fields();
    return body;
}

struct FetchAnswer {
    std::int16_t error = -99;
    std::int64_t high_watermark = -99;
    std::string records;
};

FetchAnswer parse_fetch(const std::string& r, std::int16_t version) {
    Decoder d(r.data(), r.size(), version >= 12);
    (void)d.i32();
    if (version >= 7) {
        EXPECT_EQ(d.i16(), 0);
        (void)d.i32();
    }
    EXPECT_EQ(d.count(), 1u);
    if (version >= 13)
        (void)d.uuid();
    else
        (void)d.string();
    EXPECT_EQ(d.count(), 1u);
    EXPECT_EQ(d.i32(), 0);
    FetchAnswer a;
    a.error = d.i16();
    a.high_watermark = d.i64();
    EXPECT_EQ(d.i64(), a.high_watermark);  // last stable offset
    if (version >= 5) (void)d.i64();
    EXPECT_EQ(d.array_length(), -1);  // aborted transactions
    if (version >= 11) {
        EXPECT_EQ(d.i32(), -1);
    }
    a.records = std::string(d.bytes());
    d.tagged_fields();
    d.tagged_fields();
    d.tagged_fields();
    EXPECT_TRUE(d.ok());
    EXPECT_EQ(d.remaining(), 0u);
    return a;
}

// The batch as the log stores it: baseOffset set.
std::string at_offset(std::string batch, std::int64_t offset) {
    pagewire::wire::put_be(reinterpret_cast<std::byte*>(batch.data()), offset);
    return batch;
}

std::int64_t list_offset(Connection& c, std::int16_t version, const std::string& topic,
                         std::int64_t timestamp) {
    std::string body;
    Encoder e(body, version >= 6);
    e.i32(-1);
    if (version >= 2) e.i8(0);
    e.array_length(1);
    e.string(topic);
    e.array_length(1);
    e.i32(0);
    if (version >= 4) e.i32(-1);
    e.i64(timestamp);
    e.tagged_fields();
    e.tagged_fields();
    e.tagged_fields();
    const std::string r = c.call(ApiKey::ListOffsets, version, body, version >= 6);
    Decoder d(r.data(), r.size(), version >= 6);
    if (version >= 2) (void)d.i32();
    EXPECT_EQ(d.count(), 1u);
    EXPECT_EQ(d.string(), topic);
    EXPECT_EQ(d.count(), 1u);
    EXPECT_EQ(d.i32(), 0);
    EXPECT_EQ(d.i16(), 0);
    (void)d.i64();
    const std::int64_t offset = d.i64();
    EXPECT_TRUE(d.ok());
    return offset;
}

TEST(BrokerProtocol, ApiVersionsV0AndV3) {
    testutil::TempDir dir;
    Broker b(dir.path());
    EXPECT_NE(b.startup_line().find("pagewire broker: listening on"), std::string::npos);
    Connection c(b.port());
    {
        const std::string r = c.call(ApiKey::ApiVersions, 0, "", false);
        Decoder d(r.data(), r.size());
        EXPECT_EQ(d.i16(), 0);
        expect_broker_apis(api_list(d));
        EXPECT_TRUE(d.ok());
        EXPECT_EQ(d.remaining(), 0u);
    }
    {
        std::string body;
        Encoder e(body, true);
        e.string("broker-test");
        e.string("1.0");
        e.tagged_fields();
        // The response header stays v0: no tagged fields after the correlation id.
        const std::string r = c.call(ApiKey::ApiVersions, 3, body, true, false);
        Decoder d(r.data(), r.size(), true);
        EXPECT_EQ(d.i16(), 0);
        expect_broker_apis(api_list(d));
        EXPECT_EQ(d.i32(), 0);  // throttle
        d.tagged_fields();
        EXPECT_TRUE(d.ok());
        EXPECT_EQ(d.remaining(), 0u);
    }
}

TEST(BrokerProtocol, UnsupportedVersionIsAnsweredWithError35) {
    testutil::TempDir dir;
    Broker b(dir.path());
    Connection c(b.port());
    // ApiVersions of an unknown version: a v0 body with the error and the list.
    const std::string r = c.call(ApiKey::ApiVersions, 99, "", false);
    Decoder d(r.data(), r.size());
    EXPECT_EQ(d.i16(), 35);
    expect_broker_apis(api_list(d));
    // Another API of an unknown version: the error code, then the close.
    const std::string m = c.call(ApiKey::Metadata, 77, "", false, false);
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(pagewire::wire::get_be<std::int16_t>(reinterpret_cast<const std::byte*>(m.data())),
              35);
    EXPECT_TRUE(c.closed_by_peer());
    // An unknown API key too.
    Connection c2(b.port());
    const std::string u = c2.call(static_cast<ApiKey>(4242), 0, "", false, false);
    ASSERT_EQ(u.size(), 2u);
    EXPECT_TRUE(c2.closed_by_peer());
}

TEST(BrokerProtocol, MetadataAutoCreatesTopics) {
    testutil::TempDir dir;
    {
        Broker b(dir.path(), {"--partitions", "3"});
        Connection c(b.port());
        const auto [error, parts] = metadata_v1(c, "auto.topic_1");
        EXPECT_EQ(error, 0);
        EXPECT_EQ(parts, 3u);
        for (int p = 0; p < 3; ++p)
            EXPECT_TRUE(
                std::filesystem::is_directory(dir.path() + "/auto.topic_1-" + std::to_string(p)));
        // A name Kafka refuses.
        EXPECT_EQ(metadata_v1(c, "bad/name").first, 17);
        // v12 (flexible): the topic id is kept, and a null list is every topic.
        std::string body;
        Encoder e(body, true);
        e.array_length(-1);
        e.boolean(true);
        e.boolean(false);
        e.tagged_fields();
        const std::string r = c.call(ApiKey::Metadata, 12, body, true);
        Decoder d(r.data(), r.size(), true);
        (void)d.i32();
        EXPECT_EQ(d.count(), 1u);
        (void)d.i32();
        EXPECT_EQ(d.string(), "127.0.0.1");
        EXPECT_EQ(d.i32(), b.port());
        (void)d.nullable_string();
        d.tagged_fields();
        EXPECT_EQ(d.nullable_string().value_or(""), "pagewire");
        (void)d.i32();
        EXPECT_EQ(d.count(), 1u);
        EXPECT_EQ(d.i16(), 0);
        EXPECT_EQ(d.nullable_string().value_or(""), "auto.topic_1");
        EXPECT_NE(d.uuid(), pagewire::kafka::Uuid{});
        EXPECT_TRUE(d.ok());
    }
    // Topics survive a restart; --no-auto-create refuses unknown ones.
    Broker b(dir.path(), {"--no-auto-create"});
    Connection c(b.port());
    EXPECT_EQ(metadata_v1(c, "auto.topic_1"), std::make_pair(std::int16_t{0}, std::size_t{3}));
    EXPECT_EQ(metadata_v1(c, "other").first, 3);
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/other-0"));
}

class BrokerFetch : public ::testing::TestWithParam<bool> {};

TEST_P(BrokerFetch, ProduceThenFetchByteIdentical) {
    testutil::TempDir dir;
    std::vector<std::string> args;
    if (GetParam()) args.push_back("--fetch-copy");
    Broker b(dir.path(), args);
    Connection c(b.port());
    ASSERT_EQ(metadata_v1(c, "pf").first, 0);
    const std::string one = batch_of({"alpha", "beta", "gamma"});
    const std::string two = batch_of({"delta", std::string(3000, 'x')});
    EXPECT_EQ(produce(c, 7, "pf", 0, one).base_offset, 0);
    const ProduceAnswer second = produce(c, 9, "pf", 0, two);  // flexible
    EXPECT_EQ(second.error, 0);
    EXPECT_EQ(second.base_offset, 3);
    const std::string expected = one + at_offset(two, 3);
    for (std::int16_t v : {4, 7, 11, 12}) {
        const FetchAnswer f =
            parse_fetch(c.call(ApiKey::Fetch, v, fetch_body(v, "pf", {}, 0, 0), v >= 12), v);
        EXPECT_EQ(f.error, 0) << "v" << v;
        EXPECT_EQ(f.high_watermark, 5) << "v" << v;
        EXPECT_EQ(f.records, expected) << "v" << v;
    }
    // v13 names the topic by id: read it from Metadata v12.
    std::string body;
    Encoder e(body, true);
    e.array_length(1);
    e.uuid({});
    e.nullable_string("pf");
    e.tagged_fields();
    e.boolean(false);
    e.boolean(false);
    e.tagged_fields();
    const std::string m = c.call(ApiKey::Metadata, 12, body, true);
    const std::size_t at = m.find("\3pf");  // compact string "pf", then the id
    ASSERT_NE(at, std::string::npos);
    Decoder d(m.data() + at + 3, 16);
    const pagewire::kafka::Uuid id = d.uuid();
    const FetchAnswer f13 =
        parse_fetch(c.call(ApiKey::Fetch, 13, fetch_body(13, "", id, 3, 0), true), 13);
    EXPECT_EQ(f13.error, 0);
    EXPECT_EQ(f13.records, at_offset(two, 3));
    // Past the end: OFFSET_OUT_OF_RANGE; an unknown topic.
    EXPECT_EQ(
        parse_fetch(c.call(ApiKey::Fetch, 11, fetch_body(11, "pf", {}, 99, 0), false), 11).error,
        1);
    EXPECT_EQ(
        parse_fetch(c.call(ApiKey::Fetch, 11, fetch_body(11, "nope", {}, 0, 0), false), 11).error,
        3);
    // A batch whose CRC is wrong is refused, and nothing is appended.
    std::string bad = batch_of({"zzz"});
    bad.back() ^= 1;
    EXPECT_EQ(produce(c, 7, "pf", 0, bad).error, 2);
    EXPECT_EQ(list_offset(c, 1, "pf", -1), 5);
}

INSTANTIATE_TEST_SUITE_P(SendfileAndCopy, BrokerFetch, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Copy" : "Sendfile"; });

TEST(BrokerProtocol, ListOffsetsEarliestLatestByTime) {
    testutil::TempDir dir;
    Broker b(dir.path());
    Connection c(b.port());
    ASSERT_EQ(metadata_v1(c, "lo").first, 0);
    for (std::int16_t v : {1, 7}) {
        EXPECT_EQ(list_offset(c, v, "lo", -2), 0);
        EXPECT_EQ(list_offset(c, v, "lo", -1), 0);
    }
    ASSERT_EQ(produce(c, 7, "lo", 0, batch_of({"a", "b"})).error, 0);
    ASSERT_EQ(produce(c, 7, "lo", 0, batch_of({"c"})).error, 0);
    for (std::int16_t v : {1, 4, 6, 7}) {
        EXPECT_EQ(list_offset(c, v, "lo", -2), 0) << v;
        EXPECT_EQ(list_offset(c, v, "lo", -1), 3) << v;
        // Every record has timestamp 1'700'000'000'000: the first one is at 0.
        EXPECT_EQ(list_offset(c, v, "lo", 1'600'000'000'000), 0) << v;
        EXPECT_EQ(list_offset(c, v, "lo", 1'800'000'000'000), -1) << v;
    }
    EXPECT_EQ(list_offset(c, 7, "lo", -3), 0);  // the first record of the largest timestamp
}

TEST(BrokerProtocol, PipelinedRequestsAnsweredInOrder) {
    testutil::TempDir dir;
    Broker b(dir.path());
    Connection c(b.port());
    std::string all;
    for (std::int32_t i = 0; i < 50; ++i) all += frame(ApiKey::ApiVersions, 0, 1000 + i, "", false);
    c.send(all);
    for (std::int32_t i = 0; i < 50; ++i) {
        const std::string r = c.receive();
        ASSERT_GE(r.size(), 6u);
        EXPECT_EQ(
            pagewire::wire::get_be<std::int32_t>(reinterpret_cast<const std::byte*>(r.data())),
            1000 + i);
    }
}

TEST(BrokerProtocol, FetchLongPollEndsWhenDataArrives) {
    testutil::TempDir dir;
    Broker b(dir.path());
    Connection consumer(b.port());
    Connection producer(b.port());
    ASSERT_EQ(metadata_v1(producer, "lp").first, 0);
    // Nothing arrives: the answer comes after max_wait_ms, empty.
    auto t0 = std::chrono::steady_clock::now();
    FetchAnswer empty =
        parse_fetch(consumer.call(ApiKey::Fetch, 11, fetch_body(11, "lp", {}, 0, 400), false), 11);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 350ms);
    EXPECT_TRUE(empty.records.empty());
    // A produce ends the wait long before max_wait_ms.
    consumer.send(frame(ApiKey::Fetch, 11, 77, fetch_body(11, "lp", {}, 0, 20'000), false));
    std::this_thread::sleep_for(200ms);
    t0 = std::chrono::steady_clock::now();
    const std::string batch = batch_of({"wake up"});
    ASSERT_EQ(produce(producer, 7, "lp", 0, batch).error, 0);
    const FetchAnswer f = parse_fetch(Connection::body_of(consumer.receive(), 77, false), 11);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_EQ(f.records, batch);
}

TEST(BrokerProtocol, HostileFramesCloseOnlyTheirConnection) {
    testutil::TempDir dir;
    Broker b(dir.path());
    Connection good(b.port());
    ASSERT_EQ(metadata_v1(good, "h").first, 0);
    {
        Connection huge(b.port());  // over the 100 MiB request limit
        huge.send(std::string("\x7f\xff\xff\xff", 4) + "xxxx");
        EXPECT_TRUE(huge.closed_by_peer());
    }
    {
        Connection negative(b.port());
        negative.send(std::string("\xff\xff\xff\xfe", 4));
        EXPECT_TRUE(negative.closed_by_peer());
    }
    {
        Connection tiny(b.port());  // too small for a request header
        tiny.send(std::string("\0\0\0\3abc", 7));
        EXPECT_TRUE(tiny.closed_by_peer());
    }
    {
        Connection truncated(b.port());  // a frame that never completes, then EOF
        truncated.send(std::string("\0\0\1\0", 4) + std::string(20, 'a'));
        ::shutdown(truncated.fd(), SHUT_WR);
        EXPECT_TRUE(truncated.closed_by_peer());
    }
    {
        // A Produce whose topic count is negative, then garbage after a valid request.
        Connection garbage(b.port());
        std::string body;
        Encoder e(body);
        e.nullable_string(std::nullopt);
        e.i16(1);
        e.i32(1000);
        e.i32(-7);
        const std::string r = garbage.call(ApiKey::Produce, 7, body, false);
        Decoder d(r.data(), r.size());
        EXPECT_EQ(d.count(), 0u);  // no partition answered
        garbage.send(frame(ApiKey::ApiVersions, 0, 5, "", false) + "\0\0\0\x0c" +
                     std::string(12, '\xee'));
        const std::string ok = garbage.receive();
        EXPECT_FALSE(ok.empty());
        EXPECT_TRUE(garbage.closed_by_peer());  // API key 0xeeee is unknown
    }
    // The well-behaved connection was served all along.
    const std::string batch = batch_of({"still here"});
    EXPECT_EQ(produce(good, 7, "h", 0, batch).base_offset, 0);
    EXPECT_EQ(
        parse_fetch(good.call(ApiKey::Fetch, 11, fetch_body(11, "h", {}, 0, 0), false), 11).records,
        batch);
}

TEST(BrokerProtocol, GracefulStopClosesLogsClean) {
    testutil::TempDir dir;
    Broker b(dir.path(), {"--durability", "every"});
    Connection c(b.port());
    ASSERT_EQ(metadata_v1(c, "gs").first, 0);
    ASSERT_EQ(produce(c, 7, "gs", 0, batch_of({"x", "y"})).error, 0);
    const int status = b.stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::describe_status(status);
    // The summary line: the connection and its two requests, in and out bytes.
    const std::string summary = b.rest_of_output();
    EXPECT_TRUE(testutil::contains(summary, "pagewire broker: stopped after ")) << summary;
    EXPECT_TRUE(testutil::contains(summary, ": 1 connection, 2 requests (Produce 1, Metadata 1), "))
        << summary;
    EXPECT_EQ(testutil::line_count(summary), 1u) << summary;
    pagewire::LogOptions options;
    options.create = false;
    options.read_only = true;
    pagewire::Log log = pagewire::Log::open(dir.path() + "/gs-0", options);
    EXPECT_EQ(log.end_offset(), 2);
    EXPECT_TRUE(pagewire::verify_log(dir.path() + "/gs-0").empty());
}

// ---- real clients ----------------------------------------------------------

bool have_kcat() {
    return testutil::run({"sh", "-c", "command -v kcat"}).exit_code() == 0;
}

TEST(BrokerKcat, ListProduceConsumeKeyed) {
    if (!have_kcat()) GTEST_SKIP() << "kcat is not installed (scripts/install-deps.sh installs it)";
    testutil::TempDir dir;
    Broker b(dir.path(), {"--partitions", "3"});
    std::string lines;
    std::set<std::string> want;
    for (int i = 0; i < 300; ++i) {
        const std::string line = "key" + std::to_string(i % 17) + ":value-" + std::to_string(i);
        lines += line + "\n";
        want.insert(line);
    }
    const auto produced =
        testutil::run({"kcat", "-b", b.address(), "-P", "-t", "kc", "-K:"}, lines);
    ASSERT_EQ(produced.exit_code(), 0) << produced;
    const auto listed = testutil::run({"kcat", "-b", b.address(), "-L", "-t", "kc"});
    ASSERT_EQ(listed.exit_code(), 0) << listed;
    EXPECT_TRUE(testutil::contains(listed.out, "topic \"kc\" with 3 partitions")) << listed.out;
    EXPECT_TRUE(testutil::contains(listed.out, "broker 0 at " + b.address())) << listed.out;
    const auto consumed = testutil::run({"kcat", "-b", b.address(), "-C", "-t", "kc", "-o",
                                         "beginning", "-e", "-q", "-f", "%p %k:%s\n"});
    ASSERT_EQ(consumed.exit_code(), 0) << consumed;
    std::set<std::string> got;
    std::map<std::string, std::string> partition_of_key;
    std::map<std::string, int> last_value_of_partition;
    std::istringstream in(consumed.out);
    for (std::string l; std::getline(in, l);) {
        const std::size_t space = l.find(' ');
        const std::string p = l.substr(0, space), record = l.substr(space + 1);
        got.insert(record);
        const std::string key = record.substr(0, record.find(':'));
        // One key, one partition (librdkafka's hash), and order kept in it.
        if (partition_of_key.count(key) != 0) {
            EXPECT_EQ(partition_of_key[key], p) << key;
        }
        partition_of_key[key] = p;
        const int n = std::stoi(record.substr(record.find("value-") + 6));
        if (last_value_of_partition.count(p) != 0) {
            EXPECT_GT(n, last_value_of_partition[p]);
        }
        last_value_of_partition[p] = n;
    }
    EXPECT_EQ(got, want);
    EXPECT_EQ(partition_of_key.size(), 17u);
}

TEST(BrokerKcat, LogTailInAnotherProcessSeesProducedMessages) {
    if (!have_kcat()) GTEST_SKIP() << "kcat is not installed (scripts/install-deps.sh installs it)";
    testutil::TempDir dir;
    Broker b(dir.path());
    Connection c(b.port());
    ASSERT_EQ(metadata_v1(c, "tail").first, 0);
    testutil::RunResult tailed;
    std::thread tail([&] {
        testutil::RunOptions options;
        options.timeout = 30s;
        tailed =
            testutil::run_pagewire({"log", "tail", dir.path() + "/tail-0", "-n", "5"}, options);
    });
    std::this_thread::sleep_for(700ms);  // the tail starts at the end: let it open first
    const auto produced = testutil::run({"kcat", "-b", b.address(), "-P", "-t", "tail", "-K:"},
                                        "a:one\nb:two\nc:three\nd:four\ne:five\n");
    tail.join();
    ASSERT_EQ(produced.exit_code(), 0) << produced;
    ASSERT_EQ(tailed.exit_code(), 0) << tailed;
    for (const char* v : {"one", "two", "three", "four", "five"})
        EXPECT_TRUE(testutil::contains(tailed.out, v)) << tailed.out;
}

}  // namespace

namespace {

// kcat's lines "<partition> <key>:<value>" as a sorted set of "key:value".
std::set<std::string> records_of(const std::string& out) {
    std::set<std::string> s;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) s.insert(l.substr(l.find(' ') + 1));
    return s;
}

TEST(BrokerKcat, GroupConsumerResumesFromCommittedOffsets) {
    if (!have_kcat()) GTEST_SKIP() << "kcat is not installed (scripts/install-deps.sh installs it)";
    testutil::TempDir dir;
    auto broker =
        std::make_unique<Broker>(dir.path(), std::vector<std::string>{"--partitions", "3"});
    const auto produce_lines = [&](int from, int to) {
        std::string lines;
        std::set<std::string> want;
        for (int i = from; i < to; ++i) {
            const std::string line = "key" + std::to_string(i % 11) + ":v" + std::to_string(i);
            lines += line + "\n";
            want.insert(line);
        }
        const auto r =
            testutil::run({"kcat", "-b", broker->address(), "-P", "-t", "grp", "-K:"}, lines);
        EXPECT_EQ(r.exit_code(), 0) << r;
        return want;
    };
    const auto consume = [&] {
        return testutil::run({"kcat", "-b", broker->address(), "-G", "readers", "grp", "-X",
                              "auto.offset.reset=earliest", "-e", "-q", "-f", "%p %k:%s\n"});
    };
    const std::set<std::string> first = produce_lines(0, 120);
    const auto r1 = consume();
    ASSERT_EQ(r1.exit_code(), 0) << r1;
    EXPECT_EQ(records_of(r1.out), first);
    // A restart of the broker too: the group's offsets are on disk.
    EXPECT_EQ(broker->stop(), 0);
    broker = std::make_unique<Broker>(dir.path());
    const std::set<std::string> second = produce_lines(120, 150);
    const auto r2 = consume();
    ASSERT_EQ(r2.exit_code(), 0) << r2;
    EXPECT_EQ(records_of(r2.out), second);  // only what came after the commit
}

}  // namespace

namespace {

// Debian's Python with its Kafka client packages (not a virtualenv's).
constexpr const char* kPython = "/usr/bin/python3";

bool have_python_module(const char* module) {
    return testutil::run({kPython, "-c", std::string("import ") + module}).exit_code() == 0;
}

// "<partition> <offset> <key> <value>" lines: every record once, offsets
// increasing per partition, each key in one partition.
void expect_consumed(const std::string& out, int n, const std::string& key_prefix) {
    std::set<std::string> values;
    std::map<std::string, std::string> partition_of_key;
    std::map<std::string, long> last_offset;
    std::istringstream in(out);
    for (std::string p, key, value; in >> p;) {
        long offset = 0;
        in >> offset >> key >> value;
        values.insert(key + "=" + value);
        if (partition_of_key.count(key) != 0) {
            EXPECT_EQ(partition_of_key[key], p) << key;
        }
        partition_of_key[key] = p;
        if (last_offset.count(p) != 0) {
            EXPECT_GT(offset, last_offset[p]) << p;
        }
        last_offset[p] = offset;
    }
    std::set<std::string> want;
    for (int i = 0; i < n; ++i)
        want.insert(key_prefix + std::to_string(i % 13) + "=value-" + std::to_string(i));
    EXPECT_EQ(values, want);
    EXPECT_EQ(last_offset.size(), 3u) << "records in all 3 partitions";
}

constexpr const char* kConfluentScript = R"(
import sys
from confluent_kafka import Producer, Consumer, TopicPartition
bs, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = Producer({'bootstrap.servers': bs, 'enable.idempotence': True, 'acks': 'all',
              'linger.ms': 2, 'compression.type': sys.argv[4]})
errors = []
def report(err, msg):
    if err is not None:
        errors.append(str(err))
for i in range(n):
    p.produce(topic, key='key%d' % (i % 13), value='value-%d' % i, on_delivery=report)
    p.poll(0)
if p.flush(30) != 0 or errors:
    sys.exit('produce failed: %s' % errors[:3])
c = Consumer({'bootstrap.servers': bs, 'group.id': 'assigned', 'enable.auto.commit': False})
parts = c.list_topics(topic, timeout=10).topics[topic].partitions
c.assign([TopicPartition(topic, part, 0) for part in parts])
got = 0
while got < n:
    m = c.poll(20)
    if m is None:
        sys.exit('consumed only %d of %d' % (got, n))
    if m.error():
        sys.exit('consume: %s' % m.error())
    print(m.partition(), m.offset(), m.key().decode(), m.value().decode())
    got += 1
c.close()
)";

TEST(BrokerPython, ConfluentKafkaIdempotentProducerAndAssignedConsumer) {
    if (!have_python_module("confluent_kafka"))
        GTEST_SKIP() << "python3-confluent-kafka is not installed (scripts/install-deps.sh)";
    testutil::TempDir dir;
    Broker b(dir.path(), {"--partitions", "3"});
    for (const char* codec : {"none", "lz4"}) {
        const std::string topic = std::string("confluent-") + codec;
        const auto r =
            testutil::run({kPython, "-c", kConfluentScript, b.address(), topic, "500", codec});
        ASSERT_EQ(r.exit_code(), 0) << r;
        expect_consumed(r.out, 500, "key");
    }
}

constexpr const char* kKafkaPythonScript = R"(
import sys
from kafka import KafkaProducer, KafkaConsumer
bs, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = KafkaProducer(bootstrap_servers=bs, acks=1)
futures = [p.send(topic, key=b'key%d' % (i % 13), value=b'value-%d' % i) for i in range(n)]
p.flush(30)
for f in futures:
    f.get(timeout=10)
p.close()
c = KafkaConsumer(topic, bootstrap_servers=bs, group_id='py-group', auto_offset_reset='earliest',
                  consumer_timeout_ms=8000, enable_auto_commit=False)
got = 0
for m in c:
    print(m.partition, m.offset, m.key.decode(), m.value.decode())
    got += 1
    if got == n:
        break
c.commit()
c.close()
)";

TEST(BrokerPython, KafkaPythonProducerAndGroupConsumer) {
    if (!have_python_module("kafka"))
        GTEST_SKIP() << "python3-kafka (kafka-python) is not installed (scripts/install-deps.sh)";
    testutil::TempDir dir;
    Broker b(dir.path(), {"--partitions", "3"});
    const auto r = testutil::run({kPython, "-c", kKafkaPythonScript, b.address(), "kp", "300"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    expect_consumed(r.out, 300, "key");
}

// A batch of an idempotent producer: producer id, epoch, base sequence set
// and the CRC computed again.
std::string idempotent_batch(const std::vector<std::string>& values, std::int64_t producer,
                             std::int16_t epoch, std::int32_t sequence) {
    std::string b = batch_of(values);
    auto* p = reinterpret_cast<std::byte*>(b.data());
    pagewire::wire::put_be(p + 43, producer);
    pagewire::wire::put_be(p + 51, epoch);
    pagewire::wire::put_be(p + 53, sequence);
    pagewire::wire::put_be(p + 17, pagewire::crc32c(p + 21, b.size() - 21));
    return b;
}

TEST(BrokerProtocol, IdempotentProduceDropsDuplicatesAndRefusesGaps) {
    testutil::TempDir dir;
    Broker b(dir.path());
    Connection c(b.port());
    // InitProducerId v1 (classic) and v4 (flexible).
    std::string body;
    Encoder e(body);
    e.nullable_string(std::nullopt);
    e.i32(60000);
    const std::string r1 = c.call(ApiKey::InitProducerId, 1, body, false);
    Decoder d(r1.data(), r1.size());
    (void)d.i32();
    EXPECT_EQ(d.i16(), 0);
    const std::int64_t producer = d.i64();
    EXPECT_GE(producer, 0);
    EXPECT_EQ(d.i16(), 0);
    ASSERT_EQ(metadata_v1(c, "idem").first, 0);
    const std::string first = idempotent_batch({"a", "b"}, producer, 0, 0);
    EXPECT_EQ(produce(c, 7, "idem", 0, first).base_offset, 0);
    // The retry of the same batch: its offset again, nothing appended.
    const ProduceAnswer dup = produce(c, 7, "idem", 0, first);
    EXPECT_EQ(dup.error, 0);
    EXPECT_EQ(dup.base_offset, 0);
    EXPECT_EQ(list_offset(c, 1, "idem", -1), 2);
    // A gap in the sequence: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    EXPECT_EQ(produce(c, 7, "idem", 0, idempotent_batch({"c"}, producer, 0, 5)).error, 45);
    EXPECT_EQ(produce(c, 7, "idem", 0, idempotent_batch({"c"}, producer, 0, 2)).base_offset, 2);
    EXPECT_EQ(list_offset(c, 1, "idem", -1), 3);
    // An older epoch after a newer one: INVALID_PRODUCER_EPOCH (47).
    EXPECT_EQ(produce(c, 7, "idem", 0, idempotent_batch({"d"}, producer, 1, 0)).base_offset, 3);
    EXPECT_EQ(produce(c, 7, "idem", 0, idempotent_batch({"e"}, producer, 0, 3)).error, 47);
}

TEST(BrokerProtocol, CreateAndDeleteTopics) {
    testutil::TempDir dir;
    Broker b(dir.path());
    Connection c(b.port());
    const auto create = [&](std::int16_t v, const std::string& name, std::int32_t partitions,
                            std::int16_t replication) {
        std::string body;
        Encoder e(body, v >= 5);
        e.array_length(1);
        e.string(name);
        e.i32(partitions);
        e.i16(replication);
        e.array_length(0);
        e.array_length(0);
        e.tagged_fields();
        e.i32(5000);
        if (v >= 1) e.boolean(false);
        e.tagged_fields();
        const std::string r = c.call(ApiKey::CreateTopics, v, body, v >= 5);
        Decoder d(r.data(), r.size(), v >= 5);
        if (v >= 2) (void)d.i32();
        EXPECT_EQ(d.count(), 1u);
        EXPECT_EQ(d.string(), name);
        if (v >= 7) (void)d.uuid();
        const std::int16_t error = d.i16();
        EXPECT_TRUE(d.ok());
        return error;
    };
    EXPECT_EQ(create(0, "made0", 2, 1), 0);
    EXPECT_EQ(create(7, "made7", 4, -1), 0);
    EXPECT_EQ(create(7, "made7", 4, -1), 36);    // TOPIC_ALREADY_EXISTS
    EXPECT_EQ(create(5, "bad name", 1, 1), 17);  // INVALID_TOPIC_EXCEPTION
    EXPECT_EQ(create(5, "repl", 1, 3), 38);      // INVALID_REPLICATION_FACTOR
    EXPECT_EQ(create(5, "zero", 0, 1), 37);      // INVALID_PARTITIONS
    EXPECT_EQ(metadata_v1(c, "made7").second, 4u);
    EXPECT_TRUE(std::filesystem::is_directory(dir.path() + "/made7-3"));
    for (std::int16_t v : {1, 4}) {
        std::string body;
        Encoder e(body, v >= 4);
        e.array_length(1);
        e.string(v == 1 ? "made0" : "made7");
        e.i32(5000);
        e.tagged_fields();
        const std::string r = c.call(ApiKey::DeleteTopics, v, body, v >= 4);
        Decoder d(r.data(), r.size(), v >= 4);
        (void)d.i32();
        EXPECT_EQ(d.count(), 1u);
        (void)d.string();
        EXPECT_EQ(d.i16(), 0) << v;
    }
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/made7-0"));
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/made7-meta.json"));
}

}  // namespace

namespace {

// kill -9 during idempotent produce with acks all and durability every:
// every acknowledged batch is there after the restart, exactly once, sound,
// and the retry of the last one (the producer did not see its answer) is
// recognised as a duplicate although the broker restarted.
TEST(BrokerProtocol, KillNineKeepsAcknowledgedBatchesOnce) {
    testutil::TempDir dir;
    const std::int64_t producer = 4242;
    std::int32_t sequence = 0;
    std::int64_t acknowledged = 0;
    std::string last;
    for (int round = 0; round < 5; ++round) {
        Broker b(dir.path(), {"--durability", "every"});
        Connection c(b.port());
        ASSERT_EQ(metadata_v1(c, "k9").first, 0);
        if (!last.empty()) {
            const ProduceAnswer retry = produce(c, 7, "k9", 0, last);
            EXPECT_EQ(retry.error, 0);
            EXPECT_EQ(retry.base_offset, acknowledged - 2) << "round " << round;
        }
        for (int i = 0; i < 20; ++i) {
            last =
                idempotent_batch({numbered("r", round), std::to_string(i)}, producer, 0, sequence);
            const ProduceAnswer a = produce(c, 7, "k9", 0, last);
            ASSERT_EQ(a.error, 0);
            ASSERT_EQ(a.base_offset, acknowledged);
            sequence += 2;
            acknowledged += 2;
        }
        EXPECT_EQ(list_offset(c, 1, "k9", -1), acknowledged);
        b.kill();
    }
    EXPECT_TRUE(pagewire::verify_log(dir.path() + "/k9-0").empty());
    Broker b(dir.path());
    Connection c(b.port());
    EXPECT_EQ(list_offset(c, 1, "k9", -1), acknowledged);
}

// A port of 127.0.0.1 nothing listens on now (the kernel's pick, released).
int unused_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        testutil::die("bind 127.0.0.1:0");
    ::close(fd);
    return ntohs(a.sin_port);
}

// An idempotent producer that outlives many brokers: it produces n values
// "m-<i>" (acks=all), paced, retrying through every restart, and prints each
// value once its delivery is acknowledged, "ERR ..." for a failed one.
constexpr const char* kRestartProducerScript = R"(
import sys, time
from confluent_kafka import Producer
bs, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = Producer({'bootstrap.servers': bs, 'enable.idempotence': True, 'acks': 'all',
              'linger.ms': 5, 'message.timeout.ms': 600000, 'retry.backoff.ms': 20,
              'reconnect.backoff.ms': 20, 'reconnect.backoff.max.ms': 200})
def report(err, msg):
    if err is None:
        print(msg.value().decode(), flush=True)
    else:
        print('ERR', err, flush=True)
i = 0
while i < n:
    try:
        p.produce(topic, key='key%d' % (i % 7), value='m-%d' % i, on_delivery=report)
        i += 1
    except BufferError:
        p.poll(0.05)
        continue
    p.poll(0)
    if i % 20 == 0:
        time.sleep(0.02)
left = p.flush(300)
print('DONE', left, flush=True)
)";

// Every record of the topic's partitions from the beginning, as values.
constexpr const char* kReadAllScript = R"(
import sys
from confluent_kafka import Consumer, TopicPartition
bs, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({'bootstrap.servers': bs, 'group.id': 'reader', 'enable.auto.commit': False})
parts = c.list_topics(topic, timeout=10).topics[topic].partitions
c.assign([TopicPartition(topic, part, 0) for part in parts])
got = 0
while True:
    m = c.poll(3 if got >= n else 20)
    if m is None:
        break
    if m.error():
        sys.exit('consume: %s' % m.error())
    print(m.value().decode())
    got += 1
c.close()
)";

// kill -9 of the broker during produce, 50 rounds, acks=all and durability
// every, with a real idempotent producer (librdkafka through
// confluent-kafka) kept running across the restarts: every acknowledged
// message is there afterwards, none twice, every log sound.
TEST(BrokerPython, KillNineFiftyRoundsIdempotentProducerAcksAll) {
    if (!have_python_module("confluent_kafka"))
        GTEST_SKIP() << "python3-confluent-kafka is not installed (scripts/install-deps.sh)";
    testutil::TempDir dir;
    const std::string data = dir.path() + "/data", acked_path = dir.path() + "/acked";
    const std::string listen = "127.0.0.1:" + std::to_string(unused_port());
    const std::vector<std::string> options = {"--durability", "every", "--partitions", "3"};
    constexpr int kRounds = 50, kMessages = 15000;
    pid_t producer = -1;
    std::mt19937 rng(15);
    for (int round = 0; round < kRounds; ++round) {
        Broker b(data, options, listen);
        if (producer < 0) {
            posix_spawn_file_actions_t actions;
            posix_spawn_file_actions_init(&actions);
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, acked_path.c_str(),
                                             O_WRONLY | O_CREAT | O_TRUNC, 0644);
            std::vector<std::string> argv = {kPython, "-c", kRestartProducerScript,
                                             listen,  "k9", std::to_string(kMessages)};
            std::vector<char*> a;
            for (auto& x : argv) a.push_back(x.data());
            a.push_back(nullptr);
            ASSERT_EQ(::posix_spawn(&producer, kPython, &actions, nullptr, a.data(), environ), 0);
            posix_spawn_file_actions_destroy(&actions);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 300));
        b.kill();
    }
    std::set<std::string> acked;
    {
        Broker b(data, options, listen);
        const int status = testutil::wait_for(producer);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
            << testutil::describe_status(status);
        std::istringstream in(testutil::read_file(acked_path));
        bool done = false;
        for (std::string line; std::getline(in, line);) {
            if (line.rfind("ERR", 0) == 0) ADD_FAILURE() << "producer: " << line;
            if (line.rfind("DONE", 0) == 0) {
                done = true;
                EXPECT_EQ(line, "DONE 0") << "messages left unsent";
                continue;
            }
            EXPECT_TRUE(acked.insert(line).second) << line << " acknowledged twice";
        }
        EXPECT_TRUE(done) << "the producer did not finish";
        EXPECT_EQ(acked.size(), std::size_t(kMessages));
        const auto r =
            testutil::run({kPython, "-c", kReadAllScript, listen, "k9", std::to_string(kMessages)});
        ASSERT_EQ(r.exit_code(), 0) << r;
        std::map<std::string, int> seen;
        std::istringstream got(r.out);
        for (std::string v; std::getline(got, v);) ++seen[v];
        int missing = 0, twice = 0;
        for (const auto& v : acked) missing += seen.count(v) == 0;
        for (const auto& [v, n] : seen) twice += n > 1;
        EXPECT_EQ(missing, 0) << "acknowledged but not stored";
        EXPECT_EQ(twice, 0) << "stored more than once";
        EXPECT_EQ(b.stop(), 0);
    }
    for (int part = 0; part < 3; ++part)
        EXPECT_TRUE(pagewire::verify_log(data + "/k9-" + std::to_string(part)).empty()) << part;
}

}  // namespace

namespace {

constexpr const char* kConfluentGroupScript = R"(
import sys
from confluent_kafka import Producer, Consumer
bs, topic, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = Producer({'bootstrap.servers': bs})
for i in range(first, first + count):
    p.produce(topic, key='key%d' % (i % 13), value='value-%d' % i)
if p.flush(30) != 0:
    sys.exit('produce failed')
c = Consumer({'bootstrap.servers': bs, 'group.id': 'confluent-group',
              'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
c.subscribe([topic])
got = 0
while got < count:
    m = c.poll(20)
    if m is None:
        sys.exit('consumed only %d of %d' % (got, count))
    if m.error():
        sys.exit('consume: %s' % m.error())
    print(m.partition(), m.offset(), m.key().decode(), m.value().decode())
    got += 1
c.commit(asynchronous=False)
c.close()
)";

// librdkafka 2.0 from Debian, through the C API (rdkafka_client.cpp):
// keyed messages to a 3-partition topic, consumed in a group and committed;
// after a broker restart the group resumes at its committed offsets.
TEST(BrokerRdkafka, CClientProducesAndGroupResumesAfterRestart) {
#ifndef RDKAFKA_CLIENT
    GTEST_SKIP() << "built without librdkafka-dev (scripts/install-deps.sh installs it)";
#else
    testutil::TempDir dir;
    {
        Broker b(dir.path(), {"--partitions", "3"});
        const auto r = testutil::run({RDKAFKA_CLIENT, b.address(), "rk", "rk-group", "0", "300"});
        ASSERT_EQ(r.exit_code(), 0) << r;
        expect_consumed(r.out, 300, "key");
        EXPECT_EQ(b.stop(), 0);
    }
    Broker b(dir.path());
    const auto r = testutil::run({RDKAFKA_CLIENT, b.address(), "rk", "rk-group", "300", "100"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    std::set<std::string> values;
    std::istringstream in(r.out);
    for (std::string p, o, k, v; in >> p >> o >> k >> v;) values.insert(v);
    std::set<std::string> want;
    for (int i = 300; i < 400; ++i) want.insert("value-" + std::to_string(i));
    EXPECT_EQ(values, want) << "the group did not resume at its committed offsets";
#endif
}

TEST(BrokerPython, ConfluentKafkaGroupConsumerResumesAfterRestart) {
    if (!have_python_module("confluent_kafka"))
        GTEST_SKIP() << "python3-confluent-kafka is not installed (scripts/install-deps.sh)";
    testutil::TempDir dir;
    {
        Broker b(dir.path(), {"--partitions", "3"});
        const auto r =
            testutil::run({kPython, "-c", kConfluentGroupScript, b.address(), "cg", "0", "200"});
        ASSERT_EQ(r.exit_code(), 0) << r;
        expect_consumed(r.out, 200, "key");
        EXPECT_EQ(b.stop(), 0);
    }
    Broker b(dir.path());
    const auto r =
        testutil::run({kPython, "-c", kConfluentGroupScript, b.address(), "cg", "200", "39"});
    ASSERT_EQ(r.exit_code(), 0) << r;
    // Only the new records: the group's committed offsets survived the restart.
    std::set<std::string> values;
    std::istringstream in(r.out);
    for (std::string p, o, k, v; in >> p >> o >> k >> v;) values.insert(v);
    std::set<std::string> want;
    for (int i = 200; i < 239; ++i) want.insert("value-" + std::to_string(i));
    EXPECT_EQ(values, want);
}

}  // namespace

namespace {

TEST(BrokerTopicCommand, CreateListDescribeRemove) {
    testutil::TempDir dir;
    const std::string data = dir.path() + "/data";
    auto created =
        testutil::run_pagewire({"topic", "create", "orders", "--data", data, "--partitions", "3"});
    ASSERT_EQ(created.exit_code(), 0) << created;
    EXPECT_TRUE(testutil::contains(created.out, "created topic orders (3 partitions")) << created;
    // A name Kafka refuses: one line, exit 1.
    const auto bad = testutil::run_pagewire({"topic", "create", "a/b", "--data", data});
    EXPECT_EQ(bad.exit_code(), 1) << bad;
    EXPECT_EQ(testutil::line_count(bad.err), 1u) << bad;
    {
        Broker b(data);
        Connection c(b.port());
        EXPECT_EQ(metadata_v1(c, "orders"), std::make_pair(std::int16_t{0}, std::size_t{3}));
        ASSERT_EQ(produce(c, 7, "orders", 2, batch_of({"x", "y", "z"})).error, 0);
        // Beside the running broker: ls and describe read; create refuses.
        const auto ls = testutil::run_pagewire({"topic", "ls", "--data", data});
        ASSERT_EQ(ls.exit_code(), 0) << ls;
        EXPECT_EQ(ls.out, "orders\t3 partitions\t3 records\n");
        const auto d = testutil::run_pagewire({"topic", "describe", "orders", "--data", data});
        ASSERT_EQ(d.exit_code(), 0) << d;
        EXPECT_TRUE(
            testutil::contains(d.out, "partition 2: start offset 0, end offset 3 (3 records"))
            << d.out;
        const auto busy = testutil::run_pagewire({"topic", "create", "more", "--data", data});
        EXPECT_EQ(busy.exit_code(), 1) << busy;
        EXPECT_EQ(b.stop(), 0);
    }
    const auto rm = testutil::run_pagewire({"topic", "rm", "orders", "--data", data});
    ASSERT_EQ(rm.exit_code(), 0) << rm;
    EXPECT_FALSE(std::filesystem::exists(data + "/orders-0"));
    EXPECT_EQ(testutil::run_pagewire({"topic", "ls", "--data", data}).out, "");
    EXPECT_EQ(testutil::run_pagewire({"topic", "rm", "orders", "--data", data}).exit_code(), 1);
}

// --bootstrap: the same commands through the running broker's protocol
// (CreateTopics, Metadata, ListOffsets, DeleteTopics), and what the broker
// refuses comes back as one line naming Kafka's error.
TEST(BrokerTopicCommand, ThroughARunningBroker) {
    testutil::TempDir dir;
    const std::string data = dir.path() + "/data";
    Broker b(data, {"--no-auto-create"});
    const std::string at = b.address();
    const auto created =
        testutil::run_pagewire({"topic", "create", "orders", "--bootstrap", at, "-p", "3"});
    ASSERT_EQ(created.exit_code(), 0) << created;
    EXPECT_TRUE(testutil::contains(created.out, "created topic orders (3 partitions, id "))
        << created;
    EXPECT_TRUE(std::filesystem::exists(data + "/orders-2"));
    Connection c(b.port());
    ASSERT_EQ(produce(c, 7, "orders", 1, batch_of({"x", "y"})).error, 0);
    const auto ls = testutil::run_pagewire({"topic", "ls", "-b", at});
    ASSERT_EQ(ls.exit_code(), 0) << ls;
    EXPECT_EQ(ls.out, "orders\t3 partitions\t2 records\n");
    const auto d = testutil::run_pagewire({"topic", "describe", "orders", "-b", at});
    ASSERT_EQ(d.exit_code(), 0) << d;
    EXPECT_TRUE(testutil::contains(d.out, "partition 1: start offset 0, end offset 2 (2 records)"))
        << d.out;
    // The id is the one the data directory holds.
    const auto offline = testutil::run_pagewire({"topic", "describe", "orders", "--data", data});
    EXPECT_EQ(d.out.substr(0, d.out.find('\n')), offline.out.substr(0, offline.out.find('\n')));
    for (const std::vector<std::string>& refused :
         {std::vector<std::string>{"topic", "create", "orders", "-b", at},
          {"topic", "create", "a/b", "-b", at},
          {"topic", "describe", "nothere", "-b", at},
          {"topic", "ls", "-b", "127.0.0.1:1"},
          {"topic", "ls", "-b", "no-port"}}) {
        const auto r = testutil::run_pagewire(refused);
        EXPECT_EQ(r.exit_code(), 1) << r;
        EXPECT_EQ(testutil::line_count(r.err), 1u) << r;
    }
    EXPECT_TRUE(
        testutil::contains(testutil::run_pagewire({"topic", "create", "orders", "-b", at}).err,
                           "TOPIC_ALREADY_EXISTS"));
    const auto rm = testutil::run_pagewire({"topic", "rm", "orders", "-b", at});
    ASSERT_EQ(rm.exit_code(), 0) << rm;
    EXPECT_EQ(testutil::run_pagewire({"topic", "ls", "-b", at}).out, "");
    EXPECT_FALSE(std::filesystem::exists(data + "/orders-0"));
    const auto again = testutil::run_pagewire({"topic", "rm", "orders", "-b", at});
    EXPECT_EQ(again.exit_code(), 1) << again;
    EXPECT_TRUE(testutil::contains(again.err, "UNKNOWN_TOPIC_OR_PARTITION")) << again;
    // Neither place given: a usage error.
    EXPECT_NE(testutil::run_pagewire({"topic", "ls"}).exit_code(), 0);
}

}  // namespace
