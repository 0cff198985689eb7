// Declarations only (include/CLibFuzzer.h); the definitions come from
// libFuzzer's runtime.
#include "CLibFuzzer.h"
