#include "geometry.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu.h"
#include "parallel.h"
#include <immintrin.h>

namespace beamedge {
namespace {

constexpr double kTwoPi = 2.0 * M_PI;

// Lab-frame coordinates of a detector point given relative to the PONI,
// following pyFAI's rotation convention (rot1, rot2, rot3 applied in that order).
struct Rotation {
  double c1, c2, c3, s1, s2, s3, L;
  explicit Rotation(const Geometry& g)
      : c1(std::cos(g.rot1)), c2(std::cos(g.rot2)), c3(std::cos(g.rot3)),
        s1(std::sin(g.rot1)), s2(std::sin(g.rot2)), s3(std::sin(g.rot3)), L(g.dist) {}
  void apply(double p1, double p2, double& t1, double& t2, double& t3) const {
    t1 = p1 * c2 * c3 + p2 * (c3 * s1 * s2 - c1 * s3) - L * (c1 * c3 * s2 + s1 * s3);
    t2 = p1 * c2 * s3 + p2 * (c1 * c3 + s1 * s2 * s3) - L * (-c3 * s1 + c1 * s2 * s3);
    t3 = p1 * s2 - p2 * c2 * s1 + L * c1 * c2;
  }
};

// This thread's rotation of the geometry it saw last: the exact path is
// called pixel by pixel, and six libm calls per pixel would double its cost.
const Rotation& rotation_of(const Geometry& g) {
  thread_local double key[4] = {NAN, NAN, NAN, NAN};
  thread_local Rotation rot(Geometry{});
  const double now[4] = {g.rot1, g.rot2, g.rot3, g.dist};
  if (std::memcmp(key, now, sizeof now) != 0) {
    rot = Rotation(g);
    std::memcpy(key, now, sizeof now);
  }
  return rot;
}

struct Point {
  double radial, chi, tth;
};

// pyFAI computes pixel-centre coordinates in float32 (its index grids are
// float32 arrays) and everything after that in double. Bins are narrow enough
// that the float32 rounding decides which bin a pixel falls in, so it is
// reproduced here; this file is built with -ffp-contract=off so the multiply
// and subtract are not fused.
inline double centre_coordinate(size_t index, double pixel, double poni) {
  const float pos = static_cast<float>(pixel) * (static_cast<float>(index) + 0.5f);
  return static_cast<double>(pos - static_cast<float>(poni));
}

struct Evaluator {
  const Geometry& g;
  Rotation rot;
  RadialKind kind;
  double q_scale;
  Evaluator(const Geometry& geo, RadialKind k)
      : g(geo), rot(rotation_of(geo)), kind(k), q_scale((4.0e-9 * M_PI) / geo.wavelength) {}

