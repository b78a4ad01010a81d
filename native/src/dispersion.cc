// DIALS 3.12 dispersion spot finder, bit-exact: see dispersion.h for the rules.
#include "dispersion.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace beamedge {

namespace {

constexpr double kBig = double(1 << 24);  // DIALS: "Largest value to consider"
// Below this a frame's sum of squares (and every partial sum) is an exact double: 2^51
// with a margin, past which DIALS's summed-area tables lose integers.
constexpr double kExactLimit = 2251799813685248.0 * 0.999;

// Exact int64 -> double for |v| < 2^51 (vectorizes without AVX-512).
inline double i2d(int64_t v) {
  const int64_t bits = v + 0x4338000000000000LL;
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d - 6755399441055744.0;
}

struct Formula {
  double nsig_b, nsig_s, threshold, gain;
  bool use_gain;
  int min_count;
  // DispersionThreshold::compute_threshold (with and without gain), m, x, y already summed.
  bool strong(double m, double x, double y, double v) const {
    if (!(m >= min_count && x >= 0 && v > threshold)) return false;
    if (!use_gain) {
      double a = m * y - x * x - x * (m - 1);
      double b = m * v - x;
      double c = x * nsig_b * std::sqrt(2 * (m - 1));
      double d = nsig_s * std::sqrt(x * m);
      return a > c && b > d;
    }
    double a = m * y - x * x;
    double b = m * v - x;
    double c = gain * x * (m - 1 + nsig_b * std::sqrt(2 * (m - 1)));
    double d = nsig_s * std::sqrt(gain * x * m);
    return a > c && b > d;
  }
  // DispersionExtendedThreshold::compute_dispersion_threshold
  bool dispersed(double m, double x, double y) const {
    if (!(m >= min_count && x >= 0)) return false;
    if (!use_gain) {
      double a = m * y - x * x - x * (m - 1);
      double c = x * nsig_b * std::sqrt(2 * (m - 1));
      return a > c;
    }
    double a = m * y - x * x;
    double c = gain * x * (m - 1 + nsig_b * std::sqrt(2 * (m - 1)));
    return a > c;
  }
  // DispersionExtendedThreshold::compute_final_threshold, past the mask / core tests.
  bool final_local(double m, double x, double v) const {
    if (!(m >= 0 && x >= 0)) return false;
    bool global_mask = v > threshold;
    double mean = (m >= 2 ? (x / m) : 0);
    bool local_mask = use_gain ? v >= (mean + nsig_s * std::sqrt(gain * mean)) : v >= (mean + nsig_s * std::sqrt(mean));
    return global_mask && local_mask;
  }
};

// Sliding box sums over the pixels with incl[k] != 0, half sizes kx, ky, clipped
// at the edges. For each row j, cb(j, pm, px, py) gets the row prefix sums of the
// column sums: the box at column i is P[min(i + kx, w - 1) + 1] - P[max(i - kx, 0)].
template <bool WithY, typename Cb>
inline __attribute__((always_inline)) void box_rows(const int32_t* img, const uint8_t* incl, size_t w, size_t h,
                                                     size_t kx, size_t ky, int32_t* col_m, int64_t* col_x,
                                                     int64_t* col_y, int64_t* pm, int64_t* px, int64_t* py, Cb&& cb) {
  (void)kx;
  std::fill(col_m, col_m + w, 0);
  std::fill(col_x, col_x + w, 0);
  if (WithY) std::fill(col_y, col_y + w, 0);
  auto add = [&](size_t r, int64_t sign) {
    const int32_t* s = img + r * w;
    const uint8_t* in = incl + r * w;
    for (size_t i = 0; i < w; ++i) {
      const int64_t on = in[i] != 0;
      const int64_t v = on ? int64_t(s[i]) : 0;
      col_m[i] += int32_t(sign * on);
      col_x[i] += sign * v;
      if (WithY) col_y[i] += sign * (v * v);
    }
  };
  for (size_t r = 0; r <= std::min(ky, h - 1); ++r) add(r, 1);
  for (size_t j = 0; j < h; ++j) {
    if (j > 0) {
      if (j + ky < h) add(j + ky, 1);
      if (j >= ky + 1) add(j - ky - 1, -1);
    }
    int64_t am = 0, ax = 0, ay = 0;
    pm[0] = px[0] = 0;
    if (WithY) py[0] = 0;
    for (size_t i = 0; i < w; ++i) {
      am += col_m[i];
      ax += col_x[i];
      pm[i + 1] = am;
      px[i + 1] = ax;
      if (WithY) {
        ay += col_y[i];
        py[i + 1] = ay;
      }
    }
    cb(j);
  }
}

struct FastArgs {
  const int32_t* img;
  const uint8_t* mask;
  const uint8_t* incl;
  uint8_t* out;
  size_t w, h, kx, ky;
  int32_t* col_m;
  int64_t *col_x, *col_y, *pm, *px, *py;
  uint8_t* cand;
  Formula f;
  bool dispersion_only;  // extended pass 1: a > c only
};

// Pass 1 of both variants on the integer path; returns the marked count.
template <int Isa>
inline __attribute__((always_inline)) size_t pass1_t(const FastArgs& A) {
  const size_t w = A.w, kx = A.kx;
  const double mfull = double((2 * A.kx + 1) * (2 * A.ky + 1));
  const double sfull = std::sqrt(2 * (mfull - 1));
  const double smin = std::sqrt(2 * (double(A.f.min_count) - 1));
  const Formula& f = A.f;
  size_t count = 0;
  box_rows<true>(A.img, A.incl, w, A.h, kx, A.ky, A.col_m, A.col_x, A.col_y, A.pm, A.px, A.py, [&](size_t j) {
    const int32_t* src = A.img + j * w;
    const uint8_t* mk = A.mask + j * w;
    uint8_t* o = A.out + j * w;
    // Necessary conditions, vectorizable: c with sqrt(2 (m - 1)) replaced by a lower
    // bound (exact where m is the full kernel), b > 0 for b > d. Rounding is monotone,
    // so no pixel that passes the exact test is dropped here.
    auto prefilter = [&](size_t i, size_t lo, size_t hi) -> uint8_t {
      const double m = i2d(A.pm[hi] - A.pm[lo]);
      const double x = i2d(A.px[hi] - A.px[lo]);
      const double y = i2d(A.py[hi] - A.py[lo]);
      const double v = double(src[i]);
      const double s = m == mfull ? sfull : smin;
      double a, c;
      if (!f.use_gain) {
        a = m * y - x * x - x * (m - 1);
        c = x * f.nsig_b * s;
      } else {
        a = m * y - x * x;
        c = f.gain * x * (m - 1 + f.nsig_b * s);
      }
      bool ok = (mk[i] == 0) & (m >= f.min_count) & (x >= 0) & (a > c);
      if (!A.dispersion_only) ok = ok & (v > f.threshold) & (m * v - x > 0);
      return ok;
    };
    const size_t left = std::min(kx, w), right = w > kx ? w - kx : 0;
    for (size_t i = 0; i < left; ++i) A.cand[i] = prefilter(i, 0, std::min(i + kx, w - 1) + 1);
    for (size_t i = left; i < right; ++i) A.cand[i] = prefilter(i, i - kx, i + kx + 1);
    for (size_t i = std::max(left, right); i < w; ++i) A.cand[i] = prefilter(i, i - kx, w);
    std::memset(o, 0, w);
    for (size_t i = 0; i < w; ++i) {
      if (!A.cand[i]) continue;
      const size_t lo = i >= kx ? i - kx : 0, hi = std::min(i + kx, w - 1) + 1;
      const double m = double(A.pm[hi] - A.pm[lo]), x = double(A.px[hi] - A.px[lo]), y = double(A.py[hi] - A.py[lo]);
      const bool s = A.dispersion_only ? f.dispersed(m, x, y) : f.strong(m, x, y, double(src[i]));
      o[i] = s;
      count += s;
    }
  });
  return count;
}

size_t pass1_scalar(const FastArgs& A) { return pass1_t<0>(A); }
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) size_t pass1_avx2(const FastArgs& A) { return pass1_t<1>(A); }
#endif

