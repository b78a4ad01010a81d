#include "pedestal.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace beamedge {

PedestalAccumulator::PedestalAccumulator(size_t pixels)
    : pixels_(pixels), count_(3 * pixels, 0), sum_(3 * pixels, 0), sumsq_(3 * pixels, 0) {}

void PedestalAccumulator::reset() {
  frames_ = 0;
  std::fill(count_.begin(), count_.end(), 0);
  std::fill(sum_.begin(), sum_.end(), 0);
  std::fill(sumsq_.begin(), sumsq_.end(), 0);
}

void PedestalAccumulator::add(const uint16_t* frame) {
  if (frames_ >= kMaxFrames) throw std::range_error("a dark run of more than 262144 frames would overflow the sums");
  // Gain code -> stage: 00 -> 0, 01 -> 1, 11 -> 2; code 10 is invalid.
  static constexpr int kStage[4] = {0, 1, -1, 2};
  const size_t n = pixels_;
  uint32_t* count = count_.data();
  uint32_t* sum = sum_.data();
  uint64_t* sumsq = sumsq_.data();
  for (size_t i = 0; i < n; i++) {
    const uint16_t w = frame[i];
    if (w == 0xFFFF || w == 0xC000) continue;
    const int g = kStage[w >> 14];
    if (g < 0) continue;
    const uint32_t adc = w & 0x3FFF;
    const size_t k = static_cast<size_t>(g) * n + i;
    count[k] += 1;
    sum[k] += adc;
    sumsq[k] += uint64_t{adc} * adc;
  }
  frames_++;
}

void PedestalAccumulator::stats(float* mean, float* rms) const {
  for (size_t k = 0; k < 3 * pixels_; k++) {
    const uint64_t c = count_[k];
    if (c == 0) {
      mean[k] = std::numeric_limits<float>::quiet_NaN();
      rms[k] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    // n * sumsq - sum^2 is the exact integer n^2 * variance.
    const unsigned __int128 s = sum_[k];
    const unsigned __int128 d = static_cast<unsigned __int128>(c) * sumsq_[k] - s * s;
    mean[k] = static_cast<float>(static_cast<double>(sum_[k]) / static_cast<double>(c));
    rms[k] = static_cast<float>(std::sqrt(static_cast<double>(d)) / static_cast<double>(c));
  }
}

}  // namespace beamedge
