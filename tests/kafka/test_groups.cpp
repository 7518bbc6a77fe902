// The group coordinator driven directly: requests encoded here field by
// field from Apache Kafka's message specs (JoinGroupRequest.json, ...), in
// classic and flexible versions, responses decoded the same way. Time is the
// test's: tick() with an advancing now_ms stands in for the clock. Offsets
// are checked across a destroyed and re-created coordinator and across a
// child process killed with SIGKILL right after its commits.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <pagewire/error.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "kafka/groups.hpp"

namespace {

using pagewire::kafka::ApiKey;
using pagewire::kafka::Decoder;
using pagewire::kafka::Encoder;
using pagewire::kafka::ErrorCode;
using pagewire::kafka::GroupContext;
using pagewire::kafka::GroupCoordinator;
using pagewire::kafka::GroupOptions;
using testutil::numbered;
using testutil::TempDir;

constexpr std::int32_t kSession = 2000;
constexpr std::int32_t kRebalance = 5000;

bool flex(ApiKey key, std::int16_t v) {
    return GroupCoordinator::flexible(key, v);
}

// The end of a response: its tagged fields, then nothing left, nothing short.
void expect_consumed(Decoder& d) {
    d.tagged_fields();
    EXPECT_TRUE(d.ok());
    EXPECT_EQ(d.remaining(), 0u);
}

// ---- requests ---------------------------------------------------------------

std::string join_request(std::int16_t v, std::string_view group, std::string_view member,
                         std::optional<std::string_view> instance = std::nullopt,
                         std::vector<std::pair<std::string, std::string>> protocols = {
                             {"range", "meta-range"}, {"roundrobin", "meta-rr"}}) {
    std::string s;
    Encoder e(s, flex(ApiKey::JoinGroup, v));
    e.string(group);
    e.i32(kSession);
    if (v >= 1) e.i32(kRebalance);
    e.string(member);
    if (v >= 5) e.nullable_string(instance);
    e.string("consumer");
    e.array_length(static_cast<std::int64_t>(protocols.size()));
    for (const auto& [name, meta] : protocols) {
        e.string(name);
        e.bytes(meta);
        e.tagged_fields();
    }
    if (v >= 8) e.nullable_string("test");
    e.tagged_fields();
    return s;
}

std::string sync_request(std::int16_t v, std::string_view group, std::int32_t generation,
                         std::string_view member,
                         const std::vector<std::pair<std::string, std::string>>& assignments = {},
                         std::optional<std::string_view> instance = std::nullopt) {
    std::string s;
    Encoder e(s, flex(ApiKey::SyncGroup, v));
    e.string(group);
    e.i32(generation);
    e.string(member);
    if (v >= 3) e.nullable_string(instance);
    if (v >= 5) {
        e.nullable_string("consumer");
        e.nullable_string("range");
    }
    e.array_length(static_cast<std::int64_t>(assignments.size()));
    for (const auto& [m, a] : assignments) {
        e.string(m);
        e.bytes(a);
        e.tagged_fields();
    }
    e.tagged_fields();
    return s;
}

std::string heartbeat_request(std::int16_t v, std::string_view group, std::int32_t generation,
                              std::string_view member,
                              std::optional<std::string_view> instance = std::nullopt) {
    std::string s;
    Encoder e(s, flex(ApiKey::Heartbeat, v));
    e.string(group);
    e.i32(generation);
    e.string(member);
    if (v >= 3) e.nullable_string(instance);
    e.tagged_fields();
    return s;
}

std::string leave_request(std::int16_t v, std::string_view group,
                          const std::vector<std::string>& members) {
    std::string s;
    Encoder e(s, flex(ApiKey::LeaveGroup, v));
    e.string(group);
    if (v <= 2) {
        e.string(members.at(0));
    } else {
        e.array_length(static_cast<std::int64_t>(members.size()));
        for (const auto& m : members) {
            e.string(m);
            e.nullable_string(std::nullopt);
            if (v >= 5) e.nullable_string("bye");
            e.tagged_fields();
        }
    }
    e.tagged_fields();
    return s;
}

struct Commit {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::string metadata;
};

std::string commit_request(std::int16_t v, std::string_view group, std::int32_t generation,
                           std::string_view member, const std::vector<Commit>& commits) {
    std::string s;
    Encoder e(s, flex(ApiKey::OffsetCommit, v));
    e.string(group);
    if (v >= 1) {
        e.i32(generation);
        e.string(member);
    }
    if (v >= 2 && v <= 4) e.i64(-1);
    if (v >= 7) e.nullable_string(std::nullopt);
    e.array_length(static_cast<std::int64_t>(commits.size()));  // one topic-partition each
    for (const Commit& c : commits) {
        e.string(c.topic);
        e.array_length(1);
        e.i32(c.partition);
        e.i64(c.offset);
        if (v >= 6) e.i32(7);
        if (v == 1) e.i64(-1);
        e.nullable_string(c.metadata);
        e.tagged_fields();
        e.tagged_fields();
    }
    e.tagged_fields();
    return s;
}

using TopicPartitions = std::vector<std::pair<std::string, std::vector<std::int32_t>>>;

void write_fetch_topics(Encoder& e, const std::optional<TopicPartitions>& topics) {
    if (!topics) return e.array_length(-1);
    e.array_length(static_cast<std::int64_t>(topics->size()));
    for (const auto& [name, parts] : *topics) {
        e.string(name);
        e.array_length(static_cast<std::int64_t>(parts.size()));
        for (auto p : parts) e.i32(p);
        e.tagged_fields();
    }
}

std::string fetch_request(
    std::int16_t v,
    const std::vector<std::pair<std::string, std::optional<TopicPartitions>>>& groups) {
    std::string s;
    Encoder e(s, flex(ApiKey::OffsetFetch, v));
    if (v <= 7) {
        e.string(groups.at(0).first);
        write_fetch_topics(e, groups.at(0).second);
        if (v >= 7) e.boolean(false);
    } else {
        e.array_length(static_cast<std::int64_t>(groups.size()));
        for (const auto& [g, topics] : groups) {
            e.string(g);
            write_fetch_topics(e, topics);
            e.tagged_fields();
        }
        e.boolean(false);
    }
    e.tagged_fields();
    return s;
}

// ---- responses --------------------------------------------------------------

struct JoinResponse {
    ErrorCode error{};
    std::int32_t generation = 0;
    std::string protocol;
    std::string leader;
    bool skip_assignment = false;
    std::string member_id;
    std::vector<std::pair<std::string, std::string>> members;  // id, metadata
};

JoinResponse parse_join(std::int16_t v, const std::string& body) {
    Decoder d(body.data(), body.size(), flex(ApiKey::JoinGroup, v));
    JoinResponse r;
    if (v >= 2) {
        EXPECT_EQ(d.i32(), 0);
    }
    r.error = static_cast<ErrorCode>(d.i16());
    r.generation = d.i32();
    if (v >= 7) {
        (void)d.nullable_string();
        r.protocol = std::string(d.nullable_string().value_or(""));
    } else {
        r.protocol = std::string(d.string());
    }
    r.leader = std::string(d.string());
    if (v >= 9) r.skip_assignment = d.boolean();
    r.member_id = std::string(d.string());
    const std::size_t n = d.count();
    for (std::size_t i = 0; i < n; ++i) {
        std::string id(d.string());
        if (v >= 5) (void)d.nullable_string();
        r.members.emplace_back(id, std::string(d.bytes()));
        d.tagged_fields();
    }
    expect_consumed(d);
    return r;
}

std::pair<ErrorCode, std::string> parse_sync(std::int16_t v, const std::string& body) {
    Decoder d(body.data(), body.size(), flex(ApiKey::SyncGroup, v));
    if (v >= 1) (void)d.i32();
    const auto error = static_cast<ErrorCode>(d.i16());
    if (v >= 5) {
        (void)d.nullable_string();
        (void)d.nullable_string();
    }
    std::string assignment(d.bytes());
    expect_consumed(d);
    return {error, assignment};
}

ErrorCode parse_error_only(ApiKey key, std::int16_t v, const std::string& body) {
    Decoder d(body.data(), body.size(), flex(key, v));
    if (v >= 1) (void)d.i32();
    const auto error = static_cast<ErrorCode>(d.i16());
    if (key == ApiKey::Heartbeat) {
        d.tagged_fields();
        EXPECT_EQ(d.remaining(), 0u);
    }
    EXPECT_TRUE(d.ok());
    return error;
}

// topic/partition -> error
std::map<std::pair<std::string, std::int32_t>, ErrorCode> parse_commit(std::int16_t v,
                                                                       const std::string& body) {
    Decoder d(body.data(), body.size(), flex(ApiKey::OffsetCommit, v));
    if (v >= 3) (void)d.i32();
    std::map<std::pair<std::string, std::int32_t>, ErrorCode> r;
    const std::size_t n = d.count();
    for (std::size_t i = 0; i < n; ++i) {
        std::string topic(d.string());
        const std::size_t np = d.count();
        for (std::size_t j = 0; j < np; ++j) {
            const std::int32_t p = d.i32();
            r[{topic, p}] = static_cast<ErrorCode>(d.i16());
            d.tagged_fields();
        }
        d.tagged_fields();
    }
    expect_consumed(d);
    return r;
}

struct Fetched {
    std::int64_t offset = 0;
    std::string metadata;
    ErrorCode error{};
};
// group -> (topic, partition) -> committed
using FetchResult = std::map<std::string, std::map<std::pair<std::string, std::int32_t>, Fetched>>;

FetchResult parse_fetch(std::int16_t v, const std::string& body,
                        std::string_view single_group = {}) {
    Decoder d(body.data(), body.size(), flex(ApiKey::OffsetFetch, v));
    if (v >= 3) (void)d.i32();
    FetchResult r;
    const auto topics = [&](std::map<std::pair<std::string, std::int32_t>, Fetched>& out) {
        const std::size_t n = d.count();
        for (std::size_t i = 0; i < n; ++i) {
            std::string topic(d.string());
            const std::size_t np = d.count();
            for (std::size_t j = 0; j < np; ++j) {
                const std::int32_t p = d.i32();
                Fetched f;
                f.offset = d.i64();
                if (v >= 5) (void)d.i32();
                f.metadata = std::string(d.nullable_string().value_or("<null>"));
                f.error = static_cast<ErrorCode>(d.i16());
                d.tagged_fields();
                out[{topic, p}] = f;
            }
            d.tagged_fields();
        }
    };
    if (v <= 7) {
        topics(r[std::string(single_group)]);
        if (v >= 2) {
            EXPECT_EQ(static_cast<ErrorCode>(d.i16()), ErrorCode::None);
        }
    } else {
        const std::size_t n = d.count();
        for (std::size_t i = 0; i < n; ++i) {
            std::string g(d.string());
            topics(r[g]);
            EXPECT_EQ(static_cast<ErrorCode>(d.i16()), ErrorCode::None);
            d.tagged_fields();
        }
    }
    expect_consumed(d);
    return r;
}

// ---- the harness ------------------------------------------------------------

struct Answer {
    GroupCoordinator::Outcome outcome;
    std::string body;
};

class Harness {
  public:
    explicit Harness(const std::string& dir, GroupOptions options = {}) {
        coordinator_ = std::make_unique<GroupCoordinator>(
            dir,
            [this] {
                ++wakes;
                if (on_wake) on_wake();
            },
            options);
    }

