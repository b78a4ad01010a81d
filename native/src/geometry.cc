#include "geometry.h"

#include <algorithm>
#include <cmath>

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

struct Point {
  double radial, chi, tth;
};

struct Evaluator {
  const Geometry& g;
  Rotation rot;
  RadialKind kind;
  double q_scale;
  Evaluator(const Geometry& geo, RadialKind k)
      : g(geo), rot(geo), kind(k), q_scale(4.0e-9 * M_PI / geo.wavelength) {}

  // (i, j): position in pixel units along slow and fast axes (centre = index + 0.5).
  Point at(double i, double j) const {
    const double p1 = i * g.pixel1 - g.poni1;
    const double p2 = j * g.pixel2 - g.poni2;
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
inline double chi_distance(double a, double b) {
  const double d1 = std::fmod(std::fmod(a - b, kTwoPi) + kTwoPi, kTwoPi);
  const double d2 = std::fmod(std::fmod(b - a, kTwoPi) + kTwoPi, kTwoPi);
  return std::min(d1, d2);
}

}  // namespace

PixelArrays compute_pixel_arrays(const Geometry& g, size_t rows, size_t cols, const PixelArrayRequest& req) {
  const size_t n = rows * cols;
  const Evaluator ev(g, req.radial);
  PixelArrays out;
  out.radial.resize(n);
  if (req.chi) out.chi.resize(n);
  if (req.solid_angle) out.solid_angle.resize(n);
  if (req.polarization) out.polarization.resize(n);

  for (size_t i = 0; i < rows; ++i) {
    for (size_t j = 0; j < cols; ++j) {
      const size_t k = i * cols + j;
      const Point p = ev.at(i + 0.5, j + 0.5);
      out.radial[k] = p.radial;
      if (req.chi) out.chi[k] = p.chi;
      if (req.solid_angle) {
        const double p1 = (i + 0.5) * g.pixel1 - g.poni1;
        const double p2 = (j + 0.5) * g.pixel2 - g.poni2;
        const double cosa = g.dist / std::sqrt(g.dist * g.dist + p1 * p1 + p2 * p2);
        out.solid_angle[k] = static_cast<float>(cosa * cosa * cosa);
      }
      if (req.polarization) {
        const double c2t = std::cos(p.tth);
        const double cc = c2t * c2t;
        out.polarization[k] = static_cast<float>(
            0.5 * (1.0 + cc - req.polarization_factor * std::cos(2.0 * p.chi) * (1.0 - cc)));
      }
    }
  }

  if (req.corners) {
    // Corners are shared by up to four pixels: evaluate the (rows+1) x (cols+1) grid once.
    const size_t cc = cols + 1;
    std::vector<double> crad((rows + 1) * cc), cchi;
    if (req.chi) cchi.resize((rows + 1) * cc);
    for (size_t i = 0; i <= rows; ++i)
      for (size_t j = 0; j <= cols; ++j) {
        const Point p = ev.at(static_cast<double>(i), static_cast<double>(j));
        crad[i * cc + j] = p.radial;
        if (req.chi) cchi[i * cc + j] = p.chi;
      }
    out.radial_delta.resize(n);
    if (req.chi) out.chi_delta.resize(n);
    for (size_t i = 0; i < rows; ++i)
      for (size_t j = 0; j < cols; ++j) {
        const size_t k = i * cols + j;
        const size_t c[4] = {i * cc + j, i * cc + j + 1, (i + 1) * cc + j, (i + 1) * cc + j + 1};
        double dr = 0, dc = 0;
        for (size_t m : c) {
          dr = std::max(dr, std::fabs(crad[m] - out.radial[k]));
          if (req.chi) dc = std::max(dc, chi_distance(cchi[m], out.chi[k]));
        }
        out.radial_delta[k] = dr;
        if (req.chi) out.chi_delta[k] = dc;
      }
  }
  return out;
}

}  // namespace beamedge
