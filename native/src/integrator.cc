#include "integrator.h"

#include "pixel_rules.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <limits>
#include <type_traits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace beamedge {
namespace {

constexpr uint32_t kUnmapped = 0xFFFFFFFFu;
// pyFAI widens the upper edge by one float32 epsilon so the largest position
// still falls inside the last bin.
constexpr double kEps32 = 1.0 + 1.1920928955078125e-07;

// Packed integer sums: signal in the high bits, the number of zero-valued
// pixels in the low kZeroBits. For counts x >= 0, max(x, 1) = x + [x == 0], so
// one integer add per pixel carries both the signal and the Poisson variance.
// A run of at most 2^kZeroBits - 1 pixels can neither overflow the zero count
// nor (with x < 2^32) the 64-bit word.
constexpr int kZeroBits = 16;
constexpr size_t kPackedRun = (size_t(1) << kZeroBits) - 1;
constexpr size_t kPackedLanes = 4;
// Floating-point sums of a direct map: two copies of [signal, variance] per bin,
// pixels alternating between them, merged in finish(). Neighbouring pixels
// mostly share a bin, and with one copy each add waited for the previous one's
// store (measured on a 4M float frame: 3.4 ms with one copy, 3.05 with two,
// no gain from four).
constexpr size_t kSumLanes = 2;


}  // namespace

Axis resolve_axis(const AxisSpec& spec, double data_lo, double data_hi) {
  if (spec.bins < 1) throw std::invalid_argument("the number of bins must be at least 1");
  Axis a;
  a.bins = spec.bins;
  if (std::isnan(spec.lo)) {
    a.min = data_lo;
    a.max_in = data_hi;
    if (!spec.allow_negative) {
      a.min = std::max(a.min, 0.0);
      a.max_in = std::max(a.max_in, 0.0);
    }
  } else {
    a.min = std::min(spec.lo, spec.hi);
    a.max_in = std::max(spec.lo, spec.hi);
  }
  if (!(a.max_in > a.min)) throw std::invalid_argument("the integration range is empty");
  a.max = a.max_in > 0 ? a.max_in * kEps32 : (a.max_in < 0 ? a.max_in / kEps32 : a.max_in);
  a.delta = (a.max - a.min) / a.bins;
  return a;
}

bool span_of(const Axis& a, double lo, double hi, Span& s) {
  s.flo = (lo - a.min) / a.delta;
  s.fhi = (hi - a.min) / a.delta;
  // Compare as doubles first: the int conversion of a far-out value is undefined.
  if (!(s.fhi > -1.0) || !(s.flo < a.bins)) return false;
  s.blo = std::max(static_cast<int>(std::max(s.flo, -1.0)), 0);
  s.bhi = std::min(static_cast<int>(std::min(s.fhi, static_cast<double>(a.bins))), a.bins - 1);
  return true;
}

namespace {

// Bounding-box split along one axis: (bin, weight) pairs proportional to the overlap.
void split_bbox(const Axis& a, double lo, double hi, std::vector<std::pair<int, double>>& out) {
  out.clear();
  Span s;
  if (!span_of(a, lo, hi, s)) return;
  if (s.blo == s.bhi) {
    out.emplace_back(s.blo, 1.0);
    return;
  }
  const double inv = 1.0 / (s.fhi - s.flo);
  out.emplace_back(s.blo, inv * ((s.blo + 1) - s.flo));
  for (int b = s.blo + 1; b < s.bhi; ++b) out.emplace_back(b, inv);
  out.emplace_back(s.bhi, inv * (s.fhi - s.bhi));
}

}  // namespace

int histogram_bin(const Axis& a, double x) {
  Span s;
  return span_of(a, x, x, s) ? s.blo : -1;
}

namespace {

size_t align8(size_t n) { return (n + 7) & ~size_t(7); }

// Lays out the sections after the header; returns the blob's total size.
struct Layout {
  size_t at = sizeof(MapHeader);
  size_t take(size_t bytes) {
    const size_t off = at;
    at = align8(at + bytes);
    return off;
  }
};

void put_axis(double* out, const Axis& a) {
  out[0] = a.min;
  out[1] = a.max_in;
  out[2] = a.max;
  out[3] = a.delta;
}

Axis get_axis(const double* in, int bins) {
  Axis a;
  a.bins = bins;
  a.min = in[0];
  a.max_in = in[1];
  a.max = in[2];
  a.delta = in[3];
  return a;
}

}  // namespace

uint64_t map_checksum(const uint8_t* blob, size_t len) {
  // Four independent multiply-rotate lanes over 8-byte words (several GB/s):
  // it guards the on-disk cache against truncation and bit rot, not attackers.
  constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full;
  uint64_t h[4] = {kP1, kP2, kP1 ^ kP2, ~kP1};
  if (len < sizeof(MapHeader)) return 0;
  const uint8_t* p = blob + sizeof(MapHeader);
  size_t n = len - sizeof(MapHeader);
  auto mix = [](uint64_t acc, uint64_t w) {
    acc += w * kP2;
    acc = (acc << 31) | (acc >> 33);
    return acc * kP1;
  };
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      h[l] = mix(h[l], w);
    }
  uint64_t out = n;
  for (int l = 0; l < 4; ++l) out = mix(out, h[l]);
  for (; i < n; ++i) out = mix(out, p[i]);
  return out ^ (out >> 29);
}

