// The dark-run accumulator (native/src/pedestal.h) against a plain reference:
// frames per pixel and gain counted from the raw words, the mean and a
// two-pass rms in long double from the values kept aside. Counts must match
// exactly, the mean to float rounding, the rms to 1e-6 relative (plus 1e-6
// ADU, where the true rms is 0); NaN exactly where a pixel never was in a gain.
//
// Input layout (test/fuzz/inputs.ts reads the same):
//   [pixels - 1: u8, low 6 bits][reset after this frame: u8 (none when >= frames)]
//   then frames of `pixels` raw u16 LE words, as many whole frames as fit.
#include <cmath>
#include <vector>

#include "fuzz_input.h"
#include "pedestal.h"

using namespace beamedge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return -1;
  const size_t pixels = size_t(data[0] & 63) + 1;
  const size_t frames = (size - 2) / (2 * pixels);
  const size_t reset_after = data[1];
  const uint8_t* words = data + 2;

  PedestalAccumulator acc(pixels);
  std::vector<std::vector<uint32_t>> seen(3 * pixels);  // values per (gain, pixel) since the last reset
  uint64_t since_reset = 0;
  std::vector<uint16_t> frame(pixels);
  for (size_t f = 0; f < frames; ++f) {
    for (size_t i = 0; i < pixels; ++i) {
      const uint8_t* p = words + 2 * (f * pixels + i);
      frame[i] = uint16_t(p[0] | p[1] << 8);
    }
    acc.add(frame.data());
    ++since_reset;
    for (size_t i = 0; i < pixels; ++i) {
      const uint16_t w = frame[i];
      const unsigned code = w >> 14;
      if (w == 0xFFFF || w == 0xC000 || code == 2) continue;
      seen[(code == 3 ? 2 : code) * pixels + i].push_back(w & 0x3FFF);
    }
    if (f == reset_after) {
      acc.reset();
      since_reset = 0;
      for (auto& s : seen) s.clear();
    }
  }
  fuzz::check(acc.frames() == since_reset, "frames() is not the frames added since the last reset");
  fuzz::check(acc.pixels() == pixels, "pixels() changed");

  std::vector<float> mean(3 * pixels), rms(3 * pixels);
  acc.stats(mean.data(), rms.data());
  for (size_t k = 0; k < 3 * pixels; ++k) {
    const std::vector<uint32_t>& s = seen[k];
    fuzz::check(acc.counts()[k] == s.size(), "frames per pixel and gain miscounted");
    if (s.empty()) {
      fuzz::check(std::isnan(mean[k]) && std::isnan(rms[k]), "a gain a pixel never was in has a mean or rms");
      continue;
    }
    long double sum = 0;
    for (uint32_t v : s) sum += v;
    const long double m = sum / s.size();
    long double ss = 0;
    for (uint32_t v : s) ss += (v - m) * (v - m);
    const double want_rms = double(std::sqrt(ss / s.size()));
    fuzz::check(std::fabs(double(mean[k]) - double(m)) <= 1e-6 * double(m) + 1e-6, "mean differs from the reference");
    fuzz::check(rms[k] >= 0, "negative rms");
    fuzz::check(std::fabs(double(rms[k]) - want_rms) <= 1e-6 * want_rms + 1e-6, "rms differs from the two-pass reference");
  }
  return 0;
}
