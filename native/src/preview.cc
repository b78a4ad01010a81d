// A memory-bound pass, so plain scalar code: the test "brighter than the
// block so far" comes first and settles almost every pixel in one comparison.
#include "preview.h"

#include <algorithm>
#include <limits>

namespace beamedge {
namespace {

template <typename T>
void block_max(const T* px, size_t rows, size_t cols, size_t binning, const uint8_t* mask, double min_valid,
               double max_valid, float* out) {
  const size_t out_cols = (cols + binning - 1) / binning;
  const size_t out_rows = (rows + binning - 1) / binning;
  std::fill(out, out + out_rows * out_cols, -std::numeric_limits<float>::infinity());
  for (size_t r = 0; r < rows; r++) {
    const T* row = px + r * cols;
    const uint8_t* mrow = mask ? mask + r * cols : nullptr;
    float* orow = out + (r / binning) * out_cols;
    for (size_t c0 = 0, o = 0; c0 < cols; c0 += binning, o++) {
      const size_t end = std::min(c0 + binning, cols);
      double m = orow[o];
      for (size_t c = c0; c < end; c++) {
        const double v = double(row[c]);
        if (v > m && v >= min_valid && v <= max_valid && !(mrow && mrow[c])) m = v;
      }
      orow[o] = float(m);
    }
  }
}

}  // namespace

void preview_block_max(const void* pixels, PreviewPixel type, size_t rows, size_t cols, size_t binning,
                       const uint8_t* mask, double min_valid, double max_valid, float* out) {
  switch (type) {
    case PreviewPixel::i32: return block_max(static_cast<const int32_t*>(pixels), rows, cols, binning, mask, min_valid, max_valid, out);
    case PreviewPixel::u32: return block_max(static_cast<const uint32_t*>(pixels), rows, cols, binning, mask, min_valid, max_valid, out);
    case PreviewPixel::u16: return block_max(static_cast<const uint16_t*>(pixels), rows, cols, binning, mask, min_valid, max_valid, out);
    case PreviewPixel::u8: return block_max(static_cast<const uint8_t*>(pixels), rows, cols, binning, mask, min_valid, max_valid, out);
    case PreviewPixel::f32: return block_max(static_cast<const float*>(pixels), rows, cols, binning, mask, min_valid, max_valid, out);
  }
}

}  // namespace beamedge
