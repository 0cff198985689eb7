#ifndef CPOSIX_H
#define CPOSIX_H

#include <stdint.h>

/// Deallocates `length` bytes of file `fd` from `offset`, keeping its size
/// (`fallocate` with `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`): reads
/// of the range return zeros. Returns 0, or -1 with `errno` set
/// (`EOPNOTSUPP` where the file system cannot punch holes).
int cposix_punch_hole(int fd, int64_t offset, int64_t length);

#endif
