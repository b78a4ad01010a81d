// Bitshuffle-LZ4 (stream v2 "bslz4", HDF5 filter 32008) for 1, 2, 4 and
// 8-byte elements (selector bits 0-1), with or without the 12-byte header; with
// selector bit 7, the payload as pixels through our encoder (block size from
// bits 2-3) and back.
#include <algorithm>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "lz4_codecs.h"

using namespace beamedge;

namespace {

uint64_t be(const uint8_t* p, int bytes) {
  uint64_t x = 0;
  for (int k = 0; k < bytes; ++k) x = x << 8 | p[k];
  return x;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Prefixed in;
  if (!fuzz::split_prefix(data, size, in)) return -1;
  const size_t es = size_t(1) << (in.selector & 3);
  {
    fuzz::Output out(in.out_size);
    try {
      bslz4_decode(in.payload, in.len, out.data(), in.out_size, es);
    } catch (const CodecError&) {
    }
  }
  if (!(in.selector & 0x80)) return 0;

  if (es > 4) return 0;  // the encoder takes the pixel sizes detectors send
  // Block sizes: the bitshuffle default, and the smallest and uneven ones a header may name.
  const size_t blocks[4] = {8192, 8 * es, 8 * es * 3, 24 * 1024};
  const size_t block_bytes = blocks[in.selector >> 2 & 3];
  // Our encoder is slow (a fresh hash table per block, one bit at a time): two
  // default blocks and a partial one, or four small blocks, keep an execution fast.
  const size_t len = std::min(in.len, block_bytes == 8192 ? size_t(20000) : 4 * block_bytes) / es * es;
  const std::vector<uint8_t> enc = bslz4_encode(in.payload, len, es, block_bytes);
  fuzz::Exact<uint8_t> back(len);
  try {
    bslz4_decode(enc.data(), enc.size(), back.data(), len, es);
  } catch (const CodecError&) {
    fuzz::fail("our bitshuffle-LZ4 encoder wrote data the decoder rejects");
  }
  fuzz::check(std::memcmp(back.data(), in.payload, len) == 0, "bitshuffle-LZ4 round trip changes the data");

  if (block_bytes != 8192) return 0;  // header-less data always has the default block size
  const uint8_t* bare = enc.data() + 12;
  const size_t bare_len = enc.size() - 12;
  // Header-less data is told from a header by its first 12 bytes alone: data
  // that happens to read as a header for this size, or as a plausible header
  // for another, is taken for one. Such inputs only have to fail cleanly.
  const bool looks_like_header =
      bare_len >= 12 && (be(bare, 8) == len || (be(bare + 8, 4) == 8192 && be(bare, 8) % es == 0));
  try {
    bslz4_decode(bare, bare_len, back.data(), len, es);
  } catch (const CodecError&) {
    fuzz::check(looks_like_header, "header-less bitshuffle-LZ4 is rejected");
    return 0;
  }
  if (!looks_like_header)
    fuzz::check(std::memcmp(back.data(), in.payload, len) == 0, "header-less bitshuffle-LZ4 round trip changes the data");
  return 0;
}
