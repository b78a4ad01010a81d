#include "lz4_codecs.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace beamedge {
namespace {

inline uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
inline uint64_t be64(const uint8_t* p) { return (uint64_t(be32(p)) << 32) | be32(p + 4); }

[[noreturn]] void fail(const std::string& what) { throw CodecError(what); }

}  // namespace

void lz4_block_decode(const uint8_t* src, size_t src_len, uint8_t* dst, size_t dst_len) {
  const uint8_t* ip = src;
  const uint8_t* const iend = src + src_len;
  uint8_t* op = dst;
  uint8_t* const oend = dst + dst_len;
  for (;;) {
    if (ip >= iend) fail("LZ4 block ends before its last sequence");
    const unsigned token = *ip++;
    size_t lit = token >> 4;
    if (lit == 15) {
      unsigned b;
      do {
        if (ip >= iend) fail("LZ4 literal length runs past the input");
        b = *ip++;
        lit += b;
      } while (b == 255);
    }
    if (lit > size_t(iend - ip)) fail("LZ4 literals run past the input");
    if (lit > size_t(oend - op)) fail("LZ4 literals overflow the output");
    // Wide copies where both buffers have room, exact ones at the edges.
    if (lit <= 16 && iend - ip >= 16 && oend - op >= 16) std::memcpy(op, ip, 16);
    else std::memcpy(op, ip, lit);
    op += lit;
    ip += lit;
    if (ip == iend) break;  // the last sequence has literals only
    if (iend - ip < 2) fail("LZ4 match offset truncated");
    const size_t offset = size_t(ip[0]) | (size_t(ip[1]) << 8);
    ip += 2;
    if (offset == 0 || offset > size_t(op - dst)) fail("LZ4 match offset points outside the output");
    size_t len = (token & 15) + 4;
    if ((token & 15) == 15) {
      unsigned b;
      do {
        if (ip >= iend) fail("LZ4 match length runs past the input");
        b = *ip++;
        len += b;
      } while (b == 255);
    }
    if (len > size_t(oend - op)) fail("LZ4 match overflows the output");
    const uint8_t* match = op - offset;
    if (offset >= 16 && oend - op >= ptrdiff_t(len + 16)) {
      // Non-overlapping 16-byte steps; the tail overshoot stays inside the output.
      for (size_t k = 0; k < len; k += 16) std::memcpy(op + k, match + k, 16);
    } else if (offset >= 8 && oend - op >= ptrdiff_t(len + 8)) {
      for (size_t k = 0; k < len; k += 8) std::memcpy(op + k, match + k, 8);
    } else if (offset == 1) {
      std::memset(op, *match, len);  // runs of one byte: zero rows of bitshuffled data
    } else {
      // Short repeating pattern: seed one period, then copy ever longer chunks of it.
      size_t k = 0;
      for (; k < offset && k < len; ++k) op[k] = match[k];
      for (size_t period = offset; k < len;) {
        const size_t n = std::min(period, len - k);
        std::memcpy(op + k, op + k - period, n);
        k += n;
        if (period * 2 <= 4096) period *= 2;  // still a multiple of offset
      }
    }
    op += len;
  }
  if (op != oend) fail("LZ4 block decodes to " + std::to_string(op - dst) + " bytes, expected " + std::to_string(dst_len));
}

namespace {

// 8x8 bit-matrix transpose of each 64-bit lane: byte k, bit j <-> byte j, bit k.
inline uint64_t transpose8(uint64_t x) {
  uint64_t t;
  t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
  x = x ^ t ^ (t << 7);
  t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
  x = x ^ t ^ (t << 14);
  t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
  x = x ^ t ^ (t << 28);
  return x;
}

#if defined(__x86_64__)
inline __m128i transpose8_sse(__m128i x) {
  __m128i t;
  t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 7)), _mm_set1_epi64x(0x00AA00AA00AA00AALL));
  x = _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 7)));
  t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 14)), _mm_set1_epi64x(0x0000CCCC0000CCCCLL));
  x = _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 14)));
  t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 28)), _mm_set1_epi64x(0x00000000F0F0F0F0LL));
  x = _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 28)));
  return x;
}

