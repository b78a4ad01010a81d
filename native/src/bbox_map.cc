#include "integrator.h"  // first: see bbox_map.h

#include "bbox_map.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cpu.h"
#include "pixel_rules.h"

namespace beamedge {
namespace {

size_t norm_blocks(size_t npix) { return (npix + kNormBlock - 1) / kNormBlock; }

// The predictor of PackedNorm, on bit patterns (modulo 2^32).
inline uint32_t predict(size_t j, uint32_t p1, uint32_t p2) { return j == 0 ? 0u : (j == 1 ? p1 : 2u * p1 - p2); }

}  // namespace

bool pack_norm(const float* norm, const uint8_t* needed, size_t npix, NormPacking& out) {
  const size_t blocks = norm_blocks(npix);
  // Worth it only at three quarters of the plain array or less.
  // (n + 4 (blocks + 1) + 4 escapes <= 3 n bytes)
  const size_t overhead = 4 * (blocks + 1);
  const size_t max_escapes = 2 * npix > overhead ? (2 * npix - overhead) / 4 : 0;
  out.residual.assign(npix, 0);
  out.escape_index.assign(blocks + 1, 0);
  out.escapes.clear();
  for (size_t k = 0; k < blocks; ++k) {
    out.escape_index[k] = static_cast<uint32_t>(out.escapes.size());
    const size_t i0 = k * kNormBlock, len = std::min(kNormBlock, npix - i0);
    uint32_t p1 = 0, p2 = 0;
    for (size_t j = 0; j < len; ++j) {
      const size_t i = i0 + j;
      const uint32_t pred = predict(j, p1, p2);
      uint32_t v = pred;
      if (!needed || needed[i]) std::memcpy(&v, norm + i, 4);
      const int32_t r = static_cast<int32_t>(v - pred);
      if (r > kNormEscape && r <= std::numeric_limits<int8_t>::max()) {
        out.residual[i] = static_cast<int8_t>(r);
      } else {
        out.residual[i] = kNormEscape;
        out.escapes.push_back(v);
        if (out.escapes.size() > max_escapes) return false;
      }
      p2 = p1;
      p1 = v;
    }
  }
  out.escape_index[blocks] = static_cast<uint32_t>(out.escapes.size());
  return true;
}

void PackedNorm::decode_block(size_t block, float* out) const {
  const size_t i0 = block * kNormBlock, len = std::min(kNormBlock, npix - i0);
  const uint32_t* esc = escapes + escape_index[block];
  uint32_t p1 = 0, p2 = 0;
  for (size_t j = 0; j < len; ++j) {
    const int8_t r = residual[i0 + j];
    const uint32_t v = r == kNormEscape ? *esc++ : predict(j, p1, p2) + static_cast<uint32_t>(static_cast<int32_t>(r));
    std::memcpy(out + j, &v, 4);
    p2 = p1;
    p1 = v;
  }
}

std::string check_packed_norm(const uint8_t* blob, const MapHeader& h) {
  // The decoder takes one escape per marker from its block's start: the
  // markers of every block must account for exactly its share of the list.
  const size_t blocks = norm_blocks(h.npix);
  const int8_t* res = reinterpret_cast<const int8_t*>(blob + h.norm);
  const uint32_t* idx = reinterpret_cast<const uint32_t*>(blob + h.norm_escape_index);
  if (idx[0] != 0 || idx[blocks] != h.norm_nescapes) return "map normalisation escapes inconsistent";
  for (size_t k = 0; k < blocks; ++k) {
    const size_t i0 = k * kNormBlock, len = std::min<size_t>(kNormBlock, h.npix - i0);
    uint32_t markers = 0;
    for (size_t j = 0; j < len; ++j) markers += res[i0 + j] == kNormEscape;
    if (idx[k + 1] < idx[k] || idx[k + 1] - idx[k] != markers) return "map normalisation escapes inconsistent";
  }
  return "";
}

std::string check_narrow(const uint8_t* blob, const MapHeader& h) {
  const uint64_t nb = uint64_t(h.bins0);
  // A pixel adds to its bin and the next: the accumulator has nb + 2 slots, so nb (discard) is the largest first bin.
  if (h.flags & kMapIndex16) {
    const uint16_t* b = reinterpret_cast<const uint16_t*>(blob + h.bins);
    uint16_t worst = 0;
    for (uint64_t i = 0; i < h.npix; ++i) worst = std::max(worst, b[i]);
    if (worst > nb) return "map bin index out of range";
  } else {
    const uint32_t* b = reinterpret_cast<const uint32_t*>(blob + h.bins);
    uint32_t worst = 0;
    for (uint64_t i = 0; i < h.npix; ++i) worst = std::max(worst, b[i]);
    if (worst > nb) return "map bin index out of range";
  }
  const NarrowException* e = reinterpret_cast<const NarrowException*>(blob + h.exceptions);
  for (uint64_t k = 0; k < h.nweights; ++k) {
    if (e[k].pixel >= h.npix || (k > 0 && e[k].pixel <= e[k - 1].pixel)) return "map exception list inconsistent";
    if (e[k].count < 2 || e[k].count > nb || e[k].bin > nb - e[k].count) return "map bin index out of range";
  }
  return "";
}

std::vector<uint8_t> build_narrow_map(const MapInputs& in, const Axis& axis0, MapHeader h) {
  const size_t n = in.npix, nb = static_cast<size_t>(axis0.bins);
  const uint32_t discard = static_cast<uint32_t>(nb);
  // Beyond this many the exact compact layout is the smaller one anyway.
  const size_t max_exceptions = n / 16;
  std::vector<uint32_t> bin(n, discard);
  std::vector<uint32_t> q(n, 0);
  std::vector<NarrowException> exc;
  std::vector<uint8_t> needed(n, 0);
  std::vector<double> static_norm(nb + 1, 0.0), static_count(nb + 1, 0.0);
  size_t mapped = 0, entries = 0;
  for (size_t i = 0; i < n; ++i) {
    if (in.mask && in.mask[i]) continue;
    Span s;
    if (!span_of(axis0, in.pos0[i] - in.dpos0[i], in.pos0[i] + in.dpos0[i], s)) continue;
    needed[i] = 1;
    ++mapped;
    const double nrm = in.norm ? static_cast<double>(in.norm[i]) : 1.0;
    // The static sums add what a frame adds: the same weights, in pixel order.
    auto add = [&](size_t b, double w) {
      static_norm[b] += w * nrm;
      static_count[b] += w;
    };
    const int c = s.bhi - s.blo + 1;
    entries += static_cast<size_t>(c);
    if (c == 1) {
      bin[i] = static_cast<uint32_t>(s.blo);
      add(s.blo, 1.0);
      continue;
    }
    // The entry table's float weights (split_bbox in integrator.cc).
    const double inv = 1.0 / (s.fhi - s.flo);
    const float first = static_cast<float>(inv * ((s.blo + 1) - s.flo)), last = static_cast<float>(inv * (s.fhi - s.bhi));
    if (c == 2) {
      // The second bin's share, to 2^-24; the first gets the rest, exactly.
      long share = std::lround(static_cast<double>(last) * kNarrowScale);
      uint32_t b = static_cast<uint32_t>(s.blo);
      if (share >= long(kNarrowScale)) {  // all but a rounding error in the second bin
        b = static_cast<uint32_t>(s.bhi);
        share = 0;
      }
      share = std::max(share, 0L);
      bin[i] = b;
      q[i] = static_cast<uint32_t>(share);
      const double w1 = static_cast<double>(share) * kNarrowUnit;
      add(b, 1.0 - w1);
      if (share) add(b + 1, w1);
      continue;
    }
    if (exc.size() >= max_exceptions) return {};
    const float inner = static_cast<float>(inv);
    exc.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(s.blo), static_cast<uint32_t>(c), first, inner, last});
    for (int j = 0; j < c; ++j) add(s.blo + j, j == 0 ? first : (j + 1 == c ? last : inner));
  }

  const bool idx16 = nb < 0xFFFF;
  h.flags |= kMapNarrow | (idx16 ? kMapIndex16 : 0);
  h.mapped = mapped;
  h.entries = entries;
  h.nweights = exc.size();
  NormPacking packed;
  const bool pack = in.norm && pack_norm(in.norm, needed.data(), n, packed);
  if (pack) h.flags |= kMapNormPacked;
  size_t at = sizeof(MapHeader);
  auto take = [&](size_t bytes) {
    const size_t off = at;
    at = (at + bytes + 7) & ~size_t(7);
    return off;
  };
  h.static_norm = take(nb * 8);
  h.static_count = take(nb * 8);
  if (pack) {
    h.norm = take(n);
    h.norm_escape_index = take(packed.escape_index.size() * 4);
    h.norm_escapes = take(packed.escapes.size() * 4);
    h.norm_nescapes = packed.escapes.size();
  } else if (in.norm) {
    h.norm = take(n * 4);
  }
  h.bins = take(n * (idx16 ? 2 : 4));
  h.weights = take(n * 2);
  h.counts = take(n);
  h.exceptions = take(exc.size() * sizeof(NarrowException));
  h.total_bytes = at;
  std::vector<uint8_t> blob(at, 0);
  uint8_t* p = blob.data();
  std::memcpy(p + h.static_norm, static_norm.data(), nb * 8);
  std::memcpy(p + h.static_count, static_count.data(), nb * 8);
  if (pack) {
    std::memcpy(p + h.norm, packed.residual.data(), n);
    std::memcpy(p + h.norm_escape_index, packed.escape_index.data(), packed.escape_index.size() * 4);
    if (!packed.escapes.empty()) std::memcpy(p + h.norm_escapes, packed.escapes.data(), packed.escapes.size() * 4);
  } else if (in.norm) {
    std::memcpy(p + h.norm, in.norm, n * 4);
  }
  if (idx16) {
    uint16_t* b16 = reinterpret_cast<uint16_t*>(p + h.bins);
    for (size_t i = 0; i < n; ++i) b16[i] = static_cast<uint16_t>(bin[i]);
  } else {
    std::memcpy(p + h.bins, bin.data(), n * 4);
  }
  uint16_t* q_lo = reinterpret_cast<uint16_t*>(p + h.weights);
  uint8_t* q_hi = p + h.counts;
  for (size_t i = 0; i < n; ++i) {
    q_lo[i] = static_cast<uint16_t>(q[i]);
    q_hi[i] = static_cast<uint8_t>(q[i] >> 16);
  }
  if (!exc.empty()) std::memcpy(p + h.exceptions, exc.data(), exc.size() * sizeof(NarrowException));
  std::memcpy(p, &h, sizeof h);
  h.checksum = map_checksum(p, blob.size());
  std::memcpy(p, &h, sizeof h);
  return blob;
}

