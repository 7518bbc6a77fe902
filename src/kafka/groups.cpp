// The group coordinator's rebalance state machine (Kafka's GroupCoordinator
// and GroupMetadata): Empty -> PreparingRebalance (members rejoin, or the
// rebalance timeout drops who did not) -> CompletingRebalance (the leader
// sends the assignment in its SyncGroup) -> Stable; a join, a leave or a
// session expiry starts the next PreparingRebalance. Requests that wait
// hold tickets, answered when the group moves on.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <utility>

#include "kafka/group_impl.hpp"

namespace pagewire::kafka {

namespace {

// A waiting request's deadline past the group's own: the broker's timer
// then finds the group already moved on (tick ran), not a request to time out.
constexpr unsigned kTicketSlackMs = 1000;

std::uint64_t max_rebalance_timeout(const Group& g) {
    std::uint64_t ms = 1;
    for (const auto& [id, m] : g.members)
        ms = std::max<std::uint64_t>(ms, static_cast<std::uint64_t>(m.rebalance_timeout_ms));
    return ms;
}

bool supports(const GroupMember& m, std::string_view protocol) {
    return std::any_of(m.protocols.begin(), m.protocols.end(),
                       [&](const auto& p) { return p.first == protocol; });
}

}  // namespace

std::string_view state_name(GroupState state) noexcept {
    switch (state) {
        case GroupState::Empty:
            return "Empty";
        case GroupState::PreparingRebalance:
            return "PreparingRebalance";
        case GroupState::CompletingRebalance:
            return "CompletingRebalance";
        case GroupState::Stable:
            return "Stable";
        case GroupState::Dead:
            return "Dead";
    }
    return "Dead";
}

GroupCoordinator::Impl::Impl(std::string offsets_dir, std::function<void()> wake,
                             const GroupOptions& options)
    : wake_(std::move(wake)),
      options_(options),
      store_(std::move(offsets_dir), options.compact_bytes),
      random_(std::random_device{}()) {
    store_.load(groups_);
}

Group* GroupCoordinator::Impl::find_group(std::string_view id) {
    const auto it = groups_.find(id);
    return it == groups_.end() ? nullptr : &it->second;
}

Group& GroupCoordinator::Impl::group(std::string_view id) {
    auto it = groups_.find(id);
    if (it == groups_.end()) {
        it = groups_.emplace(std::string(id), Group{}).first;
        it->second.id = std::string(id);
    }
    return it->second;
}

std::string GroupCoordinator::Impl::new_member_id(std::string_view client_id) {
    // Kafka's form: the client id, a dash and a random UUID.
    const std::uint64_t hi = random_(), lo = random_();
    char uuid[40];
    std::snprintf(uuid, sizeof uuid,
                  "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%012" PRIx64, hi >> 32,
                  (hi >> 16) & 0xFFFF, hi & 0xFFFF, lo >> 48, lo & std::uint64_t{0xFFFFFFFFFFFF});
    return std::string(client_id.empty() ? "member" : client_id) + "-" + uuid;
}

std::uint64_t GroupCoordinator::Impl::open_ticket(ApiKey key, std::int16_t version,
                                                  const std::string& group,
                                                  const std::string& member) {
    const std::uint64_t id = next_ticket_++;
    Ticket& t = tickets_[id];
    t.key = key;
    t.version = version;
    t.group = group;
    t.member = member;
    return id;
}

void GroupCoordinator::Impl::answer(std::uint64_t ticket, std::string response) {
    const auto it = tickets_.find(ticket);
    if (it == tickets_.end() || it->second.ready) return;
    it->second.ready = true;
    it->second.response = std::move(response);
    if (it->second.published) need_wake_ = true;
}

std::int16_t GroupCoordinator::Impl::version_of(std::uint64_t ticket) const {
    const auto it = tickets_.find(ticket);
    return it == tickets_.end() ? 0 : it->second.version;
}

GroupCoordinator::Outcome GroupCoordinator::Impl::settle(std::uint64_t ticket, Encoder& out,
                                                         unsigned wait_ms) {
    const auto it = tickets_.find(ticket);
    if (it == tickets_.end()) return {};
    if (it->second.ready) {
        out.buffer().append(it->second.response);
        tickets_.erase(it);
        return {};
    }
    it->second.published = true;
    return {true, ticket, wait_ms + kTicketSlackMs};
}

bool GroupCoordinator::Impl::protocols_match(
    const Group& g, std::string_view protocol_type,
    const std::vector<std::pair<std::string, std::string>>& protocols) const {
    if (protocol_type.empty() || protocols.empty()) return false;
    if (g.members.empty()) return true;
    if (protocol_type != g.protocol_type) return false;
    // One of the joiner's protocols must be one every member speaks.
    return std::any_of(protocols.begin(), protocols.end(), [&](const auto& p) {
        return std::all_of(g.members.begin(), g.members.end(),
                           [&](const auto& m) { return supports(m.second, p.first); });
    });
}

std::string GroupCoordinator::Impl::select_protocol(const Group& g) const {
    // Kafka's vote: among the protocols every member supports, each member
    // votes for the one it lists first; the most votes win.
    std::vector<std::string> candidates;
    const GroupMember* first = nullptr;
    for (const auto& [id, m] : g.members)
        if (first == nullptr || m.order < first->order) first = &m;
    if (first == nullptr) return {};
    for (const auto& protocol : first->protocols) {
        const std::string& name = protocol.first;
        const bool everyone = std::all_of(g.members.begin(), g.members.end(),
                                          [&](const auto& m) { return supports(m.second, name); });
        if (everyone) candidates.push_back(name);
    }
    std::vector<int> votes(candidates.size(), 0);
    for (const auto& [id, m] : g.members) {
        for (const auto& [name, metadata] : m.protocols) {
            const auto c = std::find(candidates.begin(), candidates.end(), name);
            if (c != candidates.end()) {
                ++votes[static_cast<std::size_t>(c - candidates.begin())];
                break;
            }
        }
    }
    if (candidates.empty()) return {};
    const auto best = std::max_element(votes.begin(), votes.end());
    return candidates[static_cast<std::size_t>(best - votes.begin())];
}

void GroupCoordinator::Impl::prepare_rebalance(Group& g, std::uint64_t now_ms) {
    if (g.state == GroupState::CompletingRebalance) {
        for (auto& [id, m] : g.members) {
            if (m.sync_ticket == 0) continue;
            answer(m.sync_ticket,
                   sync_error(version_of(m.sync_ticket), ErrorCode::RebalanceInProgress));
            m.sync_ticket = 0;
        }
    }
    const bool was_empty = g.state == GroupState::Empty;
    for (auto& [id, m] : g.members) {
        m.joined = false;
        m.synced = false;
        m.assignment.clear();
    }
    g.state = GroupState::PreparingRebalance;
    const std::uint64_t timeout = max_rebalance_timeout(g);
    g.initial_join = was_empty && options_.initial_rebalance_delay_ms > 0;
    if (g.initial_join) {
        g.initial_cap_ms = now_ms + timeout;
        g.rebalance_deadline_ms =
            std::min(now_ms + options_.initial_rebalance_delay_ms, g.initial_cap_ms);
    } else {
        g.rebalance_deadline_ms = now_ms + timeout;
    }
}

void GroupCoordinator::Impl::maybe_complete_join(Group& g, std::uint64_t now_ms, bool force) {
    if (g.state != GroupState::PreparingRebalance) return;
    if (!force) {
        // A new group's first join waits out its delay to gather the
        // consumers that start together; otherwise everyone known must be back.
        if (g.initial_join || !g.pending_members.empty()) return;
        for (const auto& [id, m] : g.members)
            if (!m.joined) return;
    }
    std::vector<std::string> gone;
    for (const auto& [id, m] : g.members)
        if (!m.joined) gone.push_back(id);
    for (const auto& id : gone) remove_member(g, id, now_ms, false);
    g.initial_join = false;
    ++g.generation;
    if (g.members.empty()) {
        g.state = GroupState::Empty;
        g.protocol.clear();
        g.leader.clear();
        return;
    }
    g.protocol = select_protocol(g);
    if (!g.members.contains(g.leader)) {
        const GroupMember* first = nullptr;
        for (const auto& [id, m] : g.members)
            if (first == nullptr || m.order < first->order) first = &m;
        g.leader = first->id;
    }
    g.state = GroupState::CompletingRebalance;
    g.rebalance_deadline_ms = now_ms + max_rebalance_timeout(g);
    for (auto& [id, m] : g.members) {
        m.joined = false;
        m.synced = false;
        m.last_heartbeat_ms = now_ms;
        if (m.join_ticket == 0) continue;
        answer(m.join_ticket, join_response(version_of(m.join_ticket), g, m, false));
        m.join_ticket = 0;
    }
}

void GroupCoordinator::Impl::remove_member(Group& g, const std::string& member_id,
                                           std::uint64_t now_ms, bool rebalance) {
    const auto it = g.members.find(member_id);
    if (it == g.members.end()) return;
    GroupMember& m = it->second;
    if (m.join_ticket != 0)
        answer(m.join_ticket,
               join_error(version_of(m.join_ticket), ErrorCode::UnknownMemberId, m.id));
    if (m.sync_ticket != 0)
        answer(m.sync_ticket, sync_error(version_of(m.sync_ticket), ErrorCode::UnknownMemberId));
    if (m.instance_id) {
        const auto s = g.static_members.find(*m.instance_id);
        if (s != g.static_members.end() && s->second == member_id) g.static_members.erase(s);
    }
    g.members.erase(it);
    if (g.leader == member_id) g.leader.clear();
    if (!rebalance) return;
    switch (g.state) {
        case GroupState::PreparingRebalance:
            maybe_complete_join(g, now_ms, false);
            break;
        case GroupState::CompletingRebalance:
        case GroupState::Stable:
            prepare_rebalance(g, now_ms);
            maybe_complete_join(g, now_ms, false);
            break;
        case GroupState::Empty:
        case GroupState::Dead:
            break;
    }
}

bool GroupCoordinator::Impl::may_expire(const Group& g, const GroupMember& m) {
    // A member waiting in JoinGroup or SyncGroup is alive (Kafka completes
    // its heartbeat while the join waits); the rebalance timeout bounds
    // those waits instead.
    return !((g.state == GroupState::PreparingRebalance && m.joined) || m.sync_ticket != 0);
}

void GroupCoordinator::Impl::advance(std::uint64_t now_ms) {
    now_ms_ = std::max(now_ms_, now_ms);
    for (auto it = groups_.begin(); it != groups_.end();) {
        Group& g = it->second;
        bool dropped_pending = false;
        for (auto p = g.pending_members.begin(); p != g.pending_members.end();) {
            if (p->second <= now_ms) {
                p = g.pending_members.erase(p);
                dropped_pending = true;
            } else {
                ++p;
            }
        }
        if (dropped_pending) maybe_complete_join(g, now_ms, false);

        std::vector<std::string> expired;
        for (const auto& [id, m] : g.members) {
            if (!may_expire(g, m)) continue;
            if (now_ms >= m.last_heartbeat_ms + static_cast<std::uint64_t>(m.session_timeout_ms))
                expired.push_back(id);
        }
        for (const auto& id : expired) remove_member(g, id, now_ms, true);

        if (g.state == GroupState::PreparingRebalance && now_ms >= g.rebalance_deadline_ms) {
            maybe_complete_join(g, now_ms, true);
        } else if (g.state == GroupState::CompletingRebalance &&
                   now_ms >= g.rebalance_deadline_ms) {
            // The leader's assignment did not come in time: who did not
            // sync leaves, the rest rebalance.
            std::vector<std::string> unsynced;
            for (const auto& [id, m] : g.members)
                if (!m.synced) unsynced.push_back(id);
            for (const auto& id : unsynced) remove_member(g, id, now_ms, false);
            prepare_rebalance(g, now_ms);
            maybe_complete_join(g, now_ms, false);
        }

        const bool unused = g.members.empty() && g.pending_members.empty() && g.offsets.empty() &&
                            g.state == GroupState::Empty;
        it = unused ? groups_.erase(it) : std::next(it);
    }
}

// ---- The public face: lock, dispatch, wake ---------------------------------

GroupCoordinator::GroupCoordinator(std::string offsets_dir, std::function<void()> wake)
    : GroupCoordinator(std::move(offsets_dir), std::move(wake), GroupOptions{}) {}

GroupCoordinator::GroupCoordinator(std::string offsets_dir, std::function<void()> wake,
                                   const GroupOptions& options)
    : impl_(std::make_unique<Impl>(std::move(offsets_dir), std::move(wake), options)) {}

GroupCoordinator::~GroupCoordinator() {
    try {
        close();
    } catch (...) {  // a destructor does not throw; close() reports to who calls it
    }
}

bool GroupCoordinator::handles(ApiKey key) noexcept {
    return versions(key).second >= 0;
}

std::pair<std::int16_t, std::int16_t> GroupCoordinator::versions(ApiKey key) noexcept {
    switch (key) {
        case ApiKey::OffsetCommit:
        case ApiKey::OffsetFetch:
            return {0, 8};
        case ApiKey::FindCoordinator:
        case ApiKey::Heartbeat:
        case ApiKey::ListGroups:
            return {0, 4};
        case ApiKey::JoinGroup:
            return {0, 9};
        case ApiKey::LeaveGroup:
        case ApiKey::SyncGroup:
        case ApiKey::DescribeGroups:
            return {0, 5};
        default:
            return {-1, -1};
    }
}

bool GroupCoordinator::flexible(ApiKey key, std::int16_t version) noexcept {
    switch (key) {
        case ApiKey::OffsetCommit:
            return version >= 8;
        case ApiKey::OffsetFetch:
            return version >= 6;
        case ApiKey::FindCoordinator:
        case ApiKey::ListGroups:
            return version >= 3;
        case ApiKey::JoinGroup:
            return version >= 6;
        case ApiKey::Heartbeat:
        case ApiKey::LeaveGroup:
        case ApiKey::SyncGroup:
            return version >= 4;
        case ApiKey::DescribeGroups:
            return version >= 5;
        default:
            return false;
    }
}

namespace {

// Runs f under the coordinator's lock, then wakes the broker (lock released)
// if a waiting request became ready meanwhile.
template <class F>
auto locked(GroupCoordinator::Impl& impl, F&& f) {
    std::unique_lock lock(impl.mutex_);
    auto result = f();
    const bool wake = std::exchange(impl.need_wake_, false);
    lock.unlock();
    if (wake && impl.wake_) impl.wake_();
    return result;
}

}  // namespace

GroupCoordinator::Outcome GroupCoordinator::handle(ApiKey key, std::int16_t version, Decoder& body,
                                                   Encoder& out, const GroupContext& context) {
    const auto [lo, hi] = versions(key);
    if (version < lo || version > hi) {
        // Not ours to parse: the error in the shape of the oldest version,
        // which every client reads.
        out.set_flexible(false);
        Impl::malformed(key, lo < 0 ? 0 : lo, out, ErrorCode::UnsupportedVersion);
        return {};
    }
    const bool flex = flexible(key, version);
    body.set_flexible(flex);
    out.set_flexible(flex);
    return locked(*impl_, [&]() -> Outcome {
        Impl& impl = *impl_;
        impl.advance(context.now_ms);
        switch (key) {
            case ApiKey::JoinGroup:
                return impl.join_group(version, body, out, context);
            case ApiKey::SyncGroup:
                return impl.sync_group(version, body, out, context);
            case ApiKey::Heartbeat:
                impl.heartbeat(version, body, out, context);
                break;
            case ApiKey::LeaveGroup:
                impl.leave_group(version, body, out, context);
                break;
            case ApiKey::OffsetCommit:
                impl.offset_commit(version, body, out, context);
                break;
            case ApiKey::OffsetFetch:
                impl.offset_fetch(version, body, out, context);
                break;
            case ApiKey::FindCoordinator:
                impl.find_coordinator(version, body, out, context);
                break;
            case ApiKey::ListGroups:
                impl.list_groups(version, body, out, context);
                break;
            case ApiKey::DescribeGroups:
                impl.describe_groups(version, body, out, context);
                break;
            default:
                break;
        }
        return {};
    });
}

bool GroupCoordinator::ready(std::uint64_t ticket) const {
    std::lock_guard lock(impl_->mutex_);
    const auto it = impl_->tickets_.find(ticket);
    return it != impl_->tickets_.end() && it->second.ready;
}

void GroupCoordinator::finish(std::uint64_t ticket, Encoder& out, std::uint64_t now_ms) {
    locked(*impl_, [&] {
        Impl& impl = *impl_;
        impl.advance(now_ms);
        auto it = impl.tickets_.find(ticket);
        if (it == impl.tickets_.end()) return 0;
        Ticket& t = it->second;
        Group* g = impl.find_group(t.group);
        if (!t.ready && t.key == ApiKey::JoinGroup && g != nullptr) {
            // The broker's wait is over: the rebalance ends now, as at its timeout.
            impl.maybe_complete_join(*g, now_ms, true);
        }
        if (!t.ready) {
            impl.answer(ticket,
                        t.key == ApiKey::JoinGroup
                            ? Impl::join_error(t.version, ErrorCode::RebalanceInProgress, t.member)
                            : Impl::sync_error(t.version, ErrorCode::RebalanceInProgress));
        }
        out.set_flexible(flexible(t.key, t.version));
        out.buffer().append(t.response);
        if (g != nullptr) {
            const auto m = g->members.find(t.member);
            if (m != g->members.end()) {
                if (m->second.join_ticket == ticket) m->second.join_ticket = 0;
                if (m->second.sync_ticket == ticket) m->second.sync_ticket = 0;
            }
        }
        impl.tickets_.erase(it);
        return 0;
    });
}

void GroupCoordinator::cancel(std::uint64_t ticket) noexcept {
    std::lock_guard lock(impl_->mutex_);
    const auto it = impl_->tickets_.find(ticket);
    if (it == impl_->tickets_.end()) return;
    // The member stays joined (or synced): its client will ask again on a
    // new connection, as after a lost response.
    if (Group* g = impl_->find_group(it->second.group)) {
        const auto m = g->members.find(it->second.member);
        if (m != g->members.end()) {
            if (m->second.join_ticket == ticket) m->second.join_ticket = 0;
            if (m->second.sync_ticket == ticket) m->second.sync_ticket = 0;
        }
    }
    impl_->tickets_.erase(it);
}

void GroupCoordinator::tick(std::uint64_t now_ms) {
    locked(*impl_, [&] {
        impl_->advance(now_ms);
        return 0;
    });
}

std::uint64_t GroupCoordinator::next_deadline_ms() const {
    std::lock_guard lock(impl_->mutex_);
    std::uint64_t next = std::numeric_limits<std::uint64_t>::max();
    for (const auto& [id, g] : impl_->groups_) {
        for (const auto& [pid, until] : g.pending_members) next = std::min(next, until);
        for (const auto& [mid, m] : g.members)
            if (Impl::may_expire(g, m))
                next = std::min(
                    next, m.last_heartbeat_ms + static_cast<std::uint64_t>(m.session_timeout_ms));
        if (g.state == GroupState::PreparingRebalance || g.state == GroupState::CompletingRebalance)
            next = std::min(next, g.rebalance_deadline_ms);
    }
    return next;
}

void GroupCoordinator::close() {
    std::lock_guard lock(impl_->mutex_);
    impl_->store_.close();
}

}  // namespace pagewire::kafka
