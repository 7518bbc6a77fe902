// Fetch (key 1), v4-13 (flexible from 12, topic ids from 13). The response
// is built as a header block and, per partition, its records as a file
// segment: the worker sends the segment file's byte range by sendfile
// straight after the in-memory bytes before it (MSG_MORE), no copy through
// user space. `--fetch-copy` reads the same bytes into the response instead
// (read + write), for comparison. LastStableOffset is the high watermark (no
// transactions); fetch sessions are not kept (session_id 0: every fetch is
// a full one).
#include <unistd.h>

#include <algorithm>

#include "kafka/handlers.hpp"

namespace pagewire::kafka {
namespace {

constexpr std::int32_t kMaxWaitMs = 30'000;  // a longer max_wait_ms is cut to this

Partition* partition_of(const FetchRequest::Topic& t, std::int32_t index) {
    if (!t.topic || index < 0 || static_cast<std::size_t>(index) >= t.topic->partitions.size())
        return nullptr;
    return t.topic->partitions[static_cast<std::size_t>(index)].get();
}

// Reads [position, position + n) of fd onto the end of `out`; false on error.
bool read_into(std::string& out, int fd, std::uint64_t position, std::size_t n) {
    const std::size_t at = out.size();
    out.resize(at + n);
    std::size_t done = 0;
    while (done < n) {
        const ssize_t r =
            ::pread(fd, out.data() + at + done, n - done, static_cast<off_t>(position + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            out.resize(at);
            return false;
        }
        done += static_cast<std::size_t>(r);
    }
    return true;
}

}  // namespace

bool decode_fetch(BrokerState& broker, std::int16_t version, Decoder& in, FetchRequest& f) {
    f = FetchRequest{};
    f.version = version;
    (void)in.i32();  // replica_id
    f.max_wait_ms = std::clamp(in.i32(), 0, kMaxWaitMs);
    f.min_bytes = in.i32();
    f.max_bytes = in.i32();
    (void)in.i8();  // isolation_level: everything is committed
    if (version >= 7) {
        (void)in.i32();  // session_id
        (void)in.i32();  // session_epoch
    }
    const std::size_t topics = in.count(version >= 13 ? 17 : 3);
    for (std::size_t t = 0; t < topics && in.ok(); ++t) {
        FetchRequest::Topic ft;
        if (version >= 13) {
            ft.id = in.uuid();
            ft.topic = broker.topics.find(ft.id);
        } else {
            ft.name = std::string(in.string());
            ft.topic = broker.topics.find(ft.name);
        }
        if (ft.topic) ft.name = ft.topic->name;
        const std::size_t parts = in.count(16);
        for (std::size_t i = 0; i < parts && in.ok(); ++i) {
            FetchRequest::Partition fp;
            fp.index = in.i32();
            if (version >= 9) (void)in.i32();  // current_leader_epoch
            fp.offset = in.i64();
            if (version >= 12) (void)in.i32();  // last_fetched_epoch
            if (version >= 5) (void)in.i64();   // log_start_offset (of a follower)
            fp.max_bytes = in.i32();
            in.tagged_fields();
            ft.partitions.push_back(fp);
        }
        in.tagged_fields();
        f.topics.push_back(std::move(ft));
    }
    if (version >= 7) {
        const std::size_t forgotten = in.count(2);
        for (std::size_t i = 0; i < forgotten && in.ok(); ++i) {
            if (version >= 13)
                (void)in.uuid();
            else
                (void)in.string();
            const std::size_t parts = in.count(4);
            for (std::size_t p = 0; p < parts && in.ok(); ++p) (void)in.i32();
            in.tagged_fields();
        }
    }
    if (version >= 11) (void)in.string();  // rack_id
    in.tagged_fields();
    return in.ok();
}

bool fetch_ready(const FetchRequest& f) {
    std::int64_t bytes = 0;
    for (const FetchRequest::Topic& t : f.topics) {
        if (!t.topic) return true;  // an error to report now
        for (const FetchRequest::Partition& fp : t.partitions) {
            const Partition* p = partition_of(t, fp.index);
            if (p == nullptr) return true;
            const std::int64_t end = p->log.end_offset();
            if (fp.offset > end || fp.offset < p->log.start_offset()) return true;
            if (fp.offset == end) continue;
            if (f.min_bytes <= 1) return true;
            try {
                bytes += static_cast<std::int64_t>(
                    p->log.read(fp.offset, static_cast<std::size_t>(std::max(fp.max_bytes, 1)))
                        .bytes.size());
            } catch (const Error&) {
                return true;  // retention moved the start meanwhile: answer now
            }
            if (bytes >= f.min_bytes) return true;
        }
    }
    return false;
}

void write_fetch(const FetchRequest& f, net::Response& response, bool flexible, bool copy,
                 std::vector<LogSlice>& slices) {
    std::string& data = response.data;
    Encoder out(data, flexible);
    std::size_t mark = 0;  // start of the in-memory bytes not yet in a segment
    std::uint64_t file_bytes = 0;
    std::int64_t budget = f.max_bytes > 0 ? f.max_bytes : 1;

    out.i32(0);  // throttle_time_ms
    if (f.version >= 7) {
        out.error(f.error);
        out.i32(0);  // session_id: none kept
    }
    out.array_length(static_cast<std::int64_t>(f.topics.size()));
    for (const FetchRequest::Topic& t : f.topics) {
        if (f.version >= 13)
            out.uuid(t.id);
        else
            out.string(t.name);
        out.array_length(static_cast<std::int64_t>(t.partitions.size()));
        for (const FetchRequest::Partition& fp : t.partitions) {
            Partition* p = partition_of(t, fp.index);
            ErrorCode error = ErrorCode::None;
            std::int64_t end = -1, start = -1;
            LogSlice slice;
            if (p == nullptr) {
                error = f.version >= 13 && !t.topic ? ErrorCode::UnknownTopicId
                                                    : ErrorCode::UnknownTopicOrPartition;
            } else {
                end = p->log.end_offset();
                start = p->log.start_offset();
                if (fp.offset < start || fp.offset > end) {
                    error = ErrorCode::OffsetOutOfRange;
                } else if (fp.offset < end && budget > 0 && fp.max_bytes > 0) {
                    try {
                        slice = p->log.read(
                            fp.offset,
                            static_cast<std::size_t>(std::min<std::int64_t>(fp.max_bytes, budget)));
                    } catch (const Error&) {
                        error = ErrorCode::OffsetOutOfRange;
                    }
                }
            }
            out.i32(fp.index);
            out.error(error);
            out.i64(end);                        // high watermark
            out.i64(end);                        // last stable offset
            if (f.version >= 5) out.i64(start);  // log start offset
            out.array_length(-1);                // aborted transactions: none
            if (f.version >= 11) out.i32(-1);    // preferred read replica
            const std::size_t n = slice.bytes.size();
            out.bytes_length(static_cast<std::int64_t>(n));
            if (n > 0 && copy) {
                // A failed read still owes the n bytes: the mapped ones are the same.
                if (!read_into(data, slice.fd, slice.position, n))
                    data.append(reinterpret_cast<const char*>(slice.bytes.data()), n);
            } else if (n > 0) {
                response.segments.push_back({false, mark, data.size() - mark, -1});
                response.segments.push_back({true, slice.position, n, slice.fd});
                mark = data.size();
                file_bytes += n;
                slices.push_back(std::move(slice));
            }
            budget -= static_cast<std::int64_t>(n);
            out.tagged_fields();
        }
        out.tagged_fields();
    }
    out.tagged_fields();
    if (data.size() > mark) response.segments.push_back({false, mark, data.size() - mark, -1});
    Encoder(data).patch32(0, static_cast<std::int32_t>(data.size() - 4 + file_bytes));
}

}  // namespace pagewire::kafka
