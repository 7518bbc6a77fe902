// pagewire shm ls|create|stat|rm|write|read|gc — shared memory segments from
// the shell: POSIX (/dev/shm), System V (what ipcs -m / ipcrm do) and plain
// files, through pagewire/segment.hpp. NAME is a POSIX name, a System V key
// (decimal, 0x-hex, "id:SHMID", "private", or a path for ftok) or a file path,
// per --backend (default posix).
#include <fmt/core.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <pagewire/io.hpp>
#include <pagewire/segment.hpp>
#include <pagewire/units.hpp>

#include "cli_util.hpp"
#include "commands.hpp"

namespace pagewire::cli {
namespace {

const std::map<std::string, Backend> kBackends = {
    {"posix", Backend::Posix}, {"sysv", Backend::SystemV}, {"file", Backend::File}};

struct ShmArgs {
    std::string backend = "posix";
    std::string name;                // the one NAME of create, stat, write, read
    std::vector<std::string> names;  // rm's NAMEs
    std::string size;
    std::string mode = "0600";
    std::string offset = "0";
    std::string length;
    bool raw = false;
    bool json = false;
    bool dry_run = false;
};

Backend backend_of(const ShmArgs& a) {
    return kBackends.at(a.backend);
}

std::uint64_t size_argument(const std::string& text, const char* what) {
    auto value = parse_size(text);
    if (!value)
        throw CLI::ValidationError(what,
                                   "'" + text + "' is not a byte count (e.g. 4096, 0x1000, 4K)");
    return *value;
}

mode_t mode_argument(const std::string& text) {
    char* end = nullptr;
    unsigned long mode = std::strtoul(text.c_str(), &end, 8);
    if (text.empty() || *end != '\0' || mode > 0777)
        throw CLI::ValidationError("--mode",
                                   "'" + text + "' is not an octal mode between 0 and 0777");
    return static_cast<mode_t>(mode);
}

std::string user_name(uid_t uid) {
    passwd pw{};
    passwd* result = nullptr;
    char buf[1024];
    if (::getpwuid_r(uid, &pw, buf, sizeof buf, &result) == 0 && result != nullptr)
        return pw.pw_name;
    return std::to_string(uid);
}

std::string mode_text(mode_t mode) {
    return fmt::format("{:04o}", static_cast<unsigned>(mode));
}

std::string time_text(std::time_t t) {
    if (t == 0) return "never";
    char buf[64];
    std::tm tm{};
    ::localtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

std::string pagewire_text(const SegmentInfo& i) {
    if (!i.pagewire) return "?";
    return *i.pagewire ? "yes" : "no";
}

nlohmann::json to_json(const SegmentInfo& i) {
    nlohmann::json j;
    j["backend"] = backend_name(i.backend);
    j["name"] = i.name;
    if (i.backend == Backend::SystemV) {
        j["key"] = fmt::format("0x{:08x}", static_cast<unsigned>(i.key));
        j["shmid"] = i.id;
        j["last_pid"] = i.last_pid;
        j["attach_time"] = i.attach_time;
        j["detach_time"] = i.detach_time;
        j["marked_for_removal"] = i.marked_for_removal;
        j["locked"] = i.locked;
    }
    j["bytes"] = i.size;
    j["data_bytes"] = i.data_size;
    j["mode"] = mode_text(i.mode);
    j["owner"] = user_name(i.uid);
    j["uid"] = i.uid;
    j["gid"] = i.gid;
    j["attach_count"] = i.attach_count;
    j["creator_pid"] = i.creator_pid;
    j["creator_alive"] = i.creator == Liveness::Alive  ? "yes"
                         : i.creator == Liveness::Dead ? "no"
                                                       : "unknown";
    j["change_time"] = i.change_time;
    j["pagewire"] = i.pagewire ? nlohmann::json(*i.pagewire) : nlohmann::json(nullptr);
    return j;
}

void print(const std::string& text) {
    if (write_full(STDOUT_FILENO, text.data(), text.size()) < 0) throw_error("write", "stdout");
}

// ------------------------------------------------------------------ subcommands

std::uint64_t unread_channel_messages(const SegmentInfo& i) {
    if (i.backend != Backend::Posix) return 0;
    try {
        auto stats = Channel::inspect(i.name);
        return stats ? stats->depth : 0;
    } catch (const Error&) {
        return 0;  // not a channel (or not one this pagewire reads)
    }
}

// What `shm ls` says of a segment beyond its numbers: System V's "dest" and
// "locked" (as ipcs -m shows them), and "stale" for what `shm gc` would
// remove (a pagewire segment whose creator is gone and nobody maps), or
// "orphan" for a channel in that state still holding unread messages.
std::string status_text(const SegmentInfo& i) {
    std::vector<std::string> words;
    if (i.marked_for_removal) words.emplace_back("dest");
    if (i.locked) words.emplace_back("locked");
    if (i.pagewire == true && i.attach_count == 0 && i.creator == Liveness::Dead)
        words.emplace_back(unread_channel_messages(i) > 0 ? "orphan" : "stale");
    std::string text;
    for (const auto& w : words) text += (text.empty() ? "" : ",") + w;
    return text.empty() ? "-" : text;
}

void run_ls(const ShmArgs& a) {
    std::vector<SegmentInfo> all = Segment::list();
    if (a.json) {
        nlohmann::json arr = nlohmann::json::array();
        for (const auto& i : all) arr.push_back(to_json(i));
        print(arr.dump(2) + "\n");
        return;
    }
    // Columns as wide as their widest cell, so long names and big sizes stay aligned.
    static constexpr std::size_t kColumns = 11;
    using Row = std::array<std::string, kColumns>;
    std::vector<Row> rows{{"BACKEND", "NAME", "SHMID", "SIZE", "MODE", "OWNER", "NATTCH", "CPID",
                           "ALIVE", "PAGEWIRE", "STATUS"}};
    for (const auto& i : all) {
        rows.push_back({std::string(backend_name(i.backend)), i.name,
                        i.backend == Backend::SystemV ? std::to_string(i.id) : "-",
                        format_bytes(i.size), mode_text(i.mode), user_name(i.uid),
                        i.attach_count < 0 ? "?" : std::to_string(i.attach_count),
                        i.creator_pid == 0 ? "-" : std::to_string(i.creator_pid),
                        liveness_name(i.creator), pagewire_text(i), status_text(i)});
    }
    std::array<std::size_t, kColumns> width{};
    for (const Row& r : rows)
        for (std::size_t c = 0; c < kColumns; ++c) width[c] = std::max(width[c], r[c].size());
    // Numbers right-aligned, words left-aligned; the last column not padded.
    static constexpr std::array<bool, kColumns> kRight{false, false, true,  true,  true, false,
                                                       true,  true,  false, false, false};
    std::string out;
    for (const Row& r : rows) {
        for (std::size_t c = 0; c < kColumns; ++c) {
            if (c + 1 == kColumns)
                out += r[c];
            else if (kRight[c])
                out += fmt::format("{:>{}} ", r[c], width[c]);
            else
                out += fmt::format("{:<{}} ", r[c], width[c]);
        }
        out += '\n';
    }
    print(out);
}

void run_create(const ShmArgs& a) {
    SegmentOptions o;
    o.mode = mode_argument(a.mode);
    o.raw = a.raw;
    const std::uint64_t size = size_argument(a.size, "--size");
    Segment s = Segment::create(backend_of(a), a.name, static_cast<std::size_t>(size), o);
    SegmentInfo i = s.info();
    status(fmt::format("created {} {}{}: {} of data ({} in all with the header), mode {}\n",
                       backend_name(i.backend), s.name(),
                       i.backend == Backend::SystemV ? fmt::format(" shmid {}", i.id) : "",
                       format_bytes(s.size()), counted(i.size, "byte"), mode_text(i.mode)));
}

void run_stat(const ShmArgs& a) {
    SegmentInfo i = Segment::stat(backend_of(a), a.name);
    if (a.json) {
        print(to_json(i).dump(2) + "\n");
        return;
    }
    std::string out;
    auto line = [&](const char* key, const std::string& value) {
        out += fmt::format("{:<13}{}\n", key, value);
    };
    line("name:", i.name);
    line("backend:", backend_name(i.backend));
    if (i.backend == Backend::SystemV) {
        line("key:", fmt::format("0x{:08x}", static_cast<unsigned>(i.key)));
        line("shmid:", std::to_string(i.id));
    }
    line("bytes:", fmt::format("{} ({})", i.size, format_bytes(i.size)));
    line("data bytes:", fmt::format("{} ({})", i.data_size, format_bytes(i.data_size)));
    line("header:", !i.pagewire   ? "not read"
                    : *i.pagewire ? fmt::format("pagewire v{}", Segment::kLayoutVersion)
                                  : "none (foreign)");
    line("mode:", mode_text(i.mode));
    line("owner:", fmt::format("{} (uid {}, gid {})", user_name(i.uid), i.uid, i.gid));
    if (i.backend == Backend::SystemV)
        line("creator:", fmt::format("{} (uid {}, gid {})", user_name(i.cuid), i.cuid, i.cgid));
    line("creator pid:", i.creator_pid == 0 ? "unknown"
                                            : fmt::format("{} (alive: {})", i.creator_pid,
                                                          liveness_name(i.creator)));
    line("attaches:", i.attach_count < 0 ? "unknown" : std::to_string(i.attach_count));
    if (i.backend == Backend::SystemV) {
        line("last pid:", std::to_string(i.last_pid));
        line("attach time:", time_text(i.attach_time));
        line("detach time:", time_text(i.detach_time));
        std::string status;
        if (i.marked_for_removal) status += "dest ";
        if (i.locked) status += "locked";
        line("status:", status.empty() ? "-" : status);
    }
    line("change time:", time_text(i.change_time));
    print(out);
}

void run_rm(const ShmArgs& a) {
    // Like ipcrm: try every name, report each failure, fail if any did.
    for_each_name(a.names, [&](const std::string& name) { Segment::remove(backend_of(a), name); });
}

void run_write(const ShmArgs& a) {
    SegmentOptions o;
    o.raw = a.raw;
    Segment s = Segment::open(backend_of(a), a.name, o);
    const std::uint64_t offset = size_argument(a.offset, "OFFSET");
    std::string input;
    char buf[65536];
    for (;;) {
        ssize_t n = retry_eintr([&] { return ::read(STDIN_FILENO, buf, sizeof buf); });
        if (n < 0) throw_error("read", "stdin");
        if (n == 0) break;
        input.append(buf, static_cast<std::size_t>(n));
        if (input.size() > s.size()) break;  // already too much: no need to read on
    }
    if (offset > s.size() || input.size() > s.size() - offset)
        throw_error("write", s.name(), ENOSPC,
                    fmt::format("{} bytes at offset {} do not fit in the segment ({} data bytes)",
                                input.size(), offset, s.size()));
    // A file segment can be truncated by another process while we write.
    if (AccessResult r = guarded_copy(s.data() + offset, input.data(), input.size()); !r)
        throw_error("write", s.name(), EIO, "truncated while it was being written: " + r.message());
    print(fmt::format("wrote {} bytes to {} at offset {}\n", input.size(), s.name(), offset));
}

void run_read(const ShmArgs& a) {
    SegmentOptions o;
    o.raw = a.raw;
    o.read_only = true;
    Segment s = Segment::open(backend_of(a), a.name, o);
    const std::uint64_t offset = size_argument(a.offset, "OFFSET");
    if (offset > s.size())
        throw_error("read", s.name(), EINVAL,
                    fmt::format("offset {} is past the end of the segment ({} data bytes)", offset,
                                s.size()));
    std::uint64_t length = s.size() - offset;
    if (!a.length.empty()) length = std::min(length, size_argument(a.length, "LENGTH"));
    write_mapped(STDOUT_FILENO, s.data() + offset, static_cast<std::size_t>(length), s.name(),
                 "stdout");
}

// A POSIX segment that is a pagewire channel: the messages it holds that no
// consumer has taken yet; 0 for anything else.

// Stale: pagewire made it (valid header), its creator (pid + start time) is
// gone, nobody maps or holds it, and it is not a channel holding unread
// messages. Other programs' segments are never touched.
void run_gc(const ShmArgs& a) {
    std::size_t removed = 0, kept = 0;
    std::string out;
    for (const SegmentInfo& listed : Segment::list()) {
        SegmentInfo i = listed;
        std::string name = i.backend == Backend::SystemV ? "id:" + std::to_string(i.id) : i.name;
        if (i.attach_count != 0 || i.creator != Liveness::Dead) {
            ++kept;
            continue;
        }
        if (i.backend == Backend::SystemV) {
            // Only now read the header (this attaches briefly); then re-check.
            try {
                i = Segment::stat(Backend::SystemV, name);
            } catch (const Error&) {
                ++kept;  // removed meanwhile, or not ours to read
                continue;
            }
            if (i.attach_count != 0 || i.creator != Liveness::Dead) {
                ++kept;
                continue;
            }
        }
        if (i.pagewire != true) {  // not pagewire's (or unreadable): never touched
            ++kept;
            continue;
        }
        if (auto unread = unread_channel_messages(i); unread > 0) {
            // Messages nobody has read yet are data, not garbage: `chan recv` may still come.
            out += fmt::format("kept {}: a channel holding {}\n", i.name,
                               counted(unread, "unread message"));
            ++kept;
            continue;
        }
        std::string what = fmt::format(
            "{} {} ({}, creator pid {} gone)", backend_name(i.backend),
            i.backend == Backend::SystemV ? fmt::format("{} shmid {}", i.name, i.id) : i.name,
            format_bytes(i.size), i.creator_pid);
        if (a.dry_run) {
            out += "would remove " + what + "\n";
        } else {
            try {
                Segment::remove(i.backend, name);
            } catch (const Error& e) {
                if (e.error_number() == ENOENT) continue;  // someone else removed it first
                throw;
            }
            out += "removed " + what + "\n";
        }
        ++removed;
    }
    out += fmt::format("{} {}; left {} alone\n", a.dry_run ? "would remove" : "removed",
                       counted(removed, "stale pagewire segment"), counted(kept, "other"));
    print(out);
}

CLI::Option* add_backend(CLI::App* cmd, ShmArgs& a) {
    return cmd->add_option("--backend,-b", a.backend, "posix (default), sysv or file")
        ->check(CLI::IsMember({"posix", "sysv", "file"}));
}

}  // namespace

void register_shm(CLI::App& app) {
    auto args = std::make_shared<ShmArgs>();
    CLI::App* shm =
        app.add_subcommand("shm", "Shared memory segments: POSIX, System V and plain files");
    shm->require_subcommand(1);
    const char* name_help =
        "POSIX name, System V key (decimal, 0x-hex, id:SHMID, private, or a path for ftok), or "
        "file path";

    CLI::App* ls = shm->add_subcommand(
        "ls", "List POSIX and System V segments (like ipcs -m and ls /dev/shm)");
    ls->add_flag("--json", args->json, "JSON output");
    ls->callback([args] { run_ls(*args); });

    CLI::App* create =
        shm->add_subcommand("create", "Create a segment (exclusive) of --size data bytes");
    create->add_option("NAME", args->name, name_help)->required();
    create->add_option("--size,-s", args->size, "Data bytes (suffixes K, M, G)")->required();
    create->add_option("--mode,-m", args->mode, "Permission bits, octal (default 0600)");
    create->add_flag("--raw", args->raw, "No pagewire header: every byte is data");
    add_backend(create, *args);
    create->callback([args] { run_create(*args); });

    CLI::App* stat = shm->add_subcommand(
        "stat", "Show a segment: size, mode, owner, pids, attaches, creator alive");
    stat->add_option("NAME", args->name, name_help)->required();
    stat->add_flag("--json", args->json, "JSON output");
    add_backend(stat, *args);
    stat->callback([args] { run_stat(*args); });

    CLI::App* rm = shm->add_subcommand(
        "rm", "Remove segments (like ipcrm: System V pages go with the last detach)");
    rm->add_option("NAME", args->names, name_help)->required();
    add_backend(rm, *args);
    rm->callback([args] { run_rm(*args); });

    CLI::App* write = shm->add_subcommand("write", "Copy stdin into the segment at OFFSET");
    write->add_option("NAME", args->name, name_help)->required();
    write->add_option("OFFSET", args->offset, "Data offset (default 0)");
    write->add_flag("--raw", args->raw, "Foreign segment: no pagewire header expected");
    add_backend(write, *args);
    write->callback([args] { run_write(*args); });

    CLI::App* read =
        shm->add_subcommand("read", "Copy LENGTH bytes of the segment from OFFSET to stdout");
    read->add_option("NAME", args->name, name_help)->required();
    read->add_option("OFFSET", args->offset, "Data offset (default 0)");
    read->add_option("LENGTH", args->length, "Bytes (default: to the end; clamped at the end)");
    read->add_flag("--raw", args->raw, "Foreign segment: no pagewire header expected");
    add_backend(read, *args);
    read->callback([args] { run_read(*args); });

    CLI::App* gc = shm->add_subcommand("gc",
                                       "Remove pagewire-created POSIX and System V segments whose "
                                       "creator is dead and that nobody attaches");
    gc->add_flag("--dry-run,-n", args->dry_run, "Only say what would be removed");
    gc->callback([args] { run_gc(*args); });
}

}  // namespace pagewire::cli
