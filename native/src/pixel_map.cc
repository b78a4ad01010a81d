#include "pixel_map.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>

#include <immintrin.h>

#include "cpu.h"
#include "huge_pages.h"
#include "parallel.h"

namespace beamedge {
namespace {

bool in_place(const MapSpec& s) { return !s.reference && !s.request.corners && fast_radial_supported(s.request.radial); }

bool has_norm(const MapSpec& s) { return s.request.solid_angle || s.request.polarization || !s.flat.empty(); }

void check_spec(const MapSpec& s) {
  const size_t n = s.rows * s.cols;
  if (!s.mask.empty() && s.mask.size() != n) throw std::invalid_argument("mask does not match the frame shape");
  if (!s.flat.empty() && s.flat.size() != n) throw std::invalid_argument("flat does not match the frame shape");
}

// Certifies a chunk's radial bins (see build_direct) in float, 8 or 16 lanes
// at a time: out[j] is the bin, -1 outside or masked, kUnsure where the exact
// value must decide. The same IEEE operations whatever the width, so every
// kernel gives the same chunk.
constexpr int32_t kUnsure = -2;
struct BinTest {
  float min, inv_delta, w, top, bins;
};

__attribute__((always_inline)) inline int32_t certify_one(const BinTest& t, float x, int masked) {
  const float f = (x - t.min) * t.inv_delta;
  // f > w: truncation is floor (std::floor is a libm call on baseline x86-64).
  const int32_t b = static_cast<int32_t>(std::min(std::max(f, -2.0f), t.top));
  const float fb = static_cast<float>(b);
  // Bitwise, not short-circuit: no branches, so the loop vectorises.
  const int sure = (f > t.w) & (f < t.top) & (f - fb > t.w) & (fb + 1.0f - f > t.w);
  const int out_of_range = (f + t.w <= -1.0f) | (f - t.w >= t.bins);
  return (masked | out_of_range) ? -1 : (sure ? b : kUnsure);
}

#define CERTIFY_BODY                                                                  \
  if (mask)                                                                           \
    for (size_t j = 0; j < len; ++j) out[j] = certify_one(t, x[j], mask[j] != 0);     \
  else                                                                                \
    for (size_t j = 0; j < len; ++j) out[j] = certify_one(t, x[j], 0);

__attribute__((target("avx512f,avx512bw,avx512vl"))) void certify_avx512(const BinTest& t, const float* x, const uint8_t* mask, size_t len, int32_t* out) {
  CERTIFY_BODY
}
__attribute__((target("avx2"))) void certify_avx2(const BinTest& t, const float* x, const uint8_t* mask, size_t len, int32_t* out) {
  CERTIFY_BODY
}
void certify_base(const BinTest& t, const float* x, const uint8_t* mask, size_t len, int32_t* out) { CERTIFY_BODY }
#undef CERTIFY_BODY

using CertifyKernel = void (*)(const BinTest&, const float*, const uint8_t*, size_t, int32_t*);
CertifyKernel certify_kernel() { return cpu_has_avx512() ? certify_avx512 : (cpu_has_avx2() ? certify_avx2 : certify_base); }

constexpr double kU64 = 2.220446049250313e-16, kU32 = 5.9604644775390625e-08;

// The bin test for values whose approximations are within err (absolute) of
// the exact ones, of magnitude at most big. One bound for every pixel, so the
// test is branch-free: that error, the float arithmetic of the test (a few
// float ulp of its operands and of f), and pyFAI's own rounding of the exact
// value's coordinate (a few double ulp), all in bins.
BinTest bin_test(const Axis& a, double err, double big) {
  const double inv_delta = 1.0 / a.delta, span = big + std::fabs(a.min);
  const double w = (err + 5 * kU32 * span + 4 * kU64 * span) * inv_delta + 8 * kU64 * a.bins + 4 * kU32 * (a.bins + 2);
  BinTest t;
  t.min = static_cast<float>(a.min);
  t.inv_delta = static_cast<float>(inv_delta);
  t.w = std::nextafter(static_cast<float>(w), INFINITY);
  t.top = std::nextafter(static_cast<float>(a.bins - w), -INFINITY);
  t.bins = static_cast<float>(a.bins);
  return t;
}

// Extremes of a row's unmasked values, 16 or 8 lanes at a time (masked
// pixels read as +-inf), written with intrinsics: the compiler neither
// reorders a float min reduction nor widens the mask bytes well by itself.
void extremes_tail(const float* v, const uint8_t* m, size_t j, size_t cols, float& lo, float& hi) {
  for (; j < cols; ++j) {
    if (m && m[j]) continue;
    lo = std::min(lo, v[j]);
    hi = std::max(hi, v[j]);
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void extremes_avx512(const float* v, const uint8_t* m, size_t cols, float& lo, float& hi) {
  const __m512 inf = _mm512_set1_ps(INFINITY), ninf = _mm512_set1_ps(-INFINITY);
  __m512 l = inf, h = ninf;
  size_t j = 0;
  for (; j + 16 <= cols; j += 16) {
    const __m512 x = _mm512_loadu_ps(v + j);
    const __m128i mb = m ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(m + j)) : _mm_setzero_si128();
    const __mmask16 k = _mm_test_epi8_mask(mb, mb);
    // Vector compares, not _mm512_min_ps: GCC 12's header passes an undefined vector and warns about it.
    const __m512 xl = _mm512_mask_blend_ps(k, x, inf), xh = _mm512_mask_blend_ps(k, x, ninf);
    l = xl < l ? xl : l;
    h = xh > h ? xh : h;
  }
  float a[16], b[16];
  _mm512_storeu_ps(a, l);
  _mm512_storeu_ps(b, h);
  lo = *std::min_element(a, a + 16);
  hi = *std::max_element(b, b + 16);
  extremes_tail(v, m, j, cols, lo, hi);
}

__attribute__((target("avx2"))) void extremes_avx2(const float* v, const uint8_t* m, size_t cols, float& lo, float& hi) {
  const __m256 inf = _mm256_set1_ps(INFINITY), ninf = _mm256_set1_ps(-INFINITY);
  __m256 l = inf, h = ninf;
  size_t j = 0;
  for (; j + 8 <= cols; j += 8) {
    const __m256 x = _mm256_loadu_ps(v + j);
    const __m128i mb = m ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(m + j)) : _mm_setzero_si128();
    const __m256 k = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_cvtepu8_epi32(mb), _mm256_setzero_si256()));
    l = _mm256_min_ps(l, _mm256_blendv_ps(x, inf, k));
    h = _mm256_max_ps(h, _mm256_blendv_ps(x, ninf, k));
  }
  float a[8], b[8];
  _mm256_storeu_ps(a, l);
  _mm256_storeu_ps(b, h);
  lo = *std::min_element(a, a + 8);
  hi = *std::max_element(b, b + 8);
  extremes_tail(v, m, j, cols, lo, hi);
}

