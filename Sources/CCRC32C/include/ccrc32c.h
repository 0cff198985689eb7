#ifndef CCRC32C_H
#define CCRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Whether this CPU has the CRC-32C instruction (x86-64 SSE 4.2, or the
/// ARMv8 CRC extension), checked once at run time.
int ccrc32c_hardware_available(void);

/// The CRC-32C state after `length` bytes at `bytes`, from `state` (the
/// inverted CRC: pass ~crc, invert the result). Only call it when
/// ccrc32c_hardware_available() returned 1.
uint32_t ccrc32c_hardware_update(uint32_t state, const void *bytes, size_t length);

#endif
