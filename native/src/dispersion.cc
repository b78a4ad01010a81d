// DIALS 3.12 dispersion spot finder, bit-exact: see dispersion.h for the rules.
#include "dispersion.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "cpu.h"

namespace beamedge {

namespace {

constexpr double kBig = double(1 << 24);  // DIALS: "Largest value to consider"

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

size_t DispersionFinder::fast(const int32_t* img, const uint8_t* mask, uint8_t* out) {
  const size_t n = w_ * h_;
  // Included pixels, and DIALS's exactness condition: the frame's sum of squares.
  double total = 0;
  for (size_t j = 0; j < h_; ++j) {
    double row = 0;
    const int32_t* s = img + j * w_;
    const uint8_t* mk = mask + j * w_;
    uint8_t* in = incl_.data() + j * w_;
    for (size_t i = 0; i < w_; ++i) {
      const bool on = (mk[i] == 0) & (s[i] < (1 << 24));
      in[i] = on;
      const double v = on ? double(s[i]) : 0.0;
      row += v * v;
    }
    total += row;
  }
  if (!(total < 2251799813685248.0 * 0.999)) return reference(img, mask, out);  // 2^51
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
  for (size_t j = 0, k = 0; j < h_; ++j) {
    for (size_t i = 0; i < w_; ++i, ++k) {
      if (!strong[k]) {
        labels_[k] = none;
        continue;
      }
      const uint32_t up = j > 0 ? labels_[k - w_] : none, left = i > 0 ? labels_[k - 1] : none;
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
  for (size_t j = 0, k = 0; j < h_; ++j) {
    for (size_t i = 0; i < w_; ++i, ++k) {
      if (labels_[k] == none) continue;
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