// One byte plane of 128 elements: rows (8 of them, `stride` bytes apart) hold
// bit k of that byte for every element. Returns 8 vectors, each the byte of 16
// consecutive elements.
inline void plane128(const uint8_t* rows, size_t stride, __m128i out[8]) {
  __m128i r[8];
  for (int k = 0; k < 8; ++k) r[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows + k * stride));
  // 8 x 16 byte transpose: afterwards each 64-bit lane holds one byte from every row.
  const __m128i a0 = _mm_unpacklo_epi8(r[0], r[1]), a1 = _mm_unpackhi_epi8(r[0], r[1]);
  const __m128i a2 = _mm_unpacklo_epi8(r[2], r[3]), a3 = _mm_unpackhi_epi8(r[2], r[3]);
  const __m128i a4 = _mm_unpacklo_epi8(r[4], r[5]), a5 = _mm_unpackhi_epi8(r[4], r[5]);
  const __m128i a6 = _mm_unpacklo_epi8(r[6], r[7]), a7 = _mm_unpackhi_epi8(r[6], r[7]);
  const __m128i b0 = _mm_unpacklo_epi16(a0, a2), b1 = _mm_unpackhi_epi16(a0, a2);
  const __m128i b2 = _mm_unpacklo_epi16(a1, a3), b3 = _mm_unpackhi_epi16(a1, a3);
  const __m128i c0 = _mm_unpacklo_epi16(a4, a6), c1 = _mm_unpackhi_epi16(a4, a6);
  const __m128i c2 = _mm_unpacklo_epi16(a5, a7), c3 = _mm_unpackhi_epi16(a5, a7);
  out[0] = transpose8_sse(_mm_unpacklo_epi32(b0, c0));
  out[1] = transpose8_sse(_mm_unpackhi_epi32(b0, c0));
  out[2] = transpose8_sse(_mm_unpacklo_epi32(b1, c1));
  out[3] = transpose8_sse(_mm_unpackhi_epi32(b1, c1));
  out[4] = transpose8_sse(_mm_unpacklo_epi32(b2, c2));
  out[5] = transpose8_sse(_mm_unpackhi_epi32(b2, c2));
  out[6] = transpose8_sse(_mm_unpacklo_epi32(b3, c3));
  out[7] = transpose8_sse(_mm_unpackhi_epi32(b3, c3));
}
#endif

}  // namespace

void bitunshuffle_block(const uint8_t* in, uint8_t* out, size_t n, size_t elem_size) {
  const size_t stride = n / 8;  // bytes per bit row
  size_t e = 0;
#if defined(__x86_64__)
  if (elem_size == 1 || elem_size == 2 || elem_size == 4) {
    for (; e + 128 <= n; e += 128) {
      const size_t g = e / 8;
      __m128i p[4][8];
      for (size_t b = 0; b < elem_size; ++b) plane128(in + (b * 8) * stride + g, stride, p[b]);
      for (int m = 0; m < 8; ++m) {
        uint8_t* o = out + (e + 16 * m) * elem_size;
        if (elem_size == 1) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(o), p[0][m]);
        } else if (elem_size == 2) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_unpacklo_epi8(p[0][m], p[1][m]));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 16), _mm_unpackhi_epi8(p[0][m], p[1][m]));
        } else {
          const __m128i lo01 = _mm_unpacklo_epi8(p[0][m], p[1][m]), hi01 = _mm_unpackhi_epi8(p[0][m], p[1][m]);
          const __m128i lo23 = _mm_unpacklo_epi8(p[2][m], p[3][m]), hi23 = _mm_unpackhi_epi8(p[2][m], p[3][m]);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_unpacklo_epi16(lo01, lo23));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 16), _mm_unpackhi_epi16(lo01, lo23));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 32), _mm_unpacklo_epi16(hi01, hi23));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 48), _mm_unpackhi_epi16(hi01, hi23));
        }
      }
    }
  }
#endif
  // Remaining groups of 8 elements (and any element size): one 64-bit transpose per byte plane.
  for (; e < n; e += 8) {
    const size_t g = e / 8;
    for (size_t b = 0; b < elem_size; ++b) {
      uint64_t x = 0;
      for (int k = 0; k < 8; ++k) x |= uint64_t(in[(b * 8 + k) * stride + g]) << (8 * k);
      x = transpose8(x);
      for (int j = 0; j < 8; ++j) out[(e + j) * elem_size + b] = uint8_t(x >> (8 * j));
    }
  }
}

void bslz4_decode(const uint8_t* src, size_t src_len, uint8_t* dst, size_t dst_len, size_t elem_size) {
  if (elem_size == 0 || dst_len % elem_size) fail("bitshuffle: output size is not a whole number of elements");
  size_t pos = 0;
  size_t block_bytes = 8192;
  if (src_len >= 12 && be64(src) == dst_len) {
    block_bytes = be32(src + 8);
    pos = 12;
  } else if (src_len >= 12 && be32(src + 8) == 8192 && be64(src) % elem_size == 0) {
    // A plausible header for another size: say so rather than misread it as header-less data.
    fail("bitshuffle header says " + std::to_string(be64(src)) + " bytes, the frame needs " + std::to_string(dst_len));
  }
  size_t block = block_bytes / elem_size;
  block -= block % 8;
  if (block == 0) fail("bitshuffle block size " + std::to_string(block_bytes) + " is too small");
  const size_t n = dst_len / elem_size;
  // Sized for the largest block this frame holds, not for the block size the
  // header claims: a hostile header would otherwise have us zero 4 GiB.
  std::vector<uint8_t> scratch(std::min(block, n - n % 8) * elem_size);
  size_t done = 0;  // elements
  while (n - done >= 8) {
    const size_t count = std::min(block, (n - done) - (n - done) % 8);
    if (src_len - pos < 4) fail("bitshuffle-LZ4 truncated at block " + std::to_string(done / block));
    const size_t clen = be32(src + pos);
    pos += 4;
    if (clen > src_len - pos) fail("bitshuffle-LZ4 block " + std::to_string(done / block) + " runs past the input");
    lz4_block_decode(src + pos, clen, scratch.data(), count * elem_size);
    bitunshuffle_block(scratch.data(), dst + done * elem_size, count, elem_size);
    pos += clen;
    done += count;
  }
  const size_t tail = (n - done) * elem_size;  // fewer than 8 elements, stored raw
  if (src_len - pos != tail) fail("bitshuffle-LZ4: " + std::to_string(src_len - pos) + " bytes left after the blocks, expected " + std::to_string(tail));
  std::memcpy(dst + done * elem_size, src + pos, tail);
}

