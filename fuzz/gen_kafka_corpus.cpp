// Writes fuzz_kafka_request's seed corpus (fuzz/kafka_corpus/): one file
// per request, framed as on the wire (4-byte size, request header v1/v2,
// body), for every API and a low and a high version of each, laid out
// after Apache Kafka's message specs (clients/src/main/resources/common/
// message/*Request.json); Produce carries a RecordBatch v2 with its
// CRC-32C. A few files pipeline a conversation (produce then fetch, a
// consumer group's join, sync, commit, fetch offsets and leave), which the
// fuzzer would not find by mutation. The topics are the harness's: "t"
// (one partition, one batch in it) and "u" (two partitions).
//   cmake --build --preset asan --target gen_kafka_corpus
//   build/asan/fuzz/gen_kafka_corpus fuzz/kafka_corpus
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <pagewire/log.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "kafka/codec.hpp"

namespace kafka = pagewire::kafka;
using kafka::ApiKey;
using kafka::Encoder;

namespace {

std::string g_dir;

// One framed request: the size, header v1 (v2 when flexible), then the body.
std::string frame(ApiKey key, std::int16_t version, bool flexible,
                  const std::function<void(Encoder&)>& body) {
    static std::int32_t correlation = 1;
    std::string out;
    Encoder e(out);
    const std::size_t size_at = e.reserve32();
    e.i16(static_cast<std::int16_t>(key));
    e.i16(version);
    e.i32(correlation++);
    e.string("fuzz-seed");  // client_id: always a classic string
    if (flexible) out.push_back('\0');
    e.set_flexible(flexible);
    body(e);
    e.patch32(size_at, static_cast<std::int32_t>(out.size() - 4));
    return out;
}

void write(const std::string& name, const std::string& bytes) {
    const std::string path = g_dir + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() ||
        std::fclose(f) != 0) {
        std::fprintf(stderr, "gen_kafka_corpus: write %s failed\n", path.c_str());
        std::exit(1);
    }
}

// One RecordBatch v2 of two records, CRC-32C set (pagewire's encoder).
std::string record_batch() {
    const pagewire::Record records[] = {{"key", "value"}, {std::nullopt, "second"}};
    std::string out(pagewire::encoded_batch_size(records), '\0');
    pagewire::encode_batch(std::as_writable_bytes(std::span(out.data(), out.size())), 0,
                           1'700'000'000'000, records);
    return out;
}

std::string api_versions(std::int16_t v) {
    return frame(ApiKey::ApiVersions, v, v >= 3, [v](Encoder& e) {
        if (v >= 3) {
            e.string("pagewire-fuzz");
            e.string("1.0");
            e.tagged_fields();
        }
    });
}

std::string metadata(std::int16_t v) {
    return frame(ApiKey::Metadata, v, v >= 9, [v](Encoder& e) {
        e.array_length(3);
        for (const char* name : {"t", "u", "new-topic"}) {
            if (v >= 10) e.uuid({});
            e.string(name);
            e.tagged_fields();
        }
        if (v >= 4) e.boolean(true);              // allow_auto_topic_creation
        if (v >= 8 && v <= 10) e.boolean(false);  // include_cluster_authorized_operations
        if (v >= 8) e.boolean(false);             // include_topic_authorized_operations
        e.tagged_fields();
    });
}

std::string produce(std::int16_t v, std::int16_t acks) {
    const std::string batch = record_batch();
    return frame(ApiKey::Produce, v, v >= 9, [&](Encoder& e) {
        e.nullable_string(std::nullopt);  // transactional_id
        e.i16(acks);
        e.i32(1000);  // timeout_ms
        e.array_length(2);
        for (const char* name : {"t", "u"}) {
            e.string(name);
            e.array_length(1);
            e.i32(0);  // partition
            e.nullable_bytes(batch);
            e.tagged_fields();
            e.tagged_fields();
        }
        e.tagged_fields();
    });
}

