// Azimuthal integration with a pixel-to-bin map built once per geometry and
// mask (pyFAI's histogram semantics, no splitting or bounding-box splitting).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace beamedge {

struct AxisSpec {
  int bins = 1;
  double lo = std::numeric_limits<double>::quiet_NaN();  // NaN: take it from the data
  double hi = std::numeric_limits<double>::quiet_NaN();
  bool allow_negative = false;  // radial quantities are clamped at 0, like pyFAI
};

// Resolved bin grid along one axis.
struct Axis {
  int bins = 1;
  double min = 0;     // left edge of bin 0
  double max_in = 0;  // largest position accepted
  double max = 0;     // right edge of the last bin
  double delta = 1;
  // numpy.linspace(min + delta/2, max - delta/2, bins), as pyFAI reports bin positions.
  double centre(int i) const {
    const double first = min + 0.5 * delta, last = max - 0.5 * delta;
    if (bins == 1) return first;
    if (i == bins - 1) return last;
    return i * ((last - first) / (bins - 1)) + first;
  }
};

struct MapInputs {
  size_t npix = 0;
  const double* pos0 = nullptr;   // radial position of each pixel centre
  const double* dpos0 = nullptr;  // half-width for bbox splitting, or null for none
  const double* pos1 = nullptr;   // azimuth (rad) for 2D, or null for 1D
  const double* dpos1 = nullptr;
  const uint8_t* mask = nullptr;  // non-zero: excluded
  const float* norm = nullptr;    // per-pixel normalisation (solid angle x polarisation x flat), null: 1
  AxisSpec axis0, axis1;
};

enum class PixelType { i32, u32, u16, u8, f32 };

struct FrameInputs {
  const void* data = nullptr;
  PixelType type = PixelType::i32;
  const float* dark = nullptr;
  bool has_dummy = false;
  double dummy = 0, delta_dummy = 0;
  // Lit-pixel veto: count mapped, valid pixels whose (dark-subtracted) value
  // exceeds this threshold, in the same pass. NaN: do not count.
  double lit_threshold = std::numeric_limits<double>::quiet_NaN();
  // Pixels above this are excluded like markers: saturated or flagged (EIGER: 2^bits - 1).
  double max_valid = std::numeric_limits<double>::infinity();
  // Float frames that are calibrated (JUNGFRAU photons or keV) have real negative
  // values around zero: then only NaN marks an excluded pixel. Integer frames
  // keep the rule that negative values are the detector's markers.
  bool negative_valid = false;
};

// Running sums for one frame; a frame may be fed in tiles of consecutive pixels.
// Each array has one slot more than there are bins: the discard bin of unmapped pixels.
struct Accumulator {
  std::vector<double> sums;                  // [bin][signal, variance] (floating-point paths)
  std::vector<uint64_t> packed;              // integer fast path, see run_packed
  std::vector<uint64_t> counts;              // [bin][signal, zero pixels] flushed from `packed`
  size_t packed_pixels = 0;                  // pixels added to `packed` since the last flush
  std::vector<double> lost_norm, lost_count; // pixels excluded by their value in this frame
  uint64_t lit = 0;                          // pixels above FrameInputs::lit_threshold
  uint64_t excluded = 0;                     // mapped pixels excluded by their value
};

struct IntegrationResult {
  std::vector<double> signal, variance, normalization, count, intensity, sigma;
  uint64_t lit = 0;
  uint64_t excluded = 0;
};

class Integrator {
 public:
  explicit Integrator(const MapInputs& in);

  const Axis& axis0() const { return axis0_; }
  const Axis& axis1() const { return axis1_; }
  size_t npix() const { return npix_; }
  size_t bins() const { return static_cast<size_t>(axis0_.bins) * axis1_.bins; }
  size_t entries() const { return direct_ ? mapped_ : ebin_.size(); }
  // Heap bytes held by the map, reported to V8 so a dropped integrator is collected promptly.
  size_t memory_bytes() const {
    return bin16_.capacity() * sizeof(uint16_t) + bin32_.capacity() * sizeof(uint32_t) +
           ptr_.capacity() * sizeof(uint32_t) + ebin_.capacity() * sizeof(uint32_t) +
           eweight_.capacity() * sizeof(float) + norm_.capacity() * sizeof(float) +
           (static_norm_.capacity() + static_count_.capacity()) * sizeof(double);
  }

  Accumulator start() const;
  // Adds pixels [first, first + n) whose values are data[0 .. n).
  void accumulate(Accumulator& acc, const FrameInputs& frame, size_t first, size_t n) const;
  void finish(Accumulator& acc, double empty, IntegrationResult& out) const;

 private:
  template <typename T, typename Index, bool kLit, bool kMax>
  void run_packed(Accumulator& acc, const Index* map, const T* data, int64_t lit_above, double max_valid, size_t first,
                  size_t n) const;
  void flush_packed(Accumulator& acc) const;
  template <typename T, typename Index, bool kDark, bool kDummy, bool kLit>
  void run_direct(Accumulator& acc, const Index* map, const T* data, const FrameInputs& f, size_t first, size_t n) const;
  template <typename Index, bool kNegValid, bool kLit>
  void run_float(Accumulator& acc, const Index* map, const float* data, const FrameInputs& f, size_t first, size_t n) const;
  template <typename T, bool kDark, bool kDummy, bool kLit>
  void run_split(Accumulator& acc, const T* data, const FrameInputs& f, size_t first, size_t n) const;
  template <typename T, bool kDark, bool kDummy, bool kLit>
  void run(Accumulator& acc, const T* data, const FrameInputs& f, size_t first, size_t n) const;
  template <typename T>
  void dispatch(Accumulator& acc, const T* data, const FrameInputs& f, size_t first, size_t n) const;

  size_t npix_ = 0;
  Axis axis0_, axis1_;
  bool direct_ = true;              // every mapped pixel falls in exactly one bin, weight 1
  size_t mapped_ = 0;
  // Direct map: bin per pixel (bins() when unmapped). 16-bit indices when the
  // bins allow it: the map is the largest thing read per frame, and half the
  // size keeps it (with a compressed frame) inside the last-level cache.
  std::vector<uint16_t> bin16_;
  std::vector<uint32_t> bin32_;
  std::vector<uint32_t> ptr_;       // split map: pixel i owns entries [ptr_[i], ptr_[i+1])
  std::vector<uint32_t> ebin_;
  std::vector<float> eweight_;
  std::vector<float> norm_;         // per-pixel normalisation (empty: all ones)
  std::vector<double> static_norm_, static_count_;
};

}  // namespace beamedge