std::string check_map(const uint8_t* blob, size_t len, bool checksum) {
  if (len < sizeof(MapHeader)) return "map shorter than its header";
  MapHeader h;
  std::memcpy(&h, blob, sizeof h);
  if (h.magic != kMapMagic) return "not a beamedge map";
  if (h.version != kMapVersion) return "map format version " + std::to_string(h.version) + ", expected " + std::to_string(kMapVersion);
  if (h.total_bytes != len) return "map is " + std::to_string(len) + " bytes, its header says " + std::to_string(h.total_bytes);
  if (h.bins0 < 1 || h.bins1 < 1 || h.npix == 0 || h.npix >= kUnmapped) return "map dimensions out of range";
  const uint64_t nb = uint64_t(h.bins0) * uint64_t(h.bins1);
  if (nb >= kUnmapped) return "too many bins";
  const bool direct = h.flags & kMapDirect;
  auto inside = [&](uint64_t off, uint64_t bytes) { return off >= sizeof(MapHeader) && off % 8 == 0 && off <= len && bytes <= len - off; };
  if (!inside(h.static_norm, nb * 8) || !inside(h.static_count, nb * 8)) return "map sections out of bounds";
  const bool narrow = h.flags & kMapNarrow, packed = h.flags & kMapNormPacked;
  if (narrow && (direct || (h.flags & (kMapTwoD | kMapCompact)) || h.bins1 != 1)) return "map flags inconsistent";
  if (packed && (!narrow || !(h.flags & kMapNorm))) return "map flags inconsistent";
  if (packed) {
    const uint64_t blocks = (h.npix + kNormBlock - 1) / kNormBlock;
    if (!inside(h.norm, h.npix) || !inside(h.norm_escape_index, (blocks + 1) * 4) || h.norm_nescapes > h.npix ||
        !inside(h.norm_escapes, h.norm_nescapes * 4))
      return "map sections out of bounds";
  } else if ((h.flags & kMapNorm) && !inside(h.norm, h.npix * 4)) {
    return "map sections out of bounds";
  }
  if (narrow) {
    if (!inside(h.bins, h.npix * ((h.flags & kMapIndex16) ? 2 : 4)) || !inside(h.weights, h.npix * 2) || !inside(h.counts, h.npix) || h.nweights > h.npix ||
        !inside(h.exceptions, h.nweights * sizeof(NarrowException)))
      return "map sections out of bounds";
    if ((h.flags & kMapIndex16) && nb >= 0xFFFF) return "16-bit map with too many bins";
  } else if (direct) {
    if (!inside(h.bins, h.npix * ((h.flags & kMapIndex16) ? 2 : 4))) return "map sections out of bounds";
    if ((h.flags & kMapIndex16) && nb >= 0xFFFF) return "16-bit map with too many bins";
  } else if (h.flags & kMapCompact) {
    const uint64_t nw = h.nweights;
    if ((h.flags & kMapTwoD) || !inside(h.bins, h.npix * ((h.flags & kMapIndex16) ? 2 : 4)) || !inside(h.counts, h.npix) ||
        !inside(h.checkpoints, ((h.npix + kCheckpoint - 1) / kCheckpoint) * 4) || nw >= kUnmapped || !inside(h.weights, nw * 4))
      return "map sections out of bounds";
  } else {
    if (h.entries >= kUnmapped || !inside(h.ptr, (h.npix + 1) * 4) || !inside(h.ebin, h.entries * 4) || !inside(h.eweight, h.entries * 4))
      return "map sections out of bounds";
  }
  if (checksum && map_checksum(blob, len) != h.checksum) return "map checksum mismatch";
  // Indices: every one must stay inside the sums it addresses.
  if (packed) {
    const std::string problem = check_packed_norm(blob, h);
    if (!problem.empty()) return problem;
  }
  if (narrow) {
    return check_narrow(blob, h);
  } else if (direct) {
    if (h.flags & kMapIndex16) {
      // By value, not std::max's reference: GCC kept `worst` in memory
      // through the reference and the scan ran at one store-load round trip
      // per pixel (21 ms of a 6M map, paid on every cache load and again by
      // the integrator's own check).
      const uint16_t* m = reinterpret_cast<const uint16_t*>(blob + h.bins);
      uint16_t worst = 0;
      for (uint64_t i = 0; i < h.npix; ++i) worst = m[i] > worst ? m[i] : worst;
      if (worst > nb) return "map bin index out of range";
    } else {
      const uint32_t* m = reinterpret_cast<const uint32_t*>(blob + h.bins);
      uint32_t worst = 0;
      for (uint64_t i = 0; i < h.npix; ++i) worst = m[i] > worst ? m[i] : worst;
      if (worst > nb) return "map bin index out of range";
    }
  } else if (h.flags & kMapCompact) {
    // Every pixel's bins inside the grid, and the checkpoints the running weight count.
    const uint8_t* counts = blob + h.counts;
    const uint32_t* cp = reinterpret_cast<const uint32_t*>(blob + h.checkpoints);
    const uint16_t* b16 = reinterpret_cast<const uint16_t*>(blob + h.bins);
    const uint32_t* b32 = reinterpret_cast<const uint32_t*>(blob + h.bins);
    const bool narrow = h.flags & kMapIndex16;
    uint64_t w = 0;
    for (uint64_t i = 0; i < h.npix; ++i) {
      if (i % kCheckpoint == 0 && cp[i / kCheckpoint] != w) return "map weight checkpoints inconsistent";
      const uint64_t c = counts[i];
      if (c == 0) continue;
      const uint64_t b = narrow ? b16[i] : b32[i];
      if (b + c > nb) return "map bin index out of range";
      w += c == 1 ? 0 : (c == 2 ? 2 : 3);
    }
    if (w != h.nweights) return "map weight table inconsistent";
  } else {
    const uint32_t* ptr = reinterpret_cast<const uint32_t*>(blob + h.ptr);
    if (ptr[0] != 0 || ptr[h.npix] != h.entries) return "map entry table inconsistent";
    for (uint64_t i = 0; i < h.npix; ++i)
      if (ptr[i + 1] < ptr[i]) return "map entry table inconsistent";
    const uint32_t* eb = reinterpret_cast<const uint32_t*>(blob + h.ebin);
    uint32_t worst = 0;
    for (uint64_t e = 0; e < h.entries; ++e) worst = eb[e] > worst ? eb[e] : worst;
    if (h.entries && worst >= nb) return "map bin index out of range";
  }
  return "";
}

