// The one system call the Swift Glibc module does not export: `fallocate`
// is a GNU extension, declared only with _GNU_SOURCE.
#define _GNU_SOURCE
#include "cposix.h"
#include <fcntl.h>

int cposix_punch_hole(int fd, int64_t offset, int64_t length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}
