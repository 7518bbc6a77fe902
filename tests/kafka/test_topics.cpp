// The broker's topic registry (src/kafka/topics.hpp) on a real data
// directory: the cap on the partitions of all topics together, found by
// fuzz_kafka_request (one CreateTopics of many 10000-partition topics ran the
// process out of memory maps).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "../test_util.hpp"
#include "kafka/topics.hpp"

namespace {

using pagewire::kafka::ErrorCode;
using pagewire::kafka::TopicRegistry;
using testutil::TempDir;

pagewire::LogOptions small_logs() {
    pagewire::LogOptions o;
    o.segment_bytes = 64 * 1024;
    return o;
}

TEST(TopicRegistry, RefusesPartitionsPastTheBrokerCap) {
    TempDir dir;
    TopicRegistry topics(dir.path(), small_logs(), 5);
    ErrorCode error{};
    std::string message;
    ASSERT_NE(topics.create("a", 3, error, message), nullptr) << message;
    EXPECT_EQ(error, ErrorCode::None);
    EXPECT_EQ(topics.create("b", 3, error, message), nullptr);
    EXPECT_EQ(error, ErrorCode::InvalidPartitions);
    EXPECT_NE(message.find("at most 5"), std::string::npos) << message;
    EXPECT_FALSE(std::filesystem::exists(dir.file("b-0"))) << "refused before any log is made";
    EXPECT_EQ(topics.find("b"), nullptr);
    ASSERT_NE(topics.create("c", 2, error, message), nullptr) << message;
    EXPECT_EQ(error, ErrorCode::None);
    // A deleted topic's partitions no longer count.
    EXPECT_EQ(topics.remove("a"), ErrorCode::None);
    ASSERT_NE(topics.create("b", 3, error, message), nullptr) << message;
    EXPECT_EQ(topics.list().size(), 2U);
}

}  // namespace
