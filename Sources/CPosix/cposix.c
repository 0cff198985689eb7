// The system calls the Swift Glibc module does not export: `fallocate`
// and `sync_file_range` are GNU extensions, declared only with
// _GNU_SOURCE.
#define _GNU_SOURCE
#include "cposix.h"
#include <fcntl.h>

int cposix_punch_hole(int fd, int64_t offset, int64_t length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}

int cposix_allocate_beyond_end(int fd, int64_t offset, int64_t length) {
    return fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}

int cposix_write_back(int fd, int64_t offset, int64_t length, int wait) {
    unsigned int flags = SYNC_FILE_RANGE_WRITE;
    if (wait) flags |= SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER;
    return sync_file_range(fd, (off_t)offset, (off_t)length, flags);
}
