// A geometry's pixel-to-bin map built in one call from what it depends on
// (geometry, shape, binning, unit, splitting, static mask, flat and the
// corrections' parameters), as the blob integrator.h describes: the daemon's
// map store builds it off the event loop and shares it between workers.
#pragma once
#include <cstdint>
#include <vector>

#include "geometry.h"
#include "integrator.h"

namespace beamedge {

struct MapSpec {
  Geometry geometry{};
  size_t rows = 0, cols = 0;
  PixelArrayRequest request;  // radial kind, corners (bbox), chi, solid angle, polarization
  bool two_d = false;
  std::vector<uint8_t> mask;  // empty: none
  std::vector<float> flat;    // empty: none
  AxisSpec axis0, axis1;
  int threads = 1;
  // Every pixel through libm, the way the map was always built: tests check
  // the fast path against it bit for bit.
  bool reference = false;
};

std::vector<uint8_t> build_pixel_map(const MapSpec& spec);

// Maps without splitting are laid out before they are built, so they can be
// built straight into memory the caller owns (a SharedArrayBuffer every
// worker reads): the size that takes, or 0 when `spec` cannot be built so.
size_t map_bytes_in_place(const MapSpec& spec);
// Builds into zero-filled blob[0, bytes), bytes = map_bytes_in_place(spec).
void build_pixel_map_into(const MapSpec& spec, uint8_t* blob, size_t bytes);

}  // namespace beamedge
