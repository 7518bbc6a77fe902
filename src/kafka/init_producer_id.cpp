// InitProducerId (key 22), v0-4 (flexible from 2): a producer id for an
// idempotent producer (the Java client's default), or the next epoch of the
// one it has (v3+). Transactions are not supported: a transactional id is
// refused.
#include <limits>

#include "kafka/handlers.hpp"

namespace pagewire::kafka {

void handle_init_producer_id(Request& r) {
    Decoder& in = r.in;
    const std::optional<std::string_view> transactional_id = in.nullable_string();
    (void)in.i32();  // transaction_timeout_ms
    std::int64_t producer_id = -1;
    std::int16_t epoch = -1;
    if (r.version >= 3) {
        producer_id = in.i64();
        epoch = in.i16();
    }
    in.tagged_fields();

    ErrorCode error = ErrorCode::None;
    if (!in.ok()) {
        error = ErrorCode::InvalidRequest;
    } else if (transactional_id && !transactional_id->empty()) {
        error = ErrorCode::TransactionalIdAuthorizationFailed;
    } else if (producer_id >= 0 && epoch >= 0 && epoch < std::numeric_limits<std::int16_t>::max()) {
        ++epoch;  // the same producer again: fence its older epoch
    } else {
        producer_id = r.broker.next_producer_id.fetch_add(1);
        epoch = 0;
    }
    Encoder& out = r.out;
    out.i32(0);  // throttle_time_ms
    out.error(error);
    out.i64(error == ErrorCode::None ? producer_id : -1);
    out.i16(error == ErrorCode::None ? epoch : -1);
    out.tagged_fields();
}

}  // namespace pagewire::kafka
