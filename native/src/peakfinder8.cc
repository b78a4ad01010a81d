// peakfinder8 with OM's semantics; see peakfinder8.h. Every float operation
// below is the one OM performs, in OM's order (the build has
// -ffp-contract=off), so thresholds, centroids and intensities come out the
// same bit for bit on the same input.
//
// Radial statistics: OM sums each radius bin's pixels in row order, pass after
// pass over the whole frame; the per-bin float chains made that loop latency
// bound. Bins are independent, so here the frame is scattered once per frame
// into a bin-major copy (each bin's values still in row order, 16 bins side
// by side in SIMD lanes, padded with NaN, which no window takes), and a group
// of 16 bins runs its clipping passes on that copy: each lane performs exactly
// OM's additions for its bin, in OM's order. A group stops early when a pass
// returns every window unchanged bit for bit (the later passes would repeat
// it). Checked bit for bit against OM's code on the test references.
#include "peakfinder8.h"

#include "cpu.h"

#include <emmintrin.h>
#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>

namespace beamedge {


namespace {
inline int rint_int(float v) { return static_cast<int>(std::rint(v)); }
constexpr int kIterations = 5;  // OM: peakfinder8(), iterations = 5
constexpr int kWriteAhead = 64;  // scatter: prefetch this far ahead in each group's region
constexpr int kRowBlock = 16;    // rows per block of the bin-major layout
}  // namespace

Peakfinder8::Peakfinder8(int width, int height, const float* radius, const uint8_t* mask, const Pf8Params& p)
    : w_(width), h_(height), n_(width * height), p_(p) {
  anx_ = p.asic_nx > 0 ? p.asic_nx : w_;
  any_ = p.asic_ny > 0 ? p.asic_ny : h_;
  float max_r = -1e9f;
  for (int i = 0; i < n_; ++i) max_r = std::max(max_r, radius[i]);
  nbins_ = static_cast<int>(std::ceil(max_r)) + 1;
  bin_.resize(n_);
  good_.resize(n_);
  for (int i = 0; i < n_; ++i) {
    const float r = radius[i];
    bin_[i] = rint_int(r);
    good_[i] = !(mask && mask[i]) && !(r < p.min_res) && !(r > p.max_res);
  }
  // Layout of gbuf_: per group of kLanes bins, [element][lane]; within a
  // group, blocks of kRowBlock rows follow each other, each block as long as
  // its bin with the most usable pixels in those rows (the other lanes padded
  // with NaN). Each bin's values keep row order; the scatter's writes for a
  // block of rows land close together.
  const int ngroups = (nbins_ + kLanes - 1) / kLanes;
  const int nblk = (h_ + kRowBlock - 1) / kRowBlock;
  std::vector<int32_t> cnt(static_cast<size_t>(nblk) * ngroups * kLanes, 0);  // [block][bin]
  for (int i = 0; i < n_; ++i)
    if (good_[i]) ++cnt[static_cast<size_t>(i / w_ / kRowBlock) * ngroups * kLanes + bin_[i]];
  std::vector<int64_t> base(static_cast<size_t>(nblk) * ngroups);  // [block][group]
  group_off_.assign(ngroups + 1, 0);
  group_len_.assign(ngroups, 0);
  int64_t at = 0;
  for (int g = 0; g < ngroups; ++g) {
    group_off_[g] = at;
    for (int k = 0; k < nblk; ++k) {
      const int32_t* c = cnt.data() + (static_cast<size_t>(k) * ngroups + g) * kLanes;
      const int len = *std::max_element(c, c + kLanes);
      base[static_cast<size_t>(k) * ngroups + g] = at;
      at += static_cast<int64_t>(len) * kLanes;
      group_len_[g] += len;
    }
  }
  group_off_[ngroups] = at;
  if (at >= INT32_MAX) throw std::length_error("peakfinder8: frame too large");
  const uint32_t trash = static_cast<uint32_t>(at);
  slot_.resize(n_);
  for (int k = 0; k < nblk; ++k) {
    int32_t* rank = cnt.data() + static_cast<size_t>(k) * ngroups * kLanes;
    std::fill(rank, rank + ngroups * kLanes, 0);
    const int64_t* bb = base.data() + static_cast<size_t>(k) * ngroups;
    for (int i = k * kRowBlock * w_; i < std::min(n_, (k + 1) * kRowBlock * w_); ++i) {
      const int b = bin_[i];
      slot_[i] = good_[i] ? static_cast<uint32_t>(bb[b / kLanes] + static_cast<int64_t>(rank[b]++) * kLanes + b % kLanes)
                          : trash;
    }
  }
  // padding holds NaN from here on: only usable pixels' slots and the trash slot are written
  gbuf_.assign(static_cast<size_t>(trash) + 1, NAN);
  chunk_max_.assign((n_ + kChunk - 1) / kChunk, 0.f);
  for (auto* v : {&rthreshold_, &lthreshold_, &roffset_, &rsigma_}) v->assign(nbins_ + 1, 0.f);
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
  return bin_.size() * 4 + slot_.size() * 4 + gbuf_.size() * 4 + chunk_max_.size() * 4 + good_.size() + in_peak_.size() + touched_.size() * 4 + infs_.size() * 8 +
         (nbins_ + 1) * 48 + peak_pixels_.size() * 4;
}

namespace {

// One clipping pass over a group: for each lane (bin), in element order, OM's
//   if (v < hi && v > lo) { sum += v; sq += v * v; ++cnt; }
// written as sum += (inside ? v : +0): sum starts at +0 and a float sum of
// non-zero terms that comes out zero is +0, so adding +0 changes nothing
// (NaN and infinities stay what they are). The same float operations on each
// bin's values in the same order: the result is OM's bit for bit.
using PassFn = void (*)(const float* buf, int len, const float* lo, const float* hi, float* sum, float* sq,
                        int32_t* cnt);

void pass_portable(const float* buf, int len, const float* lo, const float* hi, float* sum, float* sq,
                   int32_t* cnt) {
#if defined(__SSE2__)
  constexpr int V = 16 / 4;
  __m128 s[V], q[V], l[V], h[V];
  __m128i c[V];
  for (int j = 0; j < V; ++j) {
    s[j] = q[j] = _mm_setzero_ps();
    c[j] = _mm_setzero_si128();
    l[j] = _mm_loadu_ps(lo + 4 * j);
    h[j] = _mm_loadu_ps(hi + 4 * j);
  }
  for (int k = 0; k < len; ++k) {
    const float* row = buf + static_cast<size_t>(k) * 16;
    for (int j = 0; j < V; ++j) {
      const __m128 v = _mm_loadu_ps(row + 4 * j);
      const __m128 m = _mm_and_ps(_mm_cmplt_ps(v, h[j]), _mm_cmpgt_ps(v, l[j]));
      s[j] = _mm_add_ps(s[j], _mm_and_ps(m, v));
      q[j] = _mm_add_ps(q[j], _mm_and_ps(m, _mm_mul_ps(v, v)));
      c[j] = _mm_sub_epi32(c[j], _mm_castps_si128(m));
    }
  }
  for (int j = 0; j < V; ++j) {
    _mm_storeu_ps(sum + 4 * j, s[j]);
    _mm_storeu_ps(sq + 4 * j, q[j]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(cnt + 4 * j), c[j]);
  }
#else
  for (int j = 0; j < 16; ++j) {
    sum[j] = sq[j] = 0;
    cnt[j] = 0;
  }
  for (int k = 0; k < len; ++k)
    for (int j = 0; j < 16; ++j) {
      const float v = buf[static_cast<size_t>(k) * 16 + j];
      if (v < hi[j] && v > lo[j]) {
        sum[j] += v;
        sq[j] += v * v;
        cnt[j] += 1;
      }
    }
#endif
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) void pass_avx2(const float* buf, int len, const float* lo, const float* hi,
                                               float* sum, float* sq, int32_t* cnt) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, q0 = s0, q1 = s0;
  __m256i c0 = _mm256_setzero_si256(), c1 = c0;
  const __m256 l0 = _mm256_loadu_ps(lo), l1 = _mm256_loadu_ps(lo + 8);
  const __m256 h0 = _mm256_loadu_ps(hi), h1 = _mm256_loadu_ps(hi + 8);
  for (int k = 0; k < len; ++k) {
    const float* row = buf + static_cast<size_t>(k) * 16;
    const __m256 v0 = _mm256_loadu_ps(row), v1 = _mm256_loadu_ps(row + 8);
    const __m256 m0 = _mm256_and_ps(_mm256_cmp_ps(v0, h0, _CMP_LT_OQ), _mm256_cmp_ps(v0, l0, _CMP_GT_OQ));
    const __m256 m1 = _mm256_and_ps(_mm256_cmp_ps(v1, h1, _CMP_LT_OQ), _mm256_cmp_ps(v1, l1, _CMP_GT_OQ));
    s0 = _mm256_add_ps(s0, _mm256_and_ps(m0, v0));
    s1 = _mm256_add_ps(s1, _mm256_and_ps(m1, v1));
    q0 = _mm256_add_ps(q0, _mm256_and_ps(m0, _mm256_mul_ps(v0, v0)));
    q1 = _mm256_add_ps(q1, _mm256_and_ps(m1, _mm256_mul_ps(v1, v1)));
    c0 = _mm256_sub_epi32(c0, _mm256_castps_si256(m0));
    c1 = _mm256_sub_epi32(c1, _mm256_castps_si256(m1));
  }
  _mm256_storeu_ps(sum, s0);
  _mm256_storeu_ps(sum + 8, s1);
  _mm256_storeu_ps(sq, q0);
  _mm256_storeu_ps(sq + 8, q1);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(cnt), c0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(cnt + 8), c1);
}
#endif

