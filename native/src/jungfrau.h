// JUNGFRAU gain-switching conversion: raw uint16 words (gain code in bits
// 15-14, ADC in 13-0) to photons or keV, one pass per frame, no allocation.
#pragma once
#include <cstddef>
#include <cstdint>

namespace beamedge {

// Pedestal tracking defaults, as in Jungfraujoch (PSI): a rolling average over
// PEDESTAL_WINDOW_SIZE = 128 frames (common/Definitions.h; used by
// PedestalCalcCPU::AnalyzeImage, common/PedestalCalcCPU.cpp), and its FPGA
// conversion that tracks G0 only while the pixel is within one G0 pedestal rms
// (convert_and_shuffle in the rx100G HLS action: `adu - pede < pedeG0RMS`, then
// `pede += (adu - pede) / 128`). Ours takes |ADC - tracked| < k * rms, so k = 1.
constexpr float kJfTrackWindow = 128.0f;
constexpr float kJfTrackK = 1.0f;

struct JfTrack {
  float* pedestal = nullptr;   // tracked G0 pedestal [n], updated in place
  const float* rms = nullptr;  // G0 pedestal rms [n]
  float k = kJfTrackK;
  float window = kJfTrackWindow;
};

struct JfInputs {
  const uint16_t* raw = nullptr;
  size_t n = 0;
  const float* pedestal = nullptr;  // [3][plane], applied (not the tracked one)
  const float* factor = nullptr;    // [3][plane]: 1 / (gain * E) for photons, 1 / gain for keV
  // Distance between the gain planes of pedestal and factor; 0: n. A tile of a
  // frame passes pointers offset by its first pixel (raw, pedestal, factor,
  // mask, track) with n the tile length and plane the frame's pixel count.
  size_t plane = 0;
  const uint32_t* mask = nullptr;   // [n] or null
  uint32_t exclude[3] = {0, 0, 0};  // mask bits that exclude a pixel in gain g
  bool lit = false;                 // count converted values > lit_threshold
  float lit_threshold = 0;
  const JfTrack* track = nullptr;
};

// Every pixel lands in exactly one of these; excluded pixels are written as NaN.
struct JfCounts {
  uint64_t gain[3] = {0, 0, 0};  // converted pixels per gain stage
  uint64_t saturated = 0;         // 0xC000: G2 at ADC 0
  uint64_t invalid_code = 0;      // gain code 10
  uint64_t error_word = 0;        // 0xFFFF
  uint64_t masked = 0;            // mask & exclude[g], or a NaN pedestal / factor for that gain
  uint64_t lit = 0;               // converted pixels above the threshold
};

JfCounts jungfrau_convert(const JfInputs& in, float* out);
// The portable kernel, whatever the CPU: the AVX2 one must match it bit for bit.
JfCounts jungfrau_convert_scalar(const JfInputs& in, float* out);
const char* jungfrau_kernel_name();

}  // namespace beamedge
