#ifndef CPOSIX_H
#define CPOSIX_H

#include <stdint.h>

/// Deallocates `length` bytes of file `fd` from `offset`, keeping its size
/// (`fallocate` with `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`): reads
/// of the range return zeros. Returns 0, or -1 with `errno` set
/// (`EOPNOTSUPP` where the file system cannot punch holes).
int cposix_punch_hole(int fd, int64_t offset, int64_t length);

/// Allocates `length` bytes of file `fd` from `offset` without changing
/// its size (`fallocate` with `FALLOC_FL_KEEP_SIZE`): later writes there,
/// past the end of file, need no new block. Returns 0, or -1 with `errno`
/// set (`ENOSPC`; `EOPNOTSUPP` where the file system cannot).
int cposix_allocate_beyond_end(int fd, int64_t offset, int64_t length);

/// Starts writing back the dirty pages of `length` bytes of file `fd`
/// from `offset` (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`), and,
/// when `wait` is non-zero, waits for that range's writeback before and
/// after (`SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER`):
/// pacing for a long copy, never a durability guarantee (no metadata, no
/// device flush). Returns 0, or -1 with `errno` set.
int cposix_write_back(int fd, int64_t offset, int64_t length, int wait);

#endif