bool use_avx2() {
#if defined(__x86_64__) && defined(__GNUC__)
  return cpu_has_avx2();
#else
  return false;
#endif
}

PassFn pick_pass() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx2()) return pass_avx2;
#endif
  return pass_portable;
}

}  // namespace

const char* peakfinder8_kernel_name() { return use_avx2() ? "avx2" : "scalar"; }

// The frame into gbuf_: one stream over the frame in row order to
// precomputed slots, so each bin's values keep OM's order; unusable pixels
// land in the trash slot.
template <typename T>
void Peakfinder8::scatter(const T* data) {
  float* buf = gbuf_.data();
  const uint32_t* slot = slot_.data();
  float* cmax = chunk_max_.data();
  for (int i0 = 0; i0 < n_; i0 += kChunk) {
    const int i1 = std::min(n_, i0 + kChunk);
    float m = -INFINITY;  // the chunk's largest value (NaN never counts)
    for (int i = i0; i < i1; ++i) {
      __builtin_prefetch(buf + slot[i] + kWriteAhead, 1);
      const float v = static_cast<float>(data[i]);
      buf[slot[i]] = v;
      m = m < v ? v : m;
    }
    cmax[i0 / kChunk] = m;
  }
}

// OM: compute_radial_bins / fill_radial_bins / compute_radial_stats, one
// group of bins at a time (each bin's statistics depend on its pixels only).
template <typename T>
void Peakfinder8::radial_stats(const T* data) {
  static const PassFn pass = pick_pass();
  const int nb = nbins_;
  float* hi = rthreshold_.data();
  float* lo = lthreshold_.data();
  const int ngroups = static_cast<int>(group_len_.size());
  alignas(32) float glo[kLanes], ghi[kLanes], sum[kLanes], sq[kLanes];
  alignas(32) int32_t cnt[kLanes];
  scatter(data);
  for (int g = 0; g < ngroups; ++g) {
    const int b0 = g * kLanes;
    const int nl = std::min(kLanes, nb - b0);
    for (int j = 0; j < kLanes; ++j) {
      ghi[j] = 1e9f;
      glo[j] = -1e9f;
    }
    for (int it = 0; it < kIterations; ++it) {
      pass(gbuf_.data() + group_off_[g], group_len_[g], glo, ghi, sum, sq, cnt);
      bool same = true;  // every lane's window came out as it went in (bit for bit)
      for (int j = 0; j < nl; ++j) {
        const int ri = b0 + j;
        if (cnt[j] == 0) {
          roffset_[ri] = 0;
          rsigma_[ri] = 0;
          hi[ri] = FLT_MAX;
          lo[ri] = FLT_MIN;  // sic: the smallest positive float
        } else {
          const float off = sum[j] / cnt[j];
          float sig = sq[j] / cnt[j] - (off * off);
          if (sig >= 0) sig = std::sqrt(sig);
          roffset_[ri] = off;
          rsigma_[ri] = sig;
          hi[ri] = off + p_.min_snr * sig;
          lo[ri] = off - p_.min_snr * sig;
          if (hi[ri] < p_.adc_thresh) hi[ri] = p_.adc_thresh;
        }
        same = same && std::memcmp(&glo[j], &lo[ri], sizeof(float)) == 0 &&
               std::memcmp(&ghi[j], &hi[ri], sizeof(float)) == 0;
        glo[j] = lo[ri];
        ghi[j] = hi[ri];
      }
      // Converged: the next pass would take the same pixels, so the same
      // sums and the same windows; OM's remaining passes change nothing.
      if (same) break;
    }
  }
  float g = FLT_MAX;
  for (int ri = 0; ri < nb; ++ri) g = std::min(g, hi[ri]);
  gmin_thr_ = g;
}