void NarrowMap::view(const uint8_t* blob, const MapHeader& h) {
  npix = h.npix;
  bins = static_cast<size_t>(h.bins0);
  bin16 = (h.flags & kMapIndex16) ? reinterpret_cast<const uint16_t*>(blob + h.bins) : nullptr;
  bin32 = (h.flags & kMapIndex16) ? nullptr : reinterpret_cast<const uint32_t*>(blob + h.bins);
  q_lo = reinterpret_cast<const uint16_t*>(blob + h.weights);
  q_hi = blob + h.counts;
  exceptions = reinterpret_cast<const NarrowException*>(blob + h.exceptions);
  nexceptions = h.nweights;
  norm = nullptr;
  packed = PackedNorm{};
  if (h.flags & kMapNormPacked) {
    packed.residual = reinterpret_cast<const int8_t*>(blob + h.norm);
    packed.escape_index = reinterpret_cast<const uint32_t*>(blob + h.norm_escape_index);
    packed.escapes = reinterpret_cast<const uint32_t*>(blob + h.norm_escapes);
    packed.npix = h.npix;
  } else if (h.flags & kMapNorm) {
    norm = reinterpret_cast<const float*>(blob + h.norm);
  }
}

namespace {

// The normalisation of pixels a frame excludes, a block decoded at a time:
// excluded pixels come in runs (module gaps, a dead region), and frames
// without any never decode anything.
class NormReader {
 public:
  explicit NormReader(const NarrowMap& m) : m_(m) {}
  double operator()(size_t i) {
    if (m_.norm) return m_.norm[i];
    if (!m_.packed.residual) return 1.0;
    const size_t b = i / kNormBlock;
    if (b != block_) {
      m_.packed.decode_block(b, values_);
      block_ = b;
    }
    return values_[i % kNormBlock];
  }