    Answer call(ApiKey key, std::int16_t v, const std::string& request) {
        Decoder d(request.data(), request.size(), flex(key, v));
        Answer a;
        Encoder e(a.body, flex(key, v));
        GroupContext ctx;
        ctx.node_id = 7;
        ctx.host = "127.0.0.1";
        ctx.port = 9092;
        ctx.client_id = "test-client";
        ctx.client_host = "/127.0.0.1";
        ctx.now_ms = now;
        a.outcome = coordinator_->handle(key, v, d, e, ctx);
        if (a.outcome.pending) {
            EXPECT_TRUE(a.body.empty());
        }
        return a;
    }
    std::string finish(std::uint64_t ticket, ApiKey key, std::int16_t v) {
        std::string body;
        Encoder e(body, flex(key, v));
        coordinator_->finish(ticket, e, now);
        return body;
    }
    void advance(std::uint64_t ms) {
        now += ms;
        coordinator_->tick(now);
    }
    GroupCoordinator& coordinator() { return *coordinator_; }
    void reset() { coordinator_.reset(); }

    std::uint64_t now = 1'000'000;
    std::atomic<int> wakes{0};
    std::function<void()> on_wake;  // set before any call that may wake

  private:
    std::unique_ptr<GroupCoordinator> coordinator_;
};

// The versions a test runs at: a classic set and a flexible set.
struct Versions {
    std::int16_t join, sync, heartbeat, leave, commit, fetch;
};
constexpr Versions kClassic{5, 3, 3, 3, 2, 5};
constexpr Versions kFlexible{9, 5, 4, 5, 8, 8};

class GroupCycle : public ::testing::TestWithParam<Versions> {
  protected:
    // Joins a member the way a current client does (v4+: learn the id
    // first); returns its id and the pending join.
    std::pair<std::string, Answer> begin_join(Harness& h, std::string_view group,
                                              std::optional<std::string_view> instance = {}) {
        const Versions v = GetParam();
        std::string id;
        if (!instance) {
            const Answer first = h.call(ApiKey::JoinGroup, v.join, join_request(v.join, group, ""));
            EXPECT_FALSE(first.outcome.pending);
            const JoinResponse r = parse_join(v.join, first.body);
            EXPECT_EQ(r.error, ErrorCode::MemberIdRequired);
            EXPECT_FALSE(r.member_id.empty());
            id = r.member_id;
        }
        Answer a = h.call(ApiKey::JoinGroup, v.join, join_request(v.join, group, id, instance));
        if (instance && !a.outcome.pending) id = parse_join(v.join, a.body).member_id;
        return {id, std::move(a)};
    }