  // p1, p2: detector coordinates relative to the PONI (m).
  Point at(double p1, double p2) const {
    double t1, t2, t3;
    rot.apply(p1, p2, t1, t2, t3);
    const double r = std::sqrt(t1 * t1 + t2 * t2);
    const double tth = std::atan2(r, t3);
    Point out;
    out.tth = tth;
    out.chi = std::atan2(t1, t2);
    switch (kind) {
      case RadialKind::q_nm: out.radial = q_scale * std::sin(tth / 2.0); break;
      case RadialKind::tth_rad: out.radial = tth; break;
      case RadialKind::r_m: out.radial = r; break;
    }
    return out;
  }
};

// Angular distance that respects the discontinuity at +-pi.
inline double chi_distance(double corner, double centre) {
  return std::min(std::fmod(corner - centre + kTwoPi, kTwoPi), std::fmod(centre - corner + kTwoPi, kTwoPi));
}

}  // namespace

namespace {

// One pixel exactly as pyFAI rounds it: the reference every fast result must equal.
struct Exact {
  double radial, chi;
  float solid_angle, polarization;
};

inline Exact exact_pixel(const Geometry& g, const Evaluator& ev, const PixelArrayRequest& req, double p1, double p2) {
  const Point p = ev.at(p1, p2);
  Exact e{p.radial, p.chi, 0.0f, 0.0f};
  if (req.solid_angle) {
    const double cosa = g.dist / std::sqrt(g.dist * g.dist + (p1 * p1 + p2 * p2));
    e.solid_angle = static_cast<float>(std::pow(cosa, 3.0));
  }
  if (req.polarization) {
    const double c = std::cos(p.tth);
    const double cc = c * c;
    e.polarization = static_cast<float>(0.5 * (1.0 + cc - req.polarization_factor * std::cos(2.0 * p.chi) * (1.0 - cc)));
  }
  return e;
}

// Rows [r0, r1) the reference way: libm per pixel.
void exact_rows(const Geometry& g, const Evaluator& ev, const PixelArrayRequest& req, size_t cols, const double* c2,
                size_t r0, size_t r1, PixelArrays& out) {
  for (size_t i = r0; i < r1; ++i) {
    const double p1 = centre_coordinate(i, g.pixel1, g.poni1);
    for (size_t j = 0; j < cols; ++j) {
      const size_t k = i * cols + j;
      const Exact e = exact_pixel(g, ev, req, p1, c2[j]);
      out.radial[k] = e.radial;
      if (req.chi) out.chi[k] = e.chi;
      if (req.solid_angle) out.solid_angle[k] = e.solid_angle;
      if (req.polarization) out.polarization[k] = e.polarization;
    }
  }
}

// Relative error bound of the fast q against libm's: both are within a few
// ulp of the true value; 64 ulp leaves a wide margin. Certification relies on
// it only being an upper bound.
constexpr double kFastRelErr = 64 * 1.1102230246251565e-16;

// atan on [0, 1] as a float polynomial in t = 2a - 1 (Chebyshev
// interpolation, degree 9). Evaluated in float as the kernels do (no fused
// operations), its largest error over 2.5e7 points of [0, 1] is 1.3e-7 rad.
// The float rounding of t1 and t2 (9e-8), of the quotient and 2a - 1, the
// octant's reduction and the float constants pi/2 and pi (3.6e-7 together)
// add at most 4.5e-7: kFastChiErr keeps more than three times the sum (and
// covers an exact value rounded to float, 1.2e-7).
constexpr int kAtanDegree = 9;
constexpr float kAtanPoly[kAtanDegree + 1] = {0.46364766359329224f,   0.4000000059604645f,    -0.08000219613313675f,
                                              -0.005333255976438522f, 0.009618042036890984f,  -0.00243271142244339f,
                                              -0.0005219667800702155f, 0.0005110953934490681f, -4.248650657245889e-05f,
                                              -4.6044191549299285e-05f};
constexpr double kFastChiErr = 2e-6;

// The fast path, one row: everything pyFAI gets from atan2, sin, cos and pow
// rewritten with sqrt and divisions (exact identities: sin(tth/2) =
// sqrt(r^2 / (2R(R + t3))), cos(tth) = t3 / R, cos(2 chi) = (t2^2 - t1^2) / r^2),
// which vectorise. The radial value stays an approximation (its bin is
// certified by the map builder); the float32 corrections are kept only when
// their rounding is certain, and evaluated with libm otherwise.
typedef double v2d __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));
typedef float v2f __attribute__((vector_size(8)));
typedef float v4f __attribute__((vector_size(16)));

