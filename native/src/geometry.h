// Per-pixel geometry with pyFAI's conventions (see README: "Geometry").
#pragma once
#include <cstddef>
#include <vector>

namespace beamedge {

struct Geometry {
  double dist;        // m, sample to PONI
  double poni1;       // m, slow axis
  double poni2;       // m, fast axis
  double rot1, rot2, rot3;  // rad
  double pixel1;      // m, slow axis
  double pixel2;      // m, fast axis
  double wavelength;  // m (only needed for q)
};

// Radial quantities in pyFAI's internal (unscaled) units.
enum class RadialKind { q_nm, tth_rad, r_m };

struct PixelArrays {
  std::vector<double> radial;        // at pixel centres
  std::vector<double> radial_delta;  // max |corner - centre| (only when corners requested)
  std::vector<double> chi;           // rad, in (-pi, pi]
  std::vector<double> chi_delta;
  std::vector<float> solid_angle;    // relative: cos^3(alpha)
  std::vector<float> polarization;   // only when a factor is given
  // > 0 (the fast path): `radial` is empty and `radial_approx` holds float
  // approximations within this relative error of the exact values
  // (exact_radial gives those); `norm` is solid angle x polarization (each
  // exact, as the reference rounds them) and those two stay empty; chi is exact.
  double radial_rel_err = 0;
  std::vector<float> radial_approx;
  std::vector<float> norm;
};

struct PixelArrayRequest {
  RadialKind radial = RadialKind::q_nm;
  bool corners = false;
  bool chi = false;
  bool solid_angle = false;
  bool polarization = false;
  double polarization_factor = 0;
  // Allows approximate radial values (see PixelArrays::radial_rel_err): the map
  // builder certifies each pixel's bin and evaluates exactly where unsure.
  bool approximate_radial = false;
};

// threads: rows are shared out between this many threads (results do not depend on it).
PixelArrays compute_pixel_arrays(const Geometry& g, size_t rows, size_t cols, const PixelArrayRequest& req, int threads = 1);

// The exact (pyFAI-rounded) radial value of pixel (i, j).
double exact_radial(const Geometry& g, RadialKind kind, size_t i, size_t j);

}  // namespace beamedge
