// Finding and listing groups: FindCoordinator 0-4 (v4's batch of keys),
// ListGroups 0-4 (v4's state filter), DescribeGroups 0-5; and the answer to
// a group API request that did not decode, in the shape of its response.
#include <algorithm>
#include <cctype>
#include <limits>

#include "kafka/group_impl.hpp"

namespace pagewire::kafka {

namespace {

constexpr std::int8_t kKeyTypeGroup = 0;
// DescribeGroups' authorized_operations when the client did not ask.
constexpr std::int32_t kOperationsNotRequested = std::numeric_limits<std::int32_t>::min();
// With no ACLs every client may READ (3), DELETE (6) and DESCRIBE (8) a
// group: the bits of Kafka's AclOperation codes.
constexpr std::int32_t kGroupOperations = (1 << 3) | (1 << 6) | (1 << 8);

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

struct CoordinatorAnswer {
    ErrorCode error = ErrorCode::None;
    std::optional<std::string_view> message;
};

CoordinatorAnswer coordinator_for(std::int8_t key_type) {
    if (key_type == kKeyTypeGroup) return {};
    return {ErrorCode::InvalidRequest,
            key_type == 1 ? "pagewire has no transaction coordinator" : "unknown key type"};
}

}  // namespace

void GroupCoordinator::Impl::find_coordinator(std::int16_t version, Decoder& in, Encoder& out,
                                              const GroupContext& ctx) {
    std::vector<std::string_view> keys;
    std::int8_t key_type = kKeyTypeGroup;
    if (version <= 3) {
        keys.push_back(in.string());
        if (version >= 1) key_type = in.i8();
    } else {
        key_type = in.i8();
        const std::size_t n = in.count(1);
        for (std::size_t i = 0; i < n && in.ok(); ++i) keys.push_back(in.string());
    }
    in.tagged_fields();
    if (!in.ok()) return malformed(ApiKey::FindCoordinator, version, out);
    const CoordinatorAnswer a = coordinator_for(key_type);
    const bool found = a.error == ErrorCode::None;
    const auto node = [&] {
        out.i32(found ? ctx.node_id : -1);
        out.string(found ? ctx.host : std::string_view{});
        out.i32(found ? ctx.port : -1);
    };
    if (version == 0) {
        out.error(a.error);
        return node();
    }
    out.i32(0);  // throttle_time_ms
    if (version <= 3) {
        out.error(a.error);
        out.nullable_string(a.message);
        node();
        return out.tagged_fields();
    }
    out.array_length(static_cast<std::int64_t>(keys.size()));
    for (const std::string_view key : keys) {
        out.string(key);
        node();
        out.error(a.error);
        out.nullable_string(a.message);
        out.tagged_fields();
    }
    out.tagged_fields();
}

void GroupCoordinator::Impl::list_groups(std::int16_t version, Decoder& in, Encoder& out,
                                         const GroupContext&) {
    std::vector<std::string_view> states;
    if (version >= 4) {
        const std::size_t n = in.count(1);
        for (std::size_t i = 0; i < n && in.ok(); ++i) states.push_back(in.string());
    }
    in.tagged_fields();
    if (!in.ok()) return malformed(ApiKey::ListGroups, version, out);
    std::vector<const Group*> listed;
    for (const auto& entry : groups_) {
        const Group& g = entry.second;
        const bool wanted =
            states.empty() || std::any_of(states.begin(), states.end(), [&](std::string_view s) {
                return iequals(s, state_name(g.state));
            });
        if (wanted) listed.push_back(&g);
    }
    if (version >= 1) out.i32(0);
    out.error(ErrorCode::None);
    out.array_length(static_cast<std::int64_t>(listed.size()));
    for (const Group* g : listed) {
        out.string(g->id);
        out.string(g->protocol_type);
        if (version >= 4) out.string(state_name(g->state));
        out.tagged_fields();
    }
    out.tagged_fields();
}

void GroupCoordinator::Impl::describe_groups(std::int16_t version, Decoder& in, Encoder& out,
                                             const GroupContext&) {
    std::vector<std::string_view> ids;
    const std::size_t n = in.count(1);
    for (std::size_t i = 0; i < n && in.ok(); ++i) ids.push_back(in.string());
    const bool operations = version >= 3 && in.boolean();
    in.tagged_fields();
    if (!in.ok()) return malformed(ApiKey::DescribeGroups, version, out);
    if (version >= 1) out.i32(0);
    out.array_length(static_cast<std::int64_t>(ids.size()));
    for (const std::string_view id : ids) {
        const Group* g = find_group(id);
        out.error(id.empty() ? ErrorCode::InvalidGroupId : ErrorCode::None);
        out.string(id);
        // An unknown group is described as Kafka does: Dead, no members.
        out.string(state_name(g ? g->state : GroupState::Dead));
        out.string(g ? std::string_view(g->protocol_type) : std::string_view{});
        // Metadata and assignments are settled only in a Stable group.
        const bool stable = g && g->state == GroupState::Stable;
        out.string(stable ? std::string_view(g->protocol) : std::string_view{});
        std::vector<const GroupMember*> members;
        if (g)
            for (const auto& [mid, m] : g->members) members.push_back(&m);
        std::sort(members.begin(), members.end(),
                  [](const auto* a, const auto* b) { return a->order < b->order; });
        out.array_length(static_cast<std::int64_t>(members.size()));
        for (const GroupMember* m : members) {
            out.string(m->id);
            if (version >= 4) out.nullable_string(m->instance_id);
            out.string(m->client_id);
            out.string(m->client_host);
            std::string_view metadata;
            if (stable)
                for (const auto& [name, bytes] : m->protocols)
                    if (name == g->protocol) metadata = bytes;
            out.bytes(metadata);
            out.bytes(stable ? std::string_view(m->assignment) : std::string_view{});
            out.tagged_fields();
        }
        if (version >= 3) out.i32(operations ? kGroupOperations : kOperationsNotRequested);
        out.tagged_fields();
    }
    out.tagged_fields();
}

void GroupCoordinator::Impl::malformed(ApiKey key, std::int16_t version, Encoder& out,
                                       ErrorCode error) {
    const bool throttle = version >= 1;
    switch (key) {
        case ApiKey::FindCoordinator:
            if (throttle) out.i32(0);
            if (version <= 3) {
                out.error(error);
                if (version >= 1) out.nullable_string("request does not decode");
                out.i32(-1);
                out.string("");
                out.i32(-1);
            } else {
                out.array_length(1);
                out.string("");
                out.i32(-1);
                out.string("");
                out.i32(-1);
                out.error(error);
                out.nullable_string("request does not decode");
                out.tagged_fields();
            }
            break;
        case ApiKey::JoinGroup:
            out.buffer().append(join_error(version, error));
            return;
        case ApiKey::SyncGroup:
            out.buffer().append(sync_error(version, error));
            return;
        case ApiKey::Heartbeat:
            if (throttle) out.i32(0);
            out.error(error);
            break;
        case ApiKey::LeaveGroup:
            if (throttle) out.i32(0);
            out.error(error);
            if (version >= 3) out.array_length(0);
            break;
        case ApiKey::OffsetCommit:
            // No field for a request-wide error: no partition is answered.
            if (version >= 3) out.i32(0);
            out.array_length(0);
            break;
        case ApiKey::OffsetFetch:
            if (version >= 3) out.i32(0);
            if (version <= 7) {
                out.array_length(0);
                if (version >= 2) out.error(error);
            } else {
                out.array_length(1);
                out.string("");
                out.array_length(0);
                out.error(error);
                out.tagged_fields();
            }
            break;
        case ApiKey::ListGroups:
            if (throttle) out.i32(0);
            out.error(error);
            out.array_length(0);
            break;
        case ApiKey::DescribeGroups:
            if (throttle) out.i32(0);
            out.array_length(1);
            out.error(error);
            out.string("");
            out.string("Dead");
            out.string("");
            out.string("");
            out.array_length(0);
            if (version >= 3) out.i32(kOperationsNotRequested);
            out.tagged_fields();
            break;
        default:
            break;
    }
    out.tagged_fields();
}

}  // namespace pagewire::kafka
