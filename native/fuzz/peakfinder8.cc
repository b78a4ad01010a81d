// peakfinder8 (native/src/peakfinder8.h) on small hostile frames: no crash or
// out-of-bounds access, whatever the values, mask, centre and parameters; the
// properties OM's tests guarantee hold for every stored peak (size within
// min..max pixels, SNR >= min_snr, centroid inside the frame), and a second
// find() on the reused buffers gives the same list.
//
// Input layout (test/fuzz/inputs.ts reads the same):
//   [width - 3: u8, low 5 bits][height - 3: u8, low 5 bits][min_pix: low 2 bits,
//    local_bg_radius: bits 2-3, max_num_peaks: bits 4-7][adc_thresh: u8]
//   [min_snr / 8: u8][max_pix: u8, 0 -> 1][centre fs: u8][centre ss: u8]
//   then width * height int16 LE pixels (missing ones 0); -32768 is masked.
#include <cmath>
#include <cstdlib>
#include <vector>

#include "peakfinder8.h"

using namespace beamedge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return -1;
  const int w = (data[0] & 31) + 3, h = (data[1] & 31) + 3, n = w * h;
  Pf8Params p;
  p.min_pix = data[2] & 3;
  p.local_bg_radius = (data[2] >> 2) & 3;
  p.max_num_peaks = data[2] >> 4;
  p.adc_thresh = data[3];
  p.min_snr = data[4] / 8.0f;
  p.max_pix = data[5] ? data[5] : 1;
  p.min_res = 0;
  p.max_res = 1e4f;
  const float cfs = data[6] / 4.0f, css = data[7] / 4.0f;
  std::vector<float> frame(n, 0.f), radius(n);
  std::vector<uint8_t> mask(n, 0);
  for (int i = 0; i < n; ++i) {
    const size_t at = 8 + 2 * size_t(i);
    if (at + 1 < size) {
      const int16_t v = int16_t(data[at] | data[at + 1] << 8);
      frame[i] = v;
      mask[i] = v == -32768;
    }
    const float dx = float(i % w) - cfs, dy = float(i / w) - css;
    radius[i] = std::sqrt(dx * dx + dy * dy);
  }
  Peakfinder8 pf(w, h, radius.data(), mask.data(), p);
  const int m = p.max_num_peaks;
  std::vector<float> cols[2][6];
  std::vector<int32_t> pix[2];
  int found[2];
  for (int r = 0; r < 2; ++r) {
    for (auto& c : cols[r]) c.assign(m + 1, 0.f);
    pix[r].assign(m + 1, 0);
    const Pf8Out out{cols[r][0].data(), cols[r][1].data(), cols[r][2].data(), cols[r][3].data(),
                     cols[r][4].data(), cols[r][5].data(), pix[r].data()};
    found[r] = pf.find(frame.data(), out);
  }
  if (found[0] != found[1]) abort();
  const int stored = found[0] < m ? found[0] : m;
  for (int k = 0; k < stored; ++k) {
    for (int c = 0; c < 6; ++c)
      if (cols[0][c][k] != cols[1][c][k]) abort();
    if (pix[0][k] != pix[1][k]) abort();
    if (pix[0][k] < p.min_pix || pix[0][k] > p.max_pix) abort();
    if (!(cols[0][5][k] >= p.min_snr)) abort();
    if (!(cols[0][0][k] >= 0 && cols[0][0][k] <= w - 1 && cols[0][1][k] >= 0 && cols[0][1][k] <= h - 1)) abort();
  }
  return 0;
}