size_t pass1(const FastArgs& A) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx2()) return pass1_avx2(A);
#endif
  return pass1_scalar(A);
}

// ---- Small-kernel path: running integer column sums, 2 image rows per output row.
// Column sums (cm: count, cx: values, cy: squares, all int32) are kept for the
// current output row by adding the row entering the window and removing the row
// leaving it; the horizontal window is then a fixed number of taps over the
// zero-padded column sums. Everything is an exact integer (see small_ok()), so
// the order of additions does not matter and m, x, y equal DIALS's.
//
// Squares: a window of K pixels below ybig = floor(sqrt((2^31 - 1) / K)) sums its
// squares in int32 exactly. A pixel at or above ybig ("big": a Bragg peak or a hot
// pixel, a handful per frame) is left out of cy and adds kBigStep to cm instead, so
// that a window holding one is seen (cm >> 16) and its y is summed from the image.
#define BE_AI inline __attribute__((always_inline))

constexpr int32_t kBigStep = 1 << 16;
BE_AI int32_t count_of(int32_t cm_sum) { return cm_sum & (kBigStep - 1); }

struct SmallArgs {
  const int32_t* img;
  const uint8_t* mask;
  uint8_t* out;
  uint8_t* tmp;
  uint8_t* row;  // w + 2 pad bytes
  size_t w, h;
  int kx, ky;
  int32_t* cm;  // padded by pad entries on both sides
  int32_t* cx;
  int32_t* cy;
  int32_t* pm;  // AVX2, non-extended: pair sums of cm and cx (p[i] = c[i] + c[i + 1]), same padding
  int32_t* px;
  const float* sqf;  // float(sq[m])
  uint8_t* cand;
  uint32_t* rowcnt;  // per row: pass-1 marks, then core pixels
  const double* sq;  // sq[m] = sqrt(2 (m - 1))
  Formula f;
  bool ext;         // extended pass 1: a > c only
  int32_t vthr;     // v > global_threshold  <=>  v > vthr (v integer)
  float bd_k;       // nsig_s^2 (1 - 1e-4): b > d  =>  float(b)^2 > bd_k x m
  int32_t ybig;     // squares of pixels >= ybig are left out of cy (see above)
  double bigsq;     // out: sum of the squares of big pixels
  size_t j;         // the output row being computed
};

// Column sums += row a (if sa), -= row s (if ss). Excl: also leave out pixels with xa/xs set.
// WithY: squares go to cy, or big pixels to cm's high half (and Total: to *bigsq).
template <bool Add, bool Sub, bool WithY, bool Excl, bool Total>
BE_AI void vupdate(const int32_t* sa, const uint8_t* ma, const uint8_t* xa, const int32_t* ss, const uint8_t* ms,
                   const uint8_t* xs, size_t w, int32_t* cm, int32_t* cx, int32_t* cy, int32_t ybig, double* bigsq) {
  // One pixel's change to the three sums, with sign +1 (entering) or -1 (leaving).
  auto take = [&](int32_t v, uint8_t mk, uint8_t ex, int32_t& dm, uint32_t& dx, int32_t& dy, int sign) {
    const int32_t on = int32_t((mk == 0) & (v < (1 << 24)) & (Excl ? ex == 0 : true));
    const int32_t val = v & -on;
    dx += sign > 0 ? uint32_t(val) : -uint32_t(val);
    int32_t c = on;
    if (WithY) {
      if (val >= ybig || val <= -ybig) {
        c += kBigStep;
        if (Total && sign > 0) *bigsq += double(val) * double(val);
      } else {
        dy += sign * val * val;
      }
    }
    dm += sign * c;
  };
  for (size_t k = 0; k < w; ++k) {
    int32_t dm = 0, dy = 0;
    uint32_t dx = 0;
    if (Add) take(sa[k], ma[k], Excl ? xa[k] : 0, dm, dx, dy, 1);
    if (Sub) take(ss[k], ms[k], Excl ? xs[k] : 0, dm, dx, dy, -1);
    cm[k] += dm;
    cx[k] = int32_t(uint32_t(cx[k]) + dx);
    if (WithY) cy[k] += dy;
  }
}

template <int KXT>
BE_AI int32_t hsum(const int32_t* c, size_t i, int kx) {
  int32_t s = 0;
  if (KXT > 0) {
    for (int t = -KXT; t <= KXT; ++t) s = int32_t(uint32_t(s) + uint32_t(c[ptrdiff_t(i) + t]));
  } else {
    for (int t = -kx; t <= kx; ++t) s = int32_t(uint32_t(s) + uint32_t(c[ptrdiff_t(i) + t]));
  }
  return s;
}
// Sum of squares over the pass-1 window of pixel i of row A.j, from the image: for
// windows holding a big pixel. Exact in double (the frame's total is below 2^51).
BE_AI double direct_y(const SmallArgs& A, size_t i) {
  const size_t j = A.j, kx = size_t(A.kx), ky = size_t(A.ky);
  const size_t j0 = j >= ky ? j - ky : 0, j1 = std::min(j + ky, A.h - 1);
  const size_t i0 = i >= kx ? i - kx : 0, i1 = std::min(i + kx, A.w - 1);
  double y = 0;
  for (size_t jj = j0; jj <= j1; ++jj)
    for (size_t ii = i0; ii <= i1; ++ii) {
      const int32_t v = A.img[jj * A.w + ii];
      if (A.mask[jj * A.w + ii] == 0 && v < (1 << 24)) y += double(v) * double(v);
    }
  return y;
}
// m, x, y of pixel i's pass-1 window, exactly as DIALS sums them.
template <int KXT>
BE_AI void window_sums(const SmallArgs& A, size_t i, double& m, double& x, double& y) {
  const int32_t ms = hsum<KXT>(A.cm, i, A.kx);
  m = double(count_of(ms));
  x = double(hsum<KXT>(A.cx, i, A.kx));
  y = ms < kBigStep ? double(hsum<KXT>(A.cy, i, A.kx)) : direct_y(A, i);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define BE_AVX2 __attribute__((target("avx2,fma"), always_inline)) inline
#define BE_AVX2_FN __attribute__((target("avx2,fma"))) inline

// 8 bits -> 8 bytes of 0/1.
struct ByteSpread {
  uint64_t t[256];
  ByteSpread() {
    for (int b = 0; b < 256; ++b) {
      uint64_t v = 0;
      for (int l = 0; l < 8; ++l)
        if (b >> l & 1) v |= uint64_t(1) << (8 * l);
      t[b] = v;
    }
  }
};
const ByteSpread kSpread;

BE_AVX2 __m256i ok8(const uint8_t* m) {  // -1 where the mask byte is 0
  return _mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m))),
                            _mm256_setzero_si256());
}

// 8 pixels of one row: on (-1 where included), val, and (WithY) big lanes (|val| >= ybig,
// by clamping: abs() of INT32_MIN stays negative) and squares.
template <bool WithY, bool Excl>
BE_AVX2 void take8(const int32_t* r, const uint8_t* mr, const uint8_t* xr, size_t i, __m256i big24, __m256i ybig1,
                   __m256i& on, __m256i& val, __m256i& bg, __m256i& sq) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + i));
  on = _mm256_and_si256(ok8(mr + i), _mm256_cmpgt_epi32(big24, v));
  if (Excl) on = _mm256_and_si256(on, ok8(xr + i));
  val = _mm256_and_si256(v, on);
  if (WithY) {
    const __m256i clamped = _mm256_min_epi32(_mm256_max_epi32(val, _mm256_sub_epi32(_mm256_setzero_si256(), ybig1)), ybig1);
    const __m256i fits = _mm256_cmpeq_epi32(clamped, val);
    bg = _mm256_xor_si256(fits, _mm256_set1_epi32(-1));
    const __m256i small = _mm256_and_si256(fits, val);
    sq = _mm256_mullo_epi32(small, small);
  }
}