 private:
  const NarrowMap& m_;
  size_t block_ = std::numeric_limits<size_t>::max();
  float values_[kNormBlock];
};

#if defined(__x86_64__)
// Four pixels at a time for integer frames (the CBF case) without dark or
// dummy: the products of four pixels in four vectors, transposed so that each
// pixel's [w0 s, w0^2 v, w1 s, w1^2 v] is one 256-bit add to its slot. The
// same operations on each element, in the same pixel order, as the portable
// loop: the sums are bit for bit the same. Returns where it stopped: `stop`,
// or the first quad holding a pixel the frame excludes (the caller takes
// that quad pixel by pixel).
template <typename Index, bool kLit>
__attribute__((target("avx2"))) size_t narrow_quads_avx2(const NarrowMap& m, const Index* bins, double* base, const int32_t* data,
                                                         size_t first, size_t k, size_t stop, double max_valid, double lit_threshold,
                                                         uint64_t& lit) {
  constexpr size_t kStride = kNarrowSlot * kNarrowLanes;
  static_assert(kNarrowLanes == 4, "one lane per pixel of a quad");
  const uint16_t* q_lo = m.q_lo;
  const uint8_t* q_hi = m.q_hi;
  const Index discard = static_cast<Index>(m.bins);
  const __m256d maxv = _mm256_set1_pd(max_valid), one = _mm256_set1_pd(1.0), unit = _mm256_set1_pd(kNarrowUnit);
  const __m256d thr = _mm256_set1_pd(lit_threshold);
  uint64_t count = 0;
  for (; k + 4 <= stop; k += 4) {
    const size_t i = first + k;
    const __m128i xi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + k));
    const __m256d x = _mm256_cvtepi32_pd(xi);
    // Negative (the detector's markers) or above the saturation limit.
    if (__builtin_expect(_mm_movemask_ps(_mm_castsi128_ps(xi)) | _mm256_movemask_pd(_mm256_cmp_pd(x, maxv, _CMP_GT_OQ)), 0)) break;
    uint32_t hi4;
    std::memcpy(&hi4, q_hi + i, 4);
    const __m128i q = _mm_or_si128(_mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q_lo + i))),
                                   _mm_slli_epi32(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(static_cast<int>(hi4))), 16));
    const __m256d w1 = _mm256_mul_pd(_mm256_cvtepi32_pd(q), unit), w0 = _mm256_sub_pd(one, w1);
    const __m256d v = _mm256_max_pd(x, one);
    const __m256d a = _mm256_mul_pd(w0, x), b = _mm256_mul_pd(_mm256_mul_pd(w0, w0), v);
    const __m256d c = _mm256_mul_pd(w1, x), d = _mm256_mul_pd(_mm256_mul_pd(w1, w1), v);
    const __m256d t0 = _mm256_unpacklo_pd(a, b), t1 = _mm256_unpackhi_pd(a, b);  // a0 b0 a2 b2, a1 b1 a3 b3
    const __m256d t2 = _mm256_unpacklo_pd(c, d), t3 = _mm256_unpackhi_pd(c, d);
    const __m256d p[4] = {_mm256_permute2f128_pd(t0, t2, 0x20), _mm256_permute2f128_pd(t1, t3, 0x20),
                          _mm256_permute2f128_pd(t0, t2, 0x31), _mm256_permute2f128_pd(t1, t3, 0x31)};
    const int lit_bits = kLit ? _mm256_movemask_pd(_mm256_cmp_pd(x, thr, _CMP_GT_OQ)) : 0;
    for (size_t j = 0; j < 4; ++j) {
      const Index bj = bins[i + j];
      double* slot = base + kStride * bj + kNarrowSlot * ((i + j) % kNarrowLanes);
      _mm256_storeu_pd(slot, _mm256_add_pd(_mm256_loadu_pd(slot), p[j]));
      if (kLit) count += static_cast<uint64_t>((lit_bits >> j) & 1) & static_cast<uint64_t>(bj != discard);
    }
  }
  lit += count;
  return k;
}
#endif

