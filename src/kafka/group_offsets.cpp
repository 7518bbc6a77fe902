// Committed offsets: OffsetCommit 0-8 and OffsetFetch 0-8 (v8's several
// groups in one request), and their durable copy, a pagewire::Log of one
// record per committed partition, as Kafka's __consumer_offsets topic holds
// them. The log is in the page cache when a commit is answered (Durability
// None, Kafka's own default: it survives a kill -9 of the broker, not a
// power failure) and is rewritten, latest commit per partition only, when it
// passes GroupOptions::compact_bytes.
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "kafka/group_impl.hpp"

namespace pagewire::kafka {

namespace {

// A segment of the offsets log: small, since one is preallocated and a
// rewrite keeps only the live commits.
constexpr std::uint64_t kOffsetsSegmentBytes = 16ULL << 20;
// Records per batch when the rewrite copies the live commits.
constexpr std::size_t kCompactBatchRecords = 512;
constexpr std::int16_t kValueVersion = 0;

LogOptions offsets_log_options() {
    LogOptions o;
    o.segment_bytes = kOffsetsSegmentBytes;
    o.durability = Durability::None;
    return o;
}

std::string encode_key(std::string_view group, const TopicPartitionKey& tp) {
    std::string s;
    Encoder e(s);
    e.bytes(group);
    e.bytes(tp.topic);
    e.i32(tp.partition);
    return s;
}

std::string encode_value(const CommittedOffset& c) {
    std::string s;
    Encoder e(s);
    e.i16(kValueVersion);
    e.i64(c.offset);
    e.i32(c.leader_epoch);
    e.i64(c.commit_timestamp_ms);
    e.bytes(c.metadata);
    return s;
}

void rename_or_throw(const std::string& from, const std::string& to) {
    std::error_code ec;
    std::filesystem::rename(from, to, ec);
    if (ec) throw_error("rename", from + " -> " + to, ec.value());
}

void remove_or_throw(const std::string& path) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) throw_error("remove", path, ec.value());
}

// (key, value) pairs; a null value deletes the key.
using KeyValues = std::vector<std::pair<std::string, std::optional<std::string>>>;

// Appends (key, value) pairs as one batch.
std::uint64_t append_records(Log& log, const KeyValues& kv) {
    std::vector<Record> records;
    records.reserve(kv.size());
    for (const auto& [k, v] : kv)
        records.push_back(Record{k, v ? std::optional<std::string_view>(*v) : std::nullopt});
    log.append(records, wall_clock_ms());
    return encoded_batch_size(records);
}

}  // namespace

std::int64_t wall_clock_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

OffsetStore::OffsetStore(std::string dir, std::uint64_t compact_bytes)
    : dir_(std::move(dir)), compact_bytes_(compact_bytes) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw_error("create offsets directory", dir_, ec.value());
    const std::string main = dir_ + "/offsets", fresh = dir_ + "/offsets.compact",
                      old = dir_ + "/offsets.old";
    // A rewrite stopped between its two renames: the new log is complete
    // (the old one is only moved away after the new one was closed).
    if (!std::filesystem::exists(main) && std::filesystem::exists(fresh))
        rename_or_throw(fresh, main);
    remove_or_throw(fresh);
    remove_or_throw(old);
    log_.emplace(Log::open(main, offsets_log_options()));
    for (const auto& s : log_->segments()) bytes_ += s.bytes;
}