template <bool Add, bool Sub, bool WithY, bool Excl, bool Total>
BE_AVX2_FN void vupdate_avx2(const int32_t* sa, const uint8_t* ma, const uint8_t* xa, const int32_t* ss, const uint8_t* ms,
                             const uint8_t* xs, size_t w, int32_t* cm, int32_t* cx, int32_t* cy, int32_t ybig,
                             double* bigsq) {
  const __m256i big24 = _mm256_set1_epi32(1 << 24), ybig1 = _mm256_set1_epi32(ybig - 1),
                step = _mm256_set1_epi32(kBigStep);
  size_t i = 0;
  for (; i + 8 <= w; i += 8) {
    __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cm + i));
    __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cx + i));
    __m256i y = WithY ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cy + i)) : _mm256_setzero_si256();
    __m256i on, val, bg = _mm256_setzero_si256(), sq = _mm256_setzero_si256();
    if (Add) {
      // The entering row comes from memory (the frame is far larger than the cache):
      // ask for the next one now so that it is there when the window moves.
      _mm_prefetch(reinterpret_cast<const char*>(sa + w + i), _MM_HINT_T0);
      if ((i & 63) == 0) _mm_prefetch(reinterpret_cast<const char*>(ma + w + i), _MM_HINT_T0);
      take8<WithY, Excl>(sa, ma, xa, i, big24, ybig1, on, val, bg, sq);
      m = _mm256_sub_epi32(m, on);
      x = _mm256_add_epi32(x, val);
      if (WithY) {
        m = _mm256_add_epi32(m, _mm256_and_si256(bg, step));
        y = _mm256_add_epi32(y, sq);
        if (Total && !_mm256_testz_si256(bg, bg))
          for (size_t k = i; k < i + 8; ++k)
            if ((sa[k] >= ybig || sa[k] <= -ybig) && sa[k] < (1 << 24) && ma[k] == 0 && (!Excl || xa[k] == 0))
              *bigsq += double(sa[k]) * double(sa[k]);
      }
    }
    if (Sub) {
      take8<WithY, Excl>(ss, ms, xs, i, big24, ybig1, on, val, bg, sq);
      m = _mm256_add_epi32(m, on);
      x = _mm256_sub_epi32(x, val);
      if (WithY) {
        m = _mm256_sub_epi32(m, _mm256_and_si256(bg, step));
        y = _mm256_sub_epi32(y, sq);
      }
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(cm + i), m);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(cx + i), x);
    if (WithY) _mm256_storeu_si256(reinterpret_cast<__m256i*>(cy + i), y);
  }
  if (i < w)
    vupdate<Add, Sub, WithY, Excl, Total>(sa ? sa + i : sa, ma ? ma + i : ma, xa ? xa + i : xa, ss ? ss + i : ss,
                                          ms ? ms + i : ms, xs ? xs + i : xs, w - i, cm + i, cx + i, cy + i, ybig,
                                          bigsq);
}

// p[i] = c[i] + c[i + 1] for the indices a horizontal window of the row reads.
BE_AVX2_FN void pair_sums(const int32_t* c, int32_t* p, size_t w, int kx) {
  ptrdiff_t i = -kx;
  const ptrdiff_t end = ptrdiff_t(w) + kx - 1;
  for (; i + 8 <= end; i += 8)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i),
                        _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i)),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i + 1))));
  for (; i < end; ++i) p[i] = int32_t(uint32_t(c[i]) + uint32_t(c[i + 1]));
}
// The 2 k + 1 taps of c around i (8 lanes) from k pair sums and one tap: about half the adds.
template <int KXT>
BE_AVX2 __m256i hsum8p(const int32_t* p, const int32_t* c, size_t i, int kx) {
  const int k = KXT > 0 ? KXT : kx;
  __m256i s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + ptrdiff_t(i) + k));
  for (int u = 0; u < k; ++u)
    s = _mm256_add_epi32(s, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + ptrdiff_t(i) - k + 2 * u)));
  return s;
}
template <int KXT>
BE_AVX2 __m256i hsum8(const int32_t* c, size_t i, int kx) {
  const int k = KXT > 0 ? KXT : kx;
  __m256i s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + ptrdiff_t(i) - k));
  for (int t = -k + 1; t <= k; ++t)
    s = _mm256_add_epi32(s, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + ptrdiff_t(i) + t)));
  return s;
}

// Non-extended pass 1, one row, straight to the output (returns the strong count).
template <int KXT>
BE_AVX2_FN size_t row_strong_avx2(const SmallArgs& A, const int32_t* src, const uint8_t* mk, uint8_t* o) {
  const size_t w = A.w;
  const int kx = A.kx;
  const __m256i minc1 = _mm256_set1_epi32(A.f.min_count - 1), vthr = _mm256_set1_epi32(A.vthr);
  const __m256i big1 = _mm256_set1_epi32((1 << 24) - 1), zero = _mm256_setzero_si256(), m1 = _mm256_set1_epi32(-1);
  const __m256 k = _mm256_set1_ps(A.bd_k);
  const __m256i low = _mm256_set1_epi32(kBigStep - 1);
  size_t count = 0, i = 0;
  for (; i + 8 <= w; i += 8) {
    const __m256i m = _mm256_and_si256(hsum8p<KXT>(A.pm, A.cm, i, kx), low), x = hsum8p<KXT>(A.px, A.cx, i, kx);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    __m256i pre = _mm256_and_si256(_mm256_and_si256(ok8(mk + i), _mm256_cmpgt_epi32(m, minc1)),
                                   _mm256_and_si256(_mm256_cmpgt_epi32(x, m1), _mm256_cmpgt_epi32(v, vthr)));
    const __m256i b = _mm256_sub_epi32(_mm256_mullo_epi32(m, v), x);
    const __m256 bf = _mm256_cvtepi32_ps(b);
    const __m256 rhs = _mm256_mul_ps(_mm256_mul_ps(k, _mm256_cvtepi32_ps(x)), _mm256_cvtepi32_ps(m));
    const __m256i bd = _mm256_or_si256(
        _mm256_cmpgt_epi32(v, big1),
        _mm256_and_si256(_mm256_cmpgt_epi32(b, zero), _mm256_castps_si256(_mm256_cmp_ps(_mm256_mul_ps(bf, bf), rhs, _CMP_GT_OQ))));
    pre = _mm256_and_si256(pre, bd);
    unsigned bits = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(pre)));
    uint64_t word = 0;
    while (bits) {
      const int l = __builtin_ctz(bits);
      bits &= bits - 1;
      const size_t q = i + size_t(l);
      double md, xd, y;
      window_sums<KXT>(A, q, md, xd, y);
      if (A.f.strong(md, xd, y, double(src[q]))) {
        word |= uint64_t(1) << (8 * l);
        ++count;
      }
    }
    std::memcpy(o + i, &word, 8);
  }
  for (; i < w; ++i) {
    double md, xd, y;
    window_sums<KXT>(A, i, md, xd, y);
    const bool s = mk[i] == 0 && A.f.strong(md, xd, y, double(src[i]));
    o[i] = s;
    count += s;
  }
  return count;
}

