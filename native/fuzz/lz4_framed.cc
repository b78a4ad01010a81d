// Framed LZ4 (stream v2 "lz4", HDF5 framing: u64 BE size, u32 BE block size,
// then per block a u32 BE length and an LZ4 block, stored raw when the length
// equals the block size); with selector bit 7, a frame built from the payload
// (block size from bits 0-1) decoded back.
#include <algorithm>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "lz4_codecs.h"

using namespace beamedge;

namespace {

void put_be(std::vector<uint8_t>& v, uint64_t x, int bytes) {
  for (int s = 8 * (bytes - 1); s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

std::vector<uint8_t> frame(const uint8_t* src, size_t len, size_t block) {
  std::vector<uint8_t> out;
  put_be(out, len, 8);
  put_be(out, block, 4);
  for (size_t done = 0; done < len; done += block) {
    const size_t size = std::min(block, len - done);
    const std::vector<uint8_t> c = lz4_block_encode(src + done, size);
    const bool raw = c.size() >= size;  // a length equal to the block size means "stored raw"
    put_be(out, raw ? size : c.size(), 4);
    if (raw) out.insert(out.end(), src + done, src + done + size);
    else out.insert(out.end(), c.begin(), c.end());
  }
  return out;
}

constexpr size_t kBlocks[4] = {8192, 1, 64, 1000};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Prefixed in;
  if (!fuzz::split_prefix(data, size, in)) return -1;
  {
    fuzz::Output out(in.out_size);
    try {
      lz4_framed_decode(in.payload, in.len, out.data(), in.out_size);
    } catch (const CodecError&) {
    }
  }
  if (!(in.selector & 0x80)) return 0;

  // Our encoder sets up a fresh hash table per block: at most 4 small blocks keep an execution fast.
  const size_t block = kBlocks[in.selector & 3];
  const size_t len = block == 8192 ? in.len : std::min(in.len, 4 * block);
  const std::vector<uint8_t> f = frame(in.payload, len, block);
  fuzz::Exact<uint8_t> back(len);
  try {
    lz4_framed_decode(f.data(), f.size(), back.data(), len);
  } catch (const CodecError&) {
    fuzz::fail("a well-formed LZ4 frame is rejected");
  }
  fuzz::check(std::memcmp(back.data(), in.payload, len) == 0, "framed LZ4 round trip changes the data");
  return 0;
}
