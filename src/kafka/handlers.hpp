// pagewire kafka: one handler per API (Redpanda's layout: api_versions.cpp,
// metadata.cpp, produce.cpp, fetch.cpp, list_offsets.cpp, ...), each holding
// every version of its API. A handler reads the request body from `in`
// (positioned after the request header, flexible as the version says) and
// writes the response body to `out` (after the response header). A body
// that does not decode is answered as the API answers an invalid request.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <pagewire/log.hpp>
#include <string>
#include <utility>
#include <vector>

#include "kafka/broker_state.hpp"
#include "kafka/codec.hpp"
#include "net/protocol.hpp"

namespace pagewire::kafka {

struct Request {
    BrokerState& broker;
    ApiKey key;
    std::int16_t version;
    Decoder& in;
    Encoder& out;
};

// The supported versions of the broker's own APIs (not the groups'), and
// from which version each is flexible.
struct ApiRange {
    ApiKey key;
    std::int16_t min;
    std::int16_t max;
    std::int16_t flexible_from;
};
const std::vector<ApiRange>& broker_apis() noexcept;
const ApiRange* find_api(ApiKey key) noexcept;

// The APIs advertised: the broker's and `extra` (the group coordinator's).
void handle_api_versions(Request& r, const std::vector<ApiRange>& extra);
// The body of ApiVersions v0 with UnsupportedVersion (35): the answer to an
// ApiVersions request of a version the broker does not know.
void write_api_versions_unsupported(Encoder& out, const std::vector<ApiRange>& extra);
void handle_metadata(Request& r);
// False when nothing is to be answered (acks 0).
bool handle_produce(Request& r);
void handle_list_offsets(Request& r);
void handle_create_topics(Request& r);
void handle_delete_topics(Request& r);
void handle_init_producer_id(Request& r);

// A Fetch request as decoded (copied out of the input buffer: it may wait).
struct FetchRequest {
    struct Partition {
        std::int32_t index = 0;
        std::int64_t offset = 0;
        std::int32_t max_bytes = 0;
    };
    struct Topic {
        std::string name;
        Uuid id{};
        std::shared_ptr<kafka::Topic> topic;  // null: unknown
        std::vector<Partition> partitions;
    };
    std::int16_t version = 0;
    ErrorCode error = ErrorCode::None;  // v7+: the request did not decode
    std::int32_t max_wait_ms = 0;
    std::int32_t min_bytes = 0;
    std::int32_t max_bytes = 0;
    std::vector<Topic> topics;
};

// Decodes a Fetch body into `f` (topics looked up); false if it does not decode.
bool decode_fetch(BrokerState& broker, std::int16_t version, Decoder& in, FetchRequest& f);
// Whether the request can be answered now (min_bytes available).
bool fetch_ready(const FetchRequest& f);
// Writes the response body after the header already in response.data:
// records as file segments (sendfile) or, with `copy`, read into data.
// The slices keep the segment files open until the response is sent.
void write_fetch(const FetchRequest& f, net::Response& response, bool flexible, bool copy,
                 std::vector<LogSlice>& slices);

}  // namespace pagewire::kafka