// Extended pass 1, one row. DIALS's a > c decided in float (8 lanes) where the float
// difference a - c is clear of its rounding bound; the rest (rare: close calls and
// windows with a big pixel) in double with DIALS's operations. Bound: y is an exact
// integer rounded once (<= u relative; the bound below allows (2 k + 1) u), then a
// few products and differences: |error of a - c| <= (T + 6) u m y + 6 u x^2
// + 5 u x m + 8 u c for T = 2 k + 1 taps; err = max(64, 2 (T + 16)) u (m y + x^2 +
// x m + c) covers it twice over (u = 2^-24; the double rounding of DIALS's own a and
// c is 2^-29 times smaller).
template <int KXT>
BE_AVX2_FN size_t row_dispersed_avx2(const SmallArgs& A, const uint8_t* mk, uint8_t* o, int32_t kfull) {
  const size_t w = A.w;
  const int kx = A.kx;
  const __m256i low = _mm256_set1_epi32(kBigStep - 1);
  const __m256i minc1 = _mm256_set1_epi32(A.f.min_count - 1), m1 = _mm256_set1_epi32(-1),
                full = _mm256_set1_epi32(kfull);
  const __m256 nsig_b = _mm256_set1_ps(float(A.f.nsig_b)), gain = _mm256_set1_ps(float(A.f.gain)),
               one = _mm256_set1_ps(1.0f), sfull = _mm256_set1_ps(A.sqf[kfull]),
               eps = _mm256_set1_ps(float(std::max(64, 2 * (2 * kx + 1 + 16))) / 16777216.0f), sign = _mm256_set1_ps(-0.0f);
  const bool use_gain = A.f.use_gain;
  // Full windows (m = K, nearly every pixel): a - c = K y - x (x + C), C below.
  const double cfull = (kfull - 1) + A.f.nsig_b * A.sq[kfull];
  const __m256 kf = _mm256_set1_ps(float(kfull)), cf = _mm256_set1_ps(float(use_gain ? A.f.gain * cfull : cfull));
  size_t count = 0, i = 0;
  for (; i + 8 <= w; i += 8) {
    const __m256i mraw = hsum8<KXT>(A.cm, i, kx), x = hsum8<KXT>(A.cx, i, kx);
    const __m256i m = _mm256_and_si256(mraw, low);
    const __m256i pre = _mm256_and_si256(_mm256_and_si256(ok8(mk + i), _mm256_cmpgt_epi32(m, minc1)),
                                         _mm256_cmpgt_epi32(x, m1));
    unsigned bits = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(pre)));
    if (bits) {
      const unsigned bigw = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(mraw, low))));
      const __m256 xf = _mm256_cvtepi32_ps(x);
      const __m256 y = _mm256_cvtepi32_ps(hsum8<KXT>(A.cy, i, kx));
      __m256 d, err;
      if (_mm256_movemask_epi8(_mm256_cmpeq_epi32(m, full)) == -1) {
        // Fewer roundings than the general form; the bound's terms are covered:
        // K y + x^2 + x K + c <= K y + x (x + C) + x K.
        const __m256 ky = _mm256_mul_ps(kf, y), xt = _mm256_mul_ps(xf, _mm256_add_ps(xf, cf));
        d = _mm256_sub_ps(ky, xt);
        err = _mm256_mul_ps(eps, _mm256_fmadd_ps(xf, kf, _mm256_add_ps(ky, xt)));
      } else {
        const __m256 mf = _mm256_cvtepi32_ps(m);
        const __m256 s = _mm256_mask_i32gather_ps(sfull, A.sqf, m, _mm256_castsi256_ps(m1), 4);
        const __m256 my = _mm256_mul_ps(mf, y), xx = _mm256_mul_ps(xf, xf), xm = _mm256_mul_ps(xf, mf);
        __m256 a, c;
        if (!use_gain) {
          a = _mm256_sub_ps(_mm256_sub_ps(my, xx), _mm256_mul_ps(xf, _mm256_sub_ps(mf, one)));
          c = _mm256_mul_ps(_mm256_mul_ps(xf, nsig_b), s);
        } else {
          a = _mm256_sub_ps(my, xx);
          c = _mm256_mul_ps(_mm256_mul_ps(gain, xf), _mm256_add_ps(_mm256_sub_ps(mf, one), _mm256_mul_ps(nsig_b, s)));
        }
        err = _mm256_mul_ps(eps, _mm256_add_ps(_mm256_add_ps(my, xx), _mm256_add_ps(xm, _mm256_andnot_ps(sign, c))));
        d = _mm256_sub_ps(a, c);
      }
      const unsigned yes = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(d, err, _CMP_GT_OQ)));
      const unsigned no = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(d, _mm256_sub_ps(_mm256_setzero_ps(), err), _CMP_LT_OQ)));
      unsigned open = bits & (~(yes | no) | bigw), res = bits & yes & ~bigw;
      while (open) {
        const int l = __builtin_ctz(open);
        open &= open - 1;
        double md, xd, y;
        window_sums<KXT>(A, i + size_t(l), md, xd, y);
        if (A.f.dispersed(md, xd, y)) res |= 1u << l;
      }
      bits = res;
    }
    std::memcpy(o + i, &kSpread.t[bits], 8);
    if ((i & 63) == 0) _mm_prefetch(reinterpret_cast<const char*>(o + w + i), _MM_HINT_ET0);
    count += unsigned(__builtin_popcount(bits));
  }
  for (; i < w; ++i) {
    double md, xd, y;
    window_sums<KXT>(A, i, md, xd, y);
    const bool s = mk[i] == 0 && A.f.dispersed(md, xd, y);
    o[i] = s;
    count += s;
  }
  return count;
}
#endif

template <int Isa, bool Add, bool Sub, bool WithY, bool Excl, bool Total>
BE_AI void vup(const int32_t* sa, const uint8_t* ma, const uint8_t* xa, const int32_t* ss, const uint8_t* ms,
               const uint8_t* xs, size_t w, int32_t* cm, int32_t* cx, int32_t* cy, int32_t ybig, double* bigsq) {
#if defined(__x86_64__) && defined(__GNUC__)
  if constexpr (Isa == 1) {
    vupdate_avx2<Add, Sub, WithY, Excl, Total>(sa, ma, xa, ss, ms, xs, w, cm, cx, cy, ybig, bigsq);
    return;
  }
#endif
  vupdate<Add, Sub, WithY, Excl, Total>(sa, ma, xa, ss, ms, xs, w, cm, cx, cy, ybig, bigsq);
}

// Move the column sums to output row j (they hold row j - 1, or nothing for j = 0).
template <int Isa, bool WithY, bool Excl, bool Total>
BE_AI void advance(const SmallArgs& A, const uint8_t* excl, size_t j, int ky, double* bigsq) {
  const size_t w = A.w, h = A.h;
  auto rowp = [&](size_t r) { return A.img + r * w; };
  auto mrow = [&](size_t r) { return A.mask + r * w; };
  auto xrow = [&](size_t r) { return Excl ? excl + r * w : nullptr; };
  if (j == 0) {
    for (size_t r = 0; r <= std::min(size_t(ky), h - 1); ++r)
      vup<Isa, true, false, WithY, Excl, Total>(rowp(r), mrow(r), xrow(r), nullptr, nullptr, nullptr, w, A.cm, A.cx,
                                               A.cy, A.ybig, bigsq);
    return;
  }
  const bool add = j + ky < h, sub = j >= size_t(ky) + 1;
  const size_t ra = j + ky, rs = j - ky - 1;
  if (add && sub)
    vup<Isa, true, true, WithY, Excl, Total>(rowp(ra), mrow(ra), xrow(ra), rowp(rs), mrow(rs), xrow(rs), w, A.cm, A.cx,
                                            A.cy, A.ybig, bigsq);
  else if (add)
    vup<Isa, true, false, WithY, Excl, Total>(rowp(ra), mrow(ra), xrow(ra), nullptr, nullptr, nullptr, w, A.cm, A.cx,
                                             A.cy, A.ybig, bigsq);
  else if (sub)
    vup<Isa, false, true, WithY, Excl, Total>(nullptr, nullptr, nullptr, rowp(rs), mrow(rs), xrow(rs), w, A.cm, A.cx,
                                             A.cy, A.ybig, bigsq);
}

// Candidates of one output row, non-extended: every test but a > c, b > d replaced by
// a necessary float condition (exact integer b; float rounding well inside the margin).
template <int KXT>
BE_AI void row_candidates(const SmallArgs& A, const int32_t* src, const uint8_t* mk) {
  const size_t w = A.w;
  const int kx = A.kx;
  const int32_t minc = A.f.min_count, vthr = A.vthr;
  const float k = A.bd_k;
  for (size_t i = 0; i < w; ++i) {
    const int32_t m = count_of(hsum<KXT>(A.cm, i, kx)), x = hsum<KXT>(A.cx, i, kx), v = src[i];
    const int32_t b = int32_t(uint32_t(m) * uint32_t(v) - uint32_t(x));
    const float bf = float(b);
    const bool bd = (v >= (1 << 24)) | ((b > 0) & (bf * bf > k * float(x) * float(m)));
    A.cand[i] = (mk[i] == 0) & (m >= minc) & (x >= 0) & (v > vthr) & bd;
  }
}

