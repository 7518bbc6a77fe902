// records FILE — seed 000's RECORD program with pagewire (feature S4).
//
// Writes 100 fixed-size records with stdio, changes record 43 to 143 the stdio
// way (fseek + fread + fwrite), then maps the file and changes record 43 to 243
// by assigning to it as an element of a typed array: no read/write calls, no
// seek, no offset arithmetic. FILE is created or overwritten.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <pagewire/error.hpp>
#include <pagewire/mapping.hpp>
#include <span>

namespace {

// The seed's RECORD: 28 bytes, no padding, so the file is 100 * 28 bytes.
struct Record {
    int integer;
    char string[24];
};
static_assert(sizeof(Record) == 28);

constexpr int kRecordCount = 100;
constexpr long kRecord43Offset = 43 * static_cast<long>(sizeof(Record));  // bytes

// Step 1 and 2 use plain stdio, as in the seed, to show what the map replaces.
// Returns false (after a message naming what failed) on any stdio error.
bool write_with_stdio(const char* path) {
    std::FILE* fp = std::fopen(path, "w+");
    if (fp == nullptr) {
        std::fprintf(stderr, "records: fopen %s: %s\n", path, std::strerror(errno));
        return false;
    }
    bool ok = true;
    for (int i = 0; i < kRecordCount && ok; ++i) {
        Record record{};  // zeroed: no stack garbage after the string reaches the file
        record.integer = i;
        std::snprintf(record.string, sizeof record.string, "RECORD-%d", i);
        ok = std::fwrite(&record, sizeof record, 1, fp) == 1;
    }
    ok = (std::fclose(fp) == 0) && ok;
    if (!ok) {
        std::fprintf(stderr, "records: write %s: %s\n", path, std::strerror(errno));
        return false;
    }

    // Record 43: 43 -> 143, read-modify-write through the stdio buffer.
    fp = std::fopen(path, "r+");
    if (fp == nullptr) {
        std::fprintf(stderr, "records: fopen %s: %s\n", path, std::strerror(errno));
        return false;
    }
    Record record{};
    ok = std::fseek(fp, kRecord43Offset, SEEK_SET) == 0 &&
         std::fread(&record, sizeof record, 1, fp) == 1;
    if (ok) {
        record.integer = 143;
        std::snprintf(record.string, sizeof record.string, "RECORD-%d", record.integer);
        ok = std::fseek(fp, kRecord43Offset, SEEK_SET) == 0 &&
             std::fwrite(&record, sizeof record, 1, fp) == 1;
    }
    ok = (std::fclose(fp) == 0) && ok;
    if (!ok) {
        std::fprintf(stderr, "records: update record 43 of %s: %s\n", path, std::strerror(errno));
        return false;
    }
    std::printf("stdio: record 43 is %d %s\n", record.integer, record.string);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: records FILE\n");
        return 2;
    }
    if (!write_with_stdio(argv[1])) return 1;

    try {
        // Record 43: 143 -> 243, through a shared read-write mapping of the file.
        pagewire::Mapping map = pagewire::Mapping::open(argv[1], pagewire::Access::ReadWrite);
        std::span<Record> records = map.records<Record>();  // throws unless size % 28 == 0
        Record& record = records[43];
        record.integer = 243;
        std::snprintf(record.string, sizeof record.string, "RECORD-%d", record.integer);

        // Like the seed's msync(MS_ASYNC): start writeback, don't wait for it.
        // Other processes see the change at once either way (one page cache).
        map.flush(pagewire::Flush::Async);
        std::printf("mmap: record 43 is %d %s (%zu records)\n", record.integer, record.string,
                    records.size());
    } catch (const pagewire::Error& e) {
        std::fprintf(stderr, "records: %s\n", e.what());
        return 1;
    }
    return 0;  // the mapping is unmapped when `map` goes out of scope
}