    // Two members joined and synced: the leader's assignment delivered.
    struct Pair {
        std::string a, b;
        std::int32_t generation = 0;
    };
    Pair form_pair(Harness& h, std::string_view group,
                   std::optional<std::string_view> instance_a = {},
                   std::optional<std::string_view> instance_b = {}) {
        const Versions v = GetParam();
        auto [a, join_a] = begin_join(h, group, instance_a);
        EXPECT_TRUE(join_a.outcome.pending);  // the initial delay holds the first join
        auto [b, join_b] = begin_join(h, group, instance_b);
        EXPECT_TRUE(join_b.outcome.pending);
        if (instance_a) {
            // Static members skip MEMBER_ID_REQUIRED; their id comes with the answer.
            EXPECT_TRUE(a.empty());
        }
        EXPECT_FALSE(h.coordinator().ready(join_a.outcome.ticket));
        h.advance(100);
        EXPECT_FALSE(h.coordinator().ready(join_a.outcome.ticket));
        const int wakes = h.wakes;
        h.advance(300);  // past the initial delay, extended by b's join
        EXPECT_TRUE(h.coordinator().ready(join_a.outcome.ticket));
        EXPECT_TRUE(h.coordinator().ready(join_b.outcome.ticket));
        EXPECT_GT(h.wakes, wakes);
        const JoinResponse ra =
            parse_join(v.join, h.finish(join_a.outcome.ticket, ApiKey::JoinGroup, v.join));
        const JoinResponse rb =
            parse_join(v.join, h.finish(join_b.outcome.ticket, ApiKey::JoinGroup, v.join));
        EXPECT_EQ(ra.error, ErrorCode::None);
        EXPECT_EQ(rb.error, ErrorCode::None);
        a = ra.member_id;
        b = rb.member_id;
        EXPECT_EQ(ra.generation, rb.generation);
        EXPECT_EQ(ra.protocol, "range");
        EXPECT_EQ(ra.leader, a);  // the first to join leads
        EXPECT_EQ(rb.leader, a);
        EXPECT_EQ(ra.members.size(), 2u);
        EXPECT_TRUE(rb.members.empty());
        if (ra.members.size() == 2) {
            EXPECT_EQ(ra.members[0], std::make_pair(a, std::string("meta-range")));
            EXPECT_EQ(ra.members[1].first, b);
        }
        const std::int32_t gen = ra.generation;

        const Answer sync_b =
            h.call(ApiKey::SyncGroup, v.sync, sync_request(v.sync, group, gen, b));
        EXPECT_TRUE(sync_b.outcome.pending);  // a follower waits for the leader
        const Answer sync_a =
            h.call(ApiKey::SyncGroup, v.sync,
                   sync_request(v.sync, group, gen, a, {{a, "assign-a"}, {b, "assign-b"}}));
        EXPECT_FALSE(sync_a.outcome.pending);
        EXPECT_EQ(parse_sync(v.sync, sync_a.body),
                  std::make_pair(ErrorCode::None, std::string("assign-a")));
        EXPECT_TRUE(h.coordinator().ready(sync_b.outcome.ticket));
        EXPECT_EQ(parse_sync(v.sync, h.finish(sync_b.outcome.ticket, ApiKey::SyncGroup, v.sync)),
                  std::make_pair(ErrorCode::None, std::string("assign-b")));
        return {a, b, gen};
    }