// Extended pass 1, one row: DIALS's a > c evaluated exactly (same double operations).
template <int KXT>
BE_AI size_t row_dispersed(const SmallArgs& A, const uint8_t* mk, uint8_t* o) {
  const size_t w = A.w;
  const int32_t minc = A.f.min_count;
  const double nsig_b = A.f.nsig_b, gain = A.f.gain;
  const bool use_gain = A.f.use_gain;
  size_t count = 0;
  for (size_t i = 0; i < w; ++i) {
    double m, x, y;
    window_sums<KXT>(A, i, m, x, y);
    const double s = A.sq[size_t(m)];
    double a, c;
    if (!use_gain) {
      a = m * y - x * x - x * (m - 1);
      c = x * nsig_b * s;
    } else {
      a = m * y - x * x;
      c = gain * x * (m - 1 + nsig_b * s);
    }
    const uint8_t r = (mk[i] == 0) & (m >= minc) & (x >= 0) & (a > c);
    o[i] = r;
    count += r;
  }
  return count;
}

template <int Isa, int KXT>
BE_AI size_t pass1_small(SmallArgs& A) {
  const size_t w = A.w, h = A.h;
  size_t count = 0;
  const bool ext = A.ext;
  const int32_t kfull = (2 * A.kx + 1) * (2 * A.ky + 1);
  (void)kfull;
  A.bigsq = 0;
  for (size_t j = 0; j < h; ++j) {
    A.j = j;
    advance<Isa, true, false, true>(A, nullptr, j, A.ky, &A.bigsq);
    const int32_t* src = A.img + j * w;
    const uint8_t* mk = A.mask + j * w;
    uint8_t* o = A.out + j * w;
#if defined(__x86_64__) && defined(__GNUC__)
    if constexpr (Isa == 1) {
      if (!ext) {
        pair_sums(A.cm, A.pm, w, A.kx);
        pair_sums(A.cx, A.px, w, A.kx);
      }
      const size_t c = ext ? row_dispersed_avx2<KXT>(A, mk, o, kfull) : row_strong_avx2<KXT>(A, src, mk, o);
      A.rowcnt[j] = uint32_t(c);
      count += c;
      continue;
    }
#endif
    if (ext) {
      const size_t c = row_dispersed<KXT>(A, mk, o);
      A.rowcnt[j] = uint32_t(c);
      count += c;
      continue;
    }
    row_candidates<KXT>(A, src, mk);
    std::memset(o, 0, w);
    size_t i = 0;
    while (i < w) {
      if (i + 8 <= w) {
        uint64_t word;
        std::memcpy(&word, A.cand + i, 8);
        if (word == 0) {
          i += 8;
          continue;
        }
      }
      const size_t end = std::min(i + 8, w);
      for (; i < end; ++i) {
        if (!A.cand[i]) continue;
        double m, x, y;
        window_sums<KXT>(A, i, m, x, y);
        const bool s = A.f.strong(m, x, y, double(src[i]));
        o[i] = s;
        count += s;
      }
    }
  }
  return count;
}

// 32 bytes all zero (sparse masks are skipped a cache half-line at a time).
BE_AI bool zero32(const uint8_t* p) {
  uint64_t a, b, c, d;
  std::memcpy(&a, p, 8);
  std::memcpy(&b, p + 8, 8);
  std::memcpy(&c, p + 16, 8);
  std::memcpy(&d, p + 24, 8);
  return (a | b | c | d) == 0;
}

// Chebyshev erosion by r: core = mark and all marks within distance r (clipped at the edge).
BE_AI size_t erode_small(const SmallArgs& A, const uint8_t* mark, uint8_t* core, size_t r) {
  const size_t w = A.w, h = A.h;
  uint8_t* row = A.row + r;  // padded by r on both sides with 1
  std::memset(A.row, 1, r);
  std::memset(row + w, 1, r);
  size_t total = 0;
  for (size_t j = 0; j < h; ++j) {
    const size_t j0 = j >= r ? j - r : 0, j1 = std::min(j + r, h - 1);
    uint8_t* o = core + j * w;
    uint32_t least = A.rowcnt[j0];
    for (size_t jj = j0 + 1; jj <= j1; ++jj) least = std::min(least, A.rowcnt[jj]);
    if (least == 0) {  // a row without marks: nothing in this row survives
      std::memset(o, 0, w);
      A.rowcnt[h + j] = 0;
      continue;
    }
    if (A.rowcnt[j] <= w / 16) {  // few marks: only the 8-pixel words that hold some
      uint32_t c = 0;
      const uint8_t* mj = mark + j * w;
      for (size_t i0 = 0; i0 < w; i0 += 8) {
        if (i0 + 32 <= w && zero32(mj + i0)) {
          std::memset(o + i0, 0, 32);
          i0 += 24;
          continue;
        }
        const size_t i1 = std::min(i0 + 8, w);
        if (i1 == i0 + 8) {
          uint64_t word;
          std::memcpy(&word, mj + i0, 8);
          if (word == 0) {
            std::memcpy(o + i0, &word, 8);
            continue;
          }
        }
        for (size_t i = i0; i < i1; ++i) {
          uint8_t v = mj[i];
          const size_t a = i >= r ? i - r : 0, b = std::min(i + r, w - 1);
          for (size_t jj = j0; v && jj <= j1; ++jj) {
            const uint8_t* q = mark + jj * w;
            for (size_t ii = a; ii <= b; ++ii) v &= q[ii];
          }
          o[i] = v;
          c += v;
        }
      }
      A.rowcnt[h + j] = c;
      total += c;
      continue;
    }
    std::memcpy(row, mark + j0 * w, w);
    for (size_t jj = j0 + 1; jj <= j1; ++jj) {
      const uint8_t* q = mark + jj * w;
      for (size_t i = 0; i < w; ++i) row[i] &= q[i];
    }
    const uint8_t* q = row - r;
    for (size_t i = 0; i < w; ++i) o[i] = q[i];
    for (size_t t = 1; t <= 2 * r; ++t) {
      q = row - r + t;
      for (size_t i = 0; i < w; ++i) o[i] &= q[i];
    }
    uint32_t c = 0;
    for (size_t i = 0; i < w; ++i) c += o[i];
    A.rowcnt[h + j] = c;
    total += c;
  }
  return total;
}

// Pass 2 sums of one window row [i0, i1]: pixels unmasked, < 2^24 and not core.
BE_AI void win_row(const int32_t* s, const uint8_t* mk, const uint8_t* cc, size_t i0, size_t i1, int64_t& m, int64_t& x) {
  for (size_t ii = i0; ii <= i1; ++ii) {
    const bool on = (mk[ii] == 0) & (s[ii] < (1 << 24)) & (cc[ii] == 0);
    m += on;
    x += on ? s[ii] : 0;
  }
}
#if defined(__x86_64__) && defined(__GNUC__)
BE_AVX2_FN void win_rows_avx2(const SmallArgs& A, const uint8_t* core, size_t j0, size_t j1, size_t i0, size_t i1,
                              int64_t& m, int64_t& x) {
  const size_t w = A.w;
  const __m256i big = _mm256_set1_epi32(1 << 24);
  __m256i vm = _mm256_setzero_si256(), vx = _mm256_setzero_si256();
  for (size_t jj = j0; jj <= j1; ++jj) {
    const int32_t* s = A.img + jj * w;
    const uint8_t* mk = A.mask + jj * w;
    const uint8_t* cc = core + jj * w;
    size_t ii = i0;
    for (; ii + 8 <= i1 + 1; ii += 8) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + ii));
      const __m256i on = _mm256_and_si256(_mm256_and_si256(ok8(mk + ii), ok8(cc + ii)), _mm256_cmpgt_epi32(big, v));
      vm = _mm256_sub_epi32(vm, on);
      vx = _mm256_add_epi32(vx, _mm256_and_si256(v, on));
    }
    if (ii <= i1) win_row(s, mk, cc, ii, i1, m, x);
  }
  int32_t a[8], b[8];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(a), vm);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(b), vx);
  for (int l = 0; l < 8; ++l) {
    m += a[l];
    x += b[l];
  }
}
#endif