void OffsetStore::load(GroupMap& groups) {
    const std::int64_t end = log_->end_offset();
    for (std::int64_t at = log_->start_offset(); at < end;) {
        const LogSlice slice = log_->read(at, 1 << 20);
        if (slice.empty()) break;
        slice.for_each_record([&](const RecordView& r) {
            if (!r.key) return;
            Decoder k(r.key->data(), r.key->size());
            const std::string_view group = k.bytes();
            TopicPartitionKey tp{std::string(k.bytes()), k.i32()};
            if (!r.value) {  // a tombstone: the commit was deleted
                const auto it = groups.find(group);
                if (k.ok() && it != groups.end()) it->second.offsets.erase(tp);
                return;
            }
            Decoder v(r.value->data(), r.value->size());
            CommittedOffset c;
            const std::int16_t version = v.i16();
            c.offset = v.i64();
            c.leader_epoch = v.i32();
            c.commit_timestamp_ms = v.i64();
            c.metadata = std::string(v.bytes());
            // A record this version cannot read is skipped, not fatal.
            if (!k.ok() || !v.ok() || version != kValueVersion) return;
            auto it = groups.find(group);
            if (it == groups.end()) {
                it = groups.emplace(std::string(group), Group{}).first;
                it->second.id = std::string(group);
                it->second.empty_since_ms = wall_clock_ms();
            }
            it->second.offsets[std::move(tp)] = std::move(c);
        });
        at = slice.next_offset;
    }
    std::uint64_t live = 0;
    for (const auto& [id, g] : groups) live += g.offsets.size();
    live_bytes_ = std::min(bytes_, live * 64);  // an estimate until the first rewrite
}

void OffsetStore::append(
    std::string_view group,
    const std::vector<std::pair<TopicPartitionKey, CommittedOffset>>& commits) {
    if (commits.empty()) return;
    if (!log_) log_.emplace(Log::open(dir_ + "/offsets", offsets_log_options()));
    KeyValues kv;
    kv.reserve(commits.size());
    for (const auto& [tp, c] : commits) kv.emplace_back(encode_key(group, tp), encode_value(c));
    bytes_ += append_records(*log_, kv);
}

void OffsetStore::remove(std::string_view group, const std::vector<TopicPartitionKey>& partitions) {
    if (partitions.empty()) return;
    if (!log_) log_.emplace(Log::open(dir_ + "/offsets", offsets_log_options()));
    KeyValues kv;
    for (const auto& tp : partitions) kv.emplace_back(encode_key(group, tp), std::nullopt);
    bytes_ += append_records(*log_, kv);
}

void OffsetStore::maybe_compact(const GroupMap& groups) {
    if (bytes_ > compact_bytes_ && bytes_ > 2 * live_bytes_) compact(groups);
}

void OffsetStore::compact(const GroupMap& groups) {
    const std::string main = dir_ + "/offsets", fresh = dir_ + "/offsets.compact",
                      old = dir_ + "/offsets.old";
    remove_or_throw(fresh);
    std::uint64_t live = 0;
    {
        Log out = Log::open(fresh, offsets_log_options());
        KeyValues kv;
        for (const auto& [id, g] : groups) {
            for (const auto& [tp, c] : g.offsets) {
                kv.emplace_back(encode_key(id, tp), encode_value(c));
                if (kv.size() == kCompactBatchRecords) {
                    live += append_records(out, kv);
                    kv.clear();
                }
            }
        }
        if (!kv.empty()) live += append_records(out, kv);
        out.flush();  // on disk before it replaces the log it was made from
        out.close();
    }
    log_->close();
    log_.reset();
    rename_or_throw(main, old);
    rename_or_throw(fresh, main);
    remove_or_throw(old);
    log_.emplace(Log::open(main, offsets_log_options()));
    bytes_ = live_bytes_ = live;
}

void OffsetStore::close() {
    if (!log_) return;
    log_->close();
    log_.reset();  // a commit after close() opens it again
}

void GroupCoordinator::Impl::expire_offsets(std::int64_t wall_ms) {
    const auto retention = static_cast<std::int64_t>(options_.offsets_retention_ms);
    for (auto& [id, g] : groups_) {
        if (g.state != GroupState::Empty || g.offsets.empty()) continue;
        // Kafka's rule: a consumer group's offsets live on for the
        // retention after it became empty; a simple consumer's (no protocol
        // type), each for the retention after its commit.
        std::vector<TopicPartitionKey> gone;
        for (const auto& [tp, c] : g.offsets) {
            const std::int64_t since = g.protocol_type.empty()
                                           ? c.commit_timestamp_ms
                                           : std::max(g.empty_since_ms, c.commit_timestamp_ms);
            if (wall_ms - since >= retention) gone.push_back(tp);
        }
        if (gone.empty()) continue;
        try {
            store_.remove(id, gone);
        } catch (const std::exception&) {
            continue;  // kept, in memory as on disk; tried again at the next check
        }
        for (const auto& tp : gone) g.offsets.erase(tp);
    }
}