DirectLayout layout_direct_map(size_t npix, int bins0, int bins1, bool two_d, bool has_norm) {
  DirectLayout d;
  d.bins = static_cast<size_t>(bins0) * bins1;
  MapHeader& h = d.header;
  h.magic = kMapMagic;
  h.version = kMapVersion;
  h.npix = npix;
  h.bins0 = bins0;
  h.bins1 = bins1;
  // Unmapped pixels point at an extra "discard" bin, so the per-frame loop needs no branch for them.
  const bool narrow = d.bins < 0xFFFF;
  h.flags = kMapDirect | (two_d ? kMapTwoD : 0) | (has_norm ? kMapNorm : 0) | (narrow ? kMapIndex16 : 0);
  Layout lay;
  h.static_norm = lay.take(d.bins * 8);
  h.static_count = lay.take(d.bins * 8);
  if (has_norm) h.norm = lay.take(npix * 4);
  h.bins = lay.take(npix * (narrow ? 2 : 4));
  h.total_bytes = d.bytes = lay.at;
  return d;
}

void seal_direct_map(uint8_t* blob, const DirectLayout& lay, const Axis& axis0, const Axis& axis1, uint64_t mapped) {
  MapHeader h = lay.header;
  put_axis(h.axis0, axis0);
  put_axis(h.axis1, axis1);
  h.mapped = mapped;
  std::memcpy(blob, &h, sizeof h);
  h.checksum = map_checksum(blob, lay.bytes);
  std::memcpy(blob, &h, sizeof h);
}

uint64_t sum_direct_map(uint8_t* blob, const DirectLayout& lay) {
  const MapHeader& h = lay.header;
  const size_t n = h.npix, nb = lay.bins;
  const bool narrow = h.flags & kMapIndex16;
  const uint16_t* b16 = reinterpret_cast<const uint16_t*>(blob + h.bins);
  const uint32_t* b32 = reinterpret_cast<const uint32_t*>(blob + h.bins);
  const float* norm = (h.flags & kMapNorm) ? reinterpret_cast<const float*>(blob + h.norm) : nullptr;
  double* static_norm = reinterpret_cast<double*>(blob + h.static_norm);
  double* static_count = reinterpret_cast<double*>(blob + h.static_count);
  // Neighbouring pixels mostly share a bin: the bin's running sums stay in
  // registers while they do (the same additions in the same order as
  // through memory, so the same sums, without a store-to-load wait each).
  uint64_t mapped = 0;
  size_t cur = nb;
  double run_norm = 0, run_count = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t b = narrow ? b16[k] : b32[k];
    if (b == nb) continue;
    ++mapped;
    if (b != cur) {
      if (cur < nb) {
        static_norm[cur] = run_norm;
        static_count[cur] = run_count;
      }
      cur = b;
      run_norm = static_norm[b];
      run_count = static_count[b];
    }
    run_norm += norm ? static_cast<double>(norm[k]) : 1.0;
    run_count += 1.0;
  }
  if (cur < nb) {
    static_norm[cur] = run_norm;
    static_count[cur] = run_count;
  }
  return mapped;
}

