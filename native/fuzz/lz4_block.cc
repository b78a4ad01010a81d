// One bare LZ4 block (stream v1 "lz4<"; also every block inside the framed
// and bitshuffle formats) into an output of the size the prefix declares; with
// selector bit 7, the payload as plain data through our block encoder and back.
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "lz4_codecs.h"

using namespace beamedge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Prefixed in;
  if (!fuzz::split_prefix(data, size, in)) return -1;
  {
    fuzz::Output out(in.out_size);
    try {
      lz4_block_decode(in.payload, in.len, out.data(), in.out_size);
    } catch (const CodecError&) {
    }
  }
  if (!(in.selector & 0x80)) return 0;

  const std::vector<uint8_t> enc = lz4_block_encode(in.payload, in.len);
  fuzz::Exact<uint8_t> back(in.len);
  try {
    lz4_block_decode(enc.data(), enc.size(), back.data(), in.len);
  } catch (const CodecError&) {
    fuzz::fail("our LZ4 block encoder wrote a block the decoder rejects");
  }
  fuzz::check(std::memcmp(back.data(), in.payload, in.len) == 0, "LZ4 block round trip changes the data");
  return 0;
}
