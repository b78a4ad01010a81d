#include "jungfrau.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BEAMEDGE_X86 1
#endif

namespace beamedge {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// One pixel, the reference semantics. Word-level specials come first: they say
// nothing about the pixel's calibration, and 0xFFFF / 0xC000 carry gain code 11
// but no ADC value. Every operation is a single IEEE float op (no FMA: the
// build sets -ffp-contract=off), so the AVX2 kernel can match it bit for bit.
template <bool kMask, bool kLit, bool kTrack>
inline void convert_pixel(const JfInputs& in, size_t i, float* out, JfCounts& c) {
  const uint16_t w = in.raw[i];
  const unsigned code = w >> 14;
  if (__builtin_expect(code == 2, 0)) {
    ++c.invalid_code;
    out[i] = kNaN;
    return;
  }
  if (__builtin_expect(w == 0xFFFF, 0)) {
    ++c.error_word;
    out[i] = kNaN;
    return;
  }
  if (__builtin_expect(w == 0xC000, 0)) {
    ++c.saturated;
    out[i] = kNaN;
    return;
  }
  const unsigned g = code == 3 ? 2 : code;
  if (kMask && (in.mask[i] & in.exclude[g])) {
    ++c.masked;
    out[i] = kNaN;
    return;
  }
  const float adc = static_cast<float>(w & 0x3FFF);
  const size_t at = g * in.plane + i;
  const float v = (adc - in.pedestal[at]) * in.factor[at];
  out[i] = v;
  // A NaN pedestal or factor is a calibration that excludes the pixel in this
  // gain: the caller may fold the mask into the factors and pass no mask.
  if (__builtin_expect(v != v, 0)) {
    ++c.masked;
    return;
  }
  ++c.gain[g];
  if (kLit) c.lit += v > in.lit_threshold;
  if (kTrack && g == 0) {
    const JfTrack& t = *in.track;
    const float p = t.pedestal[i];
    const float d = adc - p;
    if (std::fabs(d) < t.k * t.rms[i]) t.pedestal[i] = p + d / t.window;
  }
}

template <bool kMask, bool kLit, bool kTrack>
void convert_range_scalar(const JfInputs& in, size_t from, size_t to, float* out, JfCounts& c) {
  for (size_t i = from; i < to; ++i) convert_pixel<kMask, kLit, kTrack>(in, i, out, c);
}

template <bool kMask, bool kLit, bool kTrack>
JfCounts convert_scalar_t(const JfInputs& in, float* out) {
  JfCounts c;
  convert_range_scalar<kMask, kLit, kTrack>(in, 0, in.n, out, c);
  return c;
}

#ifdef BEAMEDGE_X86
// Eight pixels at a time. Nearly every pixel of a frame is in G0, so a group
// of eight G0 words reads only the G0 pedestal and factor (the memory traffic
// is what bounds this pass); any group with another gain or a special word
// goes through the scalar pixel code, which is the same arithmetic.
template <bool kMask, bool kLit, bool kTrack>
__attribute__((target("avx2"))) JfCounts convert_avx2_t(const JfInputs& in, float* out) {
  JfCounts c;
  const float* ped0 = in.pedestal;
  const float* fac0 = in.factor;
  const __m128i top = _mm_set1_epi16(static_cast<short>(0xC000));
  const __m256 nan = _mm256_set1_ps(kNaN);
  const __m256 thr = _mm256_set1_ps(in.lit_threshold);
  const __m256i excl0 = _mm256_set1_epi32(static_cast<int>(in.exclude[0]));
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 k = _mm256_set1_ps(kTrack ? in.track->k : 0.0f);
  const __m256 window = _mm256_set1_ps(kTrack ? in.track->window : 1.0f);
  float* tped = kTrack ? in.track->pedestal : nullptr;
  const float* trms = kTrack ? in.track->rms : nullptr;
  // 32-bit lane counters, flushed before they could overflow.
  constexpr size_t kBlock = size_t(1) << 28;
  size_t i = 0;
  for (size_t block_end = 0; i + 8 <= in.n;) {
    block_end = std::min(in.n & ~size_t(7), i + kBlock);
    __m256i kept = _mm256_setzero_si256(), lit = _mm256_setzero_si256();
    size_t fast = 0;
    for (; i < block_end; i += 8) {
      const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in.raw + i));
      if (__builtin_expect(!_mm_testz_si128(w, top), 0)) {
        convert_range_scalar<kMask, kLit, kTrack>(in, i, i + 8, out, c);
        continue;
      }
      fast += 8;
      const __m256 adc = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(w));
      __m256 v = _mm256_mul_ps(_mm256_sub_ps(adc, _mm256_loadu_ps(ped0 + i)), _mm256_loadu_ps(fac0 + i));
      __m256i keep = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_ORD_Q));
      if (kMask) {
        const __m256i m = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in.mask + i)), excl0);
        keep = _mm256_and_si256(keep, _mm256_cmpeq_epi32(m, _mm256_setzero_si256()));
        v = _mm256_blendv_ps(nan, v, _mm256_castsi256_ps(keep));
      }
      kept = _mm256_sub_epi32(kept, keep);
      _mm256_storeu_ps(out + i, v);
      if (kLit) lit = _mm256_sub_epi32(lit, _mm256_castps_si256(_mm256_cmp_ps(v, thr, _CMP_GT_OQ)));
      if (kTrack) {
        const __m256 p = _mm256_loadu_ps(tped + i);
        const __m256 d = _mm256_sub_ps(adc, p);
        const __m256 lim = _mm256_mul_ps(k, _mm256_loadu_ps(trms + i));
        __m256 upd = _mm256_cmp_ps(_mm256_and_ps(d, abs_mask), lim, _CMP_LT_OQ);
        upd = _mm256_and_ps(upd, _mm256_castsi256_ps(keep));
        const __m256 np = _mm256_add_ps(p, _mm256_div_ps(d, window));
        _mm256_storeu_ps(tped + i, _mm256_blendv_ps(p, np, upd));
      }
    }
    alignas(32) uint32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), kept);
    uint64_t g0 = 0;
    for (uint32_t x : lanes) g0 += x;
    c.gain[0] += g0;
    c.masked += fast - g0;
    if (kLit) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), lit);
      for (uint32_t x : lanes) c.lit += x;
    }
  }
  convert_range_scalar<kMask, kLit, kTrack>(in, i, in.n, out, c);
  return c;
}

