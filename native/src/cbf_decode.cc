#include "cbf_decode.h"

#include <algorithm>
#include <string>
#include <vector>

#include "byte_offset.h"
#include "cbf_locate.h"

namespace beamedge {
namespace {

std::string decode_error(const BoResult& r, size_t available, size_t wanted) {
  if (r.status == BoStatus::out_of_range)
    return "byte-offset data: element " + std::to_string(r.produced) + " (byte " + std::to_string(r.consumed) +
           ") does not fit a signed 32-bit integer";
  return "byte-offset data truncated: " + std::to_string(available) + " bytes hold only " +
         std::to_string(r.produced) + " of " + std::to_string(wanted) + " elements";
}

}  // namespace

void byte_offset_decode_exact(const uint8_t* src, size_t len, int32_t* out, size_t count) {
  BoCursor cur;
  const BoResult r = byte_offset_decode(src, len, out, count, cur);
  if (r.status != BoStatus::ok) throw CbfError(decode_error(r, len, count));
  if (r.consumed != len)
    throw CbfError("X-Binary-Size mismatch: " + std::to_string(count) + " elements use " +
                   std::to_string(r.consumed) + " bytes, the header says " + std::to_string(len));
}

void integrate_cbf(const Integrator& integ, const uint8_t* buf, size_t len, FrameInputs f, double empty,
                   IntegrationResult& out) {
  const CbfBinary b = cbf_locate(buf, len);
  if (static_cast<size_t>(b.n_elements) != integ.npix())
    throw CbfError("frame has " + std::to_string(b.n_elements) + " pixels, the geometry " +
                   std::to_string(integ.npix()));
  constexpr size_t kTile = 16384;
  std::vector<int32_t> tile(kTile);
  const uint8_t* src = buf + b.data_offset;
  f.type = PixelType::i32;
  BoCursor cur;
  Accumulator acc = integ.start();
  for (size_t first = 0; first < integ.npix(); first += kTile) {
    const size_t n = std::min(kTile, integ.npix() - first);
    const BoResult r = byte_offset_decode(src, b.binary_size, tile.data(), n, cur);
    if (r.status != BoStatus::ok) {
      BoResult whole = r;
      whole.produced += first;
      throw CbfError(decode_error(whole, b.binary_size, integ.npix()));
    }
    f.data = tile.data();
    integ.accumulate(acc, f, first, n);
  }
  if (cur.in_pos != b.binary_size)
    throw CbfError("X-Binary-Size mismatch: the elements use " + std::to_string(cur.in_pos) +
                   " bytes, the header says " + std::to_string(b.binary_size));
  integ.finish(acc, empty, out);
}

}  // namespace beamedge
