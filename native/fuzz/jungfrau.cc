// The JUNGFRAU conversion kernel: the AVX2 kernel (jungfrau_convert, where
// the CPU has AVX2) against the portable one (jungfrau_convert_scalar) on
// random frames, pedestals, factors, masks and options. They must agree bit
// for bit on every converted value, put NaN at the same pixels, return the
// same counts, and leave the same tracked pedestals; the counts must add up
// to the pixels, and the word-level specials must be counted as the raw
// words say.
//
// Input layout (test/fuzz/inputs.ts reads the same):
//   [flags u8][exclude g0, g1, g2: u32 LE x3][lit threshold f32][track k f32][track window f32]
//   then per pixel: [raw u16][pedestal g0..g2 f32 x3][factor g0..g2 f32 x3][mask u32]
//                   [tracked pedestal f32][rms f32]                     (38 bytes)
// flags: bit 0 mask, bit 1 lit threshold, bit 2 pedestal tracking,
//        bit 3 tame calibration (pedestals 0..16383 ADU, factors -1..1, NaN
//              where the top nibble is 0xF), so most pixels convert;
//        bit 4 mostly-G0 words (gain bits cleared unless ADC bits 8-11 are all
//              set), so whole groups of eight take the AVX2 fast path.
// Out of the addon's domain, as it refuses them: a NaN lit threshold is 0, a
// negative or non-finite k is |k| or 1, a window below 1 or not finite is 128.
#include <cmath>
#include <cstring>
#include <string_view>
#include <vector>

#include "fuzz_input.h"
#include "jungfrau.h"

using namespace beamedge;

namespace {

constexpr size_t kHeader = 25;
constexpr size_t kRecord = 38;

uint32_t u32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
float f32(const uint8_t* p) {
  const uint32_t b = u32(p);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Tame values: pedestals an ADC could have, factors of either sign, the odd NaN.
float tame_pedestal(uint32_t b) {
  if ((b >> 28) == 0xF) return std::nanf("");
  return float(b & 0x3FFF) + float((b >> 14) & 0xFF) / 256.0f;
}
float tame_factor(uint32_t b) {
  if ((b >> 28) == 0xF) return std::nanf("");
  return float(int32_t(b % 2001) - 1000) / 1000.0f;
}

// Same float, or both NaN (NaN payloads are not the kernel's contract).
bool same_value(float a, float b) { return (a != a && b != b) || bits(a) == bits(b); }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  unsetenv("BEAMEDGE_KERNELS");
  if (std::string_view(jungfrau_kernel_name()) != "avx2")
    std::fprintf(stderr, "NOTICE: this CPU has no AVX2: jungfrau compares the portable kernel with itself\n");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeader) return -1;
  const uint8_t flags = data[0];
  const bool tame = flags & 8, mostly_g0 = flags & 16;
  const size_t n = (size - kHeader) / kRecord;
  const uint8_t* rec = data + kHeader;

  std::vector<uint16_t> raw(n);
  std::vector<float> pedestal(3 * n), factor(3 * n), tped(n), trms(n);
  std::vector<uint32_t> mask(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* r = rec + i * kRecord;
    uint16_t w = uint16_t(r[0] | r[1] << 8);
    if (mostly_g0 && (w & 0x0F00) != 0x0F00) w &= 0x3FFF;
    raw[i] = w;
    for (int g = 0; g < 3; ++g) {
      const uint32_t pb = u32(r + 2 + 4 * g), fb = u32(r + 14 + 4 * g);
      pedestal[g * n + i] = tame ? tame_pedestal(pb) : f32(r + 2 + 4 * g);
      factor[g * n + i] = tame ? tame_factor(fb) : f32(r + 14 + 4 * g);
    }
    mask[i] = u32(r + 26);
    tped[i] = tame ? tame_pedestal(u32(r + 30)) : f32(r + 30);
    trms[i] = tame ? float(u32(r + 34) % 200) / 4.0f : f32(r + 34);
  }

  JfInputs in;
  in.raw = raw.data();
  in.n = n;
  in.pedestal = pedestal.data();
  in.factor = factor.data();
  in.mask = (flags & 1) ? mask.data() : nullptr;
  for (int g = 0; g < 3; ++g) in.exclude[g] = u32(data + 1 + 4 * g);
  in.lit = flags & 2;
  in.lit_threshold = f32(data + 13);
  if (in.lit_threshold != in.lit_threshold) in.lit_threshold = 0;
  JfTrack track_a, track_b;
  float k = std::fabs(f32(data + 17));
  if (!std::isfinite(k)) k = 1;
  float window = f32(data + 21);
  if (!(window >= 1) || !std::isfinite(window)) window = 128;
  std::vector<float> tped_a(tped), tped_b(tped);
  track_a.pedestal = tped_a.data();
  track_b.pedestal = tped_b.data();
  track_a.rms = track_b.rms = trms.data();
  track_a.k = track_b.k = k;
  track_a.window = track_b.window = window;

  // Exactly n floats each, so a write past the frame is an AddressSanitizer report.
  fuzz::Exact<float> out_a(n), out_b(n);
  in.track = (flags & 4) ? &track_a : nullptr;
  const JfCounts a = jungfrau_convert(in, out_a.data());
  in.track = (flags & 4) ? &track_b : nullptr;
  const JfCounts b = jungfrau_convert_scalar(in, out_b.data());

  for (const JfCounts* c : {&a, &b}) {
    const uint64_t sum = c->gain[0] + c->gain[1] + c->gain[2] + c->saturated + c->invalid_code + c->error_word + c->masked;
    fuzz::check(sum == n, "counts do not add up to the pixels");
    fuzz::check(c->lit <= c->gain[0] + c->gain[1] + c->gain[2], "more lit pixels than converted ones");
    if (!in.lit) fuzz::check(c->lit == 0, "lit pixels counted without a threshold");
  }
  fuzz::check(a.gain[0] == b.gain[0] && a.gain[1] == b.gain[1] && a.gain[2] == b.gain[2], "kernels count different pixels per gain");
  fuzz::check(a.saturated == b.saturated && a.invalid_code == b.invalid_code && a.error_word == b.error_word,
              "kernels count different special words");
  fuzz::check(a.masked == b.masked, "kernels mask different pixel counts");
  fuzz::check(a.lit == b.lit, "kernels count different lit pixels");

  uint64_t saturated = 0, invalid = 0, error = 0, nan = 0;
  for (size_t i = 0; i < n; ++i) {
    const float x = out_a.data()[i], y = out_b.data()[i];
    fuzz::check((x != x) == (y != y), "kernels put NaN at different pixels");
    fuzz::check(same_value(x, y), "kernels convert a pixel to different values");
    const uint16_t w = raw[i];
    const bool special = (w >> 14) == 2 || w == 0xFFFF || w == 0xC000;
    if ((w >> 14) == 2) ++invalid;
    else if (w == 0xFFFF) ++error;
    else if (w == 0xC000) ++saturated;
    if (special) fuzz::check(y != y, "a special word is not NaN");
    nan += y != y;
    fuzz::check(same_value(tped_a[i], tped_b[i]), "kernels track the G0 pedestal differently");
  }
  fuzz::check(b.saturated == saturated && b.invalid_code == invalid && b.error_word == error, "special words miscounted");
  fuzz::check(nan == b.saturated + b.invalid_code + b.error_word + b.masked, "NaN pixels are not the excluded ones");
  if (!(flags & 4))
    for (size_t i = 0; i < n; ++i) fuzz::check(bits(tped_a[i]) == bits(tped[i]), "tracked pedestal changed without tracking");
  return 0;
}
