// ApiVersions (key 18), v0-3: the APIs and versions the broker supports.
// v3's request carries the client's software name and version; its
// response body is flexible but the response header stays v0.
#include "kafka/groups.hpp"
#include "kafka/handlers.hpp"

namespace pagewire::kafka {
namespace {

std::vector<ApiRange> make_apis() {
    // Produce is advertised from 0: librdkafka <= 2.x turns compression off
    // when Produce's minimum is above 0 (v0-2 batches of magic 2 are taken).
    std::vector<ApiRange> apis = {
        {ApiKey::Produce, 0, 9, 9},      {ApiKey::Fetch, 4, 13, 12},
        {ApiKey::ListOffsets, 1, 7, 6},  {ApiKey::Metadata, 0, 12, 9},
        {ApiKey::ApiVersions, 0, 3, 3},  {ApiKey::CreateTopics, 0, 7, 5},
        {ApiKey::DeleteTopics, 0, 6, 4}, {ApiKey::InitProducerId, 0, 4, 2},
    };
    // The group coordinator's, as it declares them.
    for (ApiKey key : {ApiKey::OffsetCommit, ApiKey::OffsetFetch, ApiKey::FindCoordinator,
                       ApiKey::JoinGroup, ApiKey::Heartbeat, ApiKey::LeaveGroup, ApiKey::SyncGroup,
                       ApiKey::DescribeGroups, ApiKey::ListGroups}) {
        if (!GroupCoordinator::handles(key)) continue;
        const auto [min, max] = GroupCoordinator::versions(key);
        auto flexible_from = static_cast<std::int16_t>(max + 1);
        for (std::int16_t v = min; v <= max; ++v) {
            if (GroupCoordinator::flexible(key, v)) {
                flexible_from = v;
                break;
            }
        }
        apis.push_back({key, min, max, flexible_from});
    }
    return apis;
}

}  // namespace

const std::vector<ApiRange>& broker_apis() noexcept {
    static const std::vector<ApiRange> kApis = make_apis();
    return kApis;
}

const ApiRange* find_api(ApiKey key) noexcept {
    for (const ApiRange& a : broker_apis())
        if (a.key == key) return &a;
    return nullptr;
}

namespace {

void write_list(Encoder& out) {
    const std::vector<ApiRange>& apis = broker_apis();
    out.array_length(static_cast<std::int64_t>(apis.size()));
    for (const ApiRange& a : apis) {
        out.i16(static_cast<std::int16_t>(a.key));
        out.i16(a.min);
        out.i16(a.max);
        out.tagged_fields();
    }
}

}  // namespace

void handle_api_versions(Request& r) {
    if (r.version >= 3) {
        (void)r.in.string();  // client_software_name
        (void)r.in.string();  // client_software_version
        r.in.tagged_fields();
    }
    r.out.error(r.in.ok() ? ErrorCode::None : ErrorCode::InvalidRequest);
    write_list(r.out);
    if (r.version >= 1) r.out.i32(0);  // throttle_time_ms
    r.out.tagged_fields();
}

void write_api_versions_unsupported(Encoder& out) {
    out.set_flexible(false);
    out.error(ErrorCode::UnsupportedVersion);
    write_list(out);
}

}  // namespace pagewire::kafka