void extremes_base(const float* v, const uint8_t* m, size_t cols, float& lo, float& hi) {
  lo = INFINITY;
  hi = -INFINITY;
  extremes_tail(v, m, 0, cols, lo, hi);
}

void row_extremes(const float* v, const uint8_t* m, size_t cols, float& lo, float& hi) {
  static const auto kernel = cpu_has_avx512() ? extremes_avx512 : (cpu_has_avx2() ? extremes_avx2 : extremes_base);
  kernel(v, m, cols, lo, hi);
}

// One coordinate of the pixels: float approximations and the exact values.
struct Coordinate {
  const float* approx;
  size_t rows, cols;
  const uint8_t* mask;
  std::function<double(size_t)> exact;
  // The exact extremes of the unmasked pixels, from approximations within
  // err = abs_err + rel_err x (their largest magnitude) of them: only a pixel
  // within 2 err of the approximate extremes can hold one (any other is
  // beaten by the pixel there), so only those are evaluated exactly, found
  // through the rows' extremes.
  std::pair<double, double> extremes(const std::vector<float>& row_lo, const std::vector<float>& row_hi, double abs_err, double rel_err) const {
    const double lo_f = *std::min_element(row_lo.begin(), row_lo.end()), hi_f = *std::max_element(row_hi.begin(), row_hi.end());
    if (!(lo_f <= hi_f)) throw std::invalid_argument("every pixel is masked");
    const double err = abs_err + rel_err * std::max(std::fabs(lo_f), std::fabs(hi_f));
    const double lo_cut = lo_f + 2 * err, hi_cut = hi_f - 2 * err;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < rows; ++i) {
      if (!(row_lo[i] <= lo_cut || row_hi[i] >= hi_cut)) continue;
      for (size_t k = i * cols; k < (i + 1) * cols; ++k) {
        if ((mask && mask[k]) || !(approx[k] <= lo_cut || approx[k] >= hi_cut)) continue;
        const double v = exact(k);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    }
    return {lo, hi};
  }
};