std::string fetch(std::int16_t v, std::int32_t max_wait_ms, std::int64_t offset) {
    return frame(ApiKey::Fetch, v, v >= 12, [&](Encoder& e) {
        e.i32(-1);  // replica_id
        e.i32(max_wait_ms);
        e.i32(1);        // min_bytes
        e.i32(1 << 20);  // max_bytes
        e.i8(0);         // isolation_level
        if (v >= 7) {
            e.i32(0);   // session_id
            e.i32(-1);  // session_epoch
        }
        e.array_length(2);
        for (const char* name : {"t", "u"}) {
            if (v >= 13)
                e.uuid({});  // the topic ids are random: this one is unknown
            else
                e.string(name);
            e.array_length(1);
            e.i32(0);               // partition
            if (v >= 9) e.i32(-1);  // current_leader_epoch
            e.i64(offset);
            if (v >= 12) e.i32(-1);  // last_fetched_epoch
            if (v >= 5) e.i64(-1);   // log_start_offset
            e.i32(1 << 16);          // partition_max_bytes
            e.tagged_fields();
            e.tagged_fields();
        }
        if (v >= 7) e.array_length(0);  // forgotten_topics_data
        if (v >= 11) e.string("");      // rack_id
        e.tagged_fields();
    });
}

std::string list_offsets(std::int16_t v) {
    return frame(ApiKey::ListOffsets, v, v >= 6, [v](Encoder& e) {
        e.i32(-1);            // replica_id
        if (v >= 2) e.i8(0);  // isolation_level
        e.array_length(1);
        e.string("u");
        e.array_length(2);
        for (const std::int64_t ts : {-1LL, -2LL}) {  // latest, earliest
            e.i32(ts == -1 ? 0 : 1);
            if (v >= 4) e.i32(-1);  // current_leader_epoch
            e.i64(ts);
            e.tagged_fields();
        }
        e.tagged_fields();
        e.tagged_fields();
    });
}

std::string create_topics(std::int16_t v, bool validate_only) {
    return frame(ApiKey::CreateTopics, v, v >= 5, [&](Encoder& e) {
        e.array_length(2);
        e.string("created");
        e.i32(3);  // num_partitions
        e.i16(1);  // replication_factor
        e.array_length(0);
        e.array_length(1);
        e.string("retention.ms");
        e.nullable_string("60000");
        e.tagged_fields();
        e.tagged_fields();
        e.string("assigned");
        e.i32(-1);
        e.i16(-1);
        e.array_length(2);  // assignments: two partitions on broker 0
        for (std::int32_t p = 0; p < 2; ++p) {
            e.i32(p);
            e.array_length(1);
            e.i32(0);
            e.tagged_fields();
        }
        e.array_length(0);
        e.tagged_fields();
        e.i32(1000);  // timeout_ms
        if (v >= 1) e.boolean(validate_only);
        e.tagged_fields();
    });
}

std::string delete_topics(std::int16_t v) {
    return frame(ApiKey::DeleteTopics, v, v >= 4, [v](Encoder& e) {
        e.array_length(2);
        for (const char* name : {"u", "missing"}) {
            if (v >= 6) {
                e.nullable_string(name);
                e.uuid({});
                e.tagged_fields();
            } else {
                e.string(name);
            }
        }
        e.i32(1000);  // timeout_ms
        e.tagged_fields();
    });
}

std::string init_producer_id(std::int16_t v) {
    return frame(ApiKey::InitProducerId, v, v >= 2, [v](Encoder& e) {
        e.nullable_string(std::nullopt);  // transactional_id
        e.i32(60000);                     // transaction_timeout_ms
        if (v >= 3) {
            e.i64(-1);  // producer_id
            e.i16(-1);  // producer_epoch
        }
        e.tagged_fields();
    });
}

