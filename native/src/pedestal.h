// Dark-run accumulation for JUNGFRAU raw frames: per pixel and gain stage, the
// number of frames, the sum and the sum of squares of the ADC value. Sums are
// kept as integers (ADC values are 14-bit), so the mean and variance come out
// exact however many frames a run has: no shift or running update is needed
// against cancellation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace beamedge {

class PedestalAccumulator {
 public:
  // A 32-bit sum of 14-bit values holds this many frames without overflow.
  static constexpr uint64_t kMaxFrames = (uint64_t{1} << 32) / 16384;

  explicit PedestalAccumulator(size_t pixels);

  // Adds one frame of raw words. Error words (0xFFFF), saturation (0xC000) and
  // gain code 10 are counted as frames but accumulate nothing.
  void add(const uint16_t* frame);
  void reset();

  size_t pixels() const { return pixels_; }
  uint64_t frames() const { return frames_; }
  // [3][pixels]: frames per gain stage.
  const uint32_t* counts() const { return count_.data(); }
  // [3][pixels] mean ADC and rms (population); NaN where a pixel never was in that gain.
  void stats(float* mean, float* rms) const;

 private:
  size_t pixels_;
  uint64_t frames_ = 0;
  std::vector<uint32_t> count_;
  std::vector<uint32_t> sum_;
  std::vector<uint64_t> sumsq_;
};

}  // namespace beamedge
