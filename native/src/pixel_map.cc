#include "pixel_map.h"

#include <stdexcept>

namespace beamedge {

std::vector<uint8_t> build_pixel_map(const MapSpec& s) {
  const size_t n = s.rows * s.cols;
  if (!s.mask.empty() && s.mask.size() != n) throw std::invalid_argument("mask does not match the frame shape");
  if (!s.flat.empty() && s.flat.size() != n) throw std::invalid_argument("flat does not match the frame shape");
  PixelArrays a = compute_pixel_arrays(s.geometry, s.rows, s.cols, s.request, s.threads);
  // Normalisation: solid angle x polarization x flat, each product rounded to
  // float32 as the float32 arrays pyFAI multiplies.
  std::vector<float> norm;
  const std::vector<float>* parts[3] = {&a.solid_angle, &a.polarization, &s.flat};
  for (const std::vector<float>* p : parts) {
    if (p->empty()) continue;
    if (norm.empty()) norm = *p;
    else
      for (size_t i = 0; i < n; ++i) norm[i] *= (*p)[i];
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