    ErrorCode heartbeat(Harness& h, std::string_view group, std::int32_t gen,
                        std::string_view member,
                        std::optional<std::string_view> instance = std::nullopt) {
        const Versions v = GetParam();
        const Answer r = h.call(ApiKey::Heartbeat, v.heartbeat,
                                heartbeat_request(v.heartbeat, group, gen, member, instance));
        EXPECT_FALSE(r.outcome.pending);
        return parse_error_only(ApiKey::Heartbeat, v.heartbeat, r.body);
    }
};

TEST_P(GroupCycle, TwoMembersJoinSyncHeartbeat) {
    TempDir dir;
    Harness h(dir.path());
    const Pair p = form_pair(h, "g1");
    EXPECT_EQ(p.generation, 1);
    EXPECT_EQ(heartbeat(h, "g1", p.generation, p.a), ErrorCode::None);
    EXPECT_EQ(heartbeat(h, "g1", p.generation, p.b), ErrorCode::None);
    EXPECT_EQ(heartbeat(h, "g1", p.generation + 1, p.b), ErrorCode::IllegalGeneration);
    EXPECT_EQ(heartbeat(h, "g1", p.generation, "nobody"), ErrorCode::UnknownMemberId);
    EXPECT_EQ(heartbeat(h, "nogroup", p.generation, p.a), ErrorCode::UnknownMemberId);
    // Stable: a follower's SyncGroup again gets its assignment at once.
    const Versions v = GetParam();
    const Answer again =
        h.call(ApiKey::SyncGroup, v.sync, sync_request(v.sync, "g1", p.generation, p.b));
    EXPECT_EQ(parse_sync(v.sync, again.body),
              std::make_pair(ErrorCode::None, std::string("assign-b")));
}

TEST_P(GroupCycle, LeaveRebalancesTheRest) {
    TempDir dir;
    Harness h(dir.path());
    const Versions v = GetParam();
    const Pair p = form_pair(h, "g");
    const Answer leave = h.call(ApiKey::LeaveGroup, v.leave, leave_request(v.leave, "g", {p.b}));
    EXPECT_EQ(parse_error_only(ApiKey::LeaveGroup, v.leave, leave.body), ErrorCode::None);
    EXPECT_EQ(heartbeat(h, "g", p.generation, p.a), ErrorCode::RebalanceInProgress);
    EXPECT_EQ(heartbeat(h, "g", p.generation, p.b), ErrorCode::UnknownMemberId);
    // a is the only member: its rejoin completes the rebalance at once.
    const Answer rejoin = h.call(ApiKey::JoinGroup, v.join, join_request(v.join, "g", p.a));
    ASSERT_FALSE(rejoin.outcome.pending);
    const JoinResponse r = parse_join(v.join, rejoin.body);
    EXPECT_EQ(r.error, ErrorCode::None);
    EXPECT_EQ(r.generation, p.generation + 1);
    EXPECT_EQ(r.leader, p.a);
    EXPECT_EQ(r.members.size(), 1u);
    // The last member leaving empties the group.
    h.call(ApiKey::LeaveGroup, v.leave, leave_request(v.leave, "g", {p.a}));
    EXPECT_EQ(heartbeat(h, "g", r.generation, p.a), ErrorCode::UnknownMemberId);
}

TEST_P(GroupCycle, SessionTimeoutRemovesASilentMember) {
    TempDir dir;
    Harness h(dir.path());
    const Versions v = GetParam();
    const Pair p = form_pair(h, "g");
    // a heartbeats every 500 ms, b stays silent past its 2 s session.
    for (int i = 0; i < 3; ++i) {
        h.advance(500);
        EXPECT_EQ(heartbeat(h, "g", p.generation, p.a), ErrorCode::None);
    }
    h.advance(600);
    EXPECT_EQ(heartbeat(h, "g", p.generation, p.a), ErrorCode::RebalanceInProgress);
    EXPECT_EQ(heartbeat(h, "g", p.generation, p.b), ErrorCode::UnknownMemberId);
    const Answer rejoin = h.call(ApiKey::JoinGroup, v.join, join_request(v.join, "g", p.a));
    ASSERT_FALSE(rejoin.outcome.pending);
    const JoinResponse r = parse_join(v.join, rejoin.body);
    EXPECT_EQ(r.generation, p.generation + 1);
    EXPECT_EQ(r.members.size(), 1u);
}

TEST_P(GroupCycle, RebalanceTimeoutDropsWhoDoesNotRejoin) {
    TempDir dir;
    Harness h(dir.path());
    const Versions v = GetParam();
    const Pair p = form_pair(h, "g");
    // a changes its subscription: a rebalance b must join within 5 s.
    const Answer rejoin =
        h.call(ApiKey::JoinGroup, v.join, join_request(v.join, "g", p.a, {}, {{"range", "new"}}));
    ASSERT_TRUE(rejoin.outcome.pending);
    EXPECT_GE(rejoin.outcome.wait_ms, static_cast<unsigned>(kRebalance));
    for (int i = 0; i < 4; ++i) {  // b keeps heartbeating, yet never rejoins
        h.advance(1000);
        EXPECT_EQ(heartbeat(h, "g", p.generation, p.b), ErrorCode::RebalanceInProgress);
    }
    EXPECT_FALSE(h.coordinator().ready(rejoin.outcome.ticket));
    h.advance(1000);
    ASSERT_TRUE(h.coordinator().ready(rejoin.outcome.ticket));
    const JoinResponse r =
        parse_join(v.join, h.finish(rejoin.outcome.ticket, ApiKey::JoinGroup, v.join));
    EXPECT_EQ(r.error, ErrorCode::None);
    EXPECT_EQ(r.members.size(), 1u);
    EXPECT_EQ(heartbeat(h, "g", r.generation, p.b), ErrorCode::UnknownMemberId);
}

TEST_P(GroupCycle, UnchangedStaticMemberRejoinsWithoutRebalance) {
    if (GetParam().join < 5) GTEST_SKIP() << "static membership needs JoinGroup v5";
    TempDir dir;
    Harness h(dir.path());
    const Versions v = GetParam();
    const Pair p = form_pair(h, "g", "inst-a", "inst-b");
    // b restarts: no member id, the same instance id and subscription.
    const Answer rejoin =
        h.call(ApiKey::JoinGroup, v.join, join_request(v.join, "g", "", "inst-b"));
    ASSERT_FALSE(rejoin.outcome.pending);
    const JoinResponse r = parse_join(v.join, rejoin.body);
    EXPECT_EQ(r.error, ErrorCode::None);
    EXPECT_EQ(r.generation, p.generation);  // no new generation
    EXPECT_NE(r.member_id, p.b);
    EXPECT_EQ(heartbeat(h, "g", p.generation, p.a, "inst-a"), ErrorCode::None);
    EXPECT_EQ(heartbeat(h, "g", p.generation, r.member_id, "inst-b"), ErrorCode::None);
    EXPECT_EQ(heartbeat(h, "g", p.generation, p.b, "inst-b"), ErrorCode::FencedInstanceId);
    const Answer sync = h.call(ApiKey::SyncGroup, v.sync,
                               sync_request(v.sync, "g", p.generation, r.member_id, {}, "inst-b"));
    EXPECT_EQ(parse_sync(v.sync, sync.body),
              std::make_pair(ErrorCode::None, std::string("assign-b")));
    // The leader restarting the same way is told to keep the assignment (v9).
    const Answer leader =
        h.call(ApiKey::JoinGroup, v.join, join_request(v.join, "g", "", "inst-a"));
    ASSERT_FALSE(leader.outcome.pending);
    const JoinResponse rl = parse_join(v.join, leader.body);
    EXPECT_EQ(rl.generation, p.generation);
    EXPECT_EQ(rl.leader, rl.member_id);
    if (v.join >= 9) {
        EXPECT_TRUE(rl.skip_assignment);
    }
    EXPECT_EQ(heartbeat(h, "g", p.generation, r.member_id, "inst-b"), ErrorCode::None);
}

TEST_P(GroupCycle, MemberCommitsAreCheckedAgainstTheGeneration) {
    TempDir dir;
    Harness h(dir.path());
    const Versions v = GetParam();
    const Pair p = form_pair(h, "g");
    const auto commit = [&](std::int32_t gen, std::string_view member) {
        const Answer a = h.call(ApiKey::OffsetCommit, v.commit,
                                commit_request(v.commit, "g", gen, member, {{"t", 0, 42, "m"}}));
        return parse_commit(v.commit, a.body).at({"t", 0});
    };
    EXPECT_EQ(commit(p.generation, p.a), ErrorCode::None);
    EXPECT_EQ(commit(p.generation + 1, p.a), ErrorCode::IllegalGeneration);
    EXPECT_EQ(commit(p.generation, "stranger"), ErrorCode::UnknownMemberId);
    EXPECT_EQ(commit(-1, ""), ErrorCode::UnknownMemberId);  // the group is in use
    const Answer f = h.call(ApiKey::OffsetFetch, v.fetch,
                            fetch_request(v.fetch, {{"g", TopicPartitions{{"t", {0, 1}}}}}));
    const FetchResult r = parse_fetch(v.fetch, f.body, "g");
    EXPECT_EQ(r.at("g").at({"t", 0}).offset, 42);
    EXPECT_EQ(r.at("g").at({"t", 0}).metadata, "m");
    EXPECT_EQ(r.at("g").at({"t", 1}).offset, -1);
}

INSTANTIATE_TEST_SUITE_P(Versions, GroupCycle, ::testing::Values(kClassic, kFlexible),
                         [](const auto& info) {
                             return info.param.join >= 6 ? std::string("Flexible")
                                                         : std::string("Classic");
                         });

TEST(Groups, OldJoinVersionsNeedNoMemberIdRoundTrip) {
    TempDir dir;
    GroupOptions o;
    o.initial_rebalance_delay_ms = 0;
    Harness h(dir.path(), o);
    for (std::int16_t v : {0, 1, 2, 3}) {
        const std::string group = "old" + std::to_string(v);
        const Answer a = h.call(ApiKey::JoinGroup, v, join_request(v, group, ""));
        ASSERT_FALSE(a.outcome.pending) << "v" << v;
        const JoinResponse r = parse_join(v, a.body);
        EXPECT_EQ(r.error, ErrorCode::None);
        EXPECT_EQ(r.generation, 1);
        EXPECT_EQ(r.leader, r.member_id);
        const Answer s = h.call(ApiKey::SyncGroup, 0,
                                sync_request(0, group, 1, r.member_id, {{r.member_id, "x"}}));
        EXPECT_EQ(parse_sync(0, s.body), std::make_pair(ErrorCode::None, std::string("x")));
        EXPECT_EQ(
            parse_error_only(
                ApiKey::Heartbeat, 0,
                h.call(ApiKey::Heartbeat, 0, heartbeat_request(0, group, 1, r.member_id)).body),
            ErrorCode::None);
        EXPECT_EQ(parse_error_only(
                      ApiKey::LeaveGroup, 0,
                      h.call(ApiKey::LeaveGroup, 0, leave_request(0, group, {r.member_id})).body),
                  ErrorCode::None);
    }
}

TEST(Groups, JoinChecksSessionTimeoutAndProtocols) {
    TempDir dir;
    GroupOptions o;
    o.initial_rebalance_delay_ms = 0;
    Harness h(dir.path(), o);
    std::string bad;
    {
        Encoder e(bad);
        e.string("g");
        e.i32(500);  // below the 1000 ms minimum
        e.i32(kRebalance);
        e.string("");
        e.string("consumer");
        e.array_length(1);
        e.string("range");
        e.bytes("");
    }
    EXPECT_EQ(parse_join(1, h.call(ApiKey::JoinGroup, 1, bad).body).error,
              ErrorCode::InvalidSessionTimeout);
    const JoinResponse first =
        parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "g", "")).body);
    ASSERT_EQ(first.error, ErrorCode::None);
    // A second member speaking none of the group's protocols.
    const JoinResponse other = parse_join(
        3, h.call(ApiKey::JoinGroup, 3, join_request(3, "g", "", {}, {{"sticky", ""}})).body);
    EXPECT_EQ(other.error, ErrorCode::InconsistentGroupProtocol);
    EXPECT_EQ(parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "", "")).body).error,
              ErrorCode::InvalidGroupId);
    EXPECT_EQ(
        parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "nope", "ghost")).body).error,
        ErrorCode::UnknownMemberId);
}