std::string find_coordinator(std::int16_t v) {
    return frame(ApiKey::FindCoordinator, v, v >= 3, [v](Encoder& e) {
        if (v <= 3) e.string("g");
        if (v >= 1) e.i8(0);  // key_type: group
        if (v >= 4) {
            e.array_length(2);
            e.string("g");
            e.string("h");
        }
        e.tagged_fields();
    });
}

// JoinGroup of a new member (member_id empty; v4+ answers MemberIdRequired first).
std::string join_group(std::int16_t v, std::string_view member_id) {
    return frame(ApiKey::JoinGroup, v, v >= 6, [&](Encoder& e) {
        e.string("g");
        e.i32(10000);              // session_timeout_ms
        if (v >= 1) e.i32(20000);  // rebalance_timeout_ms
        e.string(member_id);
        if (v >= 5) e.nullable_string(std::nullopt);  // group_instance_id
        e.string("consumer");
        e.array_length(1);
        e.string("range");
        e.bytes(std::string_view("\0\1\0\0\0\1\0\1t\0\0\0\0", 13));  // subscription to "t"
        e.tagged_fields();
        if (v >= 8) e.nullable_string("seed");  // reason
        e.tagged_fields();
    });
}

std::string sync_group(std::int16_t v, std::int32_t generation, std::string_view member_id) {
    return frame(ApiKey::SyncGroup, v, v >= 4, [&](Encoder& e) {
        e.string("g");
        e.i32(generation);
        e.string(member_id);
        if (v >= 3) e.nullable_string(std::nullopt);  // group_instance_id
        if (v >= 5) {
            e.nullable_string("consumer");
            e.nullable_string("range");
        }
        e.array_length(1);
        e.string(member_id);
        e.bytes(std::string_view("\0\1\0\0\0\1\0\1t\0\0\0\1\0\0\0\0\0\0\0\0", 21));
        e.tagged_fields();
        e.tagged_fields();
    });
}

std::string heartbeat(std::int16_t v, std::int32_t generation, std::string_view member_id) {
    return frame(ApiKey::Heartbeat, v, v >= 4, [&](Encoder& e) {
        e.string("g");
        e.i32(generation);
        e.string(member_id);
        if (v >= 3) e.nullable_string(std::nullopt);
        e.tagged_fields();
    });
}

std::string leave_group(std::int16_t v, std::string_view member_id) {
    return frame(ApiKey::LeaveGroup, v, v >= 4, [&](Encoder& e) {
        e.string("g");
        if (v <= 2) {
            e.string(member_id);
        } else {
            e.array_length(1);
            e.string(member_id);
            e.nullable_string(std::nullopt);
            if (v >= 5) e.nullable_string("done");
            e.tagged_fields();
        }
        e.tagged_fields();
    });
}

std::string offset_commit(std::int16_t v, std::int32_t generation, std::string_view member_id) {
    return frame(ApiKey::OffsetCommit, v, v >= 8, [&](Encoder& e) {
        e.string("g");
        if (v >= 1) {
            e.i32(generation);
            e.string(member_id);
        }
        if (v >= 7) e.nullable_string(std::nullopt);  // group_instance_id
        if (v >= 2 && v <= 4) e.i64(-1);              // retention_time_ms
        e.array_length(1);
        e.string("t");
        e.array_length(1);
        e.i32(0);
        e.i64(1);               // committed_offset
        if (v >= 6) e.i32(-1);  // committed_leader_epoch
        if (v == 1) e.i64(-1);  // commit_timestamp
        e.nullable_string("meta");
        e.tagged_fields();
        e.tagged_fields();
        e.tagged_fields();
    });
}

std::string offset_fetch(std::int16_t v) {
    return frame(ApiKey::OffsetFetch, v, v >= 6, [v](Encoder& e) {
        const auto topics = [&e] {
            e.array_length(1);
            e.string("t");
            e.array_length(1);
            e.i32(0);
            e.tagged_fields();
        };
        if (v <= 7) {
            e.string("g");
            topics();
            if (v >= 7) e.boolean(false);  // require_stable
        } else {
            e.array_length(1);
            e.string("g");
            topics();
            e.tagged_fields();
            e.boolean(false);
        }
        e.tagged_fields();
    });
}