void GroupCoordinator::Impl::offset_commit(std::int16_t version, Decoder& in, Encoder& out,
                                           const GroupContext& ctx) {
    struct Partition {
        std::int32_t index = 0;
        std::int64_t offset = 0;
        std::int32_t leader_epoch = -1;
        std::optional<std::string_view> metadata;
        ErrorCode error = ErrorCode::None;
    };
    struct Topic {
        std::string_view name;
        std::vector<Partition> partitions;
    };
    const std::string_view group_id = in.string();
    const std::int32_t generation = version >= 1 ? in.i32() : -1;
    const std::string_view member_id = version >= 1 ? in.string() : std::string_view{};
    if (version >= 2 && version <= 4) (void)in.i64();  // retention_time_ms: kept forever
    const std::optional<std::string_view> instance =
        version >= 7 ? in.nullable_string() : std::nullopt;
    std::vector<Topic> topics;
    const std::size_t n = in.count(2);
    for (std::size_t i = 0; i < n && in.ok(); ++i) {
        Topic t;
        t.name = in.string();
        const std::size_t np = in.count(12);
        for (std::size_t j = 0; j < np && in.ok(); ++j) {
            Partition p;
            p.index = in.i32();
            p.offset = in.i64();
            if (version >= 6) p.leader_epoch = in.i32();
            if (version == 1) (void)in.i64();  // commit_timestamp: the broker's clock is used
            p.metadata = in.nullable_string();
            in.tagged_fields();
            t.partitions.push_back(p);
        }
        in.tagged_fields();
        topics.push_back(std::move(t));
    }
    in.tagged_fields();
    if (!in.ok()) return malformed(ApiKey::OffsetCommit, version, out);

    // Kafka's checks: a commit outside group management (generation -1) is
    // taken while the group has no members; a member's must be of the
    // current generation and not in the middle of a rebalance.
    ErrorCode error = ErrorCode::None;
    Group* g = find_group(group_id);
    if (group_id.empty()) {
        error = ErrorCode::InvalidGroupId;
    } else if (g == nullptr) {
        if (generation >= 0) error = ErrorCode::IllegalGeneration;
    } else if (generation < 0 && g->state == GroupState::Empty) {
        // a simple consumer's (or an admin's) commit to an idle group
    } else if (g->state == GroupState::CompletingRebalance) {
        error = ErrorCode::RebalanceInProgress;
    } else if (fenced(*g, instance, member_id)) {
        error = ErrorCode::FencedInstanceId;
    } else if (!g->members.contains(std::string(member_id))) {
        error = ErrorCode::UnknownMemberId;
    } else if (generation != g->generation) {
        error = ErrorCode::IllegalGeneration;
    } else {
        g->members[std::string(member_id)].last_heartbeat_ms = ctx.now_ms;
    }
    std::vector<std::pair<TopicPartitionKey, CommittedOffset>> commits;
    const std::int64_t now = wall_clock_ms();
    for (Topic& t : topics) {
        for (Partition& p : t.partitions) {
            p.error = error;
            if (error != ErrorCode::None) continue;
            if (p.metadata && p.metadata->size() > options_.max_metadata_bytes) {
                p.error = ErrorCode::OffsetMetadataTooLarge;
                continue;
            }
            commits.push_back({TopicPartitionKey{std::string(t.name), p.index},
                               CommittedOffset{p.offset, p.leader_epoch, now,
                                               std::string(p.metadata.value_or(""))}});
        }
    }
    if (!commits.empty()) {
        bool stored = true;
        try {
            store_.append(group_id, commits);
        } catch (const std::exception&) {
            // Not durable, so not committed: the client retries.
            stored = false;
            for (Topic& t : topics)
                for (Partition& p : t.partitions)
                    if (p.error == ErrorCode::None) p.error = ErrorCode::UnknownServerError;
        }
        if (stored) {
            Group& target = group(group_id);
            for (auto& [tp, c] : commits) target.offsets[tp] = std::move(c);
            try {
                store_.maybe_compact(groups_);
            } catch (const std::exception&) {
                // The commits are in the old log, which stays in use; the
                // rewrite is tried again at the next commit.
            }
        }
    }

    if (version >= 3) out.i32(0);
    out.array_length(static_cast<std::int64_t>(topics.size()));
    for (const Topic& t : topics) {
        out.string(t.name);
        out.array_length(static_cast<std::int64_t>(t.partitions.size()));
        for (const Partition& p : t.partitions) {
            out.i32(p.index);
            out.error(p.error);
            out.tagged_fields();
        }
        out.tagged_fields();
    }
    out.tagged_fields();
}

