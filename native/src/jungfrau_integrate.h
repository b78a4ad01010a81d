// JUNGFRAU conversion fused with azimuthal integration: raw gain words are
// converted a tile at a time into a small buffer that stays in cache and
// integrated from there, so the 4-byte-per-pixel float frame never goes to
// main memory (unless the caller asks for it) and does not evict the
// calibration arrays. Kept apart from N-API like cbf_decode.h.
#pragma once
#include <cstddef>

#include "integrator.h"
#include "jungfrau.h"

namespace beamedge {

// Pixels per tile: 128 Ki floats (512 KiB, in L2). Measured on a 4M frame
// (npt 1000, EPYC, one thread): each tile costs about 0.6 us on top of its
// pixels whatever its length (tiles of 4096: +0.6-0.7 ms per frame, 16384:
// +0.3 ms), and prefetching the next tile's inputs did not change that; at
// 128 Ki the fixed cost is gone and the buffer is still read back from L2.
constexpr size_t kJfFusedTile = size_t(1) << 17;

struct JfFusedOptions {
  float* out = nullptr;  // [n]: the converted frame is also written here (else only to the tile buffer)
  size_t tile = 0;       // pixels per tile; 0: kJfFusedTile
  bool scalar = false;   // the portable conversion kernel (tests)
};

// Converts in.raw (in.n == integ.npix(); in.plane 0 or n) and integrates it with
// negative_valid semantics (only NaN, i.e. the pixels the conversion excludes,
// and values above frame.max_valid are excluded). frame's type, data and
// negative_valid are set here; its lit_threshold counts mapped lit pixels as
// in Integrator::accumulate. The result and the counts are bit for bit those of
// jungfrau_convert followed by one Integrator::accumulate over the whole frame.
JfCounts integrate_jungfrau(const Integrator& integ, const JfInputs& in, const JfFusedOptions& opt, FrameInputs frame,
                            double empty, IntegrationResult& out);

}  // namespace beamedge
