// What the channel tests that exec chan_helper share: the message format,
// shm_test_util's Child, Cleanup and unique_posix_name (its helper() names
// SHM_HELPER, which these tests do not use), the helper's path and the names
// every such test file uses. Test-only.
#pragma once

#include "chan_message.hpp"

#define SHM_HELPER CHAN_HELPER
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "../shm/shm_test_util.hpp"

using namespace pagewire;
using namespace std::chrono_literals;
using shmtest::Child;
using shmtest::Cleanup;
using testutil::contains;

namespace chantest {
inline const std::string kHelper = CHAN_HELPER;
using Clock = std::chrono::steady_clock;

// Creates PubSub channel `name` (capacity, max_message) with the given
// overflow policy, opened in `role`.
inline Channel create_pubsub(const std::string& name, std::size_t capacity, std::size_t max_message,
                             ChannelOverflow overflow, ChannelRole role = ChannelRole::Observer) {
    ChannelOptions options{ChannelKind::PubSub, capacity, max_message};
    options.overflow = overflow;
    return Channel::create(name, options, role);
}

// chan_helper's subscribe argument that checks order under `overflow`.
inline std::string order_arg(ChannelOverflow overflow) {
    return overflow == ChannelOverflow::Block ? "order=block" : "order=overwrite";
}
}  // namespace chantest
using chantest::Clock;
using chantest::create_pubsub;
using chantest::kHelper;
using chantest::order_arg;
