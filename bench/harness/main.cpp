// pagewire-bench [--quick] [--json FILE] [--dir DIR] [SECTION]... [--only REGEX] —
// the seeds' performance claims measured on this machine (S19), each against
// its peers in the same run. Runs every section (or the named ones), prints one
// table per section and optionally writes all results as one JSON document.
// `pagewire bench ...` runs this program with the same arguments.
// Exit codes: 0 ok, 1 a section failed or missed nothing it could measure
// (one line on stderr), 2 usage error.
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <pagewire/error.hpp>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace pagewire::bench {

// The sections, one per bench_<name>.cpp, in the order they run.
Section mapping_section();
Section transfer_section();
Section cache_section();
Section ipc_section();
Section serve_section();
Section log_section();
Section broker_section();

namespace {

std::vector<Section> all_sections() {
    std::vector<Section> sections;
    sections.push_back(mapping_section());
    sections.push_back(transfer_section());
    sections.push_back(cache_section());
    sections.push_back(ipc_section());
    sections.push_back(serve_section());
    sections.push_back(log_section());
    sections.push_back(broker_section());
    return sections;
}

struct BenchArgs {
    bool quick = false;
    std::string json_path;
    std::string dir;
    std::vector<std::string> sections;
    int repetitions = 0;
    std::string only;
    std::uint64_t messages = 0;
};

void write_json(const std::string& path, const Json& document) {
    // Written to a temporary name and renamed, so an interrupted run never
    // leaves a truncated document where the last good one was.
    const std::string temporary = path + ".tmp";
    {
        std::ofstream out(temporary, std::ios::trunc);
        if (!out) throw_error("open", temporary);
        out << document.dump(2) << '\n';
        out.flush();
        if (!out) throw_error("write", temporary, EIO);
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0) throw_error("rename", path);
}

// Fails before the run, not after minutes of measuring, when the JSON file
// cannot be written where asked.
void check_json_destination(const std::string& path) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    const std::string dir = parent.empty() ? "." : parent.string();
    if (::access(dir.c_str(), W_OK | X_OK) != 0) throw_error("open", path);
}

void run_bench(const BenchArgs& args) {
    if (!args.json_path.empty()) check_json_destination(args.json_path);
    std::vector<Section> selected;
    for (Section& s : all_sections()) {
        bool wanted = args.sections.empty();
        for (const std::string& name : args.sections) wanted = wanted || name == s.name;
        if (wanted) selected.push_back(std::move(s));
    }

    const Options options{args.quick, args.repetitions, args.only, args.messages};
    Json document;
    document["machine"] = machine_info();
    document["date"] = iso_date_now();
    document["command"] = command_line();
    document["quick"] = args.quick;
    document["sections"] = Json::array();

    fmt::print("{}\n", machine_line(document["machine"]));
    fmt::print("date: {}\ncommand: {}\n", document["date"].get<std::string>(),
               document["command"].get<std::string>());
    std::fflush(stdout);

    ScratchDir scratch(args.dir);
    std::vector<std::string> failures;
    for (const Section& section : selected) {
        Context context{options, scratch, section.name};
        const auto start = Clock::now();
        SectionResult result = section.run(context);
        const double elapsed = seconds_since(start);
        print_table(stdout, result);

        Json entry;
        entry["name"] = section.name;
        entry["description"] = section.description;
        entry["title"] = result.title;
        entry["seconds"] = elapsed;
        entry["rows"] = result.rows;
        entry["notes"] = result.notes;
        entry["summary"] = result.summary;
        if (!result.failure.empty()) {
            entry["failure"] = result.failure;
            failures.push_back(result.failure);
        }
        document["sections"].push_back(std::move(entry));
    }
    if (!args.json_path.empty()) {
        write_json(args.json_path, document);
        fmt::print("\nresults written to {}\n", args.json_path);
    }
    if (!failures.empty()) {
        std::string all;
        for (const std::string& f : failures) all += (all.empty() ? "" : "; ") + f;
        throw_error("bench", "", EPROTO, all);
    }
}

void register_options(CLI::App& app, const std::shared_ptr<BenchArgs>& args) {
    std::vector<std::string> names;
    std::string list;
    for (const Section& s : all_sections()) {
        names.push_back(s.name);
        list += fmt::format("\n  {:<10} {}", s.name, s.description);
    }

    app.description("Measure the seeds' performance claims on this machine; sections:" + list);
    CLI::App* cmd = &app;
    cmd->add_flag("--quick", args->quick,
                  "Smaller files and fewer repetitions (about 3 minutes for every section)");
    cmd->add_option("--json", args->json_path,
                    "Also write every result as one JSON document to FILE")
        ->type_name("FILE");
    cmd->add_option(
           "--dir", args->dir,
           "Directory for scratch files (default: a new one under /var/tmp, removed at the end)")
        ->check(CLI::ExistingDirectory)
        ->type_name("DIR");
    cmd->add_option(
           "--section,SECTION", args->sections,
           "Run only these sections (`pagewire bench cache` or --section cache; repeatable)")
        ->check(CLI::IsMember(names))
        ->type_name("NAME");
    cmd->add_option("--repetitions", args->repetitions,
                    "Measured repetitions per method (default: the section's own)")
        ->check(CLI::PositiveNumber)
        ->type_name("N");
    cmd->add_option("--only", args->only,
                    "Run only the methods whose names match this extended regex "
                    "(section ipc), e.g. 'pipe|pagewire'")
        ->type_name("REGEX");
    cmd->add_option("--messages", args->messages,
                    "Messages per produce and consume run (section broker; default 2 M with "
                    "--quick, 10 M without)")
        ->check(CLI::PositiveNumber)
        ->type_name("N");
}

}  // namespace
}  // namespace pagewire::bench

int main(int argc, char** argv) {
    constexpr int kExitFailure = 1;
    constexpr int kExitUsage = 2;
    CLI::App app{"", "pagewire-bench"};
    auto args = std::make_shared<pagewire::bench::BenchArgs>();
    pagewire::bench::register_options(app, args);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return kExitUsage;
    }
    try {
        pagewire::bench::run_bench(*args);
    } catch (const std::exception& e) {
        std::fflush(stdout);
        fmt::print(stderr, "pagewire: {}\n", e.what());
        return kExitFailure;
    }
    return 0;
}