// vzeroupper on the way out: see byte_offset.cc (the baseline-built code that
// runs next would pay for dirty upper YMM state).
template <bool kMask, bool kLit, bool kTrack>
__attribute__((target("avx2"))) JfCounts convert_avx2(const JfInputs& in, float* out) {
  const JfCounts c = convert_avx2_t<kMask, kLit, kTrack>(in, out);
  _mm256_zeroupper();
  return c;
}
#endif

using Kernel = JfCounts (*)(const JfInputs&, float*);

template <template <bool, bool, bool> class Pick>
Kernel select(const JfInputs& in) {
  const int key = (in.mask ? 4 : 0) | (in.lit ? 2 : 0) | (in.track ? 1 : 0);
  switch (key) {
    case 0: return Pick<false, false, false>::fn;
    case 1: return Pick<false, false, true>::fn;
    case 2: return Pick<false, true, false>::fn;
    case 3: return Pick<false, true, true>::fn;
    case 4: return Pick<true, false, false>::fn;
    case 5: return Pick<true, false, true>::fn;
    case 6: return Pick<true, true, false>::fn;
    default: return Pick<true, true, true>::fn;
  }
}

template <bool a, bool b, bool c>
struct PickScalar {
  static constexpr Kernel fn = convert_scalar_t<a, b, c>;
};
#ifdef BEAMEDGE_X86
template <bool a, bool b, bool c>
struct PickAvx2 {
  static constexpr Kernel fn = convert_avx2<a, b, c>;
};
#endif

}  // namespace

JfCounts jungfrau_convert_scalar(const JfInputs& given, float* out) {
  JfInputs in = given;
  if (!in.plane) in.plane = in.n;
  return select<PickScalar>(in)(in, out);
}

JfCounts jungfrau_convert(const JfInputs& given, float* out) {
#ifdef BEAMEDGE_X86
  if (cpu_has_avx2()) {
    JfInputs in = given;
    if (!in.plane) in.plane = in.n;
    return select<PickAvx2>(in)(in, out);
  }
#endif
  return jungfrau_convert_scalar(given, out);
}

const char* jungfrau_kernel_name() {
#ifdef BEAMEDGE_X86
  if (cpu_has_avx2()) return "avx2";
#endif
  return "scalar";
}

}  // namespace beamedge
