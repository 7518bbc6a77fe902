// seed003_cat FILE OFFSET [LENGTH] — the reference for `pagewire cat`: the
// mmap example program of seed 003 (shared/seeds/003_*.txt, "示例代码"), with
// the includes the article lost and casts that keep -Wall -Werror quiet.
// Behaviour is the seed's: atoi offsets, length clamped to end of file,
// "offset is past end of file" when OFFSET >= size, a MAP_PRIVATE mapping at
// the page-aligned offset below OFFSET, one write(2) to stdout.
//
// One deliberate difference: the seed calls mmap with length 0 when LENGTH is
// 0 and OFFSET is page aligned, which fails with EINVAL; printing nothing is
// the only sensible result of asking for 0 bytes, so this copy does that.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define handle_error(msg)   \
    do {                    \
        perror(msg);        \
        exit(EXIT_FAILURE); \
    } while (0)

int main(int argc, char* argv[]) {
    char* addr;
    int fd;
    struct stat sb;
    off_t offset, pa_offset;
    size_t length;
    ssize_t s;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "%s file offset [length]\n", argv[0]);
        exit(EXIT_FAILURE);
    }

    fd = open(argv[1], O_RDONLY);
    if (fd == -1) handle_error("open");

    if (fstat(fd, &sb) == -1) /* To obtain file size */
        handle_error("fstat");

    offset = atoi(argv[2]);
    pa_offset = offset & ~(sysconf(_SC_PAGE_SIZE) - 1);
    /* offset for mmap() must be page aligned */

    if (offset >= sb.st_size) {
        fprintf(stderr, "offset is past end of file\n");
        exit(EXIT_FAILURE);
    }

    if (argc == 4) {
        length = static_cast<size_t>(atoi(argv[3]));
        if (static_cast<size_t>(offset) + length > static_cast<size_t>(sb.st_size))
            length = static_cast<size_t>(sb.st_size - offset);
        /* Can't display bytes past end of file */
    } else { /* No length arg ==> display to end of file */
        length = static_cast<size_t>(sb.st_size - offset);
    }

    if (length == 0) exit(EXIT_SUCCESS);  // see the note at the top

    addr = static_cast<char*>(mmap(NULL, length + static_cast<size_t>(offset - pa_offset),
                                   PROT_READ, MAP_PRIVATE, fd, pa_offset));
    if (addr == MAP_FAILED) handle_error("mmap");

    s = write(STDOUT_FILENO, addr + offset - pa_offset, length);
    if (s != static_cast<ssize_t>(length)) {
        if (s == -1) handle_error("write");

        fprintf(stderr, "partial write");
        exit(EXIT_FAILURE);
    }

    exit(EXIT_SUCCESS);
}
