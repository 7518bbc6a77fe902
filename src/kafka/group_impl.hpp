// pagewire kafka: the group coordinator's state, shared by its parts —
// groups.cpp (the rebalance state machine, tickets, timeouts),
// group_membership.cpp (JoinGroup, SyncGroup, Heartbeat, LeaveGroup),
// group_offsets.cpp (OffsetCommit, OffsetFetch and the offsets log) and
// group_lookup.cpp (FindCoordinator, ListGroups, DescribeGroups).
// Everything here is guarded by Impl::mutex_. Internal, not installed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <pagewire/log.hpp>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kafka/groups.hpp"

namespace pagewire::kafka {

enum class GroupState { Empty, PreparingRebalance, CompletingRebalance, Stable, Dead };
std::string_view state_name(GroupState state) noexcept;

struct GroupMember {
    std::string id;
    std::optional<std::string> instance_id;  // static membership (group.instance.id)
    std::string client_id;
    std::string client_host;
    std::int32_t session_timeout_ms = 0;
    std::int32_t rebalance_timeout_ms = 0;
    std::vector<std::pair<std::string, std::string>> protocols;  // name, metadata; preferred first
    std::string assignment;  // from the leader's SyncGroup of this generation
    std::uint64_t last_heartbeat_ms = 0;
    std::uint64_t order = 0;        // join order: the first member leads
    bool joined = false;            // rejoined during the current PreparingRebalance
    bool synced = false;            // sent SyncGroup during the current CompletingRebalance
    std::uint64_t join_ticket = 0;  // its JoinGroup waiting for the rebalance (0: none)
    std::uint64_t sync_ticket = 0;  // its SyncGroup waiting for the leader (0: none)
};

struct TopicPartitionKey {
    std::string topic;
    std::int32_t partition = 0;
    auto operator<=>(const TopicPartitionKey&) const = default;
};

struct CommittedOffset {
    std::int64_t offset = -1;
    std::int32_t leader_epoch = -1;
    std::int64_t commit_timestamp_ms = 0;
    std::string metadata;  // a null one is stored as "" (as Kafka does)
};

struct Group {
    std::string id;
    GroupState state = GroupState::Empty;
    std::int32_t generation = 0;
    std::string protocol_type;
    std::string protocol;  // chosen at the last completed join
    std::string leader;    // member id; empty when there are no members
    std::map<std::string, GroupMember> members;
    std::map<std::string, std::string> static_members;  // instance id -> member id
    // Ids handed out with MEMBER_ID_REQUIRED, valid until the time given.
    std::map<std::string, std::uint64_t> pending_members;
    std::uint64_t rebalance_deadline_ms = 0;  // Preparing/CompletingRebalance ends by then
    std::uint64_t initial_cap_ms = 0;         // a new group's delayed join ends by then at latest
    bool initial_join = false;                // the first rebalance of an empty group (delayed)
    std::map<TopicPartitionKey, CommittedOffset> offsets;
};

// Whether a static member's instance id belongs to another member id (the
// caller is an old incarnation, fenced off by a newer one).
inline bool fenced(const Group& g, const std::optional<std::string_view>& instance,
                   std::string_view member_id) {
    if (!instance) return false;
    const auto it = g.static_members.find(std::string(*instance));
    return it != g.static_members.end() && it->second != member_id;
}

using GroupMap = std::map<std::string, Group, std::less<>>;

// A JoinGroup or SyncGroup waiting for the group: its answer, once encoded.
struct Ticket {
    ApiKey key = ApiKey::JoinGroup;
    std::int16_t version = 0;
    std::string group;
    std::string member;
    bool ready = false;
    bool published = false;  // handed to the caller as pending (so readiness wakes it)
    std::string response;    // the response body when ready
};

// The committed offsets' durable copy: a pagewire::Log of one record per
// committed partition (key: group, topic, partition; value: offset, leader
// epoch, time, metadata), replayed on open and rewritten when it grows.
class OffsetStore {
  public:
    OffsetStore(std::string dir, std::uint64_t compact_bytes);
    // Reads every commit back, the later winning, into `groups`.
    void load(GroupMap& groups);
    // Appends one request's commits as one batch.
    void append(std::string_view group,
                const std::vector<std::pair<TopicPartitionKey, CommittedOffset>>& commits);
    // Rewrites the log with the live offsets when it has grown past the bound.
    void maybe_compact(const GroupMap& groups);
    void close();

  private:
    void compact(const GroupMap& groups);