std::vector<uint8_t> build_map(const MapInputs& in) {
  if (!in.pos0) throw std::invalid_argument("radial positions are required");
  if (in.npix == 0) throw std::invalid_argument("no pixels");
  if (in.npix >= kUnmapped) throw std::invalid_argument("too many pixels");
  const bool two_d = in.pos1 != nullptr;
  const bool split = in.dpos0 != nullptr;
  if (split && two_d && !in.dpos1) throw std::invalid_argument("bbox splitting in 2D needs azimuthal half-widths");

  // Default ranges span the unmasked pixels (their bounding boxes when splitting).
  double lo0 = INFINITY, hi0 = -INFINITY, lo1 = INFINITY, hi1 = -INFINITY;
  for (size_t i = 0; i < in.npix; ++i) {
    if (in.mask && in.mask[i]) continue;
    const double d0 = split ? in.dpos0[i] : 0.0;
    lo0 = std::min(lo0, in.pos0[i] - d0);
    hi0 = std::max(hi0, in.pos0[i] + d0);
    if (two_d) {
      const double d1 = split ? in.dpos1[i] : 0.0;
      lo1 = std::min(lo1, in.pos1[i] - d1);
      hi1 = std::max(hi1, in.pos1[i] + d1);
    }
  }
  if (lo0 > hi0) throw std::invalid_argument("every pixel is masked");
  const Axis axis0 = resolve_axis(in.axis0, lo0, hi0);
  Axis axis1;
  if (two_d) {
    AxisSpec s1 = in.axis1;
    s1.allow_negative = true;
    axis1 = resolve_axis(s1, std::max(lo1, -kPi32), std::min(hi1, kPi32));
  }
  const size_t nb = static_cast<size_t>(axis0.bins) * axis1.bins;
  if (nb >= kUnmapped) throw std::invalid_argument("too many bins");
  auto norm_of = [&](size_t i) { return in.norm ? static_cast<double>(in.norm[i]) : 1.0; };
  std::vector<uint8_t> blob;

  if (!split) {
    const DirectLayout lay = layout_direct_map(in.npix, axis0.bins, axis1.bins, two_d, in.norm != nullptr);
    blob.assign(lay.bytes, 0);
    const MapHeader& h = lay.header;
    const bool narrow = h.flags & kMapIndex16;
    uint16_t* m16 = reinterpret_cast<uint16_t*>(blob.data() + h.bins);
    uint32_t* m32 = reinterpret_cast<uint32_t*>(blob.data() + h.bins);
    for (size_t i = 0; i < in.npix; ++i) {
      uint32_t b = static_cast<uint32_t>(nb);
      if (!(in.mask && in.mask[i])) {
        const int b0 = histogram_bin(axis0, in.pos0[i]);
        int b1 = 0;
        if (b0 >= 0 && (!two_d || (b1 = histogram_bin(axis1, in.pos1[i])) >= 0)) b = static_cast<uint32_t>(b1) * axis0.bins + b0;
      }
      if (narrow) m16[i] = static_cast<uint16_t>(b);
      else m32[i] = b;
    }
    if (in.norm) std::memcpy(blob.data() + h.norm, in.norm, in.npix * 4);
    const uint64_t mapped = sum_direct_map(blob.data(), lay);
    seal_direct_map(blob.data(), lay, axis0, axis1, mapped);
    return blob;
  }

  MapHeader h{};
  h.magic = kMapMagic;
  h.version = kMapVersion;
  h.npix = in.npix;
  h.bins0 = axis0.bins;
  h.bins1 = axis1.bins;
  put_axis(h.axis0, axis0);
  put_axis(h.axis1, axis1);
  h.flags = (two_d ? kMapTwoD : 0) | (in.norm ? kMapNorm : 0);
  Layout lay;
  h.static_norm = lay.take(nb * 8);
  h.static_count = lay.take(nb * 8);
  if (in.norm) h.norm = lay.take(in.npix * 4);
  if (!two_d) {
    // Narrow weights (bbox_map.h), unless too many pixels span three or more bins.
    std::vector<uint8_t> narrow = build_narrow_map(in, axis0, h);
    if (!narrow.empty()) return narrow;
  }
  std::vector<double> static_norm(nb, 0.0), static_count(nb, 0.0);
  {
    std::vector<uint32_t> ptr(in.npix + 1, 0), ebin;
    std::vector<float> eweight;
    std::vector<std::pair<int, double>> s0, s1;
    s1.emplace_back(0, 1.0);
    size_t mapped = 0;
    for (size_t i = 0; i < in.npix; ++i) {
      ptr[i] = static_cast<uint32_t>(ebin.size());
      if (ebin.size() > kUnmapped - 4096) throw std::length_error("pixel-to-bin map too large");
      if (in.mask && in.mask[i]) continue;
      split_bbox(axis0, in.pos0[i] - in.dpos0[i], in.pos0[i] + in.dpos0[i], s0);
      if (two_d) split_bbox(axis1, in.pos1[i] - in.dpos1[i], in.pos1[i] + in.dpos1[i], s1);
      for (const auto& a : s1)
        for (const auto& r : s0) {
          const uint32_t b = static_cast<uint32_t>(a.first) * axis0.bins + r.first;
          const float w = static_cast<float>(a.second * r.second);
          ebin.push_back(b);
          eweight.push_back(w);
          static_norm[b] += w * norm_of(i);
          static_count[b] += w;
        }
      if (ptr[i] != ebin.size()) ++mapped;
    }
    ptr[in.npix] = static_cast<uint32_t>(ebin.size());
    h.mapped = mapped;
    h.entries = ebin.size();
    // 1D: a pixel's bins are consecutive and its interior weights equal, so
    // its first bin, its bin count and at most three weights say it all (a
    // pixel in one bin has weight 1 and stores none). Same weights, same order:
    // the same sums as the entry table.
    bool compact = !two_d;
    std::vector<uint8_t> counts;
    std::vector<uint32_t> first_bin, checkpoints;
    std::vector<float> weights;
    if (compact) {
      counts.resize(in.npix);
      first_bin.resize(in.npix, static_cast<uint32_t>(nb));
      checkpoints.reserve(in.npix / kCheckpoint + 1);
      weights.reserve(ebin.size() - mapped + mapped / 4);
      for (size_t i = 0; i < in.npix && compact; ++i) {
        if (i % kCheckpoint == 0) checkpoints.push_back(static_cast<uint32_t>(weights.size()));
        const uint32_t e0 = ptr[i], c = ptr[i + 1] - e0;
        if (c > 255) compact = false;
        if (c == 0 || !compact) continue;
        counts[i] = static_cast<uint8_t>(c);
        first_bin[i] = ebin[e0];
        for (uint32_t k = 1; k < c; ++k) compact = compact && ebin[e0 + k] == ebin[e0] + k;
        for (uint32_t k = 2; k + 1 < c; ++k) compact = compact && eweight[e0 + k] == eweight[e0 + 1];
        if (c == 1) compact = compact && eweight[e0] == 1.0f;
        else {
          weights.push_back(eweight[e0]);
          if (c > 2) weights.push_back(eweight[e0 + 1]);
          weights.push_back(eweight[e0 + c - 1]);
        }
      }
    }
    if (compact) {
      const bool narrow = nb < 0xFFFF;
      h.flags |= kMapCompact | (narrow ? kMapIndex16 : 0);
      h.bins = lay.take(in.npix * (narrow ? 2 : 4));
      h.counts = lay.take(in.npix);
      h.checkpoints = lay.take(checkpoints.size() * 4);
      h.weights = lay.take(weights.size() * 4);
      h.nweights = weights.size();
      h.total_bytes = lay.at;
      blob.assign(lay.at, 0);
      uint16_t* b16 = reinterpret_cast<uint16_t*>(blob.data() + h.bins);
      uint32_t* b32 = reinterpret_cast<uint32_t*>(blob.data() + h.bins);
      for (size_t i = 0; i < in.npix; ++i) {
        if (narrow) b16[i] = static_cast<uint16_t>(first_bin[i]);
        else b32[i] = first_bin[i];
      }
      std::memcpy(blob.data() + h.counts, counts.data(), in.npix);
      std::memcpy(blob.data() + h.checkpoints, checkpoints.data(), checkpoints.size() * 4);
      if (!weights.empty()) std::memcpy(blob.data() + h.weights, weights.data(), weights.size() * 4);
    } else {
    h.ptr = lay.take(ptr.size() * 4);
    h.ebin = lay.take(ebin.size() * 4);
    h.eweight = lay.take(eweight.size() * 4);
    h.total_bytes = lay.at;
    blob.assign(lay.at, 0);
    std::memcpy(blob.data() + h.ptr, ptr.data(), ptr.size() * 4);
    if (!ebin.empty()) {
      std::memcpy(blob.data() + h.ebin, ebin.data(), ebin.size() * 4);
      std::memcpy(blob.data() + h.eweight, eweight.data(), eweight.size() * 4);
    }
    }
  }
  std::memcpy(blob.data() + h.static_norm, static_norm.data(), nb * 8);
  std::memcpy(blob.data() + h.static_count, static_count.data(), nb * 8);
  if (in.norm) std::memcpy(blob.data() + h.norm, in.norm, in.npix * 4);
  std::memcpy(blob.data(), &h, sizeof h);
  h.checksum = map_checksum(blob.data(), blob.size());
  std::memcpy(blob.data(), &h, sizeof h);
  return blob;
}

