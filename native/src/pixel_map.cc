#include "pixel_map.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <thread>

namespace beamedge {
namespace {

// Runs f(k0, k1) on bands of [0, n) on up to `threads` threads.
template <typename F>
void parallel_range(size_t n, int threads, F&& f) {
  const size_t t = std::max<size_t>(1, std::min<size_t>(threads < 1 ? 1 : size_t(threads), n / 65536 + 1));
  std::vector<std::thread> pool;
  const size_t band = (n + t - 1) / t;
  for (size_t i = 1; i < t; ++i) {
    const size_t k0 = std::min(n, i * band), k1 = std::min(n, k0 + band);
    pool.emplace_back([&f, k0, k1] { f(k0, k1); });
  }
  f(size_t(0), std::min(n, band));
  for (auto& th : pool) th.join();
}

struct Certified {
  std::vector<int32_t> bins;  // radial bin of each unmasked pixel, -1 outside
  double lo = 0, hi = 0;      // exact extremes of the unmasked pixels
};

// The fast geometry gives radial values within rel_err of the exact ones. A
// pixel's bin is a monotone function of its value (subtract, divide,
// truncate), so when every value within that error falls in the same bin the
// approximation decides it exactly; the few pixels close to a bin edge, and
// the ones that could be the range's minimum or maximum, get their exact
// value. The map is then the one the exact values give, bit for bit.
Certified certify_radial(const MapSpec& s, const PixelArrays& a) {
  const double e = 2 * a.radial_rel_err;  // twice the bound: the checks below round too
  const size_t n = s.rows * s.cols;
  const float* x = a.radial_approx.data();
  const uint8_t* mask = s.mask.empty() ? nullptr : s.mask.data();
  auto exact = [&](size_t k) { return exact_radial(s.geometry, s.request.radial, k / s.cols, k % s.cols); };
  Certified c;
  // Candidates for the extremes: any pixel whose exact value could be below
  // the smallest upper bound (or above the largest lower bound).
  float lo_f = INFINITY, hi_f = -INFINITY;
  // Branch-free (masked pixels read as +-inf), so it vectorises.
  if (mask)
    for (size_t k = 0; k < n; ++k) {
      lo_f = std::min(lo_f, mask[k] ? INFINITY : x[k]);
      hi_f = std::max(hi_f, mask[k] ? -INFINITY : x[k]);
    }
  else
    for (size_t k = 0; k < n; ++k) {
      lo_f = std::min(lo_f, x[k]);
      hi_f = std::max(hi_f, x[k]);
    }
  if (!(lo_f <= hi_f)) throw std::invalid_argument("every pixel is masked");
  const double lo_up = lo_f + e * std::fabs(lo_f), hi_down = hi_f - e * std::fabs(hi_f);
  c.lo = INFINITY;
  c.hi = -INFINITY;
  // A float compare first: candidates are rare, the exact test runs on few.
  const float lo_pre = static_cast<float>(lo_up * (1 + 4 * e)), hi_pre = static_cast<float>(hi_down * (1 - 4 * e));
  for (size_t k = 0; k < n; ++k) {
    if (__builtin_expect(!(x[k] <= lo_pre || x[k] >= hi_pre), 1)) continue;
    if (mask && mask[k]) continue;
    const double xk = x[k], m = e * std::fabs(xk);
    if (xk - m <= lo_up || xk + m >= hi_down) {
      const double v = exact(k);
      c.lo = std::min(c.lo, v);
      c.hi = std::max(c.hi, v);
    }
  }
  const Axis axis = resolve_axis(s.axis0, c.lo, c.hi);
  const double inv_delta = 1.0 / axis.delta;
  constexpr double u = 2.220446049250313e-16;
  // One bound for every pixel (the largest any pixel needs), so the test is
  // branch-free: how far the exact value's coordinate can be from the
  // approximation's, plus the rounding of both (multiplying by the inverse
  // differs from pyFAI's division by a few ulp of f).
  const double big = std::max(std::fabs(c.lo), std::fabs(c.hi));
  const double w = (2 * e * big + 4 * u * (big + std::fabs(axis.min))) * inv_delta + 8 * u * axis.bins;
  const double top = axis.bins - w;
  c.bins.resize(n);
  constexpr int32_t kUnsure = -2;
  parallel_range(n, s.threads, [&](size_t k0, size_t k1) {
    int32_t* out = c.bins.data();
    for (size_t k = k0; k < k1; ++k) {
      const double f = (static_cast<double>(x[k]) - axis.min) * inv_delta;
      // f > w: truncation is floor (std::floor is a libm call on baseline x86-64).
      const int32_t b = static_cast<int32_t>(std::min(std::max(f, -2.0), top));
      // Bitwise, not short-circuit: no branches, so the loop vectorises.
      const int sure = (f > w) & (f < top) & (f - b > w) & (b + 1 - f > w);
      const int out_of_range = (f + w <= -1) | (f - w >= axis.bins);
      const int masked = mask ? mask[k] != 0 : 0;
      out[k] = (masked | out_of_range) ? -1 : (sure ? b : kUnsure);
    }
    for (size_t k = k0; k < k1; ++k)
      if (__builtin_expect(out[k] == kUnsure, 0)) out[k] = histogram_bin(axis, exact(k));
  });
  return c;
}

}  // namespace

std::vector<uint8_t> build_pixel_map(const MapSpec& s) {
  const size_t n = s.rows * s.cols;
  if (!s.mask.empty() && s.mask.size() != n) throw std::invalid_argument("mask does not match the frame shape");
  if (!s.flat.empty() && s.flat.size() != n) throw std::invalid_argument("flat does not match the frame shape");
  PixelArrayRequest req = s.request;
  req.approximate_radial = !s.reference;
  PixelArrays a = compute_pixel_arrays(s.geometry, s.rows, s.cols, req, s.threads);
  // Normalisation: solid angle x polarization x flat, each product rounded to
  // float32 as the float32 arrays pyFAI multiplies.
  std::vector<float> norm = std::move(a.norm);
  if (norm.empty()) {
    const std::vector<float>* parts[2] = {&a.solid_angle, &a.polarization};
    for (const std::vector<float>* p : parts) {
      if (p->empty()) continue;
      if (norm.empty()) norm = *p;
      else
        for (size_t i = 0; i < n; ++i) norm[i] *= (*p)[i];
    }
  }
  if (!s.flat.empty()) {
    if (norm.empty()) norm = s.flat;
    else
      for (size_t i = 0; i < n; ++i) norm[i] *= s.flat[i];
  }
  MapInputs in;
  in.npix = n;
  in.dpos0 = s.request.corners ? a.radial_delta.data() : nullptr;
  in.pos1 = s.two_d ? a.chi.data() : nullptr;
  in.dpos1 = s.two_d && s.request.corners ? a.chi_delta.data() : nullptr;
  in.mask = s.mask.empty() ? nullptr : s.mask.data();
  in.norm = norm.empty() ? nullptr : norm.data();
  in.axis0 = s.axis0;
  in.axis1 = s.axis1;
  Certified c;
  if (!a.radial_approx.empty()) {
    c = certify_radial(s, a);
    in.bin0 = c.bins.data();
    in.has_range0 = true;
    in.data_lo0 = c.lo;
    in.data_hi0 = c.hi;
  } else {
    in.pos0 = a.radial.data();
  }
  return build_map(in);
}

}  // namespace beamedge