void GroupCoordinator::Impl::offset_fetch(std::int16_t version, Decoder& in, Encoder& out,
                                          const GroupContext&) {
    struct Topic {
        std::string_view name;
        std::vector<std::int32_t> partitions;
    };
    struct Request {
        std::string_view group_id;
        std::optional<std::vector<Topic>> topics;  // nullopt: every committed partition
    };
    const auto read_topics = [&](bool nullable) -> std::optional<std::vector<Topic>> {
        const std::int64_t n = in.array_length(2);
        if (n < 0 && nullable) return std::nullopt;
        std::vector<Topic> topics;
        for (std::int64_t i = 0; i < n && in.ok(); ++i) {
            Topic t;
            t.name = in.string();
            const std::size_t np = in.count(4);
            for (std::size_t j = 0; j < np && in.ok(); ++j) t.partitions.push_back(in.i32());
            in.tagged_fields();
            topics.push_back(std::move(t));
        }
        return topics;
    };
    std::vector<Request> requests;
    if (version <= 7) {
        Request r;
        r.group_id = in.string();
        r.topics = read_topics(version >= 2);
        requests.push_back(std::move(r));
        if (version >= 7) (void)in.boolean();  // require_stable: no transactions here
    } else {
        const std::size_t n = in.count(2);
        for (std::size_t i = 0; i < n && in.ok(); ++i) {
            Request r;
            r.group_id = in.string();
            r.topics = read_topics(true);
            in.tagged_fields();
            requests.push_back(std::move(r));
        }
        (void)in.boolean();
    }
    in.tagged_fields();
    if (!in.ok()) return malformed(ApiKey::OffsetFetch, version, out);

    // One group's topics and partitions, as the request asked them or
    // (null topics) everything committed, in topic order.
    const auto write_group = [&](const Request& r) {
        const Group* g = find_group(r.group_id);
        std::vector<Topic> all;  // names point into g->offsets' keys
        if (!r.topics && g != nullptr) {
            for (const auto& [tp, c] : g->offsets) {
                if (all.empty() || all.back().name != tp.topic) all.push_back({tp.topic, {}});
                all.back().partitions.push_back(tp.partition);
            }
        }
        const std::vector<Topic>& topics = r.topics ? *r.topics : all;
        const ErrorCode partition_error =
            r.group_id.empty() && version <= 1 ? ErrorCode::InvalidGroupId : ErrorCode::None;
        out.array_length(static_cast<std::int64_t>(topics.size()));
        for (const Topic& t : topics) {
            out.string(t.name);
            out.array_length(static_cast<std::int64_t>(t.partitions.size()));
            for (const std::int32_t p : t.partitions) {
                const CommittedOffset* c = nullptr;
                if (g != nullptr) {
                    const auto it = g->offsets.find(TopicPartitionKey{std::string(t.name), p});
                    if (it != g->offsets.end()) c = &it->second;
                }
                out.i32(p);
                out.i64(c ? c->offset : -1);
                if (version >= 5) out.i32(c ? c->leader_epoch : -1);
                out.nullable_string(c ? std::string_view(c->metadata) : std::string_view{});
                out.error(partition_error);
                out.tagged_fields();
            }
            out.tagged_fields();
        }
        return r.group_id.empty() ? ErrorCode::InvalidGroupId : ErrorCode::None;
    };
    if (version >= 3) out.i32(0);
    if (version <= 7) {
        const ErrorCode error = write_group(requests.front());
        if (version >= 2) out.error(error);
    } else {
        out.array_length(static_cast<std::int64_t>(requests.size()));
        for (const Request& r : requests) {
            out.string(r.group_id);
            out.error(write_group(r));
            out.tagged_fields();
        }
    }
    out.tagged_fields();
}

}  // namespace pagewire::kafka