Integrator::Integrator(const MapInputs& in) : owned_(build_map(in)) { view(owned_.data(), owned_.size()); }

Integrator::Integrator(const uint8_t* blob, size_t len) {
  // The checksum was verified where the blob came from (build or cache load):
  // here only the structure, so a damaged blob cannot index out of bounds.
  const std::string problem = check_map(blob, len, false);
  if (!problem.empty()) throw std::invalid_argument(problem);
  view(blob, len);
}

void Integrator::view(const uint8_t* blob, size_t len) {
  MapHeader h;
  std::memcpy(&h, blob, sizeof h);
  blob_ = blob;
  blob_len_ = len;
  npix_ = h.npix;
  axis0_ = get_axis(h.axis0, h.bins0);
  axis1_ = get_axis(h.axis1, h.bins1);
  direct_ = h.flags & kMapDirect;
  mapped_ = h.mapped;
  entries_ = h.entries;
  static_norm_ = reinterpret_cast<const double*>(blob + h.static_norm);
  static_count_ = reinterpret_cast<const double*>(blob + h.static_count);
  norm_ = (h.flags & kMapNorm) && !(h.flags & kMapNormPacked) ? reinterpret_cast<const float*>(blob + h.norm) : nullptr;
  if (h.flags & kMapNarrow) {
    narrow_ = true;
    narrow_map_.view(blob, h);
  } else if (direct_) {
    if (h.flags & kMapIndex16) bin16_ = reinterpret_cast<const uint16_t*>(blob + h.bins);
    else bin32_ = reinterpret_cast<const uint32_t*>(blob + h.bins);
  } else if (h.flags & kMapCompact) {
    if (h.flags & kMapIndex16) bin16_ = reinterpret_cast<const uint16_t*>(blob + h.bins);
    else bin32_ = reinterpret_cast<const uint32_t*>(blob + h.bins);
    counts_ = blob + h.counts;
    checkpoints_ = reinterpret_cast<const uint32_t*>(blob + h.checkpoints);
    weights_ = reinterpret_cast<const float*>(blob + h.weights);
  } else {
    ptr_ = reinterpret_cast<const uint32_t*>(blob + h.ptr);
    ebin_ = reinterpret_cast<const uint32_t*>(blob + h.ebin);
    eweight_ = reinterpret_cast<const float*>(blob + h.eweight);
  }
}

size_t Integrator::lanes() const { return direct_ ? kSumLanes : 1; }

Accumulator Integrator::start() const {
  Accumulator acc;
  // + the discard bin; narrow maps add to a pixel's bin and the next, so one more.
  const size_t slots = bins() + (narrow_ ? 2 : 1);
  acc.sums.assign(narrow_ ? slots * kNarrowLanes * kNarrowSlot : 2 * slots * lanes(), 0.0);
  if (direct_) {
    acc.packed.assign(kPackedLanes * slots, 0);
    acc.counts.assign(2 * slots, 0);
  }
  acc.lost_norm.assign(slots, 0.0);
  acc.lost_count.assign(slots, 0.0);
  return acc;
}


template <typename T, typename Index, bool kLit, bool kMax>
void Integrator::run_packed(Accumulator& acc, const Index* map, const T* data, int64_t lit_above, double f_max_valid,
                            size_t first, size_t n) const {
  uint64_t* packed = acc.packed.data();
  const Index discard = static_cast<Index>(bins());
  uint64_t lit = 0;
  // Integer pixels above this are excluded (saturated); the clamp keeps the compare exact.
  // Clamped on both sides and converted only when applied: converting a limit
  // outside int64 (a start message's saturation_value of -1e300) or a NaN is undefined.
  const int64_t max_valid = kMax ? static_cast<int64_t>(std::max(std::min(f_max_valid, 9.0e18), -9.0e18)) : 0;
  // One add per pixel, but neighbours usually share a bin: each lane of four
  // has its own copy of the sums, so consecutive adds do not wait on each other.
  auto add = [&](size_t k, size_t lane) {
    const size_t i = first + k;
    const Index b = map[i];
    const T raw = data[k];
    if (__builtin_expect((std::is_signed<T>::value && raw < 0) || (kMax && static_cast<int64_t>(raw) > max_valid), 0)) {
      // Unmapped pixels (a detector's gaps are negative in every frame) count
      // nowhere: no bookkeeping, which chained through memory cost 1.4 of 9 ms.
      if (b == discard) return;
      acc.lost_norm[b] += !norm_ ? 1.0 : norm_[i];
      acc.lost_count[b] += 1.0;
      ++acc.excluded;
      return;
    }
    const uint64_t x = static_cast<uint64_t>(raw);
    packed[kPackedLanes * b + lane] += (x << kZeroBits) | static_cast<uint64_t>(x == 0);
  };
  // The lit-pixel count is a separate pass over the same run, written so that it
  // vectorises (compare in the pixel's own type, 32-bit counter): inline in the
  // loop above it would cost more than the rest of the veto.
  const T threshold = static_cast<T>(std::max<int64_t>(std::min<int64_t>(lit_above, std::numeric_limits<T>::max()), std::numeric_limits<T>::min()));
  // A threshold below the type's range (negative, for unsigned pixels) makes every pixel lit.
  const bool all_lit = lit_above < static_cast<int64_t>(std::numeric_limits<T>::min());
  auto count_lit = [&](size_t from, size_t to) {
    uint32_t c = 0;
    if (all_lit)
      for (size_t k = from; k < to; ++k) c += static_cast<uint32_t>(map[first + k] != discard);
    else
      for (size_t k = from; k < to; ++k) c += static_cast<uint32_t>(data[k] > threshold) & static_cast<uint32_t>(map[first + k] != discard);
    return c;
  };
  for (size_t done = 0; done < n;) {
    if (acc.packed_pixels + kPackedLanes > kPackedRun) flush_packed(acc);
    const size_t run = std::min(kPackedRun - acc.packed_pixels, n - done);
    size_t k = done;
    for (; k + kPackedLanes <= done + run; k += kPackedLanes)
      for (size_t lane = 0; lane < kPackedLanes; ++lane) add(k + lane, lane);
    for (; k < done + run; ++k) add(k, 0);
    if (kLit) lit += count_lit(done, done + run);
    acc.packed_pixels += run;
    done += run;
  }
  acc.lit += lit;
}