// Extended pass 2 where core pixels are few: each core pixel's window summed directly.
template <int Isa>
BE_AI size_t pass2_direct(SmallArgs& A, const uint8_t* core) {
  const size_t w = A.w, h = A.h, kx2 = size_t(A.kx) + 2, ky2 = size_t(A.ky) + 2;
  size_t count = 0;
  for (size_t j = 0; j < h; ++j) {
    if (A.rowcnt[j] != 0) std::memset(A.out + j * w, 0, w);  // rows without pass-1 marks are zero already
    if (A.rowcnt[h + j] == 0) continue;
    const uint8_t* c = core + j * w;
    const size_t j0 = j >= ky2 ? j - ky2 : 0, j1 = std::min(j + ky2, h - 1);
    for (size_t i = 0; i < w; ++i) {
      if (i + 32 <= w && zero32(c + i)) {
        i += 31;
        continue;
      }
      if (!c[i] || A.mask[j * w + i]) continue;
      const size_t i0 = i >= kx2 ? i - kx2 : 0, i1 = std::min(i + kx2, w - 1);
      int64_t m = 0, x = 0;
#if defined(__x86_64__) && defined(__GNUC__)
      if constexpr (Isa == 1) {
        win_rows_avx2(A, core, j0, j1, i0, i1, m, x);
      } else
#endif
      {
        for (size_t jj = j0; jj <= j1; ++jj) win_row(A.img + jj * w, A.mask + jj * w, core + jj * w, i0, i1, m, x);
      }
      const bool st = A.f.final_local(double(m), double(x), double(A.img[j * w + i]));
      A.out[j * w + i] = st;
      count += st;
    }
  }
  return count;
}

// Extended pass 2: for core pixels, the background mean over the (kx + 2, ky + 2)
// window without core pixels.
template <int Isa, int KXT>
BE_AI size_t pass2_small(SmallArgs& A, const uint8_t* core) {
  const size_t w = A.w, h = A.h;
  const int kx2 = A.kx + 2, ky2 = A.ky + 2;
  size_t count = 0;
  for (size_t j = 0; j < h; ++j) {
    advance<Isa, false, true, false>(A, core, j, ky2, nullptr);
    const int32_t* src = A.img + j * w;
    const uint8_t* c = core + j * w;
    const uint8_t* mk = A.mask + j * w;
    uint8_t* o = A.out + j * w;
    std::memset(o, 0, w);
    size_t i = 0;
    while (i < w) {
      if (i + 8 <= w) {
        uint64_t word;
        std::memcpy(&word, c + i, 8);
        if (word == 0) {
          i += 8;
          continue;
        }
      }
      const size_t end = std::min(i + 8, w);
      for (; i < end; ++i) {
        if (!c[i] || mk[i]) continue;
        const double m = double(hsum<KXT>(A.cm, i, kx2)), x = double(hsum<KXT>(A.cx, i, kx2));
        const bool s = A.f.final_local(m, x, double(src[i]));
        o[i] = s;
        count += s;
      }
    }
  }
  return count;
}

template <int Isa>
BE_AI size_t small_t(SmallArgs& A) {
  const size_t pad = size_t(A.kx) + 2;
  std::fill(A.cm - pad, A.cm + A.w + pad, 0);
  std::fill(A.cx - pad, A.cx + A.w + pad, 0);
  std::fill(A.cy - pad, A.cy + A.w + pad, 0);
  size_t count = A.kx == 3 ? pass1_small<Isa, 3>(A) : A.kx == 5 ? pass1_small<Isa, 5>(A) : pass1_small<Isa, 0>(A);
  return count;
}
template <int Isa>
BE_AI size_t small2_t(SmallArgs& A, size_t marked) {
  // pass 1 marks are in A.out; core goes to A.tmp.
  const size_t n = A.w * A.h;
  const size_t erosion = size_t(std::min(A.kx, A.ky));
  if (marked == n) {
    const bool all = erosion <= A.h + A.w + 1;
    std::memset(A.tmp, all, n);
  } else if (erosion <= 1) {
    std::memcpy(A.tmp, A.out, n);
  } else {
    const size_t cores = erode_small(A, A.out, A.tmp, erosion - 1);
    const size_t win = (2 * size_t(A.kx) + 5) * (2 * size_t(A.ky) + 5);
    if (cores * win <= n) return pass2_direct<Isa>(A, A.tmp);
  }
  const size_t pad = size_t(A.kx) + 2;
  std::fill(A.cm - pad, A.cm + A.w + pad, 0);
  std::fill(A.cx - pad, A.cx + A.w + pad, 0);
  const int kx2 = A.kx + 2;
  return kx2 == 5 ? pass2_small<Isa, 5>(A, A.tmp) : kx2 == 7 ? pass2_small<Isa, 7>(A, A.tmp) : pass2_small<Isa, 0>(A, A.tmp);
}

size_t small_scalar(SmallArgs& A) { return small_t<0>(A); }
size_t small2_scalar(SmallArgs& A, size_t marked) { return small2_t<0>(A, marked); }
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) size_t small_avx2(SmallArgs& A) { return small_t<1>(A); }
__attribute__((target("avx2,fma"))) size_t small2_avx2(SmallArgs& A, size_t marked) { return small2_t<1>(A, marked); }
#endif
size_t small_pass1(SmallArgs& A) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx2()) return small_avx2(A);
#endif
  return small_scalar(A);
}
size_t small_pass2(SmallArgs& A, size_t marked) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx2()) return small2_avx2(A, marked);
#endif
  return small2_scalar(A, marked);
}

}  // namespace

DispersionFinder::DispersionFinder(size_t width, size_t height, const DispersionParams& p)
    : w_(width), h_(height), p_(p) {
  if (width == 0 || height == 0 || width > (1u << 20) || height > (1u << 20) || width * height > (size_t(1) << 28))
    throw std::invalid_argument("image size must be 1..2^20 by 1..2^20 with at most 2^28 pixels");
  if (p.kernel_x <= 0 || p.kernel_y <= 0 || p.kernel_x > 1000 || p.kernel_y > 1000)
    throw std::invalid_argument("kernel_size must be two half sizes in 1..1000");
  if (!(p.sigma_background >= 0) || !(p.sigma_strong >= 0) || !std::isfinite(p.sigma_background) ||
      !std::isfinite(p.sigma_strong))
    throw std::invalid_argument("sigma_background and sigma_strong must be finite and >= 0");
  if (!(p.global_threshold >= 0) || !std::isfinite(p.global_threshold))
    throw std::invalid_argument("global_threshold must be finite and >= 0");
  if (p.use_gain && !(p.gain > 0 && std::isfinite(p.gain))) throw std::invalid_argument("gain must be finite and > 0");
  const long long num_kernel = (2LL * p.kernel_y + 1) * (2LL * p.kernel_x + 1);
  if (p.min_local <= 0) {
    min_count_ = int(num_kernel);
  } else {
    if (!(p.min_local <= num_kernel && p.min_local > 1))
      throw std::invalid_argument("min_local must be <= 0 (whole kernel) or in 2..kernel pixels");
    min_count_ = p.min_local;
  }
  const size_t n = w_ * h_;
  incl_.resize(n);
  tmp_.resize(n);
  col_m_.resize(w_);
  col_x_.resize(w_);
  col_y_.resize(w_);
  pm_.resize(w_ + 1);
  px_.resize(w_ + 1);
  py_.resize(w_ + 1);
  cand_.resize(w_);
  // Small-kernel path: int32 sums stay exact (|x| <= sqrt(K total) < 2^31 for K < 2^11
  // pixels while total < 2^51) and m v < 2^31 for v < 2^24 needs K <= 127.
  const long long k2 = (2LL * p.kernel_y + 5) * (2LL * p.kernel_x + 5);
  small_ = p.extended ? k2 <= 2047 : num_kernel <= 127;
  if (small_) {
    const size_t pad = size_t(p.kernel_x) + 2;
    scm_.assign(w_ + 2 * pad, 0);
    scx_.assign(w_ + 2 * pad, 0);
    scy_.assign(w_ + 2 * pad, 0);
    spair_.assign(2 * (w_ + 2 * pad), 0);
    srow_.assign(w_ + 2 * size_t(p.kernel_x) + 2 * size_t(p.kernel_y) + 2, 1);
    srowcnt_.assign(2 * h_, 0);
    ybig_ = int32_t(std::sqrt(2147483647.0 / double(num_kernel)));
    while (int64_t(ybig_) * ybig_ * num_kernel > 2147483647LL) --ybig_;
    sq_.resize(size_t(num_kernel) + 1);
    sqf_.resize(sq_.size());
    for (size_t m = 0; m < sq_.size(); ++m) {
      sq_[m] = std::sqrt(2 * (double(m) - 1));
      sqf_[m] = float(sq_[m]);
    }
  }
}

