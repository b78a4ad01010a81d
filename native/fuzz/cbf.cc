// cbf_locate and whole-section byte-offset decoding, as the addon's cbfDecode
// runs them: a whole CBF file in, pixels or a CbfError out.
#include <cstring>

#include "byte_offset.h"
#include "cbf_decode.h"
#include "cbf_locate.h"
#include "fuzz_input.h"

using namespace beamedge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CbfBinary b;
  try {
    b = cbf_locate(data, size);
  } catch (const CbfError&) {
    return 0;
  }
  // What the addon relies on before it allocates and decodes.
  fuzz::check(b.section_offset < b.data_offset && b.data_offset <= size, "data offset outside the file");
  fuzz::check(b.binary_size <= size - b.data_offset, "X-Binary-Size runs past the file");
  fuzz::check(b.n_elements >= 0 && b.n_elements <= (int64_t(1) << 31), "element count out of range");
  fuzz::check(static_cast<uint64_t>(b.n_elements) <= b.binary_size, "more elements than bytes");
  if (b.fastest > 0)
    fuzz::check(b.fastest * (b.second > 0 ? b.second : 1) * (b.third > 0 ? b.third : 1) == b.n_elements,
                "dimensions disagree with the element count");
  fuzz::check(!b.element_type.empty() && !b.conversions.empty(), "accepted without element type or conversions");

  const size_t n = static_cast<size_t>(b.n_elements);
  fuzz::Exact<int32_t> out(n);
  try {
    byte_offset_decode_exact(data + b.data_offset, b.binary_size, out.data(), n);
  } catch (const CbfError&) {
    return 0;
  }
  // A successful decode consumed exactly the section: re-encoding must not be
  // longer (the encoder writes the shortest escapes).
  fuzz::check(byte_offset_encode(out.data(), n).size() <= b.binary_size, "re-encoding is longer than the input");
  return 0;
}