TEST(Groups, FollowerSyncWaitsAndLeaderTimeoutRebalances) {
    TempDir dir;
    GroupOptions o;
    o.initial_rebalance_delay_ms = 0;
    Harness h(dir.path(), o);
    const JoinResponse a =
        parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "g", "")).body);
    ASSERT_EQ(a.error, ErrorCode::None);
    // b's join starts a rebalance a must rejoin.
    const Answer jb = h.call(ApiKey::JoinGroup, 3, join_request(3, "g", ""));
    ASSERT_TRUE(jb.outcome.pending);
    EXPECT_EQ(parse_error_only(
                  ApiKey::Heartbeat, 3,
                  h.call(ApiKey::Heartbeat, 3, heartbeat_request(3, "g", 1, a.member_id)).body),
              ErrorCode::RebalanceInProgress);
    const JoinResponse a2 =
        parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "g", a.member_id)).body);
    ASSERT_EQ(a2.generation, 2);
    const JoinResponse b = parse_join(3, h.finish(jb.outcome.ticket, ApiKey::JoinGroup, 3));
    ASSERT_EQ(b.generation, 2);
    const Answer sb = h.call(ApiKey::SyncGroup, 3, sync_request(3, "g", 2, b.member_id));
    ASSERT_TRUE(sb.outcome.pending);
    // The leader never syncs: after the rebalance timeout b is told to rejoin.
    h.advance(kRebalance);
    ASSERT_TRUE(h.coordinator().ready(sb.outcome.ticket));
    EXPECT_EQ(parse_sync(3, h.finish(sb.outcome.ticket, ApiKey::SyncGroup, 3)).first,
              ErrorCode::RebalanceInProgress);
    // A cancelled ticket is forgotten.
    const Answer jb2 = h.call(ApiKey::JoinGroup, 3, join_request(3, "g", b.member_id));
    if (jb2.outcome.pending) {
        h.coordinator().cancel(jb2.outcome.ticket);
        EXPECT_FALSE(h.coordinator().ready(jb2.outcome.ticket));
    }
}

TEST(Groups, NextDeadlineSaysWhenTickHasWork) {
    TempDir dir;
    Harness h(dir.path());  // the 300 ms initial delay
    constexpr auto kNothing = std::numeric_limits<std::uint64_t>::max();
    EXPECT_EQ(h.coordinator().next_deadline_ms(), kNothing);
    const Answer j = h.call(ApiKey::JoinGroup, 3, join_request(3, "g", ""));
    ASSERT_TRUE(j.outcome.pending);
    EXPECT_EQ(h.coordinator().next_deadline_ms(), h.now + 300);
    h.advance(300);
    ASSERT_TRUE(h.coordinator().ready(j.outcome.ticket));
    const JoinResponse r = parse_join(3, h.finish(j.outcome.ticket, ApiKey::JoinGroup, 3));
    EXPECT_EQ(h.coordinator().next_deadline_ms(), h.now + kSession);
    h.advance(1000);
    h.call(ApiKey::SyncGroup, 3, sync_request(3, "g", r.generation, r.member_id, {}));
    EXPECT_EQ(h.coordinator().next_deadline_ms(), h.now + kSession);
    h.advance(kSession - 1);
    EXPECT_EQ(parse_error_only(
                  ApiKey::Heartbeat, 3,
                  h.call(ApiKey::Heartbeat, 3, heartbeat_request(3, "g", r.generation, r.member_id))
                      .body),
              ErrorCode::None);
    h.now = h.coordinator().next_deadline_ms();
    h.advance(0);
    EXPECT_EQ(h.coordinator().next_deadline_ms(), kNothing);  // expired: the group is gone
}

TEST(Groups, LeaveGroupBatchAnswersEachMember) {
    TempDir dir;
    GroupOptions o;
    o.initial_rebalance_delay_ms = 0;
    Harness h(dir.path(), o);
    const JoinResponse a =
        parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "g", "")).body);
    ASSERT_EQ(a.error, ErrorCode::None);
    const std::int16_t v = 4;
    const Answer r = h.call(ApiKey::LeaveGroup, v, leave_request(v, "g", {a.member_id, "ghost"}));
    Decoder d(r.body.data(), r.body.size(), true);
    (void)d.i32();
    EXPECT_EQ(static_cast<ErrorCode>(d.i16()), ErrorCode::None);
    ASSERT_EQ(d.count(), 2u);
    EXPECT_EQ(d.string(), a.member_id);
    (void)d.nullable_string();
    EXPECT_EQ(static_cast<ErrorCode>(d.i16()), ErrorCode::None);
    d.tagged_fields();
    EXPECT_EQ(d.string(), "ghost");
    (void)d.nullable_string();
    EXPECT_EQ(static_cast<ErrorCode>(d.i16()), ErrorCode::UnknownMemberId);
    d.tagged_fields();
    expect_consumed(d);
}

// ---- offsets ------------------------------------------------------------------

TEST(Offsets, SimpleCommitsAndFetchAtEveryVersion) {
    TempDir dir;
    Harness h(dir.path());
    for (std::int16_t v = 0; v <= 8; ++v) {
        const std::string group = "simple" + std::to_string(v);
        const Answer c = h.call(
            ApiKey::OffsetCommit, v,
            commit_request(v, group, -1, "", {{"t", 0, 10 + v, "meta"}, {"u", 2, 20 + v, ""}}));
        ASSERT_FALSE(c.outcome.pending);
        const auto errors = parse_commit(v, c.body);
        EXPECT_EQ(errors.at({"t", 0}), ErrorCode::None) << "v" << v;
        EXPECT_EQ(errors.at({"u", 2}), ErrorCode::None) << "v" << v;
        const std::int16_t fv = v;
        const FetchResult r = parse_fetch(
            fv,
            h.call(ApiKey::OffsetFetch, fv,
                   fetch_request(fv, {{group, TopicPartitions{{"t", {0, 5}}, {"u", {2}}}}}))
                .body,
            group);
        EXPECT_EQ(r.at(group).at({"t", 0}).offset, 10 + v) << "v" << v;
        EXPECT_EQ(r.at(group).at({"t", 0}).metadata, "meta");
        EXPECT_EQ(r.at(group).at({"t", 5}).offset, -1);
        EXPECT_EQ(r.at(group).at({"u", 2}).offset, 20 + v);
    }
    // Null topics (v2+): every committed partition of the group.
    for (std::int16_t v : {2, 7}) {
        const FetchResult all = parse_fetch(
            v, h.call(ApiKey::OffsetFetch, v, fetch_request(v, {{"simple3", std::nullopt}})).body,
            "simple3");
        EXPECT_EQ(all.at("simple3").size(), 2u);
        EXPECT_EQ(all.at("simple3").at({"u", 2}).offset, 23);
    }
    // v8: several groups in one request.
    const FetchResult many =
        parse_fetch(8, h.call(ApiKey::OffsetFetch, 8,
                              fetch_request(8, {{"simple1", std::nullopt},
                                                {"simple8", TopicPartitions{{"t", {0}}}},
                                                {"unknown", std::nullopt}}))
                           .body);
    EXPECT_EQ(many.at("simple1").at({"t", 0}).offset, 11);
    EXPECT_EQ(many.at("simple8").at({"t", 0}).offset, 18);
    EXPECT_TRUE(many.at("unknown").empty());
    // Metadata past offset.metadata.max.bytes is refused.
    const Answer big =
        h.call(ApiKey::OffsetCommit, 2,
               commit_request(2, "simple2", -1, "", {{"t", 0, 99, std::string(5000, 'x')}}));
    EXPECT_EQ(parse_commit(2, big.body).at({"t", 0}), ErrorCode::OffsetMetadataTooLarge);
}

