// The fused decode+integrate path (integrateCbf: cbf_locate, byte-offset
// decoding in 16k-pixel tiles straight into the integrator), checked against
// decoding the whole frame first and integrating it in one call. A synthetic
// pixel-to-bin map stands in for the geometry: the map only has to be valid,
// the CBF and the per-frame options are what the fuzzer controls. Input:
//   [map selector][frame selector][limit, f64 LE][threshold, f64 LE] CBF file
//   map selector:   bit 0 bbox splitting, bit 1 2D, bit 2 mask, bit 3 per-pixel
//                   normalisation, bit 7 geometry one pixel larger than the
//                   frame, bits 4-6 radial bins
//   frame selector: bit 0 lit-pixel veto above `threshold`, bit 1 saturation
//                   limit `limit` (both any double: the addon takes any
//                   number), bit 2 dummy value, bit 3 dark image, bit 4
//                   empty-bin value
#include <cmath>
#include <cstring>
#include <vector>

#include "cbf_decode.h"
#include "cbf_locate.h"
#include "fuzz_input.h"
#include "integrator.h"

using namespace beamedge;

namespace {

bool same(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 18) return -1;
  const uint8_t map_sel = data[0], frame_sel = data[1];
  double limit, threshold;
  std::memcpy(&limit, data + 2, 8);
  std::memcpy(&threshold, data + 10, 8);
  const uint8_t* cbf = data + 18;
  const size_t len = size - 18;

  size_t npix = 64;  // any size works for a file that cbf_locate rejects
  try {
    npix = static_cast<size_t>(cbf_locate(cbf, len).n_elements);
  } catch (const CbfError&) {
  }
  if (map_sel & 0x80) ++npix;
  if (npix < 2) npix = 2;

  std::vector<double> pos0(npix), dpos0(npix, 0.37), pos1(npix), dpos1(npix, 0.05);
  std::vector<uint8_t> mask(npix);
  std::vector<float> norm(npix), dark(npix, 0.5f);
  for (size_t i = 0; i < npix; ++i) {
    pos0[i] = double(i * 7919 % 1009) * 0.01;
    pos1[i] = double(i * 31 % 360) * (M_PI / 180.0) - M_PI;
    mask[i] = i % 7 == 3;
    norm[i] = 0.5f + float(i % 5) * 0.25f;
  }
  pos0[0] = 0.0;  // a non-empty radial range whatever the mask
  pos0[1] = 10.0;
  mask[0] = mask[1] = 0;
  MapInputs m;
  m.npix = npix;
  m.pos0 = pos0.data();
  if (map_sel & 1) m.dpos0 = dpos0.data();
  if (map_sel & 2) {
    m.pos1 = pos1.data();
    if (map_sel & 1) m.dpos1 = dpos1.data();
    m.axis1.bins = 5;
  }
  if (map_sel & 4) m.mask = mask.data();
  if (map_sel & 8) m.norm = norm.data();
  m.axis0.bins = 1 + 9 * (map_sel >> 4 & 7);
  const Integrator integ(m);

  FrameInputs f;
  if (frame_sel & 1) f.lit_threshold = threshold;
  if (frame_sel & 2) f.max_valid = limit;
  if (frame_sel & 4) {
    f.has_dummy = true;
    f.dummy = 7;
    f.delta_dummy = 0.5;
  }
  if (frame_sel & 8) f.dark = dark.data();
  const double empty = frame_sel & 16 ? -1.0 : 0.0;

  IntegrationResult fused;
  bool fused_ok = true;
  try {
    integrate_cbf(integ, cbf, len, f, empty, fused);
  } catch (const CbfError&) {
    fused_ok = false;
  }

  // The same frame decoded whole, then integrated in one call.
  IntegrationResult whole;
  bool whole_ok = true;
  try {
    const CbfBinary b = cbf_locate(cbf, len);
    if (static_cast<size_t>(b.n_elements) != npix) throw CbfError("size");
    fuzz::Exact<int32_t> px(npix);
    byte_offset_decode_exact(cbf + b.data_offset, b.binary_size, px.data(), npix);
    f.type = PixelType::i32;
    f.data = px.data();
    Accumulator acc = integ.start();
    integ.accumulate(acc, f, 0, npix);
    integ.finish(acc, empty, whole);
  } catch (const CbfError&) {
    whole_ok = false;
  }
  fuzz::check(fused_ok == whole_ok, "fused and whole-frame decoding disagree on whether the frame is valid");
  if (!fused_ok) return 0;
  fuzz::check(fused.lit == whole.lit && fused.excluded == whole.excluded, "fused lit or excluded counts differ");
  fuzz::check(same(fused.signal, whole.signal) && same(fused.variance, whole.variance) &&
                  same(fused.normalization, whole.normalization) && same(fused.count, whole.count) &&
                  same(fused.intensity, whole.intensity) && same(fused.sigma, whole.sigma),
              "fused decode+integrate differs from decoding first");
  fuzz::check(fused.intensity.size() == integ.bins(), "result has the wrong number of bins");
  return 0;
}