void lz4_framed_decode(const uint8_t* src, size_t src_len, uint8_t* dst, size_t dst_len) {
  if (src_len < 12) fail("LZ4 frame shorter than its header");
  if (be64(src) != dst_len) fail("LZ4 header says " + std::to_string(be64(src)) + " bytes, the frame needs " + std::to_string(dst_len));
  const size_t block = be32(src + 8);
  if (block == 0) fail("LZ4 header gives a zero block size");
  size_t pos = 12, done = 0;
  while (done < dst_len) {
    const size_t size = std::min(block, dst_len - done);
    if (src_len - pos < 4) fail("LZ4 frame truncated");
    const size_t clen = be32(src + pos);
    pos += 4;
    if (clen > src_len - pos) fail("LZ4 block runs past the input");
    if (clen == size) std::memcpy(dst + done, src + pos, size);  // stored raw
    else lz4_block_decode(src + pos, clen, dst + done, size);
    pos += clen;
    done += size;
  }
  if (pos != src_len) fail("LZ4 frame has " + std::to_string(src_len - pos) + " trailing bytes");
}

namespace {

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

void put_length(std::vector<uint8_t>& out, size_t n) {
  for (; n >= 255; n -= 255) out.push_back(255);
  out.push_back(uint8_t(n));
}

}  // namespace

std::vector<uint8_t> lz4_block_encode(const uint8_t* src, size_t len) {
  std::vector<uint8_t> out;
  out.reserve(len + len / 255 + 16);
  std::vector<int64_t> table(1 << 16, -1);
  size_t anchor = 0, i = 0;
  // The format wants the last 5 bytes as literals and no match starting in the last 12.
  const size_t match_limit = len > 12 ? len - 12 : 0;
  auto emit = [&](size_t lit_end, size_t match_len, size_t offset) {
    const size_t lit = lit_end - anchor;
    const size_t ml = match_len ? match_len - 4 : 0;
    out.push_back(uint8_t((lit >= 15 ? 15 : lit) << 4 | (match_len ? (ml >= 15 ? 15 : ml) : 0)));
    if (lit >= 15) put_length(out, lit - 15);
    out.insert(out.end(), src + anchor, src + lit_end);
    if (!match_len) return;
    out.push_back(uint8_t(offset));
    out.push_back(uint8_t(offset >> 8));
    if (ml >= 15) put_length(out, ml - 15);
  };
  while (i < match_limit) {
    uint32_t seq;
    std::memcpy(&seq, src + i, 4);
    const uint32_t h = (seq * 2654435761u) >> 16;
    const int64_t cand = table[h];
    table[h] = int64_t(i);
    if (cand >= 0 && i - size_t(cand) <= 65535 && std::memcmp(src + cand, src + i, 4) == 0) {
      size_t m = 4;
      while (i + m < len - 5 && src[cand + m] == src[i + m]) ++m;
      emit(i, m, i - size_t(cand));
      i += m;
      anchor = i;
    } else {
      ++i;
    }
  }
  emit(len, 0, 0);
  return out;
}

std::vector<uint8_t> bslz4_encode(const uint8_t* src, size_t len, size_t elem_size, size_t block_bytes) {
  const size_t n = len / elem_size;
  size_t block = block_bytes / elem_size;
  block -= block % 8;
  std::vector<uint8_t> out;
  for (int s = 56; s >= 0; s -= 8) out.push_back(uint8_t(uint64_t(len) >> s));
  put_be32(out, uint32_t(block * elem_size));
  std::vector<uint8_t> shuffled(block * elem_size);
  size_t done = 0;
  while (n - done >= 8) {
    const size_t count = std::min(block, (n - done) - (n - done) % 8);
    // Forward bitshuffle: bit k of byte b of element e -> row b*8+k, byte e/8, bit e%8.
    const size_t stride = count / 8;
    std::fill(shuffled.begin(), shuffled.begin() + count * elem_size, 0);
    for (size_t e = 0; e < count; ++e)
      for (size_t b = 0; b < elem_size; ++b) {
        const uint8_t v = src[(done + e) * elem_size + b];
        for (int k = 0; k < 8; ++k)
          if (v >> k & 1) shuffled[(b * 8 + k) * stride + e / 8] |= uint8_t(1u << (e % 8));
      }
    const std::vector<uint8_t> c = lz4_block_encode(shuffled.data(), count * elem_size);
    put_be32(out, uint32_t(c.size()));
    out.insert(out.end(), c.begin(), c.end());
    done += count;
  }
  out.insert(out.end(), src + done * elem_size, src + len);
  return out;
}

}  // namespace beamedge
