// The membership APIs of the group coordinator, every version of each:
// JoinGroup 0-9, SyncGroup 0-5, Heartbeat 0-4, LeaveGroup 0-5 (Apache
// Kafka's JoinGroupRequest.json etc.). Each handler reads the whole request
// first and answers a malformed one with an error before touching a group.
#include <algorithm>

#include "kafka/group_impl.hpp"

namespace pagewire::kafka {

namespace {

using Protocols = std::vector<std::pair<std::string, std::string>>;

std::string_view metadata_for(const GroupMember& m, std::string_view protocol) {
    for (const auto& [name, metadata] : m.protocols)
        if (name == protocol) return metadata;
    return {};
}

}  // namespace

std::string GroupCoordinator::Impl::join_response(std::int16_t version, const Group& g,
                                                  const GroupMember& member,
                                                  bool skip_assignment) const {
    std::string s;
    Encoder e(s, flexible(ApiKey::JoinGroup, version));
    if (version >= 2) e.i32(0);  // throttle_time_ms
    e.error(ErrorCode::None);
    e.i32(g.generation);
    if (version >= 7) {
        e.nullable_string(g.protocol_type);
        e.nullable_string(g.protocol);
    } else {
        e.string(g.protocol);
    }
    e.string(g.leader);
    if (version >= 9) e.boolean(skip_assignment);
    e.string(member.id);
    if (member.id == g.leader) {
        // The leader assigns: every member's metadata for the chosen protocol.
        std::vector<const GroupMember*> members;
        for (const auto& [id, m] : g.members) members.push_back(&m);
        std::sort(members.begin(), members.end(),
                  [](const auto* a, const auto* b) { return a->order < b->order; });
        e.array_length(static_cast<std::int64_t>(members.size()));
        for (const GroupMember* m : members) {
            e.string(m->id);
            if (version >= 5) e.nullable_string(m->instance_id);
            e.bytes(metadata_for(*m, g.protocol));
            e.tagged_fields();
        }
    } else {
        e.array_length(0);
    }
    e.tagged_fields();
    return s;
}

std::string GroupCoordinator::Impl::join_error(std::int16_t version, ErrorCode error,
                                               std::string_view member_id) {
    std::string s;
    Encoder e(s, flexible(ApiKey::JoinGroup, version));
    if (version >= 2) e.i32(0);
    e.error(error);
    e.i32(-1);  // generation
    if (version >= 7) {
        e.nullable_string(std::nullopt);
        e.nullable_string(std::nullopt);
    } else {
        e.string("");
    }
    e.string("");  // leader
    if (version >= 9) e.boolean(false);
    e.string(member_id);
    e.array_length(0);
    e.tagged_fields();
    return s;
}

std::string GroupCoordinator::Impl::sync_response(std::int16_t version, const Group& g,
                                                  std::string_view assignment) {
    std::string s;
    Encoder e(s, flexible(ApiKey::SyncGroup, version));
    if (version >= 1) e.i32(0);
    e.error(ErrorCode::None);
    if (version >= 5) {
        e.nullable_string(g.protocol_type);
        e.nullable_string(g.protocol);
    }
    e.bytes(assignment);
    e.tagged_fields();
    return s;
}

std::string GroupCoordinator::Impl::sync_error(std::int16_t version, ErrorCode error) {
    std::string s;
    Encoder e(s, flexible(ApiKey::SyncGroup, version));
    if (version >= 1) e.i32(0);
    e.error(error);
    if (version >= 5) {
        e.nullable_string(std::nullopt);
        e.nullable_string(std::nullopt);
    }
    e.bytes("");
    e.tagged_fields();
    return s;
}

GroupCoordinator::Outcome GroupCoordinator::Impl::join_group(std::int16_t version, Decoder& in,
                                                             Encoder& out,
                                                             const GroupContext& ctx) {
    const std::string_view group_id = in.string();
    const std::int32_t session_timeout = in.i32();
    const std::int32_t rebalance_timeout = version >= 1 ? in.i32() : session_timeout;
    const std::string_view member_id = in.string();
    const std::optional<std::string_view> instance =
        version >= 5 ? in.nullable_string() : std::nullopt;
    const std::string_view protocol_type = in.string();
    Protocols protocols;
    const std::size_t n = in.count(2);
    for (std::size_t i = 0; i < n && in.ok(); ++i) {
        const std::string_view name = in.string();
        const std::string_view metadata = in.bytes();
        in.tagged_fields();
        protocols.emplace_back(name, metadata);
    }
    if (version >= 8) (void)in.nullable_string();  // reason, for the broker's log
    in.tagged_fields();
    if (!in.ok()) {
        malformed(ApiKey::JoinGroup, version, out);
        return {};
    }
    const auto fail = [&](ErrorCode error, std::string_view id = {}) {
        out.buffer().append(join_error(version, error, id));
        return Outcome{};
    };
    if (group_id.empty()) return fail(ErrorCode::InvalidGroupId);
    if (session_timeout < options_.min_session_timeout_ms ||
        session_timeout > options_.max_session_timeout_ms)
        return fail(ErrorCode::InvalidSessionTimeout, member_id);
    if (!member_id.empty() && find_group(group_id) == nullptr)
        return fail(ErrorCode::UnknownMemberId, member_id);
    Group& g = group(group_id);
    if (!protocols_match(g, protocol_type, protocols))
        return fail(ErrorCode::InconsistentGroupProtocol, member_id);
    const std::uint64_t now = ctx.now_ms;
    const auto refresh = [&](GroupMember& m) {
        m.client_id = std::string(ctx.client_id);
        m.client_host = std::string(ctx.client_host);
        m.session_timeout_ms = session_timeout;
        m.rebalance_timeout_ms = std::max(rebalance_timeout, 1);
        m.last_heartbeat_ms = now;
    };
    const auto wait_ms = [&] {
        const std::uint64_t until = g.initial_join ? g.initial_cap_ms : g.rebalance_deadline_ms;
        return static_cast<unsigned>(until > now ? until - now : 0);
    };
    // The member waits for the others: it is counted as rejoined and its
    // answer comes when the join phase completes (perhaps right now).
    const auto await_join = [&](GroupMember& m) {
        if (m.join_ticket != 0)  // a retried JoinGroup replaces the one before
            answer(m.join_ticket, join_error(version, ErrorCode::RebalanceInProgress, m.id));
        const std::uint64_t ticket = open_ticket(ApiKey::JoinGroup, version, g.id, m.id);
        m.joined = true;
        m.join_ticket = ticket;
        maybe_complete_join(g, now, false);
        return settle(ticket, out, wait_ms());
    };
    const auto add_member = [&](std::string id) {
        if (g.members.empty()) g.protocol_type = std::string(protocol_type);
        GroupMember& m = g.members[id];
        m.id = std::move(id);
        if (instance) {
            m.instance_id = std::string(*instance);
            g.static_members[*m.instance_id] = m.id;
        }
        m.protocols = protocols;
        m.order = next_order_++;
        refresh(m);
        if (g.state == GroupState::PreparingRebalance) {
            if (g.initial_join)  // each newcomer extends a new group's delay
                g.rebalance_deadline_ms =
                    std::min(now + options_.initial_rebalance_delay_ms, g.initial_cap_ms);
        } else {
            prepare_rebalance(g, now);
        }
        return await_join(m);
    };
    const auto rejoin = [&](GroupMember& m) {
        refresh(m);
        switch (g.state) {
            case GroupState::PreparingRebalance:
                m.protocols = protocols;
                return await_join(m);
            case GroupState::CompletingRebalance:
            case GroupState::Stable:
                // A follower asking again with what it had (it lost the
                // answer) gets the current generation; a leader rejoining
                // or a changed subscription starts a rebalance.
                if (m.protocols == protocols &&
                    (g.state == GroupState::CompletingRebalance || m.id != g.leader)) {
                    out.buffer().append(join_response(version, g, m, false));
                    return Outcome{};
                }
                m.protocols = protocols;
                prepare_rebalance(g, now);
                return await_join(m);
            case GroupState::Empty:
            case GroupState::Dead:
                break;
        }
        return fail(ErrorCode::UnknownMemberId, m.id);
    };

    if (member_id.empty()) {
        if (instance) {
            const auto known = g.static_members.find(std::string(*instance));
            if (known == g.static_members.end()) return add_member(new_member_id(ctx.client_id));
            // A static member restarting: it gets a new id, its old one is fenced.
            const std::string old_id = known->second;
            auto node = g.members.extract(old_id);
            if (node.empty()) {
                g.static_members.erase(known);
                return add_member(new_member_id(ctx.client_id));
            }
            GroupMember& old = node.mapped();
            if (old.join_ticket != 0)
                answer(old.join_ticket, join_error(version_of(old.join_ticket),
                                                   ErrorCode::FencedInstanceId, old_id));
            if (old.sync_ticket != 0)
                answer(old.sync_ticket,
                       sync_error(version_of(old.sync_ticket), ErrorCode::FencedInstanceId));
            old.join_ticket = old.sync_ticket = 0;
            node.key() = new_member_id(ctx.client_id);
            node.mapped().id = node.key();
            known->second = node.key();
            if (g.leader == old_id) g.leader = node.key();
            GroupMember& m = g.members.insert(std::move(node)).position->second;
            refresh(m);
            if (g.state == GroupState::Stable && m.protocols == protocols) {
                // Unchanged (KIP-345): it keeps its assignment, nobody
                // rebalances; a leader is told not to assign again (v9).
                out.buffer().append(join_response(version, g, m, m.id == g.leader));
                return Outcome{};
            }
            return rejoin(m);
        }
        const std::string id = new_member_id(ctx.client_id);
        if (version >= 4) {
            // KIP-394: the client learns its id first and joins with it, so a
            // join whose answer is lost does not leave a ghost member behind.
            g.pending_members[id] = now + static_cast<std::uint64_t>(session_timeout);
            return fail(ErrorCode::MemberIdRequired, id);
        }
        return add_member(id);
    }
    const std::string id(member_id);
    if (const auto pending = g.pending_members.find(id); pending != g.pending_members.end()) {
        g.pending_members.erase(pending);
        if (fenced(g, instance, id)) return fail(ErrorCode::FencedInstanceId, id);
        return add_member(id);
    }
    const auto it = g.members.find(id);
    if (it == g.members.end()) return fail(ErrorCode::UnknownMemberId, id);
    if (fenced(g, instance, id)) return fail(ErrorCode::FencedInstanceId, id);
    return rejoin(it->second);
}

GroupCoordinator::Outcome GroupCoordinator::Impl::sync_group(std::int16_t version, Decoder& in,
                                                             Encoder& out,
                                                             const GroupContext& ctx) {
    const std::string_view group_id = in.string();
    const std::int32_t generation = in.i32();
    const std::string_view member_id = in.string();
    const std::optional<std::string_view> instance =
        version >= 3 ? in.nullable_string() : std::nullopt;
    std::optional<std::string_view> protocol_type, protocol_name;
    if (version >= 5) {
        protocol_type = in.nullable_string();
        protocol_name = in.nullable_string();
    }
    std::vector<std::pair<std::string_view, std::string_view>> assignments;
    const std::size_t n = in.count(2);
    for (std::size_t i = 0; i < n && in.ok(); ++i) {
        const std::string_view member = in.string();
        const std::string_view assignment = in.bytes();
        in.tagged_fields();
        assignments.emplace_back(member, assignment);
    }
    in.tagged_fields();
    if (!in.ok()) {
        malformed(ApiKey::SyncGroup, version, out);
        return {};
    }
    const auto fail = [&](ErrorCode error) {
        out.buffer().append(sync_error(version, error));
        return Outcome{};
    };
    Group* g = find_group(group_id);
    if (g == nullptr) return fail(ErrorCode::UnknownMemberId);
    if (fenced(*g, instance, member_id)) return fail(ErrorCode::FencedInstanceId);
    const auto it = g->members.find(std::string(member_id));
    if (it == g->members.end()) return fail(ErrorCode::UnknownMemberId);
    GroupMember& m = it->second;
    if (generation != g->generation) return fail(ErrorCode::IllegalGeneration);
    if ((protocol_type && *protocol_type != g->protocol_type) ||
        (protocol_name && *protocol_name != g->protocol))
        return fail(ErrorCode::InconsistentGroupProtocol);
    m.last_heartbeat_ms = ctx.now_ms;
    switch (g->state) {
        case GroupState::PreparingRebalance:
            return fail(ErrorCode::RebalanceInProgress);
        case GroupState::Stable:
            out.buffer().append(sync_response(version, *g, m.assignment));
            return {};
        case GroupState::CompletingRebalance:
            break;
        case GroupState::Empty:
        case GroupState::Dead:
            return fail(ErrorCode::UnknownMemberId);
    }
    m.synced = true;
    if (m.id != g->leader) {
        if (m.sync_ticket != 0)
            answer(m.sync_ticket, sync_error(version, ErrorCode::RebalanceInProgress));
        m.sync_ticket = open_ticket(ApiKey::SyncGroup, version, g->id, m.id);
        const std::uint64_t until = g->rebalance_deadline_ms;
        return settle(m.sync_ticket, out,
                      static_cast<unsigned>(until > ctx.now_ms ? until - ctx.now_ms : 0));
    }
    // The leader's assignment: every member gets its part (none named: empty).
    for (auto& [id, member] : g->members) member.assignment.clear();
    for (const auto& [member, assignment] : assignments) {
        const auto target = g->members.find(std::string(member));
        if (target != g->members.end()) target->second.assignment = std::string(assignment);
    }
    g->state = GroupState::Stable;
    for (auto& [id, member] : g->members) {
        if (member.sync_ticket == 0) continue;
        answer(member.sync_ticket,
               sync_response(version_of(member.sync_ticket), *g, member.assignment));
        member.sync_ticket = 0;
    }
    out.buffer().append(sync_response(version, *g, m.assignment));
    return {};
}

void GroupCoordinator::Impl::heartbeat(std::int16_t version, Decoder& in, Encoder& out,
                                       const GroupContext& ctx) {
    const std::string_view group_id = in.string();
    const std::int32_t generation = in.i32();
    const std::string_view member_id = in.string();
    const std::optional<std::string_view> instance =
        version >= 3 ? in.nullable_string() : std::nullopt;
    in.tagged_fields();
    if (!in.ok()) return malformed(ApiKey::Heartbeat, version, out);
    ErrorCode error = ErrorCode::None;
    Group* g = find_group(group_id);
    GroupMember* m = nullptr;
    if (g != nullptr) {
        const auto it = g->members.find(std::string(member_id));
        if (it != g->members.end()) m = &it->second;
    }
    if (g == nullptr) {
        error = ErrorCode::UnknownMemberId;
    } else if (fenced(*g, instance, member_id)) {
        error = ErrorCode::FencedInstanceId;
    } else if (m == nullptr) {
        error = ErrorCode::UnknownMemberId;
    } else if (generation != g->generation) {
        error = ErrorCode::IllegalGeneration;
    } else {
        m->last_heartbeat_ms = ctx.now_ms;
        // A member between JoinGroup and SyncGroup may heartbeat already.
        if (g->state == GroupState::PreparingRebalance) error = ErrorCode::RebalanceInProgress;
    }
    if (version >= 1) out.i32(0);
    out.error(error);
    out.tagged_fields();
}

void GroupCoordinator::Impl::leave_group(std::int16_t version, Decoder& in, Encoder& out,
                                         const GroupContext& ctx) {
    struct Leaving {
        std::string_view member_id;
        std::optional<std::string_view> instance;
        ErrorCode error = ErrorCode::None;
    };
    const std::string_view group_id = in.string();
    std::vector<Leaving> leaving;
    if (version <= 2) {
        leaving.push_back({in.string(), std::nullopt});
    } else {
        const std::size_t n = in.count(2);
        for (std::size_t i = 0; i < n && in.ok(); ++i) {
            Leaving l;
            l.member_id = in.string();
            l.instance = in.nullable_string();
            if (version >= 5) (void)in.nullable_string();  // reason
            in.tagged_fields();
            leaving.push_back(l);
        }
    }
    in.tagged_fields();
    if (!in.ok()) return malformed(ApiKey::LeaveGroup, version, out);
    Group* g = find_group(group_id);
    ErrorCode top = ErrorCode::None;
    if (g == nullptr) top = ErrorCode::UnknownMemberId;
    for (Leaving& l : leaving) {
        if (g == nullptr) {
            l.error = ErrorCode::UnknownMemberId;
            continue;
        }
        std::string target(l.member_id);
        if (l.instance) {
            const auto s = g->static_members.find(std::string(*l.instance));
            if (s == g->static_members.end()) {
                l.error = ErrorCode::UnknownMemberId;
                continue;
            }
            if (!l.member_id.empty() && s->second != l.member_id) {
                l.error = ErrorCode::FencedInstanceId;
                continue;
            }
            target = s->second;
        }
        if (g->pending_members.erase(target) != 0) {
            maybe_complete_join(*g, ctx.now_ms, false);
            continue;
        }
        if (!g->members.contains(target)) {
            l.error = ErrorCode::UnknownMemberId;
            continue;
        }
        remove_member(*g, target, ctx.now_ms, true);
    }
    if (version <= 2) {
        if (version >= 1) out.i32(0);
        out.error(top != ErrorCode::None ? top : leaving.front().error);
        return;
    }
    out.i32(0);
    out.error(top);
    out.array_length(static_cast<std::int64_t>(leaving.size()));
    for (const Leaving& l : leaving) {
        out.string(l.member_id);
        out.nullable_string(l.instance);
        out.error(l.error);
        out.tagged_fields();
    }
    out.tagged_fields();
}

}  // namespace pagewire::kafka
