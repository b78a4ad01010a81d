// Narrow 1D bounding-box maps: the layout that keeps a 6M-pixel bbox map
// under 40 MB (6.4 bytes per pixel for everything).
//
// Per pixel: its first bin (u16, or u32 past 65534 bins) and a 24-bit `q`
// (u16 low part in section `weights`, u8 high part in section `counts`),
// the share of its second bin in units of 2^-24. The first bin gets
// 1 - q 2^-24: both weights are exact doubles, their sum is exactly 1 (each
// pixel's total is conserved), and a pixel in one bin (q = 0) adds exactly
// what the entry table adds (weight 1), plus a +0 to the next bin. The loop
// is then the same two adds for every pixel, with no per-pixel bin count.
// Pixels spanning three or more bins (rare: a bin narrower than a pixel) are
// exceptions with their exact float weights, in a list sorted by pixel;
// their per-pixel slot points at the discard bin. When exceptions are too
// many the map falls back to the exact compact layout (kMapCompact).
//
// The per-pixel normalisation (needed only for pixels a frame excludes by
// value) is stored losslessly as int8 residuals of the float32 bit patterns
// against a linear predictor, in blocks of kNormBlock pixels decoded only
// when a frame excludes a pixel in them (see PackedNorm).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

// integrator.h includes this header after the types it uses (the Integrator
// holds a NarrowMap): include integrator.h, not this file, first.
#include "integrator.h"

namespace beamedge {

constexpr size_t kNormBlock = 128;
// Residual marking "the bit pattern is the next entry of the escape list".
constexpr int8_t kNormEscape = INT8_MIN;
constexpr double kNarrowScale = 16777216.0;  // 2^24
constexpr double kNarrowUnit = 1.0 / kNarrowScale;
// Copies of the sums per bin (pixels by their index modulo this).
constexpr size_t kNarrowLanes = 4;
// Doubles per bin and lane in the accumulator's sums during a frame.
constexpr size_t kNarrowSlot = 4;

// A pixel spanning three or more bins, with the entry table's float weights
// (its interior weights are all equal).
struct NarrowException {
  uint32_t pixel, bin, count;
  float first, inner, last;
};
static_assert(sizeof(NarrowException) == 24, "exception records are part of the map format");

// Lossless packed float32 array: value i of block k is predicted from the
// block's previous two (0 for the first, the previous for the second, then
// 2 p1 - p2, all on the bit patterns modulo 2^32); the residual is stored
// when it fits int8, else kNormEscape and the full pattern in `escapes`,
// whose entries for block k start at escape_index[k].
struct PackedNorm {
  const int8_t* residual = nullptr;       // npix
  const uint32_t* escape_index = nullptr; // blocks + 1
  const uint32_t* escapes = nullptr;
  size_t npix = 0;
  // Decodes block `block` into out[0, kNormBlock).
  void decode_block(size_t block, float* out) const;
};

struct NormPacking {
  std::vector<int8_t> residual;
  std::vector<uint32_t> escape_index, escapes;
};
// Packs norm[0, npix); pixels whose `needed` is 0 may decode to any value
// (their residual is 0: unmapped pixels never read their normalisation).
// False when packing would not save a quarter of the plain array (a flat
// field of noise): keep the plain floats then.
bool pack_norm(const float* norm, const uint8_t* needed, size_t npix, NormPacking& out);

// What check_map verifies of a narrow map and of a packed normalisation
// beyond the section bounds: "" or the problem.
std::string check_narrow(const uint8_t* blob, const MapHeader& h);
std::string check_packed_norm(const uint8_t* blob, const MapHeader& h);

// Builds the whole blob (checksum included) of a narrow 1D bbox map, or
// returns an empty vector when it has too many exceptions. `h` comes with
// magic, version, npix, axes and flags set.
std::vector<uint8_t> build_narrow_map(const MapInputs& in, const Axis& axis0, MapHeader h);

// A narrow map read in place.
struct NarrowMap {
  size_t npix = 0, bins = 0;
  const uint16_t* bin16 = nullptr;
  const uint32_t* bin32 = nullptr;
  const uint16_t* q_lo = nullptr;
  const uint8_t* q_hi = nullptr;
  const NarrowException* exceptions = nullptr;
  size_t nexceptions = 0;
  const float* norm = nullptr;  // plain normalisation, or
  PackedNorm packed;            // packed (residual != null), or neither: all ones
  void view(const uint8_t* blob, const MapHeader& h);
};

// Adds pixels [first, first + n) (Integrator::accumulate's contract; the
// accumulator's sums hold (bins + 2) x kNarrowLanes x kNarrowSlot doubles).
void accumulate_narrow(const NarrowMap& m, Accumulator& acc, const FrameInputs& f, size_t first, size_t n);
// At the end of a frame: turns those sums into one [signal, variance] per bin (bins + 1 of them).
void narrow_fold(Accumulator& acc, size_t bins);

// The per-pixel normalisation a map stores, decoded (empty when it has none).
std::vector<float> map_norm(const uint8_t* blob, size_t len);

}  // namespace beamedge
