// Byte-offset decoding checked against a plain reference decoder (the
// algorithm as written in the CBF specification), whole and resumed tile by
// tile through a BoCursor as the fused decode+integrate path does. Included by
// byte_offset_avx2.cc and byte_offset_scalar.cc, which pin the kernel: the
// choice is made once per process (cpu.h), so each kernel gets its own binary.
#include <climits>
#include <cstring>
#include <string_view>
#include <vector>

#include "byte_offset.h"
#include "cbf_decode.h"
#include "cbf_locate.h"
#include "fuzz_input.h"

using namespace beamedge;

namespace {

BoResult reference_decode(const uint8_t* src, size_t len, int32_t* out, size_t count) {
  size_t ip = 0, op = 0;
  int64_t v = 0;
  auto le = [&](size_t at, int bytes) {
    uint64_t x = 0;
    for (int k = 0; k < bytes; ++k) x |= uint64_t(src[at + k]) << (8 * k);
    return x;
  };
  while (op < count) {
    if (ip >= len) return {BoStatus::truncated, ip, op};
    if (src[ip] != 0x80) {
      v += int8_t(src[ip]);
      ip += 1;
    } else if (len - ip < 3) {
      return {BoStatus::truncated, ip, op};
    } else if (le(ip + 1, 2) != 0x8000) {
      v += int16_t(le(ip + 1, 2));
      ip += 3;
    } else if (len - ip < 7) {
      return {BoStatus::truncated, ip, op};
    } else if (le(ip + 3, 4) != 0x80000000u) {
      v += int32_t(le(ip + 3, 4));
      ip += 7;
    } else if (len - ip < 15) {
      return {BoStatus::truncated, ip, op};
    } else {
      v = int64_t(uint64_t(v) + le(ip + 7, 8));  // two's-complement wrap, as in the C reference
      ip += 15;
    }
    if (v < INT32_MIN || v > INT32_MAX) return {BoStatus::out_of_range, ip, op};
    out[op++] = int32_t(v);
  }
  return {BoStatus::ok, ip, op};
}

bool same(const BoResult& a, const BoResult& b) {
  return a.status == b.status && a.consumed == b.consumed && a.produced == b.produced;
}

// Tile sizes around the AVX2 kernel's 16-element steps and 4096-element blocks.
constexpr size_t kTiles[16] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 100, 255, 1000, 4095, 4096, 4097, 16384};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
#ifdef BEAMEDGE_FUZZ_SCALAR
  setenv("BEAMEDGE_KERNELS", "scalar", 1);
  fuzz::check(std::string_view(byte_offset_kernel_name()) == "scalar", "the portable kernel could not be forced");
#else
  unsetenv("BEAMEDGE_KERNELS");
  if (std::string_view(byte_offset_kernel_name()) != "avx2")
    std::fprintf(stderr, "NOTICE: this CPU has no AVX2: byte_offset_avx2 runs the portable kernel\n");
#endif
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Prefixed in;
  if (!fuzz::split_prefix(data, size, in)) return -1;
  // One byte per element at least: one more element than there are bytes is
  // enough to reach every truncation, and keeps the output bounded by the input.
  const size_t count = std::min(in.out_size, in.len + 1);

  fuzz::Exact<int32_t> ref(count), out(count), tiled(count);
  const BoResult want = reference_decode(in.payload, in.len, ref.data(), count);

  BoCursor cur;
  const BoResult got = byte_offset_decode(in.payload, in.len, out.data(), count, cur);
  fuzz::check(same(got, want), "kernel and reference disagree on status, bytes or elements");
  fuzz::check(std::memcmp(out.data(), ref.data(), want.produced * sizeof(int32_t)) == 0,
              "kernel and reference decode different values");
  fuzz::check(cur.in_pos == got.consumed, "cursor does not sit after the consumed bytes");

  // Resumed tile by tile: same values, and the error at the same element.
  const size_t tile = kTiles[in.selector & 15];
  BoCursor tc;
  BoResult last{BoStatus::ok, 0, 0};
  size_t done = 0;
  while (done < count) {
    const size_t n = std::min(tile, count - done);
    const BoResult r = byte_offset_decode(in.payload, in.len, tiled.data() + done, n, tc);
    done += r.produced;
    last = {r.status, tc.in_pos, done};
    if (r.status != BoStatus::ok) break;
  }
  fuzz::check(same(last, want), "tiled decoding ends differently from whole decoding");
  fuzz::check(std::memcmp(tiled.data(), ref.data(), want.produced * sizeof(int32_t)) == 0,
              "tiled decoding gives different values");

  // The addon's exact decode: succeeds only for a complete stream consumed to its last byte.
  bool threw = false;
  try {
    byte_offset_decode_exact(in.payload, in.len, out.data(), count);
  } catch (const CbfError&) {
    threw = true;
  }
  fuzz::check(threw == !(want.status == BoStatus::ok && want.consumed == in.len), "exact decode accepts or rejects wrongly");

  // Round trip of whatever decoded: shortest escapes, same values back.
  const std::vector<uint8_t> enc = byte_offset_encode(ref.data(), want.produced);
  fuzz::check(enc.size() <= want.consumed, "re-encoding is longer than the input it came from");
  fuzz::Exact<int32_t> back(want.produced);
  BoCursor rc;
  const BoResult rt = byte_offset_decode(enc.data(), enc.size(), back.data(), want.produced, rc);
  fuzz::check(rt.status == BoStatus::ok && rt.consumed == enc.size(), "re-encoded stream does not decode");
  fuzz::check(std::memcmp(back.data(), ref.data(), want.produced * sizeof(int32_t)) == 0, "round trip changes values");
  return 0;
}