TEST(Offsets, SurviveANewCoordinatorOnTheSameDirectory) {
    TempDir dir;
    {
        Harness h(dir.path());
        for (int i = 0; i < 100; ++i)
            h.call(ApiKey::OffsetCommit, 8,
                   commit_request(8, "g", -1, "", {{"t", i % 3, i, numbered("m", i)}}));
    }
    Harness h(dir.path());
    const FetchResult r = parse_fetch(
        8, h.call(ApiKey::OffsetFetch, 8, fetch_request(8, {{"g", std::nullopt}})).body);
    ASSERT_EQ(r.at("g").size(), 3u);
    EXPECT_EQ(r.at("g").at({"t", 0}).offset, 99);
    EXPECT_EQ(r.at("g").at({"t", 1}).offset, 97);
    EXPECT_EQ(r.at("g").at({"t", 2}).offset, 98);
    EXPECT_EQ(r.at("g").at({"t", 2}).metadata, "m98");
}

TEST(Offsets, SurviveKill9OfTheProcessThatCommitted) {
    TempDir dir;
    const std::string path = dir.path();
    const int status = testutil::run_in_child([&] {
        GroupCoordinator c(path, [] {});
        for (int i = 0; i < 50; ++i) {
            std::string request = commit_request(8, "killed", -1, "", {{"t", 0, 1000 + i, "k"}});
            Decoder d(request.data(), request.size(), true);
            std::string out;
            Encoder e(out, true);
            c.handle(ApiKey::OffsetCommit, 8, d, e, GroupContext{});
            if (parse_commit(8, out).at({"t", 0}) != ErrorCode::None) return 1;
        }
        ::kill(::getpid(), SIGKILL);  // no close, no destructor
        return 2;
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << testutil::describe_status(status);
    ASSERT_EQ(WTERMSIG(status), SIGKILL);
    Harness h(path);
    const FetchResult r = parse_fetch(
        8, h.call(ApiKey::OffsetFetch, 8, fetch_request(8, {{"killed", std::nullopt}})).body);
    EXPECT_EQ(r.at("killed").at({"t", 0}).offset, 1049);
    // And the recovered log takes new commits.
    h.call(ApiKey::OffsetCommit, 8, commit_request(8, "killed", -1, "", {{"t", 0, 2000, ""}}));
    h.reset();
    Harness again(path);
    const FetchResult r2 = parse_fetch(
        8, again.call(ApiKey::OffsetFetch, 8, fetch_request(8, {{"killed", std::nullopt}})).body);
    EXPECT_EQ(r2.at("killed").at({"t", 0}).offset, 2000);
}

TEST(Offsets, ARewriteCutShortByACrashIsFinishedOrUndoneOnOpen) {
    namespace fs = std::filesystem;
    TempDir dir;
    const auto commit_and_close = [&](std::int64_t offset) {
        Harness h(dir.path());
        h.call(ApiKey::OffsetCommit, 2, commit_request(2, "g", -1, "", {{"t", 0, offset, ""}}));
    };
    const auto committed = [&] {
        Harness h(dir.path());
        const FetchResult r = parse_fetch(
            8, h.call(ApiKey::OffsetFetch, 8, fetch_request(8, {{"g", std::nullopt}})).body);
        return r.at("g").at({"t", 0}).offset;
    };
    // Stopped while writing the new log: the old one is still in place.
    commit_and_close(5);
    fs::create_directories(dir.file("offsets.compact"));
    testutil::write_file(dir.file("offsets.compact/00000000000000000000.log"), "torn");
    EXPECT_EQ(committed(), 5);
    EXPECT_FALSE(fs::exists(dir.file("offsets.compact")));
    // Stopped between the renames: the new log, complete, takes the place.
    commit_and_close(6);
    fs::rename(dir.file("offsets"), dir.file("offsets.compact"));
    fs::create_directories(dir.file("offsets.old"));
    EXPECT_EQ(committed(), 6);
    EXPECT_FALSE(fs::exists(dir.file("offsets.old")));
    EXPECT_TRUE(fs::exists(dir.file("offsets")));
}

TEST(Offsets, RetentionDeletesTheOffsetsOfIdleGroupsOnly) {
    TempDir dir;
    GroupOptions o;
    o.initial_rebalance_delay_ms = 0;
    o.offsets_retention_ms = 300;
    {
        Harness h(dir.path(), o);
        h.call(ApiKey::OffsetCommit, 2, commit_request(2, "idle", -1, "", {{"t", 0, 5, ""}}));
        const JoinResponse a =
            parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "busy", "")).body);
        ASSERT_EQ(a.error, ErrorCode::None);
        h.call(ApiKey::SyncGroup, 3, sync_request(3, "busy", a.generation, a.member_id, {}));
        h.call(ApiKey::OffsetCommit, 2,
               commit_request(2, "busy", a.generation, a.member_id, {{"t", 0, 9, ""}}));
        h.advance(1000);  // the first check: nothing is old enough yet
        ::usleep(400 * 1000);
        EXPECT_EQ(parse_error_only(ApiKey::Heartbeat, 3,
                                   h.call(ApiKey::Heartbeat, 3,
                                          heartbeat_request(3, "busy", a.generation, a.member_id))
                                       .body),
                  ErrorCode::None);
        h.advance(1000);  // the next check
        const FetchResult r = parse_fetch(
            8, h.call(ApiKey::OffsetFetch, 8,
                      fetch_request(8, {{"idle", std::nullopt}, {"busy", std::nullopt}}))
                   .body);
        EXPECT_TRUE(r.at("idle").empty());
        EXPECT_EQ(r.at("busy").at({"t", 0}).offset, 9);  // its group has a member
    }
    // The deletion is durable: the commit does not come back.
    o.offsets_retention_ms = 0;
    Harness h(dir.path(), o);
    const FetchResult r =
        parse_fetch(8, h.call(ApiKey::OffsetFetch, 8,
                              fetch_request(8, {{"idle", std::nullopt}, {"busy", std::nullopt}}))
                           .body);
    EXPECT_TRUE(r.at("idle").empty());
    EXPECT_EQ(r.at("busy").at({"t", 0}).offset, 9);
}

TEST(Offsets, OneDirectoryServesOneCoordinator) {
    TempDir dir;
    GroupCoordinator first(dir.path(), [] {});
    const auto e =
        testutil::catch_as<pagewire::Error>([&] { GroupCoordinator second(dir.path(), [] {}); });
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->error_number(), EWOULDBLOCK) << e->what();
}

TEST(Offsets, AFullDiskFailsTheCommitNotTheCoordinator) {
    testutil::SmallTmpfs fs("20m");
    if (!fs.mounted()) GTEST_SKIP() << fs.why();
    Harness h(fs.file("offsets"));
    // 4000-byte metadata: the 16 MiB segment fills, the next cannot be made.
    ErrorCode last = ErrorCode::None;
    std::int64_t stored = -1;
    for (std::int64_t i = 0; i < 20000 && last == ErrorCode::None; ++i) {
        const Answer a =
            h.call(ApiKey::OffsetCommit, 2,
                   commit_request(2, "g", -1, "", {{"t", 0, i, std::string(4000, 'm')}}));
        last = parse_commit(2, a.body).at({"t", 0});
        if (last == ErrorCode::None) stored = i;
    }
    EXPECT_EQ(last, ErrorCode::UnknownServerError);
    ASSERT_GT(stored, 0);
    // What was stored is what OffsetFetch says (the failed commit is not taken).
    const FetchResult r = parse_fetch(
        8, h.call(ApiKey::OffsetFetch, 8, fetch_request(8, {{"g", std::nullopt}})).body);
    EXPECT_EQ(r.at("g").at({"t", 0}).offset, stored);
}

