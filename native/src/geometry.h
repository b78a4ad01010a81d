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
};

struct PixelArrayRequest {
  RadialKind radial = RadialKind::q_nm;
  bool corners = false;
  bool chi = false;
  bool solid_angle = false;
  bool polarization = false;
  double polarization_factor = 0;
};

// threads: rows are shared out between this many threads (results do not depend on it).
PixelArrays compute_pixel_arrays(const Geometry& g, size_t rows, size_t cols, const PixelArrayRequest& req, int threads = 1);

// The fast path, one row i of a detector `cols` wide (vectorised: sqrt and
// one division per pixel instead of atan2, sin, cos and pow): a float
// approximation of each pixel's radial value, within fast_radial_rel_err
// (relative) of exact_radial's, for the map builder to certify; when the
// request has solid angle or polarization, their float32 product into `norm`,
// exactly as the reference rounds each; when `chi` is given, a float
// (float-evaluated) approximation of chi within fast_chi_abs_err (rad) of exact_chi's.
bool fast_radial_supported(RadialKind kind);
double fast_radial_rel_err(RadialKind kind);
double fast_chi_abs_err();
void fast_pixel_row(const Geometry& g, size_t cols, const PixelArrayRequest& req, size_t i, float* radial, float* norm, float* chi);
// The exact chi of pixel (i, j), as the reference evaluates it.
double exact_chi(const Geometry& g, size_t i, size_t j);

// The exact (pyFAI-rounded) radial value of pixel (i, j).
double exact_radial(const Geometry& g, RadialKind kind, size_t i, size_t j);

}  // namespace beamedge
