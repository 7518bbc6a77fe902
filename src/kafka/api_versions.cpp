// ApiVersions (key 18), v0-3: the APIs and versions the broker supports.
// v3's request carries the client's software name and version; its
// response body is flexible but the response header stays v0.
#include "kafka/handlers.hpp"

namespace pagewire::kafka {

const std::vector<ApiRange>& broker_apis() noexcept {
    // Produce is advertised from 0: librdkafka <= 2.x turns compression off
    // when Produce's minimum is above 0 (v0-2 batches of magic 2 are taken).
    static const std::vector<ApiRange> kApis = {
        {ApiKey::Produce, 0, 9, 9},     {ApiKey::Fetch, 4, 13, 12},
        {ApiKey::ListOffsets, 1, 7, 6}, {ApiKey::Metadata, 1, 12, 9},
        {ApiKey::ApiVersions, 0, 3, 3},
    };
    return kApis;
}

const ApiRange* find_api(ApiKey key) noexcept {
    for (const ApiRange& a : broker_apis())
        if (a.key == key) return &a;
    return nullptr;
}

namespace {

void write_list(Encoder& out, const std::vector<ApiRange>& extra) {
    const std::vector<ApiRange>& own = broker_apis();
    out.array_length(static_cast<std::int64_t>(own.size() + extra.size()));
    for (const auto* list : {&own, &extra}) {
        for (const ApiRange& a : *list) {
            out.i16(static_cast<std::int16_t>(a.key));
            out.i16(a.min);
            out.i16(a.max);
            out.tagged_fields();
        }
    }
}

}  // namespace

void handle_api_versions(Request& r, const std::vector<ApiRange>& extra) {
    if (r.version >= 3) {
        (void)r.in.string();  // client_software_name
        (void)r.in.string();  // client_software_version
        r.in.tagged_fields();
    }
    r.out.error(r.in.ok() ? ErrorCode::None : ErrorCode::InvalidRequest);
    write_list(r.out, extra);
    if (r.version >= 1) r.out.i32(0);  // throttle_time_ms
    r.out.tagged_fields();
}

void write_api_versions_unsupported(Encoder& out, const std::vector<ApiRange>& extra) {
    out.set_flexible(false);
    out.error(ErrorCode::UnsupportedVersion);
    write_list(out, extra);
}

}  // namespace pagewire::kafka
