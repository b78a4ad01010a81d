#include "byte_offset.h"

#include <climits>
#include <cstring>

#include "cpu.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define BEAMEDGE_X86 1
#endif

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "beamedge assumes a little-endian host (x86-64, aarch64)"
#endif

namespace beamedge {
namespace {

template <typename T>
inline T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline bool fits_i32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

// One element with full bounds checks; the only path used near the end of the
// input, so a truncated escape can never be read past the buffer.
inline bool step_checked(const uint8_t* src, size_t len, size_t& ip, int64_t& v) {
  if (ip >= len) return false;
  const int8_t d8 = static_cast<int8_t>(src[ip]);
  if (d8 != INT8_MIN) {
    v += d8;
    ip += 1;
    return true;
  }
  if (len - ip < 3) return false;
  const int16_t d16 = load<int16_t>(src + ip + 1);
  if (d16 != INT16_MIN) {
    v += d16;
    ip += 3;
    return true;
  }
  if (len - ip < 7) return false;
  const int32_t d32 = load<int32_t>(src + ip + 3);
  if (d32 != INT32_MIN) {
    v += d32;
    ip += 7;
    return true;
  }
  if (len - ip < 15) return false;
  // Wrap like the two's-complement accumulator of the reference decoder
  // instead of invoking signed-overflow UB on hostile input.
  v = static_cast<int64_t>(static_cast<uint64_t>(v) + load<uint64_t>(src + ip + 7));
  ip += 15;
  return true;
}

// Same step without bounds checks; the caller guarantees 15 readable bytes.
inline void step_unchecked(const uint8_t* src, size_t& ip, int64_t& v) {
  const int8_t d8 = static_cast<int8_t>(src[ip]);
  if (__builtin_expect(d8 != INT8_MIN, 1)) {
    v += d8;
    ip += 1;
    return;
  }
  const int16_t d16 = load<int16_t>(src + ip + 1);
  if (d16 != INT16_MIN) {
    v += d16;
    ip += 3;
    return;
  }
  const int32_t d32 = load<int32_t>(src + ip + 3);
  if (d32 != INT32_MIN) {
    v += d32;
    ip += 7;
    return;
  }
  v = static_cast<int64_t>(static_cast<uint64_t>(v) + load<uint64_t>(src + ip + 7));
  ip += 15;
}

BoResult decode_scalar(const uint8_t* src, size_t len, int32_t* out, size_t count, BoCursor& cur) {
  size_t ip = cur.in_pos, op = 0;
  int64_t v = cur.value;
  // 15 bytes is the longest escape: inside this bound no per-byte check is needed.
  while (op < count && len - ip >= 15) {
    step_unchecked(src, ip, v);
    if (!fits_i32(v)) {
      cur = {ip, v};
      return {BoStatus::out_of_range, ip, op};
    }
    out[op++] = static_cast<int32_t>(v);
  }
  while (op < count) {
    if (!step_checked(src, len, ip, v)) {
      cur = {ip, v};
      return {BoStatus::truncated, ip, op};
    }
    if (!fits_i32(v)) {
      cur = {ip, v};
      return {BoStatus::out_of_range, ip, op};
    }
    out[op++] = static_cast<int32_t>(v);
  }
  cur = {ip, v};
  return {BoStatus::ok, ip, op};
}

#ifdef BEAMEDGE_X86
// Runs of 16 one-byte differences are by far the common case in PILATUS
// data: widen them to int32 and prefix-sum in registers. Escapes fall back to
// the scalar step. A run of at most kBlock elements moves the value by less
// than kBlock*128, so checking the value once per block is enough to keep the
// int32 lanes from wrapping.
__attribute__((target("avx2"))) BoResult decode_avx2_body(const uint8_t* src, size_t len, int32_t* out,
                                                          size_t count, BoCursor& cur) {
  constexpr size_t kBlock = 4096;
  constexpr int64_t kHeadroom = int64_t(kBlock) * 128;
  size_t ip = cur.in_pos, op = 0;
  int64_t v = cur.value;
  const __m128i escape = _mm_set1_epi8(static_cast<char>(0x80));
  const __m256i last = _mm256_set1_epi32(7);

  while (op < count && len - ip >= 16 + 15) {
    if (v < INT32_MIN + kHeadroom || v > INT32_MAX - kHeadroom) {
      step_unchecked(src, ip, v);
      if (!fits_i32(v)) {
        cur = {ip, v};
        return {BoStatus::out_of_range, ip, op};
      }
      out[op++] = static_cast<int32_t>(v);
      continue;
    }
    size_t block_end = op + kBlock < count ? op + kBlock : count;
    __m256i carry = _mm256_set1_epi32(static_cast<int32_t>(v));
    while (block_end - op >= 16 && len - ip >= 16 + 15) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + ip));
      const int esc = _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, escape));
      if (esc) {
        // Plain bytes before the escape, then the escape itself, one by one.
        int64_t s = _mm256_extract_epi32(carry, 7);
        const int plain = __builtin_ctz(static_cast<unsigned>(esc));
        for (int k = 0; k <= plain; ++k) {
          step_unchecked(src, ip, s);
          if (!fits_i32(s)) {
            cur = {ip, s};
            return {BoStatus::out_of_range, ip, op};
          }
          out[op++] = static_cast<int32_t>(s);
        }
        v = s;
        carry = _mm256_set1_epi32(static_cast<int32_t>(s));
        // An escape may add up to 2^31 at once: recheck the headroom.
        if (v < INT32_MIN + kHeadroom || v > INT32_MAX - kHeadroom) break;
        continue;
      }
      __m256i lo = _mm256_cvtepi8_epi32(bytes);
      __m256i hi = _mm256_cvtepi8_epi32(_mm_srli_si128(bytes, 8));
      // Inclusive prefix sum over 8 lanes: two in-lane steps, then carry the
      // low half's total into the high half.
      lo = _mm256_add_epi32(lo, _mm256_slli_si256(lo, 4));
      hi = _mm256_add_epi32(hi, _mm256_slli_si256(hi, 4));
      lo = _mm256_add_epi32(lo, _mm256_slli_si256(lo, 8));
      hi = _mm256_add_epi32(hi, _mm256_slli_si256(hi, 8));
      const __m256i lo_t = _mm256_shuffle_epi32(lo, 0xFF);
      const __m256i hi_t = _mm256_shuffle_epi32(hi, 0xFF);
      lo = _mm256_add_epi32(lo, _mm256_permute2x128_si256(lo_t, lo_t, 0x08));
      hi = _mm256_add_epi32(hi, _mm256_permute2x128_si256(hi_t, hi_t, 0x08));
      // Totals are computed off the carry chain: the chain is one add per 16 pixels.
      const __m256i lo_sum = _mm256_permutevar8x32_epi32(lo, last);
      const __m256i hi_sum = _mm256_permutevar8x32_epi32(hi, last);
      lo = _mm256_add_epi32(lo, carry);
      hi = _mm256_add_epi32(hi, _mm256_add_epi32(carry, lo_sum));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + op), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + op + 8), hi);
      carry = _mm256_add_epi32(carry, _mm256_add_epi32(lo_sum, hi_sum));
      ip += 16;
      op += 16;
    }
    v = _mm256_extract_epi32(carry, 7);
    // Finish a short block tail (fewer than 16 left before block_end) with scalar steps.
    while (op < block_end && len - ip >= 15 && (block_end - op < 16 || len - ip < 16 + 15)) {
      step_unchecked(src, ip, v);
      if (!fits_i32(v)) {
        cur = {ip, v};
        return {BoStatus::out_of_range, ip, op};
      }
      out[op++] = static_cast<int32_t>(v);
    }
  }
  BoCursor rest{ip, v};
  BoResult r = decode_scalar(src, len, out + op, count - op, rest);
  cur = rest;
  r.produced += op;
  return r;
}

