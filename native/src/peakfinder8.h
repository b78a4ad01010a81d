// peakfinder8 (Cheetah / OM / CrystFEL), reimplemented to give OM's results:
// the same radial statistics in float in the same summation order, the same
// 8-connected growth, local background disc, centroids and rejection tests
// (omdevteam/om src/cython/peakfinder8.cpp). Mask convention here: non-zero =
// masked (OM's is the reverse); pixels with radius < min_res or > max_res are
// masked too, as om.algorithms.crystallography.Peakfinder8PeakDetection does.
//
// Buffers are sized once in the constructor (geometry, mask, parameters);
// find() allocates nothing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "huge_pages.h"

namespace beamedge {

struct Pf8Params {
  float adc_thresh = 0;
  float min_snr = 0;
  int min_pix = 1;
  int max_pix = 1;  // >= 1
  int local_bg_radius = 0;
  float min_res = 0;
  float max_res = 1e30f;
  int max_num_peaks = 0;
  int asic_nx = 0;  // 0: the whole width is one ASIC
  int asic_ny = 0;  // 0: the whole height is one ASIC
};

// Output columns, each with room for max_num_peaks entries.
struct Pf8Out {
  float* fs;
  float* ss;
  float* intensity;      // total, local background subtracted
  float* max_intensity;  // maximum pixel, local background subtracted
  float* sigma;          // local background sigma
  float* snr;
  int32_t* pixels;
};

// Kernel of the clipping passes picked at run time: "avx2", or "scalar" (the
// portable SSE2 path; BEAMEDGE_KERNELS=scalar forces it). Both give the same bits.
const char* peakfinder8_kernel_name();

class Peakfinder8 {
 public:
  // radius: per-pixel distance from the beam centre in pixels, finite, >= 0
  // (the caller checks; values are trusted here). mask may be null.
  Peakfinder8(int width, int height, const float* radius, const uint8_t* mask, const Pf8Params& p);

  // Returns the number of peaks OM would count (stored: min(count, max_num_peaks)).
  int find(const float* data, const Pf8Out& out);
  int find(const int32_t* data, const Pf8Out& out);

  int width() const { return w_; }
  int height() const { return h_; }
  int bins() const { return nbins_; }
  const Pf8Params& params() const { return p_; }
  // Final per-bin statistics of the last find() (for tests).
  const float* bin_offset() const { return roffset_.data(); }
  const float* bin_threshold() const { return rthreshold_.data(); }
  size_t memory_bytes() const;

 private:
  template <typename T>
  void radial_stats(const T* data);
  template <typename T>
  void scatter(const T* data);
  void reset();
  template <typename T>
  int find_peaks(const T* data, const Pf8Out& out);
  template <typename T>
  void process_panel(const T* data, int aifs, int aiss, const Pf8Out& out, int& count);
  template <typename T>
  void search_peak(const T* data, int p, int aifs, int aiss, int& num, float& sum_fs, float& sum_ss,
                   float& sum_i);
  void mark(int pi, uint8_t v);

  int w_, h_, n_, anx_, any_;
  Pf8Params p_;
  int nbins_ = 0;
  float gmin_thr_ = 0;
  std::vector<int32_t> bin_;      // rint(radius) per pixel
  std::vector<uint8_t> good_;     // 1 = usable (OM's mask != 0)
  std::vector<float> rthreshold_, lthreshold_, roffset_, rsigma_;
  // Radial statistics run bin-major: the usable pixels of each bin in row
  // order (OM's summation order within a bin; bins are independent), kLanes
  // bins side by side, one bin per SIMD lane, padded with NaN (never inside a
  // window). All five clipping passes of a group run on its values while
  // they sit in cache.
  static constexpr int kLanes = 16;
  std::vector<int32_t> group_len_;  // elements per lane of each group of kLanes bins
  std::vector<int64_t> group_off_;  // ngroups + 1 offsets into gbuf_
  std::vector<uint32_t> slot_;      // per pixel: its place in gbuf_, or the trash slot
  static constexpr int kChunk = 64;  // pixels per chunk_max_ entry
  std::vector<float> chunk_max_;      // largest value of each run of kChunk pixels (row-major), from the scatter
  std::vector<float, HugePageAlloc<float>> gbuf_;  // the frame bin-major (see the constructor), then the trash slot
  std::vector<uint8_t> in_peak_;  // OM's pix_in_peak_map
  std::vector<int32_t> touched_;  // pixels set in in_peak_ this frame
  size_t ntouched_ = 0;
  std::vector<int32_t> infs_, inss_;  // growth list (OM reads one entry past the end: kept as OM's calloc'd arrays)
  int infs_high_ = 0;
  std::vector<int32_t> peak_pixels_;
  std::vector<int16_t> ring_dfs_, ring_dss_;  // local background disc offsets, OM's order
};

}  // namespace beamedge
