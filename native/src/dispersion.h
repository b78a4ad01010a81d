// DIALS 3.12 dispersion spot finder (DispersionThreshold and
// DispersionExtendedThreshold of src/dials/algorithms/image/threshold/local.h),
// reimplemented to give the same strong-pixel mask bit for bit, then
// 4-connected spots as dials.find_spots forms them (PixelList::labels_2d).
//
// Semantics kept from DIALS (names are DIALS's):
//  - kernel_size = (ky, kx) are HALF sizes: the local window is
//    (2 ky + 1) x (2 kx + 1), clipped at the image edge (no padding).
//  - A pixel enters the local sums when it is unmasked and value < 2^24;
//    m counts those pixels, x sums the values, y the squares.
//  - min_local <= 0 means "the whole kernel"; otherwise 1 < min_local <= kernel.
//  - dispersion: strong when unmasked && m >= min_local && x >= 0 &&
//    v > global_threshold && a > c && b > d with, without a gain,
//      a = m y - x^2 - x (m - 1),  c = x sigma_b sqrt(2 (m - 1)),
//      b = m v - x,                d = sigma_s sqrt(x m)
//    and with a gain g: a = m y - x^2, c = g x (m - 1 + sigma_b sqrt(2 (m - 1))),
//    d = sigma_s sqrt(g x m). All in double, in DIALS's operation order.
//  - dispersion_extended: pass 1 marks a > c (same m/x tests, no v tests);
//    the mark is eroded: a pixel stays only when no unmarked (or masked) pixel
//    lies within Chebyshev distance min(kx, ky) - 1 (the image edge does not
//    erode). Pass 2 sums over a (ky + 2, kx + 2) half-size window the pixels
//    that are unmasked, < 2^24 and not in the eroded mark; mean = m >= 2 ? x / m : 0;
//    strong = eroded mark && v > global_threshold && v >= mean + sigma_s sqrt(mean)
//    (sqrt(g mean) with a gain).
//
// Exactness: DIALS sums in double summed-area tables over the whole frame;
// while the frame's sum of squares of the included pixels is below 2^51 those
// are exact integers and the fast integer path here gives the same m, x, y, so
// the same doubles go into the same expressions. Above that, and for float32
// images, the reference path (DIALS's own double summed-area table order) runs.
// Small kernels (the default 7 x 7; K <= 127 window pixels, extended: (2 kx + 5) x
// (2 ky + 5) <= 2047) take a faster integer path: running int32 column sums (2 image
// rows per output row), AVX2 where the CPU has it (BEAMEDGE_KERNELS=scalar: portable);
// only pixels that pass necessary integer / float pre-tests (rounding bounded) get
// DIALS's double expressions, so the masks stay identical; extended pass 2 sums the
// windows of the (usually few) core pixels directly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace beamedge {

struct DispersionParams {
  int kernel_y = 3;  // DIALS kernel_size[0] (half size, rows)
  int kernel_x = 3;  // DIALS kernel_size[1] (half size, columns)
  double sigma_background = 6;
  double sigma_strong = 3;
  double global_threshold = 0;
  int min_local = 2;
  bool use_gain = false;  // DIALS gain = None (the default): the gain-free formulas
  double gain = 1;
  bool extended = false;
};

struct DispersionSpot {
  double fs, ss;          // intensity-weighted centroid, pixel-index coordinates (DIALS px - 0.5)
  double intensity;       // sum of the pixel values
  uint32_t pixels;        // strong pixels in the 4-connected region
  uint32_t peak_fs, peak_ss;  // first brightest pixel in raster order
};

struct SpotFilter {
  uint32_t min_spot_size = 1;
  uint32_t max_spot_size = 1000;
  double max_separation = -1;  // < 0: off; DIALS default 2 (peak to centroid, pixels)
};

class DispersionFinder {
 public:
  // Throws std::invalid_argument on bad sizes or parameters (DIALS's assertions).
  DispersionFinder(size_t width, size_t height, const DispersionParams& p);

  // mask: non-zero = invalid. out: 1 = strong. Returns the strong-pixel count.
  size_t threshold(const int32_t* img, const uint8_t* mask, uint8_t* out);
  size_t threshold(const float* img, const uint8_t* mask, uint8_t* out);
  // DIALS's summed-area-table order in double, always (tests, fallback).
  size_t threshold_reference(const int32_t* img, const uint8_t* mask, uint8_t* out);
  size_t threshold_reference(const float* img, const uint8_t* mask, uint8_t* out);

  // 4-connected regions of `strong` (non-zero), filtered; values from img.
  template <typename T>
  void spots(const T* img, const uint8_t* strong, const SpotFilter& f, std::vector<DispersionSpot>& out);

  size_t width() const { return w_; }
  size_t height() const { return h_; }
  // Which path the last threshold() call took: "integer" or "reference".
  const char* last_path() const { return last_path_; }

 private:
  template <typename T>
  size_t reference(const T* img, const uint8_t* mask, uint8_t* out);
  size_t fast(const int32_t* img, const uint8_t* mask, uint8_t* out);
  double included_squares(const int32_t* img, const uint8_t* mask, uint8_t* incl) const;

  size_t w_, h_;
  DispersionParams p_;
  int min_count_;
  const char* last_path_ = "none";
  std::vector<uint8_t> incl_;
  std::vector<int32_t> col_m_;
  std::vector<int64_t> col_x_, col_y_, pm_, px_, py_;
  std::vector<uint8_t> cand_;
  // small-kernel path (see dispersion.cc)
  bool small_ = false;
  std::vector<int32_t> scm_, scx_, scy_, spair_;
  std::vector<double> sq_;
  std::vector<uint8_t> srow_;
  std::vector<uint32_t> srowcnt_;
  std::vector<float> sqf_;
  int32_t ybig_ = 0;  // pixels at or above it are summed apart (dispersion.cc)
  // reference path summed-area table (allocated on first use)
  struct Sat { int m; double x; double y; };
  std::vector<Sat> sat_;
  // extended / labelling
  std::vector<uint8_t> tmp_;
  std::vector<int32_t> dist_;
  std::vector<uint32_t> labels_;
  std::vector<uint32_t> parent_;
};

}  // namespace beamedge