template <typename T, typename Index, bool kDark, bool kDummy, bool kLit>
void run_narrow(const NarrowMap& m, const Index* bins, Accumulator& acc, const T* data, const FrameInputs& f, size_t first,
                size_t n) {
  // Per bin and lane: the pixels whose first bin it is, [w0 s, w0^2 v] for
  // this bin and [w1 s, w1^2 v] for the next (folded in narrow_fold). One
  // slot per pixel: no pixel waits on a neighbour that starts one bin lower.
  // A pixel's lane is its parity in the frame, so any tiling adds in the
  // same order.
  constexpr size_t kStride = kNarrowSlot * kNarrowLanes;
  double* base = acc.sums.data();
  const Index discard = static_cast<Index>(m.bins);
  // Locals: the stores to the sums could alias the map's pointers otherwise.
  const uint16_t* q_lo = m.q_lo;
  const uint8_t* q_hi = m.q_hi;
  NormReader norm(m);
  uint64_t lit = 0;
  auto add = [&](size_t k) __attribute__((always_inline)) {
    const size_t i = first + k;
    const Index b = bins[i];
    const uint32_t q = q_lo[i] | uint32_t(q_hi[i]) << 16;
    const double w1 = static_cast<double>(q) * kNarrowUnit, w0 = 1.0 - w1;
    const T raw = data[k];
    if (__builtin_expect(excluded<T, kDummy>(raw, f), 0)) {
      if (b != discard) {
        const double nr = norm(i);
        acc.lost_norm[b] += w0 * nr;
        acc.lost_count[b] += w0;
        acc.lost_norm[b + 1] += w1 * nr;
        acc.lost_count[b + 1] += w1;
        ++acc.excluded;
      }
      return;
    }
    const double x = static_cast<double>(raw);
    const double s = kDark ? x - f.dark[i] : x;
    const double v = at_least_one(x);
    double* slot = base + kStride * b + kNarrowSlot * (i % kNarrowLanes);
#if defined(__SSE2__)
    const __m128d sv = _mm_set_pd(v, s);
    __m128d c1 = _mm_mul_pd(_mm_set_pd(w1 * w1, w1), sv);
    // 0 x inf is NaN: a one-bin pixel's +0 must stay +0 whatever its value.
    if constexpr (std::is_floating_point<T>::value || kDark)
      c1 = _mm_and_pd(c1, _mm_castsi128_pd(_mm_set1_epi64x(-static_cast<int64_t>(q != 0))));
    _mm_storeu_pd(slot, _mm_add_pd(_mm_loadu_pd(slot), _mm_mul_pd(_mm_set_pd(w0 * w0, w0), sv)));
    _mm_storeu_pd(slot + 2, _mm_add_pd(_mm_loadu_pd(slot + 2), c1));
#else
    slot[0] += w0 * s;
    slot[1] += w0 * w0 * v;
    if (q) {
      slot[2] += w1 * s;
      slot[3] += w1 * w1 * v;
    }
#endif
    if (kLit) lit += static_cast<uint64_t>(s > f.lit_threshold) & static_cast<uint64_t>(b != discard);
  };
  // Pixels spanning three or more bins, at their place in pixel order (their
  // own slot is the discard bin, skipped here).
  auto exception = [&](const NarrowException& e) {
    const size_t i = e.pixel, k = i - first;
    auto weight = [&](uint32_t j) -> double { return j == 0 ? e.first : (j + 1 == e.count ? e.last : e.inner); };
    const T raw = data[k];
    if (excluded<T, kDummy>(raw, f)) {
      const double nr = norm(i);
      for (uint32_t j = 0; j < e.count; ++j) {
        acc.lost_norm[e.bin + j] += weight(j) * nr;
        acc.lost_count[e.bin + j] += weight(j);
      }
      ++acc.excluded;
      return;
    }
    const double x = static_cast<double>(raw);
    const double s = kDark ? x - f.dark[i] : x;
    const double v = at_least_one(x);
    if (kLit) lit += s > f.lit_threshold;
    for (uint32_t j = 0; j < e.count; ++j) {
      const double w = weight(j);
      double* slot = base + kStride * (e.bin + j) + kNarrowSlot * (i % kNarrowLanes);
      slot[0] += w * s;
      slot[1] += w * w * v;
    }
  };
  const NarrowException* e = std::lower_bound(m.exceptions, m.exceptions + m.nexceptions, first,
                                              [](const NarrowException& x, size_t p) { return x.pixel < p; });
  const NarrowException* e_end = m.exceptions + m.nexceptions;
  [[maybe_unused]] const bool avx2 = cpu_has_avx2();
  size_t k = 0;
  while (k < n) {
    const size_t stop = (e != e_end && e->pixel < first + n) ? e->pixel - first : n;
#if defined(__x86_64__)
    if constexpr (std::is_same<T, int32_t>::value && !kDark && !kDummy) {
      if (avx2) {
        while (k + 4 <= stop) {
          k = narrow_quads_avx2<Index, kLit>(m, bins, base, data, first, k, stop, f.max_valid, f.lit_threshold, lit);
          if (k + 4 <= stop) {  // a quad with an excluded pixel
            for (size_t j = 0; j < 4; ++j) add(k + j);
            k += 4;
          }
        }
      }
    }
#endif
    for (; k + 2 <= stop; k += 2) {
      add(k);
      add(k + 1);
    }
    if (k < stop) add(k++);
    if (stop < n) {
      exception(*e++);
      ++k;
    }
  }
  acc.lit += lit;
}