namespace {
inline __m128 load4(const float* p) { return _mm_loadu_ps(p); }
inline __m128 load4(const int32_t* p) {  // the same values as static_cast<float>
  return _mm_cvtepi32_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
}  // namespace

inline void Peakfinder8::mark(int pi, uint8_t v) {
  if (in_peak_[pi] == 0) touched_[ntouched_++] = pi;
  in_peak_[pi] = v;
}

// OM: peak_search(). Entry p of the growth list; p may be one past the end
// (OM's loop runs p <= num), in which case the entry is whatever an earlier
// peak of this frame left there, or 0.
template <typename T>
inline void Peakfinder8::search_peak(const T* data, int p, int aifs, int aiss, int& num, float& sum_fs,
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
    const float v = static_cast<float>(data[pi]);
    if (v > thr[cr] && in_peak_[pi] == 0 && good_[pi]) {
      const float ci = v - off[cr];
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
template <typename T>
void Peakfinder8::process_panel(const T* data, int aifs, int aiss, const Pf8Out& out, int& count) {
  const float* thr = rthreshold_.data();
  const float* off = roffset_.data();
  const __m128 gmin = _mm_set1_ps(gmin_thr_);
  const float* cmax = chunk_max_.data();
  for (int pxss = 1; pxss < any_ - 1; ++pxss) {
    const int row = (pxss + aiss * any_) * w_ + aifs * anx_;
    int pxfs = 1;
    for (; pxfs < anx_ - 1; ++pxfs) {
      // skip whole chunks (maxima from the scatter) with nothing above the
      // lowest threshold: no pixel there can pass v > thr[bin]
      while (pxfs < anx_ - 1 && !(cmax[(row + pxfs) / kChunk] > gmin_thr_))
        pxfs = ((row + pxfs) / kChunk + 1) * kChunk - row;
      if (pxfs >= anx_ - 1) break;
      // skip four at a time while nothing is above the lowest threshold
      while (pxfs + 4 <= anx_ - 1 && _mm_movemask_ps(_mm_cmpgt_ps(load4(data + row + pxfs), gmin)) == 0)
        pxfs += 4;
      if (pxfs >= anx_ - 1) break;
      const int pxidx = row + pxfs;
      const float v = static_cast<float>(data[pxidx]);
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
        const float ci = static_cast<float>(data[pi]);
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
        const float raw = static_cast<float>(data[idx]);
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

void Peakfinder8::reset() {
  // a fresh frame: OM callocs its maps per call
  for (size_t i = 0; i < ntouched_; ++i) in_peak_[touched_[i]] = 0;
  ntouched_ = 0;
  std::fill(infs_.begin(), infs_.begin() + infs_high_, 0);
  std::fill(inss_.begin(), inss_.begin() + infs_high_, 0);
  infs_high_ = 0;
}

int Peakfinder8::find(const float* data, const Pf8Out& out) {
  reset();
  radial_stats(data);
  return find_peaks(data, out);
}

template <typename T>
int Peakfinder8::find_peaks(const T* data, const Pf8Out& out) {
  int count = 0;
  const int nax = w_ / anx_, nay = h_ / any_;
  for (int aiss = 0; aiss < nay; ++aiss)
    for (int aifs = 0; aifs < nax; ++aifs) process_panel(data, aifs, aiss, out, count);
  return count;
}

int Peakfinder8::find(const int32_t* data, const Pf8Out& out) {
  reset();
  radial_stats(data);
  return find_peaks(data, out);
}

}  // namespace beamedge