void Integrator::flush_packed(Accumulator& acc) const {
  const size_t slots = acc.packed.size() / kPackedLanes;
  for (size_t b = 0; b < slots; ++b)
    for (size_t lane = 0; lane < kPackedLanes; ++lane) {
      uint64_t& p = acc.packed[kPackedLanes * b + lane];
      acc.counts[2 * b] += p >> kZeroBits;
      acc.counts[2 * b + 1] += p & kPackedRun;
      p = 0;
    }
  acc.packed_pixels = 0;
}

template <typename T, typename Index, bool kDark, bool kDummy, bool kLit>
void Integrator::run_direct(Accumulator& acc, const Index* map, const T* data, const FrameInputs& f, size_t first,
                            size_t n) const {
  // A pixel's copy of the sums follows its index in the frame, not in the
  // tile: a frame fed in tiles of any length adds in the same order as one
  // pass, so the sums are bit for bit the same (lanes[j]: pixels of parity j).
  double* lanes[kSumLanes];
  for (size_t j = 0; j < kSumLanes; ++j) lanes[j] = acc.sums.data() + 2 * ((first + j) % kSumLanes);
  const Index discard = static_cast<Index>(bins());
  uint64_t lit = 0;
  auto add = [&](size_t k, size_t lane) {
    const size_t i = first + k;
    const Index b = map[i];
    const T raw = data[k];
    if (__builtin_expect(excluded<T, kDummy>(raw, f), 0)) {
      if (b == discard) return;  // unmapped: counts nowhere
      acc.lost_norm[b] += !norm_ ? 1.0 : norm_[i];
      acc.lost_count[b] += 1.0;
      ++acc.excluded;
      return;
    }
    const double x = static_cast<double>(raw);
    const double s = kDark ? x - f.dark[i] : x;
    double* slot = lanes[lane] + 2 * kSumLanes * b;
#if defined(__SSE2__)
    _mm_storeu_pd(slot, _mm_add_pd(_mm_loadu_pd(slot), _mm_set_pd(at_least_one(x), s)));
#else
    slot[0] += s;
    slot[1] += at_least_one(x);
#endif
    if (kLit) lit += static_cast<uint64_t>(s > f.lit_threshold) & static_cast<uint64_t>(b != discard);
  };
  size_t k = 0;
  for (; k + kSumLanes <= n; k += kSumLanes)
    for (size_t lane = 0; lane < kSumLanes; ++lane) add(k + lane, lane);
  for (; k < n; ++k) add(k, 0);
  acc.lit += lit;
}

#if defined(__SSE2__)
// Largest float f with double(f) <= t, so that float compares against it are
// exact compares against t (a NaN limit never excludes: +inf).
float float_at_most(double t) {
  if (std::isnan(t)) return std::numeric_limits<float>::infinity();
  float f = static_cast<float>(t);
  if (static_cast<double>(f) > t) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

// Float frames (calibrated JUNGFRAU photons): four pixels per step. One vector
// compare and one well-predicted branch per four pixels check the exclusions
// (NaN, > max_valid and, unless negatives are valid, < 0); a step with an
// excluded pixel goes through run_direct. Each pixel then adds its
// [signal, variance] pair with one 128-bit add to its own lane of the bin.
template <typename Index, bool kNegValid, bool kLit>
void Integrator::run_float(Accumulator& acc, const Index* map, const float* data, const FrameInputs& f, size_t first,
                           size_t n) const {
  // Lanes by the pixel's parity in the frame, as in run_direct.
  double* lanes[kSumLanes];
  for (size_t j = 0; j < kSumLanes; ++j) lanes[j] = acc.sums.data() + 2 * ((first + j) % kSumLanes);
  const Index discard = static_cast<Index>(bins());
  const __m128 max_valid = _mm_set1_ps(float_at_most(f.max_valid));
  const __m128 lit_above = _mm_set1_ps(kLit ? float_at_most(f.lit_threshold) : 0.0f);
  const __m128d one = _mm_set1_pd(1.0);
  const __m128i discard_v = sizeof(Index) == 2 ? _mm_set1_epi16(static_cast<short>(discard)) : _mm_set1_epi32(static_cast<int>(discard));
  __m128i lit_v = _mm_setzero_si128();
  uint64_t lit = 0;
  size_t k = 0;
  for (; k + 4 <= n; k += 4) {
    const __m128 x = _mm_loadu_ps(data + k);
    __m128 ok = _mm_cmple_ps(x, max_valid);  // false for NaN
    if (!kNegValid) ok = _mm_and_ps(ok, _mm_cmpge_ps(x, _mm_setzero_ps()));
    const Index* b = map + first + k;
    if (__builtin_expect(_mm_movemask_ps(ok) != 0xF, 0)) {
      run_direct<float, Index, false, false, kLit>(acc, map, data + k, f, first + k, 4);
      continue;
    }
    const __m128d x01 = _mm_cvtps_pd(x), x23 = _mm_cvtps_pd(_mm_movehl_ps(x, x));
    const __m128d v01 = _mm_max_pd(x01, one), v23 = _mm_max_pd(x23, one);  // Poisson variance, at least one count
    auto add = [&](size_t lane, __m128d pair) {
      double* slot = lanes[lane % kSumLanes] + 2 * kSumLanes * b[lane];
      _mm_storeu_pd(slot, _mm_add_pd(_mm_loadu_pd(slot), pair));
    };
    add(0, _mm_unpacklo_pd(x01, v01));
    add(1, _mm_unpackhi_pd(x01, v01));
    add(2, _mm_unpacklo_pd(x23, v23));
    add(3, _mm_unpackhi_pd(x23, v23));
    if (kLit) {
      // Lit and mapped, four lanes at once: 32-bit lane counters (at most n / 4 each).
      __m128i unmapped;
      if constexpr (sizeof(Index) == 2) {
        const __m128i idx = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b));
        const __m128i eq = _mm_cmpeq_epi16(idx, discard_v);
        unmapped = _mm_unpacklo_epi16(eq, eq);
      } else {
        unmapped = _mm_cmpeq_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), discard_v);
      }
      lit_v = _mm_sub_epi32(lit_v, _mm_andnot_si128(unmapped, _mm_castps_si128(_mm_cmpgt_ps(x, lit_above))));
    }
  }
  if (kLit) {
    alignas(16) uint32_t lanes4[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes4), lit_v);
    for (uint32_t c : lanes4) lit += c;
  }
  acc.lit += lit;
  if (k < n) run_direct<float, Index, false, false, kLit>(acc, map, data + k, f, first + k, n - k);
}
#endif

