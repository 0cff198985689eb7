// CRC-32C with the processor's instruction, chosen at run time: the Swift
// side falls back to its table implementation when this says no.
#include "ccrc32c.h"
#include <string.h>

// The body both instruction sets share: eight bytes at a time with WORD
// (the 64-bit CRC-32C instruction), then the tail with BYTE (the 8-bit one),
// from `state` over `length` bytes at `bytes`. The 64-bit instruction's
// result fits in 32 bits.
#define CCRC32C_UPDATE(WORD, BYTE)                                  \
    const unsigned char *p = bytes;                                 \
    uint32_t c = state;                                             \
    for (; length >= 8; p += 8, length -= 8) {                      \
        uint64_t word;                                              \
        memcpy(&word, p, 8);                                        \
        c = (uint32_t)WORD(c, word);                                \
    }                                                               \
    for (; length > 0; p += 1, length -= 1) c = BYTE(c, *p);        \
    return c;

#if defined(__x86_64__)

int ccrc32c_hardware_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

__attribute__((target("sse4.2")))
uint32_t ccrc32c_hardware_update(uint32_t state, const void *bytes, size_t length) {
    CCRC32C_UPDATE(__builtin_ia32_crc32di, __builtin_ia32_crc32qi)
}

#elif defined(__aarch64__) && defined(__linux__)

#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif

int ccrc32c_hardware_available(void) {
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) ? 1 : 0;
}

__attribute__((target("crc")))
uint32_t ccrc32c_hardware_update(uint32_t state, const void *bytes, size_t length) {
    CCRC32C_UPDATE(__builtin_arm_crc32cd, __builtin_arm_crc32cb)
}

#else

int ccrc32c_hardware_available(void) { return 0; }

uint32_t ccrc32c_hardware_update(uint32_t state, const void *bytes, size_t length) {
    (void)bytes;
    (void)length;
    return state;
}

#endif
