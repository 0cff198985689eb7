// libFuzzer's driver, which `-sanitize=fuzzer` links in: the fuzz
// executable's own `main` (SwiftPM gives every executable one) calls it.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