template <typename T, bool kDark, bool kDummy, bool kLit>
void Integrator::run_split(Accumulator& acc, const T* data, const FrameInputs& f, size_t first, size_t n) const {
  double* sums = acc.sums.data();
  uint64_t lit = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = first + k;
    const uint32_t e0 = ptr_[i], e1 = ptr_[i + 1];
    if (e0 == e1) continue;
    const T raw = data[k];
    if (__builtin_expect(excluded<T, kDummy>(raw, f), 0)) {
      const double w_norm = !norm_ ? 1.0 : norm_[i];
      for (uint32_t e = e0; e < e1; ++e) {
        acc.lost_norm[ebin_[e]] += eweight_[e] * w_norm;
        acc.lost_count[ebin_[e]] += eweight_[e];
      }
      ++acc.excluded;
      continue;
    }
    const double x = static_cast<double>(raw);
    const double s = kDark ? x - f.dark[i] : x;
    const double v = at_least_one(x);
    if (kLit) lit += s > f.lit_threshold;
    for (uint32_t e = e0; e < e1; ++e) {
      const double w = eweight_[e];
      double* slot = sums + 2 * ebin_[e];
      slot[0] += w * s;
      slot[1] += w * w * v;
    }
  }
  acc.lit += lit;
}

template <typename T, typename Index, bool kDark, bool kDummy, bool kLit>
void Integrator::run_compact(Accumulator& acc, const Index* bin, const T* data, const FrameInputs& f, size_t first, size_t n) const {
  double* sums = acc.sums.data();
  uint64_t lit = 0;
  // The weight index at `first`: its block's checkpoint plus the pixels before it in the block.
  size_t w = checkpoints_[first / kCheckpoint];
  for (size_t i = first - first % kCheckpoint; i < first; ++i) w += counts_[i] < 2 ? 0 : (counts_[i] == 2 ? 2 : 3);
  for (size_t k = 0; k < n; ++k) {
    const size_t i = first + k;
    const uint32_t c = counts_[i];
    if (c == 0) continue;
    const uint32_t b0 = bin[i];
    const float* wp = weights_ + w;
    w += c == 1 ? 0 : (c == 2 ? 2 : 3);
    // The weight of the pixel's j-th bin, as the entry table had it.
    auto weight = [&](uint32_t j) -> double { return c == 1 ? 1.0 : (j == 0 ? wp[0] : (j + 1 == c ? wp[c == 2 ? 1 : 2] : wp[1])); };
    const T raw = data[k];
    if (__builtin_expect(excluded<T, kDummy>(raw, f), 0)) {
      const double w_norm = !norm_ ? 1.0 : norm_[i];
      for (uint32_t j = 0; j < c; ++j) {
        acc.lost_norm[b0 + j] += weight(j) * w_norm;
        acc.lost_count[b0 + j] += weight(j);
      }
      ++acc.excluded;
      continue;
    }
    const double x = static_cast<double>(raw);
    const double s = kDark ? x - f.dark[i] : x;
    const double v = at_least_one(x);
    if (kLit) lit += s > f.lit_threshold;
    if (c == 1) {
      double* slot = sums + 2 * b0;
      slot[0] += 1.0 * s;
      slot[1] += 1.0 * 1.0 * v;
      continue;
    }
    auto add = [&](uint32_t b, double wj) {
      double* slot = sums + 2 * b;
      slot[0] += wj * s;
      slot[1] += wj * wj * v;
    };
    // In bin order, as the entry table adds them.
    add(b0, wp[0]);
    if (c > 2) {
      const double wi = wp[1];
      for (uint32_t j = 1; j + 1 < c; ++j) add(b0 + j, wi);
    }
    add(b0 + c - 1, wp[c == 2 ? 1 : 2]);
  }
  acc.lit += lit;
}

