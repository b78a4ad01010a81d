// peakfinder8 with OM's semantics; see peakfinder8.h. Every float operation
// below is the one OM performs, in OM's order (the build has
// -ffp-contract=off), so thresholds, centroids and intensities come out the
// same bit for bit on the same input.
#include "peakfinder8.h"

#include <emmintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

namespace beamedge {

namespace {
inline int rint_int(float v) { return static_cast<int>(std::rint(v)); }
constexpr int kIterations = 5;  // OM: peakfinder8(), iterations = 5
}  // namespace

Peakfinder8::Peakfinder8(int width, int height, const float* radius, const uint8_t* mask, const Pf8Params& p)
    : w_(width), h_(height), n_(width * height), p_(p) {
  anx_ = p.asic_nx > 0 ? p.asic_nx : w_;
  any_ = p.asic_ny > 0 ? p.asic_ny : h_;
  float max_r = -1e9f;
  for (int i = 0; i < n_; ++i) max_r = std::max(max_r, radius[i]);
  nbins_ = static_cast<int>(std::ceil(max_r)) + 1;
  bin_.resize(n_);
  sbin_.resize(n_);
  good_.resize(n_);
  for (int i = 0; i < n_; ++i) {
    const float r = radius[i];
    bin_[i] = rint_int(r);
    const bool ok = !(mask && mask[i]) && !(r < p.min_res) && !(r > p.max_res);
    good_[i] = ok;
    sbin_[i] = ok ? bin_[i] : nbins_;
  }
  for (auto* v : {&rthreshold_, &lthreshold_, &roffset_, &rsigma_}) v->assign(nbins_ + 1, 0.f);
  acc_.assign(nbins_ + 1, Acc{});
  in_peak_.assign(n_, 0);
  touched_.resize(n_);
  infs_.assign(n_ + 1, 0);
  inss_.assign(n_ + 1, 0);
  peak_pixels_.assign(std::max(p.max_pix, 1), 0);
  const int rw = 2 * p.local_bg_radius;
  for (int ssj = -rw; ssj < rw; ++ssj)
    for (int fsi = -rw; fsi < rw; ++fsi) {
      const float pr = static_cast<float>(std::sqrt(static_cast<double>(fsi * fsi + ssj * ssj)));
      if (pr > rw) continue;
      ring_dfs_.push_back(static_cast<int16_t>(fsi));
      ring_dss_.push_back(static_cast<int16_t>(ssj));
    }
}

size_t Peakfinder8::memory_bytes() const {
  return bin_.size() * 8 + good_.size() + in_peak_.size() + touched_.size() * 4 + infs_.size() * 8 +
         conv_.capacity() * 4 + (nbins_ + 1) * 48 + peak_pixels_.size() * 4;
}

// OM: compute_radial_bins / fill_radial_bins / compute_radial_stats.
void Peakfinder8::radial_stats(const float* data) {
  const int nb = nbins_;
  for (int i = 0; i < nb; ++i) {
    rthreshold_[i] = 1e9f;
    lthreshold_[i] = -1e9f;
  }
  // the dummy bin for masked pixels never accepts a value
  rthreshold_[nb] = lthreshold_[nb] = NAN;
  // one 32-byte record per bin in the hot loop: bounds and sums share a cache line
  std::vector<Acc>& acc = acc_;
  float* hi = rthreshold_.data();
  float* lo = lthreshold_.data();
  for (int i = 0; i <= nb; ++i) {
    acc[i].lo = lo[i];
    acc[i].hi = hi[i];
  }
  const int32_t* sb = sbin_.data();
  Acc* a = acc.data();
  for (int it = 0; it < kIterations; ++it) {
    for (int i = 0; i <= nb; ++i) {
      a[i].sum = 0;
      a[i].sq = 0;
      a[i].cnt = 0;
    }
    for (int i = 0; i < n_; ++i) {
      Acc& b = a[sb[i]];
      const float v = data[i];
      if (v < b.hi && v > b.lo) {
        b.sum += v;
        b.sq += v * v;
        b.cnt += 1;
      }
    }
    for (int ri = 0; ri < nb; ++ri) {
      const int32_t cnt = a[ri].cnt;
      if (cnt == 0) {
        roffset_[ri] = 0;
        rsigma_[ri] = 0;
        hi[ri] = FLT_MAX;
        lo[ri] = FLT_MIN;  // sic: the smallest positive float
      } else {
        const float off = a[ri].sum / cnt;
        float sig = a[ri].sq / cnt - (off * off);
        if (sig >= 0) sig = std::sqrt(sig);
        roffset_[ri] = off;
        rsigma_[ri] = sig;
        hi[ri] = off + p_.min_snr * sig;
        lo[ri] = off - p_.min_snr * sig;
        if (hi[ri] < p_.adc_thresh) hi[ri] = p_.adc_thresh;
      }
      a[ri].lo = lo[ri];
      a[ri].hi = hi[ri];
    }
  }
  float g = FLT_MAX;
  for (int ri = 0; ri < nb; ++ri) g = std::min(g, hi[ri]);
  gmin_thr_ = g;
}

inline void Peakfinder8::mark(int pi, uint8_t v) {
  if (in_peak_[pi] == 0) touched_[ntouched_++] = pi;
  in_peak_[pi] = v;
}

// OM: peak_search(). Entry p of the growth list; p may be one past the end
// (OM's loop runs p <= num), in which case the entry is whatever an earlier
// peak of this frame left there, or 0.
inline void Peakfinder8::search_peak(const float* data, int p, int aifs, int aiss, int& num, float& sum_fs,
                                     float& sum_ss, float& sum_i) {
  static const int sfs[9] = {0, -1, 0, 1, -1, 1, -1, 0, 1};
  static const int sss[9] = {0, -1, -1, -1, 0, 0, 1, 1, 1};
  const float* thr = rthreshold_.data();
  const float* off = roffset_.data();
  for (int k = 0; k < 9; ++k) {
    const int rfs = infs_[p] + sfs[k], rss = inss_[p] + sss[k];
    if (rfs < 0 || rfs >= anx_ || rss < 0 || rss >= any_) continue;
    const int cfs = rfs + aifs * anx_, css = rss + aiss * any_;
    const int pi = cfs + css * w_;
    const int cr = bin_[pi];
    if (data[pi] > thr[cr] && in_peak_[pi] == 0 && good_[pi]) {
      const float ci = data[pi] - off[cr];
      sum_i += ci;
      sum_fs += ci * static_cast<float>(cfs);
      sum_ss += ci * static_cast<float>(css);
      inss_[num] = rss;
      infs_[num] = rfs;
      mark(pi, 1);
      if (num < p_.max_pix) peak_pixels_[num] = pi;
      ++num;
    }
  }
}

// OM: process_panel() with search_in_ring() inlined.
void Peakfinder8::process_panel(const float* data, int aifs, int aiss, const Pf8Out& out, int& count) {
  const float* thr = rthreshold_.data();
  const float* off = roffset_.data();
  const __m128 gmin = _mm_set1_ps(gmin_thr_);
  for (int pxss = 1; pxss < any_ - 1; ++pxss) {
    const int row = (pxss + aiss * any_) * w_ + aifs * anx_;
    int pxfs = 1;
    for (; pxfs < anx_ - 1; ++pxfs) {
      // skip four at a time while nothing is above the lowest threshold
      while (pxfs + 4 <= anx_ - 1 && _mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(data + row + pxfs), gmin)) == 0)
        pxfs += 4;
      if (pxfs >= anx_ - 1) break;
      const int pxidx = row + pxfs;
      const float v = data[pxidx];
      if (!(v > thr[bin_[pxidx]] && in_peak_[pxidx] == 0 && good_[pxidx])) continue;

      infs_[0] = pxfs;
      inss_[0] = pxss;
      peak_pixels_[0] = pxidx;
      int num = 0;
      float sum_i = 0, sum_fs = 0, sum_ss = 0;
      // OM repeats this loop until num stops changing; a second pass can add
      // nothing (every entry's neighbours were tested after the last addition).
      for (int p = 0; p <= num; ++p) search_peak(data, p, aifs, aiss, num, sum_fs, sum_ss, sum_i);
      infs_high_ = std::max(infs_high_, num + 1);

      if (num < p_.min_pix || num > p_.max_pix) continue;
      if (std::fabs(sum_i) < 1e-10) continue;
      float com_fs = sum_fs / std::fabs(sum_i);
      float com_ss = sum_ss / std::fabs(sum_i);
      const int com_idx = rint_int(com_fs) + rint_int(com_ss) * w_;
      const int cfi = rint_int(com_fs) - aifs * anx_;
      const int csi = rint_int(com_ss) - aiss * any_;

      // local background in the disc of radius 2 * local_bg_radius
      float lsum = 0, lsq = 0, bg_max = 0, local_offset, local_sigma;
      int np_sigma = 0;
      for (size_t k = 0; k < ring_dfs_.size(); ++k) {
        const int rfs = cfi + ring_dfs_[k], rss = csi + ring_dss_[k];
        if (rfs < 0 || rfs >= anx_ || rss < 0 || rss >= any_) continue;
        const int pi = (rfs + aifs * anx_) + (rss + aiss * any_) * w_;
        const float ci = data[pi];
        if (ci < thr[bin_[pi]] && in_peak_[pi] == 0 && good_[pi]) {
          ++np_sigma;
          lsum += ci;
          lsq += ci * ci;
          if (ci > bg_max) bg_max = ci;
        }
      }
      if (np_sigma != 0) {
        local_offset = lsum / np_sigma;
        local_sigma = lsq / np_sigma - local_offset * local_offset;
        local_sigma = local_sigma >= 0 ? std::sqrt(local_sigma) : 0.01f;
      } else {
        // OM reads r_map[com_idx] unchecked; kept inside the frame here
        const int ci = std::min(std::max(com_idx, 0), n_ - 1);
        local_offset = off[bin_[ci]];
        local_sigma = 0.01f;
      }

      float tot = 0, tot_raw = 0, max_i = 0, max_raw = 0;
      sum_fs = 0;
      sum_ss = 0;
      for (int k = 0; k < num && k < p_.max_pix; ++k) {
        const int idx = peak_pixels_[k];
        const float raw = data[idx];
        const float ci = raw - local_offset;
        tot += ci;
        tot_raw += raw;
        sum_fs += raw * static_cast<float>(idx % w_);
        sum_ss += raw * static_cast<float>(idx / w_);
        if (raw > max_raw) max_raw = raw;
        if (ci > max_i) max_i = ci;
      }
      if (std::fabs(tot_raw) < 1e-10) continue;
      com_fs = sum_fs / std::fabs(tot_raw);
      com_ss = sum_ss / std::fabs(tot_raw);
      const float snr = std::fabs(local_sigma) > 1e-10 ? tot / local_sigma : 0.f;
      if (snr < p_.min_snr) continue;
      if (max_i < bg_max - local_offset) continue;
      if (com_fs < aifs * anx_ || com_fs > (aifs + 1) * anx_ - 1 || com_ss < aiss * any_ ||
          com_ss > (aiss + 1) * any_ - 1)
        continue;
      for (int k = 0; k < num && k < p_.max_pix; ++k) in_peak_[peak_pixels_[k]] = 2;
      if (count < p_.max_num_peaks) {
        out.fs[count] = com_fs;
        out.ss[count] = com_ss;
        out.intensity[count] = tot;
        out.max_intensity[count] = max_i;
        out.sigma[count] = local_sigma;
        out.snr[count] = snr;
        out.pixels[count] = num;
      }
      ++count;
    }
  }
}

int Peakfinder8::find(const float* data, const Pf8Out& out) {
  // a fresh frame: OM callocs its maps per call
  for (size_t i = 0; i < ntouched_; ++i) in_peak_[touched_[i]] = 0;
  ntouched_ = 0;
  std::fill(infs_.begin(), infs_.begin() + infs_high_, 0);
  std::fill(inss_.begin(), inss_.begin() + infs_high_, 0);
  infs_high_ = 0;
  radial_stats(data);
  int count = 0;
  const int nax = w_ / anx_, nay = h_ / any_;
  for (int aiss = 0; aiss < nay; ++aiss)
    for (int aifs = 0; aifs < nax; ++aifs) process_panel(data, aifs, aiss, out, count);
  return count;
}

int Peakfinder8::find(const int32_t* data, const Pf8Out& out) {
  if (conv_.size() != static_cast<size_t>(n_)) conv_.resize(n_);  // once, on the first int32 frame
  for (int i = 0; i < n_; ++i) conv_[i] = static_cast<float>(data[i]);
  return find(conv_.data(), out);
}

}  // namespace beamedge
