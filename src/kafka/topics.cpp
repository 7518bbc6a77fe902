// The broker's topics: see topics.hpp.
#include "kafka/topics.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pagewire/error.hpp>
#include <pagewire/unique_fd.hpp>
#include <sstream>

namespace pagewire::kafka {
namespace {

constexpr std::size_t kMaxTopicNameBytes = 249;
constexpr std::string_view kMetaSuffix = "-meta.json";

std::string meta_path(const std::string& dir, std::string_view name) {
    return dir + "/" + std::string(name) + std::string(kMetaSuffix);
}

std::string hex_of(const Uuid& id) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s;
    for (std::byte b : id) {
        s.push_back(kHex[static_cast<unsigned>(b) >> 4]);
        s.push_back(kHex[static_cast<unsigned>(b) & 15]);
    }
    return s;
}

bool uuid_of(const std::string& hex, Uuid& id) {
    if (hex.size() != 32) return false;
    for (std::size_t i = 0; i < 16; ++i) {
        unsigned v = 0;
        for (std::size_t j = 0; j < 2; ++j) {
            const char c = hex[2 * i + j];
            const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return false;
            v = v * 16 + static_cast<unsigned>(d);
        }
        id[i] = static_cast<std::byte>(v);
    }
    return true;
}

Uuid random_uuid() {
    Uuid id{};
    if (::getrandom(id.data(), id.size(), 0) != static_cast<ssize_t>(id.size()))
        throw_error("getrandom", "topic id");
    // RFC 4122 version 4; never all zero (Kafka's "no id").
    id[6] = (id[6] & std::byte{0x0F}) | std::byte{0x40};
    id[8] = (id[8] & std::byte{0x3F}) | std::byte{0x80};
    return id;
}

// Written to a temporary file, synced, then renamed: a crash leaves the old
// meta file or the new one, never half of one.
void write_meta(const std::string& dir, const Topic& topic) {
    const nlohmann::json j = {{"name", topic.name},
                              {"partitions", topic.partitions.size()},
                              {"topic_id", hex_of(topic.id)}};
    const std::string path = meta_path(dir, topic.name);
    const std::string tmp = path + ".tmp";
    const std::string text = j.dump() + "\n";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw_error("open", tmp);
    UniqueFd guard(fd);
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        throw_error("write", tmp);
    if (::fsync(fd) != 0) throw_error("fsync", tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw_error("rename", path);
    const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        ::fsync(d);
        ::close(d);
    }
}

}  // namespace

std::string topic_name_problem(std::string_view name) {
    if (name.empty()) return "the name is empty";
    if (name == "." || name == "..") return "'.' and '..' are not allowed";
    if (name.size() > kMaxTopicNameBytes) return "longer than 249 characters";
    for (char c : name) {
        const bool legal = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!legal) return "only ASCII letters, digits, '.', '_' and '-' are allowed";
    }
    return {};
}

Topic::~Topic() {
    if (!deleted.load()) return;
    std::vector<std::string> dirs;
    for (auto& p : partitions) dirs.push_back(p->log.dir());
    partitions.clear();  // closes the logs
    std::error_code ec;
    for (const std::string& d : dirs) std::filesystem::remove_all(d, ec);
}

void Partition::remember(const BatchView& b, std::int64_t base_offset) {
    ProducerState& s = producers[b.producer_id()];
    if (b.producer_epoch() != s.epoch) {
        s.epoch = b.producer_epoch();
        s.batches.clear();
    }
    if (s.batches.size() == ProducerState::kBatchesKept) s.batches.erase(s.batches.begin());
    s.batches.push_back(
        {b.base_sequence(), b.base_sequence() + b.last_offset_delta(), base_offset});
}

void Partition::recover_producers() {
    const std::vector<LogSegmentInfo> segments = log.segments();
    if (segments.empty()) return;
    std::int64_t offset = std::max(segments.back().base_offset, log.start_offset());
    const std::int64_t end = log.end_offset();
    while (offset < end) {
        const LogSlice slice = log.read(offset, 1 << 20);
        if (slice.empty()) break;
        std::size_t cursor = 0;
        BatchView b;
        while (slice.next_batch(&cursor, &b))
            if (b.producer_id() >= 0) remember(b, b.base_offset());
        offset = slice.next_offset;
    }
}

std::vector<TopicMeta> read_topic_metas(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) throw_error("opendir", dir);
    std::vector<std::string> files;
    while (const dirent* e = ::readdir(d)) {
        const std::string_view n = e->d_name;
        if (n.size() > kMetaSuffix.size() && n.ends_with(kMetaSuffix)) files.emplace_back(n);
    }
    ::closedir(d);
    std::sort(files.begin(), files.end());
    std::vector<TopicMeta> metas;
    for (const std::string& m : files) {
        const std::string path = dir + "/" + m;
        std::ifstream in(path);
        nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
        TopicMeta meta;
        if (j.is_discarded() || !j.contains("name") || !j["name"].is_string() ||
            !j.contains("partitions") || !j["partitions"].is_number_integer() ||
            !j.contains("topic_id") || !j["topic_id"].is_string() ||
            !uuid_of(j["topic_id"].get<std::string>(), meta.id)) {
            throw Error("read topic meta", path, EBADMSG,
                        "not a topic meta file (name, partitions, topic_id)");
        }
        meta.name = j["name"].get<std::string>();
        const auto parts = j["partitions"].get<std::int64_t>();
        if (!topic_name_problem(meta.name).empty() || parts < 1 ||
            parts > TopicRegistry::kMaxPartitions || m != meta.name + std::string(kMetaSuffix)) {
            throw Error("read topic meta", path, EBADMSG, "bad topic name or partition count");
        }
        meta.partitions = static_cast<std::int32_t>(parts);
        metas.push_back(std::move(meta));
    }
    return metas;
}