TEST(Offsets, TheLogIsRewrittenWhenItGrows) {
    TempDir dir;
    GroupOptions o;
    o.compact_bytes = 256 << 10;
    {
        Harness h(dir.path(), o);
        for (int i = 0; i < 20000; ++i)
            h.call(ApiKey::OffsetCommit, 2,
                   commit_request(2, "busy", -1, "", {{"topic", i % 4, i, std::string(40, 'm')}}));
    }
    std::uint64_t bytes = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path()))
        if (e.path().extension() == ".log") bytes += testutil::file_size(e.path());
    // 20000 commits of ~100 bytes each would be ~2 MB without the rewrite
    // (the segment is trimmed to its data on close).
    EXPECT_LT(bytes, 1u << 20);
    Harness h(dir.path(), o);
    const FetchResult r = parse_fetch(
        8, h.call(ApiKey::OffsetFetch, 8, fetch_request(8, {{"busy", std::nullopt}})).body);
    ASSERT_EQ(r.at("busy").size(), 4u);
    EXPECT_EQ(r.at("busy").at({"topic", 3}).offset, 19999);
    EXPECT_EQ(r.at("busy").at({"topic", 0}).offset, 19996);
}

// ---- lookup -------------------------------------------------------------------

TEST(Lookup, FindCoordinatorAtEveryVersion) {
    TempDir dir;
    Harness h(dir.path());
    for (std::int16_t v = 0; v <= 3; ++v) {
        std::string req;
        Encoder e(req, flex(ApiKey::FindCoordinator, v));
        e.string("g");
        if (v >= 1) e.i8(0);
        e.tagged_fields();
        const Answer a = h.call(ApiKey::FindCoordinator, v, req);
        Decoder d(a.body.data(), a.body.size(), flex(ApiKey::FindCoordinator, v));
        if (v >= 1) (void)d.i32();
        EXPECT_EQ(static_cast<ErrorCode>(d.i16()), ErrorCode::None);
        if (v >= 1) (void)d.nullable_string();
        EXPECT_EQ(d.i32(), 7);
        EXPECT_EQ(d.string(), "127.0.0.1");
        EXPECT_EQ(d.i32(), 9092);
        expect_consumed(d);
    }
    std::string req;
    Encoder e(req, true);
    e.i8(0);
    e.array_length(2);
    e.string("a");
    e.string("b");
    e.tagged_fields();
    const Answer a = h.call(ApiKey::FindCoordinator, 4, req);
    Decoder d(a.body.data(), a.body.size(), true);
    (void)d.i32();
    ASSERT_EQ(d.count(), 2u);
    for (std::string_view key : {"a", "b"}) {
        EXPECT_EQ(d.string(), key);
        EXPECT_EQ(d.i32(), 7);
        EXPECT_EQ(d.string(), "127.0.0.1");
        EXPECT_EQ(d.i32(), 9092);
        EXPECT_EQ(static_cast<ErrorCode>(d.i16()), ErrorCode::None);
        (void)d.nullable_string();
        d.tagged_fields();
    }
    expect_consumed(d);
    // A transaction coordinator is not something pagewire has.
    std::string txn;
    Encoder t(txn);
    t.string("tx");
    t.i8(1);
    const Answer ta = h.call(ApiKey::FindCoordinator, 1, txn);
    EXPECT_NE(parse_error_only(ApiKey::FindCoordinator, 1, ta.body), ErrorCode::None);
}

TEST(Lookup, ListAndDescribeGroups) {
    TempDir dir;
    GroupOptions o;
    o.initial_rebalance_delay_ms = 0;
    Harness h(dir.path(), o);
    const JoinResponse a =
        parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "live", "")).body);
    h.call(ApiKey::SyncGroup, 0, sync_request(0, "live", 1, a.member_id, {{a.member_id, "asg"}}));
    h.call(ApiKey::OffsetCommit, 2, commit_request(2, "idle", -1, "", {{"t", 0, 1, ""}}));
    for (std::int16_t v : {0, 3, 4}) {
        std::string req;
        Encoder e(req, flex(ApiKey::ListGroups, v));
        if (v >= 4) {
            e.array_length(1);
            e.string("stable");
        }
        e.tagged_fields();
        const Answer r = h.call(ApiKey::ListGroups, v, req);
        Decoder d(r.body.data(), r.body.size(), flex(ApiKey::ListGroups, v));
        if (v >= 1) (void)d.i32();
        EXPECT_EQ(static_cast<ErrorCode>(d.i16()), ErrorCode::None);
        std::map<std::string, std::string> groups;
        const std::size_t n = d.count();
        for (std::size_t i = 0; i < n; ++i) {
            std::string id(d.string());
            groups[id] = std::string(d.string());
            if (v >= 4) {
                EXPECT_EQ(d.string(), "Stable");
            }
            d.tagged_fields();
        }
        d.tagged_fields();
        EXPECT_EQ(d.remaining(), 0u);
        EXPECT_EQ(groups.at("live"), "consumer");
        EXPECT_EQ(groups.count("idle"), v >= 4 ? 0u : 1u);  // idle is Empty
    }
    for (std::int16_t v : {0, 4, 5}) {
        std::string req;
        Encoder e(req, flex(ApiKey::DescribeGroups, v));
        e.array_length(2);
        e.string("live");
        e.string("missing");
        if (v >= 3) e.boolean(true);
        e.tagged_fields();
        const Answer r = h.call(ApiKey::DescribeGroups, v, req);
        Decoder d(r.body.data(), r.body.size(), flex(ApiKey::DescribeGroups, v));
        if (v >= 1) (void)d.i32();
        ASSERT_EQ(d.count(), 2u);
        EXPECT_EQ(static_cast<ErrorCode>(d.i16()), ErrorCode::None);
        EXPECT_EQ(d.string(), "live");
        EXPECT_EQ(d.string(), "Stable");
        EXPECT_EQ(d.string(), "consumer");
        EXPECT_EQ(d.string(), "range");
        ASSERT_EQ(d.count(), 1u);
        EXPECT_EQ(d.string(), a.member_id);
        if (v >= 4) (void)d.nullable_string();
        EXPECT_EQ(d.string(), "test-client");
        EXPECT_EQ(d.string(), "/127.0.0.1");
        EXPECT_EQ(d.bytes(), "meta-range");
        EXPECT_EQ(d.bytes(), "asg");
        d.tagged_fields();
        if (v >= 3) {
            EXPECT_GT(d.i32(), 0);
        }
        d.tagged_fields();
        EXPECT_EQ(static_cast<ErrorCode>(d.i16()), ErrorCode::None);
        EXPECT_EQ(d.string(), "missing");
        EXPECT_EQ(d.string(), "Dead");
        EXPECT_TRUE(d.ok());
    }
}

// ---- threads ----------------------------------------------------------------

