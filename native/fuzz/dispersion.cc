// The dispersion spot finder (native/src/dispersion.h) on random small frames:
// no crash, only unmasked pixels marked, the integer path equal to the
// DIALS-order reference path, spots made only of strong pixels.
//
// Input layout (test/fuzz/inputs.ts reads the same):
//   [width - 1: u8 & 31][height - 1: u8 & 31][kx: u8 % 4 + 1][ky: u8 % 4 + 1][min_local: i8]
//   [flags: u8: bit 0 extended, bit 1 gain 2.5][sigma_b: u8 / 4][sigma_s: u8 / 4]
//   then per pixel: value i16 LE, then per pixel: mask u8 (missing bytes: 0)
#include <stdexcept>
#include <vector>

#include "dispersion.h"
#include "fuzz_input.h"

using namespace beamedge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return -1;
  const size_t w = size_t(data[0] & 31) + 1, h = size_t(data[1] & 31) + 1, n = w * h;
  DispersionParams p;
  p.kernel_x = data[2] % 4 + 1;
  p.kernel_y = data[3] % 4 + 1;
  p.min_local = int8_t(data[4]);
  p.extended = data[5] & 1;
  p.use_gain = data[5] & 2;
  p.gain = 2.5;
  p.sigma_background = data[6] / 4.0;
  p.sigma_strong = data[7] / 4.0;
  std::vector<int32_t> img(n, 0);
  std::vector<uint8_t> mask(n, 0), a(n), b(n);
  const uint8_t* q = data + 8;
  size_t left = size - 8;
  for (size_t k = 0; k < n && left >= 2; ++k, q += 2, left -= 2) img[k] = int16_t(q[0] | q[1] << 8);
  for (size_t k = 0; k < n && left >= 1; ++k, ++q, --left) mask[k] = *q & 1;
  try {
    DispersionFinder f(w, h, p);
    const size_t ca = f.threshold(img.data(), mask.data(), a.data());
    const size_t cb = f.threshold_reference(img.data(), mask.data(), b.data());
    fuzz::check(ca == cb, "integer and reference paths count differently");
    for (size_t k = 0; k < n; ++k) {
      fuzz::check(a[k] == b[k], "integer and reference paths differ");
      fuzz::check(!(a[k] && mask[k]), "a masked pixel is marked strong");
    }
    std::vector<DispersionSpot> spots;
    SpotFilter all;
    all.max_spot_size = 1u << 30;
    f.spots(img.data(), a.data(), all, spots);
    size_t total = 0;
    for (const auto& s : spots) total += s.pixels;
    fuzz::check(total == ca, "spot pixels do not add up to the strong pixels");
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