template <typename T, bool kDark, bool kDummy, bool kLit>
void Integrator::run(Accumulator& acc, const T* data, const FrameInputs& f, size_t first, size_t n) const {
  constexpr bool kPackable = std::is_integral<T>::value && sizeof(T) <= 4 && !kDark && !kDummy;
  // For integer pixels, x > t is x > floor(t).
  const int64_t lit_above = kLit ? static_cast<int64_t>(std::floor(std::max(-1.0, std::min(f.lit_threshold, 4294967296.0)))) : 0;
  if (!direct_) {
    if (!counts_) run_split<T, kDark, kDummy, kLit>(acc, data, f, first, n);
    else if (bin16_) run_compact<T, uint16_t, kDark, kDummy, kLit>(acc, bin16_, data, f, first, n);
    else run_compact<T, uint32_t, kDark, kDummy, kLit>(acc, bin32_, data, f, first, n);
    return;
  }
  if constexpr (kPackable) {
    // The saturation compare costs a fifth of the pass: only compiled in when asked for.
    const bool max = std::isfinite(f.max_valid);
    if (bin16_) {
      if (max) run_packed<T, uint16_t, kLit, true>(acc, bin16_, data, lit_above, f.max_valid, first, n);
      else run_packed<T, uint16_t, kLit, false>(acc, bin16_, data, lit_above, f.max_valid, first, n);
    } else {
      if (max) run_packed<T, uint32_t, kLit, true>(acc, bin32_, data, lit_above, f.max_valid, first, n);
      else run_packed<T, uint32_t, kLit, false>(acc, bin32_, data, lit_above, f.max_valid, first, n);
    }
#if defined(__SSE2__)
  } else if constexpr (std::is_same<T, float>::value && !kDark && !kDummy) {
    if (bin16_) {
      if (f.negative_valid) run_float<uint16_t, true, kLit>(acc, bin16_, data, f, first, n);
      else run_float<uint16_t, false, kLit>(acc, bin16_, data, f, first, n);
    } else {
      if (f.negative_valid) run_float<uint32_t, true, kLit>(acc, bin32_, data, f, first, n);
      else run_float<uint32_t, false, kLit>(acc, bin32_, data, f, first, n);
    }
#endif
  } else if (bin16_) {
    run_direct<T, uint16_t, kDark, kDummy, kLit>(acc, bin16_, data, f, first, n);
  } else {
    run_direct<T, uint32_t, kDark, kDummy, kLit>(acc, bin32_, data, f, first, n);
  }
}

template <typename T>
void Integrator::dispatch(Accumulator& acc, const T* data, const FrameInputs& f, size_t first, size_t n) const {
  const bool dark = f.dark != nullptr, dummy = f.has_dummy, lit = !std::isnan(f.lit_threshold);
  const int key = (dark ? 4 : 0) | (dummy ? 2 : 0) | (lit ? 1 : 0);
  switch (key) {
    case 0: run<T, false, false, false>(acc, data, f, first, n); break;
    case 1: run<T, false, false, true>(acc, data, f, first, n); break;
    case 2: run<T, false, true, false>(acc, data, f, first, n); break;
    case 3: run<T, false, true, true>(acc, data, f, first, n); break;
    case 4: run<T, true, false, false>(acc, data, f, first, n); break;
    case 5: run<T, true, false, true>(acc, data, f, first, n); break;
    case 6: run<T, true, true, false>(acc, data, f, first, n); break;
    default: run<T, true, true, true>(acc, data, f, first, n); break;
  }
}

void Integrator::accumulate(Accumulator& acc, const FrameInputs& f, size_t first, size_t n) const {
  if (first > npix_ || n > npix_ - first) throw std::out_of_range("tile outside the frame");
  if (narrow_) {
    accumulate_narrow(narrow_map_, acc, f, first, n);
    return;
  }
  switch (f.type) {
    case PixelType::i32: dispatch(acc, static_cast<const int32_t*>(f.data), f, first, n); break;
    case PixelType::u32: dispatch(acc, static_cast<const uint32_t*>(f.data), f, first, n); break;
    case PixelType::u16: dispatch(acc, static_cast<const uint16_t*>(f.data), f, first, n); break;
    case PixelType::u8: dispatch(acc, static_cast<const uint8_t*>(f.data), f, first, n); break;
    case PixelType::f32: dispatch(acc, static_cast<const float*>(f.data), f, first, n); break;
  }
}

void Integrator::finish(Accumulator& acc, double empty, IntegrationResult& out) const {
  const size_t nb = bins();
  if (!acc.packed.empty()) flush_packed(acc);
  if (narrow_) narrow_fold(acc, nb);
  out.lit = acc.lit;
  out.excluded = acc.excluded;
  out.signal.resize(nb);
  out.variance.resize(nb);
  out.normalization.resize(nb);
  out.count.resize(nb);
  out.intensity.resize(nb);
  out.sigma.resize(nb);
  const size_t lanes = this->lanes();
  for (size_t b = 0; b < nb; ++b) {
    double signal = 0, variance = 0;
    for (size_t lane = 0; lane < lanes; ++lane) {
      signal += acc.sums[2 * (lanes * b + lane)];
      variance += acc.sums[2 * (lanes * b + lane) + 1];
    }
    if (!acc.counts.empty()) {
      signal += static_cast<double>(acc.counts[2 * b]);
      variance += static_cast<double>(acc.counts[2 * b] + acc.counts[2 * b + 1]);
    }
    out.signal[b] = signal;
    out.variance[b] = variance;
    out.normalization[b] = static_norm_[b] - acc.lost_norm[b];
    out.count[b] = static_count_[b] - acc.lost_count[b];
    // Counts are sums of float weights less the excluded ones: a fully excluded
    // bin can leave a rounding residue, which must still read as empty.
    if (out.count[b] > 1e-9 && out.normalization[b] != 0) {
      out.intensity[b] = signal / out.normalization[b];
      out.sigma[b] = std::sqrt(variance) / out.normalization[b];
    } else {
      out.intensity[b] = empty;
      out.sigma[b] = empty;
    }
  }
}

}  // namespace beamedge
