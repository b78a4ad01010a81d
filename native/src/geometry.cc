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
      : g(geo), rot(geo), kind(k), q_scale((4.0e-9 * M_PI) / geo.wavelength) {}

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

PixelArrays compute_pixel_arrays(const Geometry& g, size_t rows, size_t cols, const PixelArrayRequest& req, int threads) {
  const size_t n = rows * cols;
  const Evaluator ev(g, req.radial);
  PixelArrays out;
  out.radial.resize(n);
  if (req.chi) out.chi.resize(n);
  if (req.solid_angle) out.solid_angle.resize(n);
  if (req.polarization) out.polarization.resize(n);

  std::vector<double> c2(cols);
  for (size_t j = 0; j < cols; ++j) c2[j] = centre_coordinate(j, g.pixel2, g.poni2);
  for (size_t i = 0; i < rows; ++i) {
    const double p1 = centre_coordinate(i, g.pixel1, g.poni1);
    for (size_t j = 0; j < cols; ++j) {
      const size_t k = i * cols + j;
      const double p2 = c2[j];
      const Point p = ev.at(p1, p2);
      out.radial[k] = p.radial;
      if (req.chi) out.chi[k] = p.chi;
      if (req.solid_angle) {
        const double cosa = g.dist / std::sqrt(g.dist * g.dist + (p1 * p1 + p2 * p2));
        out.solid_angle[k] = static_cast<float>(std::pow(cosa, 3.0));
      }
      if (req.polarization) {
        const double c = std::cos(p.tth);
        const double cc = c * c;
        out.polarization[k] = static_cast<float>(
            0.5 * (1.0 + cc - req.polarization_factor * std::cos(2.0 * p.chi) * (1.0 - cc)));
      }
    }
  }

  if (req.corners) {
    // Corners are shared by up to four pixels: evaluate the (rows+1) x (cols+1) grid once.
    const size_t cc = cols + 1;
    std::vector<float> crad((rows + 1) * cc), cchi;
    if (req.chi) cchi.resize((rows + 1) * cc);
    // Corners are in double but their radial and chi values are rounded to
    // float32, again as pyFAI stores them.
    for (size_t i = 0; i <= rows; ++i)
      for (size_t j = 0; j <= cols; ++j) {
        const Point p = ev.at(g.pixel1 * static_cast<double>(i) - g.poni1, g.pixel2 * static_cast<double>(j) - g.poni2);
        crad[i * cc + j] = static_cast<float>(p.radial);
        if (req.chi) cchi[i * cc + j] = static_cast<float>(p.chi);
      }
    out.radial_delta.resize(n);
    if (req.chi) out.chi_delta.resize(n);
    for (size_t i = 0; i < rows; ++i)
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
  }
  return out;
}

}  // namespace beamedge
