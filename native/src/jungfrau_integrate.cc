#include "jungfrau_integrate.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace beamedge {

JfCounts integrate_jungfrau(const Integrator& integ, const JfInputs& in, const JfFusedOptions& opt, FrameInputs f,
                            double empty, IntegrationResult& result) {
  const size_t n = in.n;
  if (n != integ.npix())
    throw std::invalid_argument("frame has " + std::to_string(n) + " pixels, the geometry " +
                                std::to_string(integ.npix()));
  const size_t plane = in.plane ? in.plane : n;
  const size_t tile = opt.tile ? opt.tile : kJfFusedTile;
  // One buffer per thread (each worker thread has its own), grown once.
  thread_local std::vector<float> buffer;
  if (!opt.out && buffer.size() < std::min(tile, n)) buffer.resize(std::min(tile, n));
  f.type = PixelType::f32;
  f.negative_valid = true;
  f.dark = nullptr;
  f.has_dummy = false;
  JfCounts total;
  JfTrack track;
  Accumulator acc = integ.start();
  for (size_t first = 0; first < n; first += tile) {
    const size_t len = std::min(tile, n - first);
    JfInputs t = in;
    t.raw = in.raw + first;
    t.n = len;
    t.plane = plane;
    t.pedestal = in.pedestal + first;
    t.factor = in.factor + first;
    if (in.mask) t.mask = in.mask + first;
    if (in.track) {
      track = *in.track;
      track.pedestal += first;
      track.rms += first;
      t.track = &track;
    }
    float* dst = opt.out ? opt.out + first : buffer.data();
    const JfCounts c = opt.scalar ? jungfrau_convert_scalar(t, dst) : jungfrau_convert(t, dst);
    for (int g = 0; g < 3; ++g) total.gain[g] += c.gain[g];
    total.saturated += c.saturated;
    total.invalid_code += c.invalid_code;
    total.error_word += c.error_word;
    total.masked += c.masked;
    total.lit += c.lit;
    f.data = dst;
    integ.accumulate(acc, f, first, len);
  }
  integ.finish(acc, empty, result);
  return total;
}

}  // namespace beamedge