    std::string dir_;  // offsets_dir; the log lives in dir_/offsets
    std::uint64_t compact_bytes_ = 0;
    std::uint64_t bytes_ = 0;       // bytes in the log (as appended since the last rewrite)
    std::uint64_t live_bytes_ = 0;  // bytes the last rewrite kept
    std::optional<Log> log_;
};

struct GroupCoordinator::Impl {
    Impl(std::string offsets_dir, std::function<void()> wake, const GroupOptions& options);

    // ---- groups.cpp: the state machine -------------------------------------
    Group& group(std::string_view id);  // found or created Empty
    Group* find_group(std::string_view id);
    std::string new_member_id(std::string_view client_id);
    // Starts (or restarts) a rebalance: pending syncs are answered
    // REBALANCE_IN_PROGRESS, members must rejoin by the deadline.
    void prepare_rebalance(Group& g, std::uint64_t now_ms);
    // Completes the join phase when every member rejoined (or `force`: the
    // deadline passed): drops who did not, picks protocol and leader,
    // answers the joins.
    void maybe_complete_join(Group& g, std::uint64_t now_ms, bool force);
    // A member goes (leave, session expiry, not rejoining); rebalances the rest.
    void remove_member(Group& g, const std::string& member_id, std::uint64_t now_ms,
                       bool rebalance);
    // Whether the member's session can expire now (not while it waits in a request).
    static bool may_expire(const Group& g, const GroupMember& m);
    // Runs every deadline due at now_ms.
    void advance(std::uint64_t now_ms);
    std::uint64_t open_ticket(ApiKey key, std::int16_t version, const std::string& group,
                              const std::string& member);
    // Makes a ticket ready with `response`, wakes the caller if it waits.
    void answer(std::uint64_t ticket, std::string response);
    // The API version a ticket's answer is encoded in.
    std::int16_t version_of(std::uint64_t ticket) const;
    bool protocols_match(const Group& g, std::string_view protocol_type,
                         const std::vector<std::pair<std::string, std::string>>& protocols) const;
    std::string select_protocol(const Group& g) const;

    // ---- group_membership.cpp ----------------------------------------------
    Outcome join_group(std::int16_t version, Decoder& in, Encoder& out, const GroupContext& ctx);
    Outcome sync_group(std::int16_t version, Decoder& in, Encoder& out, const GroupContext& ctx);
    void heartbeat(std::int16_t version, Decoder& in, Encoder& out, const GroupContext& ctx);
    void leave_group(std::int16_t version, Decoder& in, Encoder& out, const GroupContext& ctx);
    // The JoinGroup answer for `member` of the group's current generation
    // (the leader's carries every member's metadata), or an error.
    std::string join_response(std::int16_t version, const Group& g, const GroupMember& member,
                              bool skip_assignment) const;
    static std::string join_error(std::int16_t version, ErrorCode error,
                                  std::string_view member_id = {});
    // SyncGroup's answer: the assignment and (v5) the group's protocol.
    static std::string sync_response(std::int16_t version, const Group& g,
                                     std::string_view assignment);
    static std::string sync_error(std::int16_t version, ErrorCode error);
    // Outcome of a ticket opened for the request being handled: its answer
    // written now if already ready, else pending.
    Outcome settle(std::uint64_t ticket, Encoder& out, unsigned wait_ms);

    // ---- group_offsets.cpp -------------------------------------------------
    void offset_commit(std::int16_t version, Decoder& in, Encoder& out, const GroupContext& ctx);
    void offset_fetch(std::int16_t version, Decoder& in, Encoder& out, const GroupContext& ctx);

    // ---- group_lookup.cpp --------------------------------------------------
    void find_coordinator(std::int16_t version, Decoder& in, Encoder& out, const GroupContext& ctx);
    void list_groups(std::int16_t version, Decoder& in, Encoder& out, const GroupContext& ctx);
    void describe_groups(std::int16_t version, Decoder& in, Encoder& out, const GroupContext& ctx);

    // An answer to a request that did not decode: the API's error in the
    // shape of its response.
    static void malformed(ApiKey key, std::int16_t version, Encoder& out,
                          ErrorCode error = ErrorCode::InvalidRequest);

    mutable std::mutex mutex_;
    std::function<void()> wake_;
    GroupOptions options_;
    OffsetStore store_;
    GroupMap groups_;
    std::map<std::uint64_t, Ticket> tickets_;
    std::uint64_t next_ticket_ = 1;
    std::uint64_t next_order_ = 1;
    std::mt19937_64 random_;    // the random part of member ids
    std::uint64_t now_ms_ = 0;  // the latest time a caller gave
    bool need_wake_ = false;    // a published ticket became ready: wake once the lock is released
};

}  // namespace pagewire::kafka
