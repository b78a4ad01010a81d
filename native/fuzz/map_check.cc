// Damaged maps: check_map must refuse every blob that could make the
// per-frame loop read or write out of bounds (AddressSanitizer watches the
// loop run on whatever it accepts), and the Integrator must accept exactly
// what check_map accepts. A small valid map is built from the selector, then
// the input's edits are applied to it (the checksum is not checked, as for a
// blob a worker reads in place: the structure alone must keep it safe).
// Input:
//   [map selector] then edits of 5 bytes: [offset, u32 LE, modulo the blob size][new byte]
//   map selector: bits 0-2 radial bins (10 + 9 k), bit 3 per-pixel
//                 normalisation (smooth: packed in narrow maps), bit 4 mask,
//                 bit 5 bbox splitting (1D: the narrow layout, with a few
//                 pixels over 3+ bins as exceptions), bit 6 2D (5 azimuthal bins)
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "fuzz_input.h"
#include "integrator.h"

using namespace beamedge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return -1;
  const uint8_t sel = data[0];
  constexpr size_t npix = 1007;  // not a multiple of 4 (AVX2 quads) nor of 128 (normalisation blocks)
  std::vector<double> pos0(npix), dpos0(npix), pos1(npix), dpos1(npix, 0.05);
  std::vector<uint8_t> mask(npix);
  std::vector<float> norm(npix);
  for (size_t i = 0; i < npix; ++i) {
    pos0[i] = double(i * 7919 % 1009) * 0.01;
    dpos0[i] = i % 23 == 0 ? 0.37 : 0.04;
    pos1[i] = double(i * 31 % 360) * (M_PI / 180.0) - M_PI;
    mask[i] = i % 7 == 3;
    norm[i] = static_cast<float>(1.0 / (1.0 + 1e-6 * double(i)));
  }
  pos0[0] = 0.0;
  pos0[1] = 10.0;
  mask[0] = mask[1] = 0;
  MapInputs m;
  m.npix = npix;
  m.pos0 = pos0.data();
  if (sel & 32) m.dpos0 = dpos0.data();
  if (sel & 64) {
    m.pos1 = pos1.data();
    if (sel & 32) m.dpos1 = dpos1.data();
    m.axis1.bins = 5;
  }
  if (sel & 16) m.mask = mask.data();
  if (sel & 8) m.norm = norm.data();
  m.axis0.bins = 10 + 9 * (sel & 7);
  const Integrator built(m);

  fuzz::Exact<uint8_t> blob(built.map_bytes());
  std::memcpy(blob.data(), built.map_blob(), blob.n);
  for (size_t k = 1; k + 5 <= size; k += 5) {
    uint32_t off;
    std::memcpy(&off, data + k, 4);
    blob.data()[off % blob.n] = data[k + 4];
  }
  const bool accepted = check_map(blob.data(), blob.n, false).empty();
  bool constructed = true;
  try {
    const Integrator integ(blob.data(), blob.n);
    // An integer frame (the AVX2 quads where the CPU has them) with markers, in two tiles, then a float frame.
    // The map's own pixel count (an edit may change it: the sections must then still fit the blob).
    const size_t n = integ.npix();
    fuzz::Exact<int32_t> px(n);
    fuzz::Exact<float> fx(n);
    for (size_t i = 0; i < n; ++i) {
      px.data()[i] = i % 17 == 0 ? -1 : int32_t(i * 7919 % 500);
      fx.data()[i] = i % 19 == 0 ? NAN : float(i % 300) * 0.5f;
    }
    FrameInputs f;
    f.type = PixelType::i32;
    f.lit_threshold = 100;
    Accumulator acc = integ.start();
    const size_t half = n / 2;
    f.data = px.data();
    integ.accumulate(acc, f, 0, half);
    f.data = px.data() + half;
    integ.accumulate(acc, f, half, n - half);
    IntegrationResult r;
    integ.finish(acc, 0.0, r);
    f.type = PixelType::f32;
    f.data = fx.data();
    Accumulator acc2 = integ.start();
    integ.accumulate(acc2, f, 0, n);
    integ.finish(acc2, 0.0, r);
    fuzz::check(r.intensity.size() == integ.bins(), "result has the wrong number of bins");
  } catch (const std::invalid_argument&) {
    constructed = false;
  }
  fuzz::check(accepted == constructed, "check_map and the Integrator disagree on a blob");
  return 0;
}