// A direct map from the fast geometry. Its float radial approximations are
// within rel_err of the exact values; a pixel's bin is a monotone function of
// its value (subtract, divide, truncate), so when every value within that
// error falls in the same bin the approximation decides it exactly. The few
// pixels close to a bin edge, and the ones that could be the range's minimum
// or maximum, get their exact value. The map is then the one the exact values
// give, bit for bit (tests compare it with the reference build byte for byte).
//
// Passes, each over memory written once: (1) per row, the geometry into a
// scratch array of radial values and straight into the blob's norm section,
// with each row's extremes; (2) the exact extremes, from the rows that can
// hold them; (3) bins, certified in cache-sized chunks, into the blob; (4)
// the static per-bin sums in pixel order (the order the reference adds in).
void build_direct(const MapSpec& s, uint8_t* blob, size_t bytes) {
  const size_t rows = s.rows, cols = s.cols, n = rows * cols;
  const DirectLayout lay = layout_direct_map(n, s.axis0.bins, s.axis1.bins, s.two_d, has_norm(s));
  if (bytes != lay.bytes) throw std::invalid_argument("map buffer has the wrong size");
  const MapHeader& h = lay.header;
  const size_t nb = lay.bins;
  if (nb >= (size_t(1) << 31)) throw std::invalid_argument("too many bins");
  const uint8_t* mask = s.mask.empty() ? nullptr : s.mask.data();
  const float* flat = s.flat.empty() ? nullptr : s.flat.data();
  float* norm = (h.flags & kMapNorm) ? reinterpret_cast<float*>(blob + h.norm) : nullptr;
  const bool geo_norm = s.request.solid_angle || s.request.polarization;
  PixelArrayRequest req = s.request;
  req.chi = s.two_d;

  auto x_store = huge_array<float>(n);
  float* x = x_store.get();
  std::unique_ptr<float[], FreeDeleter> chi_store;
  if (s.two_d) chi_store = huge_array<float>(n);
  float* chi = chi_store.get();
  // Per row: extremes of the unmasked pixels' approximations.
  std::vector<float> row_lo(rows), row_hi(rows), row_lo1(s.two_d ? rows : 0), row_hi1(s.two_d ? rows : 0);

  // (1) Geometry.
  parallel_range(rows, s.threads, 64, [&](size_t r0, size_t r1) {
    std::vector<float> scratch(geo_norm && !norm ? cols : 0);
    for (size_t i = r0; i < r1; ++i) {
      const size_t k0 = i * cols;
      float* nr = norm ? norm + k0 : scratch.data();
      fast_pixel_row(s.geometry, cols, req, i, x + k0, geo_norm ? nr : nullptr, chi ? chi + k0 : nullptr);
      if (flat) {
        // The flat multiplies the float32 product, as the reference's normalisation does.
        if (geo_norm)
          for (size_t j = 0; j < cols; ++j) nr[j] *= flat[k0 + j];
        else
          std::memcpy(nr, flat + k0, cols * 4);
      }
      const uint8_t* m = mask ? mask + k0 : nullptr;
      row_extremes(x + k0, m, cols, row_lo[i], row_hi[i]);
      if (chi) row_extremes(chi + k0, m, cols, row_lo1[i], row_hi1[i]);
    }
  });

  // (2) Exact extremes, and the bin grids.
  const Coordinate radial{x, rows, cols, mask, [&](size_t k) { return exact_radial(s.geometry, s.request.radial, k / cols, k % cols); }};
  const Coordinate azimuth{chi, rows, cols, mask, [&](size_t k) { return exact_chi(s.geometry, k / cols, k % cols); }};
  // The radial error is relative (doubled: the checks round too); chi's absolute.
  const double e = 2 * fast_radial_rel_err(s.request.radial);
  const auto [lo, hi] = radial.extremes(row_lo, row_hi, 0.0, e * (1 + 4 * e));
  const Axis axis0 = resolve_axis(s.axis0, lo, hi);
  const double big = std::max(std::fabs(lo), std::fabs(hi));
  const BinTest test0 = bin_test(axis0, e * big, big);
  Axis axis1;
  BinTest test1{};
  if (s.two_d) {
    const double err1 = fast_chi_abs_err();
    const auto [lo1, hi1] = azimuth.extremes(row_lo1, row_hi1, err1, 0.0);
    AxisSpec s1 = s.axis1;
    s1.allow_negative = true;
    axis1 = resolve_axis(s1, std::max(lo1, -kPi32), std::min(hi1, kPi32));
    test1 = bin_test(axis1, err1, 4.0);
  }

  // (3) Bins: certified chunk by chunk, the unsure ones decided by the exact value.
  const CertifyKernel certify = certify_kernel();
  const bool narrow = h.flags & kMapIndex16;
  uint16_t* b16 = reinterpret_cast<uint16_t*>(blob + h.bins);
  uint32_t* b32 = reinterpret_cast<uint32_t*>(blob + h.bins);
  constexpr size_t kChunk = 4096;
  parallel_range((n + kChunk - 1) / kChunk, s.threads, 16, [&](size_t c0, size_t c1) {
    int32_t out[kChunk], out1[kChunk];
    for (size_t c = c0; c < c1; ++c) {
      const size_t k0 = c * kChunk, len = std::min(kChunk, n - k0);
      const uint8_t* m = mask ? mask + k0 : nullptr;
      certify(test0, x + k0, m, len, out);
      for (size_t j = 0; j < len; ++j)
        if (__builtin_expect(out[j] == kUnsure, 0)) out[j] = histogram_bin(axis0, radial.exact(k0 + j));
      if (chi) {
        certify(test1, chi + k0, m, len, out1);
        for (size_t j = 0; j < len; ++j) {
          if (out[j] < 0) continue;
          const int b1 = out1[j] == kUnsure ? histogram_bin(axis1, azimuth.exact(k0 + j)) : out1[j];
          out[j] = b1 < 0 ? -1 : b1 * axis0.bins + out[j];
        }
      }
      // Unmapped pixels point at the discard bin (nb).
      if (narrow)
        for (size_t j = 0; j < len; ++j) b16[k0 + j] = static_cast<uint16_t>(out[j] < 0 ? nb : size_t(out[j]));
      else
        for (size_t j = 0; j < len; ++j) b32[k0 + j] = static_cast<uint32_t>(out[j] < 0 ? nb : size_t(out[j]));
    }
  });

  // (4) Static sums.
  const uint64_t mapped = sum_direct_map(blob, lay);
  seal_direct_map(blob, lay, axis0, axis1, mapped);
}

}  // namespace

