// Byte-offset decoding with the portable kernel, forced through BEAMEDGE_KERNELS=scalar.
#define BEAMEDGE_FUZZ_SCALAR 1
#include "byte_offset_harness.h"
