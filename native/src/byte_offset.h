// CBF byte-offset compression (the PILATUS/EIGER "x-CBF_BYTE_OFFSET" conversion).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace beamedge {

enum class BoStatus {
  ok = 0,
  truncated,     // the input ended before all elements were produced
  out_of_range,  // a decoded value does not fit the output type
};

struct BoResult {
  BoStatus status;
  size_t consumed;  // input bytes read
  size_t produced;  // elements written
};

// Resumable decoder state, so a frame can be decoded tile by tile straight
// into a consumer (the integrator) without materialising the whole frame.
struct BoCursor {
  size_t in_pos = 0;
  int64_t value = 0;
};

// Decodes up to `count` elements into `out`, continuing from `cur`.
// Never reads past src[src_len) and never writes past out[count).
BoResult byte_offset_decode(const uint8_t* src, size_t src_len, int32_t* out, size_t count,
                            BoCursor& cur);

// Encodes with the shortest escape for every difference (what the PILATUS
// writes), so that decode(encode(x)) == x and the sizes match real files.
std::vector<uint8_t> byte_offset_encode(const int32_t* values, size_t count);

const char* byte_offset_kernel_name();

}  // namespace beamedge