std::string partition_dir(const std::string& dir, std::string_view name, std::int32_t n) {
    return dir + "/" + std::string(name) + "-" + std::to_string(n);
}

std::string uuid_text(const Uuid& id) {
    return hex_of(id);
}

TopicRegistry::TopicRegistry(std::string dir, LogOptions options, std::int32_t max_partitions)
    : dir_(std::move(dir)), options_(options), max_partitions_(max_partitions) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw_error("mkdir", dir_, ec.value());
    for (const TopicMeta& m : read_topic_metas(dir_))
        topics_.emplace(m.name, open_topic(m.name, m.partitions, m.id, true));
}

TopicRegistry::~TopicRegistry() = default;

std::shared_ptr<Topic> TopicRegistry::open_topic(const std::string& name, std::int32_t partitions,
                                                 const Uuid& id, bool create) {
    auto topic = std::make_shared<Topic>();
    topic->name = name;
    topic->id = id;
    topic->dir = dir_;
    LogOptions o = options_;
    o.create = create;
    for (std::int32_t n = 0; n < partitions; ++n) {
        topic->partitions.push_back(
            std::make_unique<Partition>(Log::open(partition_dir(dir_, name, n), o)));
        topic->partitions.back()->recover_producers();
    }
    return topic;
}

std::shared_ptr<Topic> TopicRegistry::find(std::string_view name) const {
    std::shared_lock lock(mutex_);
    const auto it = topics_.find(name);
    return it == topics_.end() ? nullptr : it->second;
}

std::shared_ptr<Topic> TopicRegistry::find(const Uuid& id) const {
    std::shared_lock lock(mutex_);
    for (const auto& [name, t] : topics_)
        if (t->id == id) return t;
    return nullptr;
}

std::vector<std::shared_ptr<Topic>> TopicRegistry::list() const {
    std::shared_lock lock(mutex_);
    std::vector<std::shared_ptr<Topic>> v;
    for (const auto& [name, t] : topics_) v.push_back(t);
    return v;
}

std::shared_ptr<Topic> TopicRegistry::create(std::string_view name, std::int32_t partitions,
                                             ErrorCode& error, std::string& message) {
    error = ErrorCode::None;
    message = topic_name_problem(name);
    if (!message.empty()) {
        error = ErrorCode::InvalidTopicException;
        return nullptr;
    }
    if (partitions < 1 || partitions > kMaxPartitions) {
        error = ErrorCode::InvalidPartitions;
        message = "the number of partitions must be 1 to " + std::to_string(kMaxPartitions);
        return nullptr;
    }
    std::lock_guard create_lock(create_mutex_);
    if (auto t = find(name)) {
        error = ErrorCode::TopicAlreadyExists;
        message = "topic '" + std::string(name) + "' already exists";
        return t;
    }
    std::int64_t held = 0;
    for (const auto& t : list()) held += static_cast<std::int64_t>(t->partitions.size());
    if (held + partitions > max_partitions_) {
        error = ErrorCode::InvalidPartitions;
        message = "the broker holds " + std::to_string(held) + " partitions, at most " +
                  std::to_string(max_partitions_) + " in all";
        return nullptr;
    }
    try {
        auto topic = open_topic(std::string(name), partitions, random_uuid(), true);
        write_meta(dir_, *topic);
        std::unique_lock lock(mutex_);
        topics_.emplace(std::string(name), topic);
        return topic;
    } catch (const Error& e) {
        error = ErrorCode::UnknownServerError;
        message = e.what();
        return nullptr;
    }
}

ErrorCode TopicRegistry::remove(std::string_view name) {
    std::lock_guard create_lock(create_mutex_);
    std::shared_ptr<Topic> topic;
    {
        std::unique_lock lock(mutex_);
        const auto it = topics_.find(name);
        if (it == topics_.end()) return ErrorCode::UnknownTopicOrPartition;
        topic = it->second;
        topics_.erase(it);
    }
    ::unlink(meta_path(dir_, name).c_str());
    topic->deleted = true;
    return ErrorCode::None;
}

void TopicRegistry::flush_all() {
    for (const auto& t : list())
        for (auto& p : t->partitions) {
            std::lock_guard lock(p->append_mutex);
            p->log.flush();
        }
}

void TopicRegistry::retain_all() {
    for (const auto& t : list())
        for (auto& p : t->partitions) {
            std::lock_guard lock(p->append_mutex);
            p->log.retain();
        }
}

}  // namespace pagewire::kafka