// Leaves no dirty upper YMM state behind, whichever way the body returned: the
// SSE code that runs next (the integrator, built for baseline x86-64) would
// otherwise carry false dependencies on it and run several times slower.
// GCC does not insert vzeroupper reliably in target("avx2") functions.
__attribute__((target("avx2"))) BoResult decode_avx2(const uint8_t* src, size_t len, int32_t* out, size_t count,
                                                     BoCursor& cur) {
  const BoResult r = decode_avx2_body(src, len, out, count, cur);
  _mm256_zeroupper();
  return r;
}
#endif

}  // namespace

BoResult byte_offset_decode(const uint8_t* src, size_t src_len, int32_t* out, size_t count,
                            BoCursor& cur) {
  if (cur.in_pos > src_len) return {BoStatus::truncated, cur.in_pos, 0};
#ifdef BEAMEDGE_X86
  if (cpu_has_avx2()) return decode_avx2(src, src_len, out, count, cur);
#endif
  return decode_scalar(src, src_len, out, count, cur);
}

const char* byte_offset_kernel_name() {
#ifdef BEAMEDGE_X86
  if (cpu_has_avx2()) return "avx2";
#endif
  return "scalar";
}

std::vector<uint8_t> byte_offset_encode(const int32_t* values, size_t count) {
  std::vector<uint8_t> out;
  out.reserve(count + count / 8 + 16);
  int64_t prev = 0;
  for (size_t i = 0; i < count; ++i) {
    const int64_t d = int64_t(values[i]) - prev;
    prev = values[i];
    if (d > INT8_MIN && d <= INT8_MAX) {
      out.push_back(static_cast<uint8_t>(static_cast<int8_t>(d)));
      continue;
    }
    out.push_back(0x80);
    if (d > INT16_MIN && d <= INT16_MAX) {
      const int16_t d16 = static_cast<int16_t>(d);
      const uint8_t* p = reinterpret_cast<const uint8_t*>(&d16);
      out.insert(out.end(), p, p + 2);
      continue;
    }
    out.push_back(0x00);
    out.push_back(0x80);
    // Differences of int32 values always fit int33 < int64; int32 escape when it fits.
    if (d > INT32_MIN && d <= INT32_MAX) {
      const int32_t d32 = static_cast<int32_t>(d);
      const uint8_t* p = reinterpret_cast<const uint8_t*>(&d32);
      out.insert(out.end(), p, p + 4);
      continue;
    }
    out.insert(out.end(), {0x00, 0x00, 0x00, 0x80});
    const uint8_t* p = reinterpret_cast<const uint8_t*>(&d);
    out.insert(out.end(), p, p + 8);
  }
  return out;
}

}  // namespace beamedge