template <typename T, typename Index>
void dispatch_flags(const NarrowMap& m, const Index* bins, Accumulator& acc, const T* data, const FrameInputs& f, size_t first,
                    size_t n) {
  const bool dark = f.dark != nullptr, dummy = f.has_dummy, lit = !std::isnan(f.lit_threshold);
  switch ((dark ? 4 : 0) | (dummy ? 2 : 0) | (lit ? 1 : 0)) {
    case 0: run_narrow<T, Index, false, false, false>(m, bins, acc, data, f, first, n); break;
    case 1: run_narrow<T, Index, false, false, true>(m, bins, acc, data, f, first, n); break;
    case 2: run_narrow<T, Index, false, true, false>(m, bins, acc, data, f, first, n); break;
    case 3: run_narrow<T, Index, false, true, true>(m, bins, acc, data, f, first, n); break;
    case 4: run_narrow<T, Index, true, false, false>(m, bins, acc, data, f, first, n); break;
    case 5: run_narrow<T, Index, true, false, true>(m, bins, acc, data, f, first, n); break;
    case 6: run_narrow<T, Index, true, true, false>(m, bins, acc, data, f, first, n); break;
    default: run_narrow<T, Index, true, true, true>(m, bins, acc, data, f, first, n); break;
  }
}

template <typename T>
void dispatch_index(const NarrowMap& m, Accumulator& acc, const T* data, const FrameInputs& f, size_t first, size_t n) {
  if (m.bin16) dispatch_flags<T, uint16_t>(m, m.bin16, acc, data, f, first, n);
  else dispatch_flags<T, uint32_t>(m, m.bin32, acc, data, f, first, n);
}

}  // namespace

