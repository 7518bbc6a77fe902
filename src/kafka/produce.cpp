// Produce (key 0), advertised v0-9 (flexible from 9). Each partition's
// records are RecordBatch v2 batches (magic 2; compressed ones too), checked
// (size, CRC-32C) and appended verbatim but for baseOffset. Idempotent
// producers (producerId >= 0) get Kafka's sequence checks: a duplicate of one
// of the last 5 batches is answered with its first offset and not appended
// again, a gap is OUT_OF_ORDER_SEQUENCE_NUMBER. acks 0 gets no answer; acks
// 1 and -1 (all) are answered after the append, which returns once the data
// is as durable as the log's durability mode says.
#include <cstring>
#include <limits>

#include "kafka/handlers.hpp"

namespace pagewire::kafka {
namespace {

struct PartitionResult {
    std::int32_t index = 0;
    ErrorCode error = ErrorCode::None;
    std::int64_t base_offset = -1;
    std::int64_t log_start = -1;
    std::string message;
};

std::int32_t next_sequence(std::int32_t s) noexcept {
    return s == std::numeric_limits<std::int32_t>::max() ? 0 : s + 1;
}

// Kafka's checks of an idempotent batch against the producer's state (under
// the partition's append mutex). None: append it; DuplicateSequenceNumber:
// `offset` is where it went before.
ErrorCode check_sequence(const Partition& p, const BatchView& b, std::int64_t& offset) {
    const auto it = p.producers.find(b.producer_id());
    if (it == p.producers.end()) return ErrorCode::None;  // new (or forgotten) producer
    const ProducerState& s = it->second;
    if (b.producer_epoch() < s.epoch) return ErrorCode::InvalidProducerEpoch;
    if (b.producer_epoch() > s.epoch)
        return b.base_sequence() == 0 ? ErrorCode::None : ErrorCode::OutOfOrderSequenceNumber;
    for (const ProducerState::Batch& k : s.batches) {
        if (k.base_sequence == b.base_sequence() &&
            k.last_sequence == b.base_sequence() + b.last_offset_delta()) {
            offset = k.base_offset;
            return ErrorCode::DuplicateSequenceNumber;
        }
    }
    if (!s.batches.empty() && b.base_sequence() != next_sequence(s.batches.back().last_sequence))
        return ErrorCode::OutOfOrderSequenceNumber;
    return ErrorCode::None;
}

void remember(Partition& p, const BatchView& b, std::int64_t base_offset) {
    ProducerState& s = p.producers[b.producer_id()];
    if (b.producer_epoch() != s.epoch) {
        s.epoch = b.producer_epoch();
        s.batches.clear();
    }
    if (s.batches.size() == ProducerState::kBatchesKept) s.batches.erase(s.batches.begin());
    s.batches.push_back(
        {b.base_sequence(), b.base_sequence() + b.last_offset_delta(), base_offset});
}

void append_records(BrokerState& broker, Partition& p, std::string_view records,
                    PartitionResult& result) {
    std::lock_guard lock(p.append_mutex);
    result.log_start = p.log.start_offset();
    if (records.empty()) {
        result.error = ErrorCode::CorruptMessage;
        result.message = "no record batch";
        return;
    }
    while (!records.empty()) {
        if (records.size() < kBatchHeaderSize) {
            result.error = ErrorCode::CorruptMessage;
            result.message = "truncated record batch";
            return;
        }
        const BatchView head(
            std::span(reinterpret_cast<const std::byte*>(records.data()), records.size()));
        if (head.magic() != 2) {
            result.error = ErrorCode::UnsupportedForMessageFormat;
            result.message = "only RecordBatch v2 (magic 2) is stored";
            return;
        }
        const std::int64_t size =
            static_cast<std::int64_t>(kBatchLogOverhead) + head.batch_length();
        if (head.batch_length() < 0 || static_cast<std::uint64_t>(size) > records.size()) {
            result.error = ErrorCode::CorruptMessage;
            result.message = "batch length past the records";
            return;
        }
        if (static_cast<std::uint64_t>(size) > broker.config.max_batch_bytes) {
            result.error = ErrorCode::MessageTooLarge;
            result.message = "batch of " + std::to_string(size) + " bytes is over the limit of " +
                             std::to_string(broker.config.max_batch_bytes);
            return;
        }
        const BatchView batch(std::span(reinterpret_cast<const std::byte*>(records.data()),
                                        static_cast<std::size_t>(size)));
        if (std::string why = batch.validate(); !why.empty()) {
            result.error = ErrorCode::CorruptMessage;
            result.message = std::move(why);
            return;
        }
        const bool idempotent = batch.producer_id() >= 0;
        std::int64_t offset = -1;
        const ErrorCode seq = idempotent ? check_sequence(p, batch, offset) : ErrorCode::None;
        if (seq == ErrorCode::DuplicateSequenceNumber) {
            if (result.base_offset < 0) result.base_offset = offset;
        } else if (seq != ErrorCode::None) {
            result.error = seq;
            return;
        } else {
            try {
                const AppendResult a = p.log.append_batch(batch.bytes());
                if (result.base_offset < 0) result.base_offset = a.base_offset;
                if (idempotent) remember(p, batch, a.base_offset);
            } catch (const Error& e) {
                result.error = e.error_number() == EBADMSG ? ErrorCode::CorruptMessage
                                                           : ErrorCode::UnknownServerError;
                result.message = e.what();
                return;
            }
        }
        records.remove_prefix(static_cast<std::size_t>(size));
    }
}

}  // namespace

bool handle_produce(Request& r) {
    Decoder& in = r.in;
    if (r.version >= 3) (void)in.nullable_string();  // transactional_id
    const std::int16_t acks = in.i16();
    (void)in.i32();  // timeout_ms: appends do not wait for replicas
    struct TopicResult {
        std::string_view name;
        std::vector<PartitionResult> partitions;
    };
    std::vector<TopicResult> results;
    const bool acks_ok = acks == 0 || acks == 1 || acks == -1;
    bool appended = false;
    const std::size_t topics = in.count(2);
    for (std::size_t t = 0; t < topics && in.ok(); ++t) {
        TopicResult tr;
        tr.name = in.string();
        const std::shared_ptr<Topic> topic = r.broker.topics.find(tr.name);
        const std::size_t parts = in.count(4);
        for (std::size_t i = 0; i < parts && in.ok(); ++i) {
            PartitionResult pr;
            pr.index = in.i32();
            const std::optional<std::string_view> records = in.nullable_bytes();
            in.tagged_fields();
            if (!in.ok()) break;
            if (!acks_ok) {
                pr.error = ErrorCode::InvalidRequiredAcks;
            } else if (!topic || pr.index < 0 ||
                       static_cast<std::size_t>(pr.index) >= topic->partitions.size()) {
                pr.error = ErrorCode::UnknownTopicOrPartition;
            } else {
                append_records(r.broker, *topic->partitions[static_cast<std::size_t>(pr.index)],
                               records.value_or(std::string_view{}), pr);
                appended = appended || pr.error == ErrorCode::None;
            }
            tr.partitions.push_back(std::move(pr));
        }
        in.tagged_fields();
        results.push_back(std::move(tr));
    }
    in.tagged_fields();
    if (appended) r.broker.appended();
    if (acks == 0 && in.ok()) return false;

    Encoder& out = r.out;
    if (!in.ok()) results.clear();  // a body that does not decode: no partition answered
    out.array_length(static_cast<std::int64_t>(results.size()));
    for (const TopicResult& tr : results) {
        out.string(tr.name);
        out.array_length(static_cast<std::int64_t>(tr.partitions.size()));
        for (const PartitionResult& pr : tr.partitions) {
            out.i32(pr.index);
            out.error(pr.error);
            out.i64(pr.base_offset);
            if (r.version >= 2) out.i64(-1);  // log_append_time_ms: CreateTime topics
            if (r.version >= 5) out.i64(pr.log_start);
            if (r.version >= 8) {
                out.array_length(0);  // record_errors
                out.nullable_string(pr.message.empty()
                                        ? std::nullopt
                                        : std::optional<std::string_view>(pr.message));
            }
            out.tagged_fields();
        }
        out.tagged_fields();
    }
    if (r.version >= 1) out.i32(0);  // throttle_time_ms
    out.tagged_fields();
    return true;
}

}  // namespace pagewire::kafka