// The AVX2 and AVX-512 kernels: every function in these regions is compiled
// for that instruction set (and picked at run time only where the CPU has
// it), so wide vectors never cross a baseline function's boundary. AVX-512
// pays even where it is executed as two 256-bit halves (AMD Zen 4): 6M
// pixels in 24 ms against 34 with AVX2, half the instructions for the same
// square roots and divisions.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
namespace k_avx2 {
#define FAST_V v4d
#define FAST_F v4f
#define FAST_SQRT(x) __builtin_ia32_sqrtpd256(x)
#define FAST_KERNEL fast_row
#include "geometry_fast.inc"
#undef FAST_V
#undef FAST_F
#undef FAST_SQRT
#undef FAST_KERNEL
}  // namespace k_avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif
typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
namespace k_avx512 {
#define FAST_V v8d
#define FAST_F v8f
#if defined(__clang__)
#define FAST_SQRT(x) ((v8d)_mm512_sqrt_pd((__m512d)(x)))
#else
// The builtin, not _mm512_sqrt_pd: GCC 12's header passes an undefined vector and warns about it.
#define FAST_SQRT(x) ((v8d)__builtin_ia32_sqrtpd512_mask((__v8df)(x), (__v8df)(x), (__mmask8)-1, _MM_FROUND_CUR_DIRECTION))
#endif
#define FAST_KERNEL fast_row
#include "geometry_fast.inc"
#undef FAST_V
#undef FAST_F
#undef FAST_SQRT
#undef FAST_KERNEL
}  // namespace k_avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace k_sse2 {
#define FAST_V v2d
#define FAST_F v2f
#define FAST_SQRT(x) __builtin_ia32_sqrtpd(x)
#define FAST_KERNEL fast_row
#include "geometry_fast.inc"
#undef FAST_V
#undef FAST_F
#undef FAST_SQRT
#undef FAST_KERNEL
}  // namespace k_sse2

using FastRow = bool (*)(const Geometry&, const Rotation&, double, double, double, const double*, size_t, float*, float*, float*);

template <bool kQ, bool kSA, bool kPol, bool kChi>
FastRow pick_row() {
  if (cpu_has_avx512()) return k_avx512::fast_row<kQ, kSA, kPol, kChi>;
  return cpu_has_avx2() ? k_avx2::fast_row<kQ, kSA, kPol, kChi> : k_sse2::fast_row<kQ, kSA, kPol, kChi>;
}

template <bool kChi>
FastRow fast_row_kernel(bool q, bool sa, bool pol) {
  static const FastRow table[8] = {pick_row<false, false, false, kChi>(), pick_row<false, false, true, kChi>(), pick_row<false, true, false, kChi>(),
                                   pick_row<false, true, true, kChi>(),   pick_row<true, false, false, kChi>(),  pick_row<true, false, true, kChi>(),
                                   pick_row<true, true, false, kChi>(),   pick_row<true, true, true, kChi>()};
  return table[(q ? 4 : 0) | (sa ? 2 : 0) | (pol ? 1 : 0)];
}

}  // namespace

bool fast_radial_supported(RadialKind kind) { return kind != RadialKind::tth_rad; }

double fast_radial_rel_err(RadialKind kind) {
  // Float rounding of the approximation on top of its own error.
  return 5.9604644775390625e-08 * (1 + 1e-6) + (kind == RadialKind::q_nm ? kFastRelErr : 0.0);
}

void fast_pixel_row(const Geometry& g, size_t cols, const PixelArrayRequest& req, size_t i, float* radial, float* norm, float* chi) {
  const Evaluator ev(g, req.radial);
  const bool q = req.radial == RadialKind::q_nm;
  const FastRow row = chi ? fast_row_kernel<true>(q, req.solid_angle, req.polarization) : fast_row_kernel<false>(q, req.solid_angle, req.polarization);
  // The column coordinates: a small per-thread table, rebuilt only when the geometry or width changes.
  thread_local std::vector<double> c2;
  thread_local double c2_pixel = 0, c2_poni = 0;
  if (c2.size() != cols || c2_pixel != g.pixel2 || c2_poni != g.poni2) {
    c2.resize(cols);
    for (size_t j = 0; j < cols; ++j) c2[j] = centre_coordinate(j, g.pixel2, g.poni2);
    c2_pixel = g.pixel2;
    c2_poni = g.poni2;
  }
  const bool has_norm = req.solid_angle || req.polarization;
  const double p1 = centre_coordinate(i, g.pixel1, g.poni1);
  // The rare pixels whose results were not certain: the exact path.
  if (!row(g, ev.rot, ev.q_scale, req.polarization_factor, p1, c2.data(), cols, radial, norm, chi)) return;
  for (size_t j = 0; j < cols; ++j) {
    if (__builtin_expect(!std::isnan(radial[j]) && !(chi && std::isnan(chi[j])), 1)) continue;
    const Exact e = exact_pixel(g, ev, req, p1, c2[j]);
    radial[j] = static_cast<float>(e.radial);
    if (has_norm) norm[j] = req.solid_angle && req.polarization ? e.solid_angle * e.polarization : (req.solid_angle ? e.solid_angle : e.polarization);
    if (chi) chi[j] = static_cast<float>(e.chi);
  }
}