template <typename T>
size_t DispersionFinder::reference(const T* img, const uint8_t* mask, uint8_t* out) {
  last_path_ = "reference";
  const size_t n = w_ * h_;
  if (sat_.size() != n) sat_.resize(n);
  const long long xsize = (long long)w_, ysize = (long long)h_;
  Formula f{p_.sigma_background, p_.sigma_strong, p_.global_threshold, p_.gain, p_.use_gain, min_count_};
  // DispersionThreshold::compute_sat: ok[k] is DIALS's bool mask (true = use).
  auto compute_sat = [&](const uint8_t* ok) {
    for (long long j = 0, k = 0; j < ysize; ++j) {
      int m = 0;
      double x = 0, y = 0;
      for (long long i = 0; i < xsize; ++i, ++k) {
        const double s = double(img[k]);
        int mm = (ok[k] && s < kBig) ? 1 : 0;
        m += mm;
        x += mm * s;
        y += mm * s * s;
        if (j == 0) {
          sat_[k] = Sat{m, x, y};
        } else {
          const Sat& u = sat_[k - xsize];
          sat_[k] = Sat{u.m + m, u.x + x, u.y + y};
        }
      }
    }
  };
  // The local sums exactly as compute_threshold forms them.
  auto local = [&](long long i, long long j, long long kxs, long long kys, double& m, double& x, double& y) {
    long long i0 = i - kxs - 1, i1 = i + kxs;
    long long j0 = j - kys - 1, j1 = j + kys;
    i1 = i1 < xsize ? i1 : xsize - 1;
    j1 = j1 < ysize ? j1 : ysize - 1;
    long long k0 = j0 * xsize, k1 = j1 * xsize;
    m = 0;
    x = 0;
    y = 0;
    if (i0 >= 0 && j0 >= 0) {
      const Sat &d00 = sat_[k0 + i0], &d10 = sat_[k1 + i0], &d01 = sat_[k0 + i1];
      m += d00.m - (d10.m + d01.m);
      x += d00.x - (d10.x + d01.x);
      y += d00.y - (d10.y + d01.y);
    } else if (i0 >= 0) {
      const Sat& d10 = sat_[k1 + i0];
      m -= d10.m;
      x -= d10.x;
      y -= d10.y;
    } else if (j0 >= 0) {
      const Sat& d01 = sat_[k0 + i1];
      m -= d01.m;
      x -= d01.x;
      y -= d01.y;
    }
    const Sat& d11 = sat_[k1 + i1];
    m += d11.m;
    x += d11.x;
    y += d11.y;
  };
  uint8_t* ok = tmp_.data();
  for (size_t k = 0; k < n; ++k) ok[k] = mask[k] == 0;
  compute_sat(ok);
  const long long kx = p_.kernel_x, ky = p_.kernel_y;
  size_t count = 0;
  for (long long j = 0, k = 0; j < ysize; ++j) {
    for (long long i = 0; i < xsize; ++i, ++k) {
      double m, x, y;
      local(i, j, kx, ky, m, x, y);
      bool s = false;
      if (ok[k]) s = p_.extended ? f.dispersed(m, x, y) : f.strong(m, x, y, double(img[k]));
      out[k] = s;
      count += s;
    }
  }
  if (!p_.extended) return count;
  // erode_dispersion_mask: DIALS's chebyshev_distance to the nearest false pixel.
  if (dist_.size() != n) dist_.resize(n);
  {
    const size_t height = h_, width = w_;
    const int32_t max_distance = int32_t(height + width);
    auto D = [&](size_t j, size_t i) -> int32_t& { return dist_[j * width + i]; };
    for (size_t j = 0; j < height; ++j) {
      for (size_t i = 0; i < width; ++i) {
        int32_t N = (j > 0) ? D(j - 1, i) : max_distance;
        int32_t W = (i > 0) ? D(j, i - 1) : max_distance;
        int32_t NW = (j > 0 && i > 0) ? D(j - 1, i - 1) : max_distance;
        int32_t NE = (j > 0 && i < width - 1) ? D(j - 1, i + 1) : max_distance;
        if (out[j * width + i] == 0) D(j, i) = 0;
        else D(j, i) = 1 + std::min(std::min(N, W), std::min(NE, NW));
      }
    }
    for (size_t j = height; j > 0; --j) {
      for (size_t i = width; i > 0; --i) {
        int32_t S = (j < height) ? D(j, i - 1) : max_distance;
        int32_t E = (i < width) ? D(j - 1, i) : max_distance;
        int32_t SW = (j < height && i > 1) ? D(j, i - 2) : max_distance;
        int32_t SE = (j < height && i < width) ? D(j, i) : max_distance;
        int32_t other = std::min(std::min(S, E), std::min(SE, SW));
        if (other < D(j - 1, i - 1)) D(j - 1, i - 1) = 1 + other;
      }
    }
  }
  const int32_t erosion = std::min(p_.kernel_y, p_.kernel_x);
  for (size_t k = 0; k < n; ++k) ok[k] = mask[k] == 0 ? !(out[k] && dist_[k] >= erosion) : 0;
  compute_sat(ok);
  count = 0;
  for (long long j = 0, k = 0; j < ysize; ++j) {
    for (long long i = 0; i < xsize; ++i, ++k) {
      double m, x, y;
      local(i, j, kx + 2, ky + 2, m, x, y);
      bool s = false;
      if (mask[k] == 0) s = !ok[k] && f.final_local(m, x, double(img[k]));
      out[k] = s;
      count += s;
    }
  }
  return count;
}

// The sum of squares of the included pixels (unmasked, below 2^24); incl (optional)
// gets 1 for each included pixel.
double DispersionFinder::included_squares(const int32_t* img, const uint8_t* mask, uint8_t* incl) const {
  double total = 0;
  for (size_t j = 0; j < h_; ++j) {
    double row = 0;
    const int32_t* s = img + j * w_;
    const uint8_t* mk = mask + j * w_;
    for (size_t i = 0; i < w_; ++i) {
      const bool on = (mk[i] == 0) & (s[i] < (1 << 24));
      if (incl) incl[j * w_ + i] = on;
      const double v = on ? double(s[i]) : 0.0;
      row += v * v;
    }
    total += row;
  }
  return total;
}

