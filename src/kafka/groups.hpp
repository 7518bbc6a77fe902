// pagewire kafka: the group coordinator — consumer groups and their
// committed offsets (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups). The
// broker's sessions hand it the body of a group API request; it decodes
// it, changes the group's state and encodes the answer, or keeps the
// request pending (a JoinGroup waits for the other members, a SyncGroup for
// the leader's assignment) until ready() says it can be finished. Members
// pick partitions themselves (the leader's assignment is opaque bytes, as
// in Kafka), the coordinator only runs the rebalance protocol.
//
// Thread-safe: every worker of the broker calls it; `wake` is called with
// no lock held, from whichever thread made a pending request ready.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "kafka/codec.hpp"

namespace pagewire::kafka {

// What the coordinator needs to know of the broker and the request.
struct GroupContext {
    std::int32_t node_id = 0;  // the broker's (it is every group's coordinator)
    std::string_view host;     // advertised address, for FindCoordinator
    std::int32_t port = 0;
    std::string_view client_id;
    std::string_view client_host;
    std::uint64_t now_ms = 0;  // CLOCK_MONOTONIC in ms
};

// The coordinator's limits and delays (Kafka's broker settings of the same
// meaning in parentheses).
struct GroupOptions {
    // A new group waits this long for more members before its first
    // rebalance completes, extended by as much per joining member up to the
    // rebalance timeout (group.initial.rebalance.delay.ms). Kafka's 3 s
    // serves fleets of consumers starting together; pagewire's users start a
    // few consumers on one machine, where 300 ms gathers them all and a
    // consumer's first message does not wait seconds.
    unsigned initial_rebalance_delay_ms = 300;
    // Bounds of a member's session timeout (group.min/max.session.timeout.ms).
    // Kafka's minimum is 6000; 1000 lets tests see an expiry in a second.
    std::int32_t min_session_timeout_ms = 1000;
    std::int32_t max_session_timeout_ms = 300000;
    // Longest committed metadata string (offset.metadata.max.bytes).
    std::size_t max_metadata_bytes = 4096;
    // The offsets log is rewritten with only the latest commit of each
    // partition when it passes this size (and twice what the rewrite kept).
    std::uint64_t compact_bytes = 64ULL << 20;
};

class GroupCoordinator {
  public:
    // Committed offsets are kept durably in `offsets_dir` (created if
    // missing) and read back on construction. Throws pagewire::Error.
    GroupCoordinator(std::string offsets_dir, std::function<void()> wake);
    GroupCoordinator(std::string offsets_dir, std::function<void()> wake,
                     const GroupOptions& options);
    ~GroupCoordinator();
    GroupCoordinator(const GroupCoordinator&) = delete;
    GroupCoordinator& operator=(const GroupCoordinator&) = delete;

    // Whether `key` is one of the coordinator's APIs; its supported version
    // range (for ApiVersions); whether a version uses the flexible encoding
    // (so the caller reads the request header v2 and writes response header v1).
    static bool handles(ApiKey key) noexcept;
    static std::pair<std::int16_t, std::int16_t> versions(ApiKey key) noexcept;
    static bool flexible(ApiKey key, std::int16_t version) noexcept;

    struct Outcome {
        bool pending = false;
        std::uint64_t ticket = 0;  // pending: for ready/finish/cancel
        unsigned wait_ms = 0;      // pending: finish after this at the latest
    };
    // `body` is positioned after the request header (its flexible flag set
    // for `version`). Writes the response body (after the header) to `out`
    // unless the outcome is pending. A request that does not decode is
    // answered with the API's error (or InvalidRequest).
    Outcome handle(ApiKey key, std::int16_t version, Decoder& body, Encoder& out,
                   const GroupContext& context);
    bool ready(std::uint64_t ticket) const;
    // Writes the response body of a pending request (ready, or its wait
    // over: the answer the protocol gives then) and forgets the ticket.
    void finish(std::uint64_t ticket, Encoder& out, std::uint64_t now_ms);
    // The connection of a pending request closed.
    void cancel(std::uint64_t ticket) noexcept;
    // Session and rebalance timeouts: call often (every event-loop turn).
    void tick(std::uint64_t now_ms);
    // When tick() next has something to do (a session that may expire, a
    // rebalance or initial delay that ends), in now_ms's clock; UINT64_MAX
    // when nothing is due. An idle event loop sleeps until then at most:
    // members waiting in JoinGroup send nothing that would turn it.
    std::uint64_t next_deadline_ms() const;
    // Writes the committed offsets to disk (a clean stop).
    void close();

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace pagewire::kafka
