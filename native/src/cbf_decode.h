// Byte-offset decoding of a CBF binary section, whole or fused with azimuthal
// integration: the pure part of the addon's cbfDecode, byteOffsetDecode and
// integrateCbf, kept apart from N-API so the fuzz targets (native/fuzz) run
// exactly this code without Node.
#pragma once
#include <cstddef>
#include <cstdint>

#include "integrator.h"

namespace beamedge {

// Decodes `count` elements of a byte-offset stream that must be exactly `len`
// bytes long. Throws CbfError naming the problem.
void byte_offset_decode_exact(const uint8_t* src, size_t len, int32_t* out, size_t count);

// Locates the binary section of the CBF in buf[0, len) and decodes it tile by
// tile straight into `integ`, so the decoded frame never round-trips through
// main memory. `frame` gives the per-frame options; its type and data are set
// here. Throws CbfError.
void integrate_cbf(const Integrator& integ, const uint8_t* buf, size_t len, FrameInputs frame, double empty,
                   IntegrationResult& out);

}  // namespace beamedge