size_t map_bytes_in_place(const MapSpec& s) {
  if (!in_place(s)) return 0;
  return layout_direct_map(s.rows * s.cols, s.axis0.bins, s.axis1.bins, s.two_d, has_norm(s)).bytes;
}

void build_pixel_map_into(const MapSpec& s, uint8_t* blob, size_t bytes) {
  check_spec(s);
  if (!in_place(s)) throw std::invalid_argument("this map cannot be built in place");
  advise_huge_pages(blob, bytes);
  build_direct(s, blob, bytes);
}

std::vector<uint8_t> build_pixel_map(const MapSpec& s) {
  check_spec(s);
  if (in_place(s)) {
    std::vector<uint8_t> blob(map_bytes_in_place(s), 0);
    build_direct(s, blob.data(), blob.size());
    return blob;
  }
  const size_t n = s.rows * s.cols;
  PixelArrays a = compute_pixel_arrays(s.geometry, s.rows, s.cols, s.request, s.threads);
  // Normalisation: solid angle x polarization x flat, each product rounded to
  // float32 as the float32 arrays pyFAI multiplies.
  std::vector<float> norm;
  const std::vector<float>* parts[2] = {&a.solid_angle, &a.polarization};
  for (const std::vector<float>* p : parts) {
    if (p->empty()) continue;
    if (norm.empty()) norm = *p;
    else
      for (size_t i = 0; i < n; ++i) norm[i] *= (*p)[i];
  }
  if (!s.flat.empty()) {
    if (norm.empty()) norm = s.flat;
    else
      for (size_t i = 0; i < n; ++i) norm[i] *= s.flat[i];
  }
  MapInputs in;
  in.npix = n;
  in.pos0 = a.radial.data();
  in.dpos0 = s.request.corners ? a.radial_delta.data() : nullptr;
  in.pos1 = s.two_d ? a.chi.data() : nullptr;
  in.dpos1 = s.two_d && s.request.corners ? a.chi_delta.data() : nullptr;
  in.mask = s.mask.empty() ? nullptr : s.mask.data();
  in.norm = norm.empty() ? nullptr : norm.data();
  in.axis0 = s.axis0;
  in.axis1 = s.axis1;
  return build_map(in);
}

}  // namespace beamedge
