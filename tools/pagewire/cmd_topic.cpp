// pagewire topic create|ls|describe|rm --data DIR | --bootstrap HOST:PORT —
// a broker's topics on its data directory, or through a running broker (or
// a Kafka cluster) over the Kafka protocol (pagewire/broker.hpp). With
// --data, ls and describe only read, so they work beside a running broker;
// create and rm change the directory and refuse while a broker serves it
// (its logs are locked): --bootstrap asks the broker instead.
#include <fmt/core.h>

#include <cstdint>
#include <memory>
#include <pagewire/broker.hpp>
#include <pagewire/error.hpp>
#include <string>
#include <vector>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

struct TopicArgs {
    broker::BrokerConfig config;
    std::string bootstrap;  // HOST:PORT of a running broker, instead of --data
    std::string name;
    std::int32_t partitions = 1;

    std::vector<broker::TopicInfo> topics() const {
        return bootstrap.empty() ? broker::list_topics(config.data_dir)
                                 : broker::list_topics_at(bootstrap);
    }
    const std::string& where() const { return bootstrap.empty() ? config.data_dir : bootstrap; }
};

std::uint64_t records_of(const broker::TopicInfo::Partition& p) {
    return static_cast<std::uint64_t>(p.end_offset - p.start_offset);
}

}  // namespace

void register_topic(CLI::App& app) {
    auto args = std::make_shared<TopicArgs>();
    CLI::App* cmd =
        app.add_subcommand("topic", "Create, list, describe or delete a broker's topics");
    cmd->require_subcommand(1);
    const auto add = [&](const char* name, const char* what, bool named) {
        CLI::App* sub = cmd->add_subcommand(name, what);
        CLI::Option* data =
            sub->add_option("--data", args->config.data_dir, "The broker's data directory");
        CLI::Option* bootstrap =
            sub->add_option("--bootstrap,-b", args->bootstrap,
                            "HOST:PORT of a running broker (pagewire or Kafka) to ask instead");
        data->excludes(bootstrap);
        sub->preparse_callback([args, sub](std::size_t) {
            // One of the two places is needed; checked after parsing.
            sub->parse_complete_callback([args, sub] {
                if (args->bootstrap.empty() && args->config.data_dir.empty())
                    throw CLI::RequiredError(std::string("topic ") + sub->get_name() +
                                             ": --data DIR or --bootstrap HOST:PORT");
            });
        });
        if (named) sub->add_option("NAME", args->name, "Topic name")->required();
        return sub;
    };
    CLI::App* create =
        add("create", "Create a topic (with --data: not while a broker serves DIR)", true);
    create->add_option("--partitions,-p", args->partitions, "Number of partitions")
        ->check(CLI::Range(1, 10000))
        ->capture_default_str();
    create->callback([args] {
        const broker::TopicInfo t =
            args->bootstrap.empty()
                ? broker::create_topic(args->config, args->name, args->partitions)
                : broker::create_topic_at(args->bootstrap, args->name, args->partitions);
        status(fmt::format("created topic {} ({} partitions, id {})\n", t.name, t.partitions.size(),
                           t.id));
    });
    add("ls", "List topics: name, partitions, records", false)->callback([args] {
        for (const broker::TopicInfo& t : args->topics()) {
            std::uint64_t records = 0;
            for (const auto& p : t.partitions) records += records_of(p);
            fmt::print("{}\t{} partitions\t{} records\n", t.name, t.partitions.size(), records);
        }
    });
    add("describe", "A topic's id and each partition's offsets and bytes", true)->callback([args] {
        for (const broker::TopicInfo& t : args->topics()) {
            if (t.name != args->name) continue;
            fmt::print("topic {} id {} partitions {}\n", t.name, t.id, t.partitions.size());
            // Through a broker the protocol gives offsets, not the segments' bytes.
            for (const auto& p : t.partitions)
                fmt::print("  partition {}: start offset {}, end offset {} ({} records{})\n",
                           p.index, p.start_offset, p.end_offset, records_of(p),
                           args->bootstrap.empty() ? fmt::format(", {} bytes", p.bytes) : "");
            return;
        }
        throw Error("describe topic", args->name, ENOENT, "no such topic in " + args->where());
    });
    add("rm", "Delete a topic and its partitions (with --data: not while a broker serves DIR)",
        true)
        ->callback([args] {
            if (args->bootstrap.empty())
                broker::delete_topic(args->config, args->name);
            else
                broker::delete_topic_at(args->bootstrap, args->name);
            status(fmt::format("deleted topic {}\n", args->name));
        });
}

}  // namespace pagewire::cli