TEST(Threads, WakeComesWithoutTheLockAndCallersRunConcurrently) {
    TempDir dir;
    GroupOptions o;
    o.initial_rebalance_delay_ms = 0;
    Harness h(dir.path(), o);
    std::atomic<std::uint64_t> watched{0};
    std::atomic<int> seen_ready{0};
    // Calls back in: a wake made with the coordinator's lock held would
    // deadlock right here.
    h.on_wake = [&] {
        if (h.coordinator().ready(watched)) ++seen_ready;
    };
    const JoinResponse a =
        parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "g", "")).body);
    ASSERT_EQ(a.error, ErrorCode::None);
    const Answer jb = h.call(ApiKey::JoinGroup, 3, join_request(3, "g", ""));
    ASSERT_TRUE(jb.outcome.pending);
    watched = jb.outcome.ticket;
    std::thread([&] { h.call(ApiKey::JoinGroup, 3, join_request(3, "g", a.member_id)); }).join();
    EXPECT_EQ(seen_ready, 1);
    EXPECT_EQ(parse_join(3, h.finish(jb.outcome.ticket, ApiKey::JoinGroup, 3)).generation, 2);

    // Commits and fetches of four groups from four threads, heartbeats from a fifth.
    constexpr int kRounds = 300;
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            const std::string group = numbered("t", t);
            for (int i = 0; i < kRounds; ++i) {
                const Answer c = h.call(ApiKey::OffsetCommit, 8,
                                        commit_request(8, group, -1, "", {{"x", t, i, ""}}));
                if (parse_commit(8, c.body).at({"x", t}) != ErrorCode::None) ++failures;
                const FetchResult f = parse_fetch(
                    8,
                    h.call(ApiKey::OffsetFetch, 8, fetch_request(8, {{group, std::nullopt}})).body);
                if (f.at(group).at({"x", t}).offset != i) ++failures;
            }
        });
    }
    threads.emplace_back([&] {
        for (int i = 0; i < kRounds; ++i) {
            const Answer r =
                h.call(ApiKey::Heartbeat, 4, heartbeat_request(4, "g", 2, a.member_id));
            const ErrorCode e = parse_error_only(ApiKey::Heartbeat, 4, r.body);
            if (e != ErrorCode::None && e != ErrorCode::RebalanceInProgress) ++failures;
        }
    });
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures, 0);
}

// ---- hostile input --------------------------------------------------------------

TEST(Hostile, TruncatedAndGarbageBodiesAreAnsweredNotCrashed) {
    TempDir dir;
    GroupOptions o;
    o.initial_rebalance_delay_ms = 0;
    Harness h(dir.path(), o);
    struct Case {
        ApiKey key;
        std::int16_t version;
        std::string body;
    };
    std::vector<Case> cases;
    for (std::int16_t v : {0, 5, 6, 9})
        cases.push_back({ApiKey::JoinGroup, v, join_request(v, "h", "", "i")});
    for (std::int16_t v : {0, 4, 5})
        cases.push_back({ApiKey::SyncGroup, v, sync_request(v, "h", 1, "m", {{"m", "x"}})});
    for (std::int16_t v : {0, 4})
        cases.push_back({ApiKey::Heartbeat, v, heartbeat_request(v, "h", 1, "m")});
    for (std::int16_t v : {0, 3, 5})
        cases.push_back({ApiKey::LeaveGroup, v, leave_request(v, "h", {"m"})});
    for (std::int16_t v : {0, 1, 6, 8})
        cases.push_back(
            {ApiKey::OffsetCommit, v, commit_request(v, "h", -1, "", {{"t", 0, 1, "x"}})});
    for (std::int16_t v : {1, 7, 8})
        cases.push_back(
            {ApiKey::OffsetFetch, v, fetch_request(v, {{"h", TopicPartitions{{"t", {0}}}}})});
    for (const Case& c : cases) {
        for (std::size_t cut = 0; cut < c.body.size(); ++cut) {
            const Answer a = h.call(c.key, c.version, c.body.substr(0, cut));
            EXPECT_FALSE(a.outcome.pending);
            ASSERT_FALSE(a.body.empty())
                << static_cast<int>(c.key) << " v" << c.version << " cut " << cut;
        }
    }
    // A truncated JoinGroup is refused as such.
    const std::string join = join_request(9, "h", "");
    EXPECT_EQ(
        parse_join(9, h.call(ApiKey::JoinGroup, 9, join.substr(0, join.size() - 3)).body).error,
        ErrorCode::InvalidRequest);
    // Huge and negative counts: an error, no allocation for them.
    std::string huge;
    {
        Encoder e(huge);
        e.string("h");
        e.i32(kSession);
        e.i32(kRebalance);
        e.string("");
        e.string("consumer");
        e.i32(0x7FFFFFFF);  // protocols
    }
    EXPECT_EQ(parse_join(1, h.call(ApiKey::JoinGroup, 1, huge).body).error,
              ErrorCode::InvalidRequest);
    std::string negative;
    {
        Encoder e(negative);
        e.string("h");
        e.i32(-5);  // topics
    }
    EXPECT_FALSE(h.call(ApiKey::OffsetFetch, 1, negative).body.empty());
    // A version past the supported range: UnsupportedVersion in v0's shape.
    const Answer unsupported = h.call(ApiKey::Heartbeat, 99, heartbeat_request(0, "h", 1, "m"));
    EXPECT_EQ(parse_error_only(ApiKey::Heartbeat, 0, unsupported.body),
              ErrorCode::UnsupportedVersion);
    // Still serving after all that.
    const JoinResponse ok =
        parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "after", "")).body);
    EXPECT_EQ(ok.error, ErrorCode::None);
}

TEST(Hostile, RandomAndMutatedBodiesOfEveryApiAndVersion) {
    TempDir dir;
    GroupOptions o;
    o.initial_rebalance_delay_ms = 0;
    Harness h(dir.path(), o);
    std::mt19937 random(20261204);
    const std::vector<std::string> seeds = {
        join_request(5, "h", ""),      join_request(9, "h", "", "i"),
        sync_request(5, "h", 1, "m"),  heartbeat_request(4, "h", 1, "m"),
        leave_request(5, "h", {"m"}),  commit_request(8, "h", -1, "", {{"t", 0, 1, "x"}}),
        fetch_request(8, {{"h", {}}}), commit_request(2, "h", -1, "", {{"t", 0, 1, "x"}}),
    };
    const ApiKey keys[] = {ApiKey::FindCoordinator, ApiKey::JoinGroup,  ApiKey::SyncGroup,
                           ApiKey::Heartbeat,       ApiKey::LeaveGroup, ApiKey::OffsetCommit,
                           ApiKey::OffsetFetch,     ApiKey::ListGroups, ApiKey::DescribeGroups};
    int answered = 0;
    for (const ApiKey key : keys) {
        const auto [lo, hi] = GroupCoordinator::versions(key);
        for (std::int16_t v = lo; v <= hi; ++v) {
            for (int i = 0; i < 60; ++i) {
                std::string body;
                if (i % 2 == 0) {
                    body.resize(random() % 48);
                    for (char& c : body) c = static_cast<char>(random());
                } else {
                    body = seeds[random() % seeds.size()];
                    for (int flips = 0; flips < 3 && !body.empty(); ++flips)
                        body[random() % body.size()] = static_cast<char>(random());
                }
                const Answer a = h.call(key, v, body);
                if (a.outcome.pending) {
                    h.coordinator().cancel(a.outcome.ticket);
                } else {
                    ASSERT_FALSE(a.body.empty());
                    ++answered;
                }
            }
            h.advance(100);
        }
    }
    EXPECT_GT(answered, 0);
    const JoinResponse ok =
        parse_join(3, h.call(ApiKey::JoinGroup, 3, join_request(3, "after", "")).body);
    EXPECT_EQ(ok.error, ErrorCode::None);
}

}  // namespace