void accumulate_narrow(const NarrowMap& m, Accumulator& acc, const FrameInputs& f, size_t first, size_t n) {
  switch (f.type) {
    case PixelType::i32: dispatch_index(m, acc, static_cast<const int32_t*>(f.data), f, first, n); break;
    case PixelType::u32: dispatch_index(m, acc, static_cast<const uint32_t*>(f.data), f, first, n); break;
    case PixelType::u16: dispatch_index(m, acc, static_cast<const uint16_t*>(f.data), f, first, n); break;
    case PixelType::u8: dispatch_index(m, acc, static_cast<const uint8_t*>(f.data), f, first, n); break;
    case PixelType::f32: dispatch_index(m, acc, static_cast<const float*>(f.data), f, first, n); break;
  }
}

void narrow_fold(Accumulator& acc, size_t bins) {
  constexpr size_t kStride = kNarrowSlot * kNarrowLanes;
  std::vector<double> out(2 * (bins + 1), 0.0);
  for (size_t b = 0; b <= bins; ++b) {
    double s = 0, v = 0;
    for (size_t l = 0; l < kNarrowLanes; ++l) {
      s += acc.sums[kStride * b + kNarrowSlot * l];
      v += acc.sums[kStride * b + kNarrowSlot * l + 1];
    }
    if (b > 0)
      for (size_t l = 0; l < kNarrowLanes; ++l) {
        s += acc.sums[kStride * (b - 1) + kNarrowSlot * l + 2];
        v += acc.sums[kStride * (b - 1) + kNarrowSlot * l + 3];
      }
    out[2 * b] = s;
    out[2 * b + 1] = v;
  }
  acc.sums.swap(out);
}

std::vector<float> map_norm(const uint8_t* blob, size_t len) {
  const std::string problem = check_map(blob, len, false);
  if (!problem.empty()) throw std::invalid_argument(problem);
  MapHeader h;
  std::memcpy(&h, blob, sizeof h);
  if (!(h.flags & kMapNorm)) return {};
  std::vector<float> out(h.npix);
  if (h.flags & kMapNormPacked) {
    NarrowMap m;
    m.view(blob, h);
    float block[kNormBlock];
    for (size_t k = 0; k < norm_blocks(h.npix); ++k) {
      m.packed.decode_block(k, block);
      std::memcpy(out.data() + k * kNormBlock, block, std::min<size_t>(kNormBlock, h.npix - k * kNormBlock) * 4);
    }
  } else {
    std::memcpy(out.data(), blob + h.norm, h.npix * 4);
  }
  return out;
}

}  // namespace beamedge
