// A process's memory mappings as the kernel sees them: the VMAs
// (vm_area_struct) of /proc/PID/smaps with their resident, shared and
// private pages (seeds 001, 002; S21).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <pagewire/config.hpp>
#include <span>
#include <string>
#include <vector>

namespace pagewire {

// One VMA. Sizes are in bytes (smaps reports kB; converted).
struct Vma {
    std::uint64_t start = 0;
    std::uint64_t end = 0;
    std::string perms;         // e.g. "rw-s": read, write, execute, shared/private
    std::uint64_t offset = 0;  // offset in the mapped file
    std::string device;        // "major:minor" of the file's device
    std::uint64_t inode = 0;
    std::string path;  // file, "[heap]", "[stack]", "/memfd:x (deleted)", or "" (anonymous)
    std::uint64_t size = 0;
    std::uint64_t rss = 0;
    std::uint64_t pss = 0;
    std::uint64_t shared_clean = 0;
    std::uint64_t shared_dirty = 0;
    std::uint64_t private_clean = 0;
    std::uint64_t private_dirty = 0;
    std::uint64_t anonymous = 0;
    std::uint64_t anon_huge_pages = 0;
    std::uint64_t file_pmd_mapped = 0;
    std::uint64_t shared_hugetlb = 0;
    std::uint64_t private_hugetlb = 0;
    std::uint64_t swap = 0;
    std::uint64_t locked = 0;
    std::uint64_t kernel_page_size = 0;
    std::vector<std::string> vm_flags;  // "rd", "wr", "sh", "lo" (locked), "hg" (huge advised), ...

    bool is_shared() const noexcept { return perms.size() >= 4 && perms[3] == 's'; }
    bool has_flag(const std::string& flag) const;
};

// The byte-count fields of smaps that Vma models, in smaps order, with the
// member each one fills: one table for the parser and for printers.
struct VmaField {
    const char* name;  // as in smaps, e.g. "Private_Dirty" (the table's column)
    const char* key;   // snake_case, e.g. "private_dirty" (JSON, like every JSON key)
    std::uint64_t Vma::*member;
};
std::span<const VmaField> vma_size_fields() noexcept;

// Parses smaps text (the format of /proc/PID/smaps). Throws Error(EINVAL)
// naming `source` and the line on malformed input.
std::vector<Vma> parse_smaps(const std::string& text, const std::string& source = "smaps");

// Reads /proc/PID/smaps (pid 0: this process). Errors: ESRCH-like ENOENT for
// a missing process, EACCES for another user's process without privilege.
std::vector<Vma> read_smaps(pid_t pid = 0);

}  // namespace pagewire
