// Byte-offset decoding with the AVX2 kernel (the portable one where the CPU lacks AVX2).
#include "byte_offset_harness.h"
