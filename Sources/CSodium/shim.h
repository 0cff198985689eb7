#ifndef PATIENTVAULT_CSODIUM_SHIM_H
#define PATIENTVAULT_CSODIUM_SHIM_H

// The whole of libsodium's public API. Swift calls it directly: nothing here
// needs a C helper, so the shim is only the umbrella include.
#include <sodium.h>

#endif