size_t DispersionFinder::fast(const int32_t* img, const uint8_t* mask, uint8_t* out) {
  const size_t n = w_ * h_;
  if (small_) {
    Formula f{p_.sigma_background, p_.sigma_strong, p_.global_threshold, p_.gain, p_.use_gain, min_count_};
    const size_t pad = size_t(p_.kernel_x) + 2;
    SmallArgs A{img, mask, out, tmp_.data(), srow_.data(), w_, h_, p_.kernel_x, p_.kernel_y,
                scm_.data() + pad, scx_.data() + pad, scy_.data() + pad,
                spair_.data() + pad, spair_.data() + (w_ + 2 * pad) + pad, sqf_.data(), cand_.data(), srowcnt_.data(),
                sq_.data(), f, p_.extended, 0, 0.f, ybig_, 0.0, 0};
    const double thr = std::floor(p_.global_threshold);
    A.vthr = thr >= 2147483647.0 ? 2147483647 : int32_t(thr);
    A.bd_k = float(p_.sigma_strong * p_.sigma_strong * (1 - 1e-4));
    if (p_.use_gain) A.bd_k = float(p_.sigma_strong * p_.sigma_strong * p_.gain * (1 - 1e-4));
    size_t count = small_pass1(A);
    // DIALS's exactness condition (and ours: int32 x sums, direct_y) on the frame's sum
    // of squares; pass 1 only bounds the part below ybig, so count it when that is unclear.
    const double yb = double(ybig_ - 1);
    if (!(double(n) * yb * yb + A.bigsq < kExactLimit) && !(included_squares(img, mask, nullptr) < kExactLimit))
      return reference(img, mask, out);
    last_path_ = "integer";
    if (!p_.extended) return count;
    return small_pass2(A, count);
  }
  // Included pixels, and DIALS's exactness condition: the frame's sum of squares.
  if (!(included_squares(img, mask, incl_.data()) < kExactLimit)) return reference(img, mask, out);
  last_path_ = "integer";
  Formula f{p_.sigma_background, p_.sigma_strong, p_.global_threshold, p_.gain, p_.use_gain, min_count_};
  FastArgs A{img, mask, incl_.data(), out, w_, h_, size_t(p_.kernel_x), size_t(p_.kernel_y), col_m_.data(),
             col_x_.data(), col_y_.data(), pm_.data(), px_.data(), py_.data(), cand_.data(), f, p_.extended};
  size_t count = pass1(A);
  if (!p_.extended) return count;
  // Erosion: a marked pixel is core when no unmarked pixel lies within Chebyshev
  // distance erosion - 1 (what DIALS's distance >= erosion means; its distance
  // transform ignores the image edge). With no unmarked pixel at all DIALS's
  // distances are all height + width + 1.
  const size_t erosion = size_t(std::min(p_.kernel_y, p_.kernel_x));
  uint8_t* notmark = tmp_.data();
  size_t unmarked = 0;
  for (size_t k = 0; k < n; ++k) {
    notmark[k] = out[k] == 0;
    unmarked += notmark[k];
  }
  uint8_t* core = out;  // in place: core replaces the mark row by row below
  if (unmarked == 0) {
    const bool all = erosion <= h_ + w_ + 1;
    for (size_t k = 0; k < n; ++k) core[k] = all;
  } else {
    const size_t r = erosion - 1;
    // Box count of unmarked pixels (X sums unused: img read, values ignored).
    box_rows<false>(img, notmark, w_, h_, r, r, col_m_.data(), col_x_.data(), col_y_.data(), pm_.data(), px_.data(),
                    py_.data(), [&](size_t j) {
                      uint8_t* o = core + j * w_;
                      const uint8_t* nm = notmark + j * w_;
                      for (size_t i = 0; i < w_; ++i) {
                        const size_t lo = i >= r ? i - r : 0, hi = std::min(i + r, w_ - 1) + 1;
                        o[i] = !nm[i] && pm_[hi] == pm_[lo];
                      }
                    });
  }
  // Pass 2: background without the core, half sizes + 2.
  for (size_t k = 0; k < n; ++k) incl_[k] = incl_[k] & !core[k];
  const size_t kx2 = size_t(p_.kernel_x) + 2, ky2 = size_t(p_.kernel_y) + 2;
  count = 0;
  // `core` is out; keep it in tmp_ (the unmarked flags are no longer needed).
  std::memcpy(tmp_.data(), core, n);
  box_rows<false>(img, incl_.data(), w_, h_, kx2, ky2, col_m_.data(), col_x_.data(), col_y_.data(), pm_.data(),
                  px_.data(), py_.data(), [&](size_t j) {
                    const uint8_t* c = tmp_.data() + j * w_;
                    const int32_t* src = img + j * w_;
                    uint8_t* o = out + j * w_;
                    for (size_t i = 0; i < w_; ++i) {
                      bool s = false;
                      if (c[i] && mask[j * w_ + i] == 0) {
                        const size_t lo = i >= kx2 ? i - kx2 : 0, hi = std::min(i + kx2, w_ - 1) + 1;
                        s = f.final_local(double(pm_[hi] - pm_[lo]), double(px_[hi] - px_[lo]), double(src[i]));
                      }
                      o[i] = s;
                      count += s;
                    }
                  });
  return count;
}

size_t DispersionFinder::threshold(const int32_t* img, const uint8_t* mask, uint8_t* out) { return fast(img, mask, out); }
size_t DispersionFinder::threshold(const float* img, const uint8_t* mask, uint8_t* out) {
  return reference(img, mask, out);
}
size_t DispersionFinder::threshold_reference(const int32_t* img, const uint8_t* mask, uint8_t* out) {
  return reference(img, mask, out);
}
size_t DispersionFinder::threshold_reference(const float* img, const uint8_t* mask, uint8_t* out) {
  return reference(img, mask, out);
}

// First i in [from, end) with row[i] set, or end; skips 8 zero bytes at a time.
static inline size_t next_strong(const uint8_t* row, size_t from, size_t end) {
  size_t i = from;
  while (i < end && (i & 7)) {
    if (row[i]) return i;
    ++i;
  }
  while (i + 8 <= end) {
    uint64_t word;
    std::memcpy(&word, row + i, 8);
    if (word) break;
    i += 8;
  }
  while (i < end && !row[i]) ++i;
  return i;
}

template <typename T>
void DispersionFinder::spots(const T* img, const uint8_t* strong, const SpotFilter& flt,
                             std::vector<DispersionSpot>& out) {
  out.clear();
  const size_t n = w_ * h_;
  if (labels_.size() != n) labels_.resize(n);
  parent_.clear();
  auto find = [&](uint32_t a) {
    while (parent_[a] != a) {
      parent_[a] = parent_[parent_[a]];
      a = parent_[a];
    }
    return a;
  };
  const uint32_t none = std::numeric_limits<uint32_t>::max();
  // Strong pixels are a few thousand of millions: both passes skip 8 bytes of
  // the strong mask at a time while they are zero, and labels are read only
  // where the mask is set (so they need no clearing), visiting the strong
  // pixels in the same row-major order as a plain scan.
  for (size_t j = 0; j < h_; ++j) {
    const size_t row = j * w_;
    for (size_t i = next_strong(strong + row, 0, w_); i < w_; i = next_strong(strong + row, i + 1, w_)) {
      const size_t k = row + i;
      const uint32_t up = j > 0 && strong[k - w_] ? labels_[k - w_] : none;
      const uint32_t left = i > 0 && strong[k - 1] ? labels_[k - 1] : none;
      uint32_t l;
      if (up == none && left == none) {
        l = uint32_t(parent_.size());
        parent_.push_back(l);
      } else if (up == none) {
        l = left;
      } else if (left == none) {
        l = up;
      } else {
        const uint32_t a = find(up), b = find(left);
        l = std::min(a, b);
        parent_[std::max(a, b)] = l;
      }
      labels_[k] = l;
    }
  }
  struct Acc {
    double sum = 0, sx = 0, sy = 0, peak = -std::numeric_limits<double>::infinity();
    uint32_t n = 0, px = 0, py = 0;
    size_t first = 0;
  };
  std::vector<Acc> acc(parent_.size());
  std::vector<uint32_t> order;
  for (size_t j = 0; j < h_; ++j) {
    const size_t row = j * w_;
    for (size_t i = next_strong(strong + row, 0, w_); i < w_; i = next_strong(strong + row, i + 1, w_)) {
      const size_t k = row + i;
      const uint32_t r = find(labels_[k]);
      Acc& a = acc[r];
      if (a.n == 0) order.push_back(r);
      const double v = double(img[k]);
      a.n++;
      a.sum += v;
      // DIALS centroids weight the pixel centres (index + 0.5) by the value.
      a.sx += v * (double(i) + 0.5);
      a.sy += v * (double(j) + 0.5);
      if (v > a.peak) {
        a.peak = v;
        a.px = uint32_t(i);
        a.py = uint32_t(j);
      }
    }
  }
  for (uint32_t r : order) {
    const Acc& a = acc[r];
    if (a.n < flt.min_spot_size || a.n > flt.max_spot_size) continue;
    DispersionSpot s;
    s.fs = a.sx / a.sum - 0.5;
    s.ss = a.sy / a.sum - 0.5;
    s.intensity = a.sum;
    s.pixels = a.n;
    s.peak_fs = a.px;
    s.peak_ss = a.py;
    if (flt.max_separation >= 0) {
      const double dx = s.fs - a.px, dy = s.ss - a.py;
      if (!(std::sqrt(dx * dx + dy * dy) <= flt.max_separation)) continue;
    }
    out.push_back(s);
  }
}

template void DispersionFinder::spots<int32_t>(const int32_t*, const uint8_t*, const SpotFilter&,
                                               std::vector<DispersionSpot>&);
template void DispersionFinder::spots<float>(const float*, const uint8_t*, const SpotFilter&,
                                             std::vector<DispersionSpot>&);

}  // namespace beamedge