double fast_chi_abs_err() { return kFastChiErr; }

double exact_chi(const Geometry& g, size_t i, size_t j) {
  const Evaluator ev(g, RadialKind::r_m);
  return ev.at(centre_coordinate(i, g.pixel1, g.poni1), centre_coordinate(j, g.pixel2, g.poni2)).chi;
}

double exact_radial(const Geometry& g, RadialKind kind, size_t i, size_t j) {
  const Evaluator ev(g, kind);
  return ev.at(centre_coordinate(i, g.pixel1, g.poni1), centre_coordinate(j, g.pixel2, g.poni2)).radial;
}

PixelArrays compute_pixel_arrays(const Geometry& g, size_t rows, size_t cols, const PixelArrayRequest& req, int threads) {
  const size_t n = rows * cols;
  const Evaluator ev(g, req.radial);
  PixelArrays out;
  if (req.chi) out.chi.resize(n);
  out.radial.resize(n);
  if (req.solid_angle) out.solid_angle.resize(n);
  if (req.polarization) out.polarization.resize(n);

  std::vector<double> c2(cols);
  for (size_t j = 0; j < cols; ++j) c2[j] = centre_coordinate(j, g.pixel2, g.poni2);
  parallel_range(rows, threads, 64, [&](size_t r0, size_t r1) { exact_rows(g, ev, req, cols, c2.data(), r0, r1, out); });

  if (req.corners) {
    // Corners are shared by up to four pixels: evaluate the (rows+1) x (cols+1) grid once.
    const size_t cc = cols + 1;
    std::vector<float> crad((rows + 1) * cc), cchi;
    if (req.chi) cchi.resize((rows + 1) * cc);
    // Corners are in double but their radial and chi values are rounded to
    // float32, again as pyFAI stores them.
    parallel_range(rows + 1, threads, 64, [&](size_t r0, size_t r1) {
      for (size_t i = r0; i < r1; ++i)
        for (size_t j = 0; j <= cols; ++j) {
          const Point p = ev.at(g.pixel1 * static_cast<double>(i) - g.poni1, g.pixel2 * static_cast<double>(j) - g.poni2);
          crad[i * cc + j] = static_cast<float>(p.radial);
          if (req.chi) cchi[i * cc + j] = static_cast<float>(p.chi);
        }
    });
    out.radial_delta.resize(n);
    if (req.chi) out.chi_delta.resize(n);
    parallel_range(rows, threads, 64, [&](size_t r0, size_t r1) {
    for (size_t i = r0; i < r1; ++i)
      for (size_t j = 0; j < cols; ++j) {
        const size_t k = i * cols + j;
        const size_t c[4] = {i * cc + j, i * cc + j + 1, (i + 1) * cc + j, (i + 1) * cc + j + 1};
        double dr = 0, dc = 0;
        for (size_t m : c) {
          dr = std::max(dr, std::fabs(static_cast<double>(crad[m]) - out.radial[k]));
          if (req.chi) dc = std::max(dc, chi_distance(cchi[m], out.chi[k]));
        }
        out.radial_delta[k] = dr;
        if (req.chi) out.chi_delta[k] = dc;
      }
    });
  }
  return out;
}

}  // namespace beamedge
