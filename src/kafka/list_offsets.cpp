// ListOffsets (key 2), v1-7 (flexible from 6): a partition's earliest (-2)
// or latest (-1) offset, the record of its largest timestamp (-3, v7), or
// the first offset whose timestamp is at least the one asked for.
#include "kafka/handlers.hpp"

namespace pagewire::kafka {
namespace {

constexpr std::int64_t kLatest = -1;
constexpr std::int64_t kEarliest = -2;
constexpr std::int64_t kMaxTimestamp = -3;

// The timestamp of the record at `offset` (the batch's first timestamp
// when the batch is compressed, its records unreadable here).
std::int64_t timestamp_at(const Log& log, std::int64_t offset) {
    const LogSlice slice = log.read(offset, 1);
    std::size_t cursor = 0;
    BatchView batch;
    if (!slice.next_batch(&cursor, &batch)) return -1;
    if (batch.compression() != 0) return batch.base_timestamp();
    std::size_t at = 0;
    RecordView record;
    while (batch.next_record(&at, &record))
        if (record.offset >= offset) return record.timestamp;
    return batch.max_timestamp();
}

// {timestamp, offset} answered for `timestamp`; throws Error (ERANGE) when
// retention raced the lookup.
std::pair<std::int64_t, std::int64_t> lookup(const Log& log, std::int64_t timestamp) {
    if (timestamp == kLatest) return {-1, log.end_offset()};
    if (timestamp == kEarliest) return {-1, log.start_offset()};
    if (timestamp == kMaxTimestamp) {
        std::int64_t max = -1;
        for (const LogSegmentInfo& s : log.segments()) max = std::max(max, s.max_timestamp);
        if (max < 0 || log.end_offset() == log.start_offset()) return {-1, -1};
        timestamp = max;
    }
    const std::int64_t offset = log.offset_for_time(timestamp);
    if (offset >= log.end_offset()) return {-1, -1};  // no record that late
    return {timestamp_at(log, offset), offset};
}

}  // namespace

void handle_list_offsets(Request& r) {
    Decoder& in = r.in;
    (void)in.i32();                     // replica_id
    if (r.version >= 2) (void)in.i8();  // isolation_level
    Encoder& out = r.out;
    std::string body;  // written after the whole request decoded
    Encoder e(body, out.flexible());
    const std::size_t topics = in.count(2);
    e.array_length(static_cast<std::int64_t>(topics));
    for (std::size_t t = 0; t < topics && in.ok(); ++t) {
        const std::string_view name = in.string();
        const std::shared_ptr<Topic> topic = r.broker.topics.find(name);
        e.string(name);
        const std::size_t parts = in.count(12);
        e.array_length(static_cast<std::int64_t>(parts));
        for (std::size_t i = 0; i < parts && in.ok(); ++i) {
            const std::int32_t index = in.i32();
            if (r.version >= 4) (void)in.i32();  // current_leader_epoch
            const std::int64_t timestamp = in.i64();
            in.tagged_fields();
            ErrorCode error = ErrorCode::None;
            std::pair<std::int64_t, std::int64_t> found{-1, -1};
            if (!topic || index < 0 ||
                static_cast<std::size_t>(index) >= topic->partitions.size()) {
                error = ErrorCode::UnknownTopicOrPartition;
            } else {
                try {
                    found =
                        lookup(topic->partitions[static_cast<std::size_t>(index)]->log, timestamp);
                } catch (const Error&) {
                    error = ErrorCode::OffsetOutOfRange;
                }
            }
            e.i32(index);
            e.error(error);
            e.i64(found.first);
            e.i64(found.second);
            if (r.version >= 4) e.i32(0);  // leader_epoch
            e.tagged_fields();
        }
        in.tagged_fields();
        e.tagged_fields();
    }
    in.tagged_fields();
    if (r.version >= 2) out.i32(0);  // throttle_time_ms
    if (in.ok()) {
        out.buffer().append(body);
    } else {
        out.array_length(0);  // a request that does not decode: no topic answered
    }
    out.tagged_fields();
}

}  // namespace pagewire::kafka