std::string list_groups(std::int16_t v) {
    return frame(ApiKey::ListGroups, v, v >= 3, [v](Encoder& e) {
        if (v >= 4) e.array_length(0);  // states_filter
        e.tagged_fields();
    });
}

std::string describe_groups(std::int16_t v) {
    return frame(ApiKey::DescribeGroups, v, v >= 5, [v](Encoder& e) {
        e.array_length(1);
        e.string("g");
        if (v >= 3) e.boolean(false);  // include_authorized_operations
        e.tagged_fields();
    });
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: gen_kafka_corpus DIR\n");
        return 2;
    }
    g_dir = argv[1];
    write("api_versions_v0", api_versions(0));
    write("api_versions_v3", api_versions(3));
    write("metadata_v1", metadata(1));
    write("metadata_v9", metadata(9));
    write("metadata_v12", metadata(12));
    write("produce_v3", produce(3, 1));
    write("produce_v9", produce(9, -1));
    write("produce_v3_acks0", produce(3, 0));
    write("fetch_v4", fetch(4, 0, 0));
    write("fetch_v12", fetch(12, 0, 0));
    write("fetch_v13", fetch(13, 0, 0));
    write("fetch_v4_wait", fetch(4, 500, 5));  // past the end: a long poll that times out
    write("list_offsets_v1", list_offsets(1));
    write("list_offsets_v7", list_offsets(7));
    write("create_topics_v0", create_topics(0, false));
    write("create_topics_v4_validate", create_topics(4, true));
    write("create_topics_v7", create_topics(7, false));
    write("delete_topics_v1", delete_topics(1));
    write("delete_topics_v6", delete_topics(6));
    write("init_producer_id_v0", init_producer_id(0));
    write("init_producer_id_v4", init_producer_id(4));
    write("find_coordinator_v1", find_coordinator(1));
    write("find_coordinator_v4", find_coordinator(4));
    write("join_group_v1", join_group(1, ""));
    write("join_group_v9", join_group(9, ""));
    write("sync_group_v0", sync_group(0, 1, "m"));
    write("sync_group_v5", sync_group(5, 1, "m"));
    write("heartbeat_v0", heartbeat(0, 1, "m"));
    write("heartbeat_v4", heartbeat(4, 1, "m"));
    write("leave_group_v0", leave_group(0, "m"));
    write("leave_group_v5", leave_group(5, "m"));
    write("offset_commit_v2", offset_commit(2, -1, ""));
    write("offset_commit_v8", offset_commit(8, -1, ""));
    write("offset_fetch_v1", offset_fetch(1));
    write("offset_fetch_v8", offset_fetch(8));
    write("list_groups_v0", list_groups(0));
    write("list_groups_v4", list_groups(4));
    write("describe_groups_v0", describe_groups(0));
    write("describe_groups_v5", describe_groups(5));
    // Conversations: the later frames act on what the earlier ones made.
    write("pipeline_produce_fetch",
          produce(3, 1) + fetch(4, 0, 0) + fetch(12, 500, 2) + list_offsets(7) + metadata(12));
    write("pipeline_topics", create_topics(7, false) + metadata(9) + delete_topics(6) +
                                 produce(9, 1) + fetch(12, 0, 0));
    // A simple consumer's commit, then a group member's round (its member id
    // is the broker's, so the later calls are refused as an unknown member).
    write("pipeline_group", find_coordinator(4) + offset_commit(8, -1, "") + offset_fetch(8) +
                                join_group(1, "") + sync_group(5, 1, "m") + heartbeat(4, 1, "m") +
                                describe_groups(5) + list_groups(4) + leave_group(5, "m"));
    write("pipeline_versions", api_versions(3) + api_versions(7) + init_producer_id(4));
    return 0;
}
