// Block maxima for the live page's preview of a frame (daemon/workers/preview.ts):
// one pass over the pixels, made only when a page asks for a picture.
#pragma once
#include <cstddef>
#include <cstdint>

namespace beamedge {

enum class PreviewPixel { i32, u32, u16, u8, f32 };

// out[(r / binning) * out_cols + c / binning] = the largest pixel of the block
// with min_valid <= v <= max_valid and mask[i] == 0 (mask may be null), or
// -infinity when the block has none. NaN pixels are never taken.
// out_cols = ceil(cols / binning); out holds ceil(rows / binning) * out_cols.
void preview_block_max(const void* pixels, PreviewPixel type, size_t rows, size_t cols, size_t binning,
                       const uint8_t* mask, double min_valid, double max_valid, float* out);

}  // namespace beamedge
