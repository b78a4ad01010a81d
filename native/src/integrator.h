// Azimuthal integration with a pixel-to-bin map built once per geometry and
// mask (pyFAI's histogram semantics, no splitting or bounding-box splitting).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace beamedge {

struct AxisSpec {
  int bins = 1;
  double lo = std::numeric_limits<double>::quiet_NaN();  // NaN: take it from the data
  double hi = std::numeric_limits<double>::quiet_NaN();
  bool allow_negative = false;  // radial quantities are clamped at 0, like pyFAI
};

// Resolved bin grid along one axis.
struct Axis {
  int bins = 1;
  double min = 0;     // left edge of bin 0
  double max_in = 0;  // largest position accepted
  double max = 0;     // right edge of the last bin
  double delta = 1;
  // numpy.linspace(min + delta/2, max - delta/2, bins), as pyFAI reports bin positions.
  double centre(int i) const {
    const double first = min + 0.5 * delta, last = max - 0.5 * delta;
    if (bins == 1) return first;
    if (i == bins - 1) return last;
    return i * ((last - first) / (bins - 1)) + first;
  }
};

// The bin grid build_map uses for data spanning [data_lo, data_hi] (radial quantities clamped at 0 unless allowed).
Axis resolve_axis(const AxisSpec& spec, double data_lo, double data_hi);
// pyFAI's histogram bin of x, or -1 when outside.
int histogram_bin(const Axis& a, double x);
// Fractional bin coordinates of [lo, hi] and the clamped bin span, with
// pyFAI's rules: C truncation, not floor, and a pixel is dropped only when it
// lies wholly outside; a part beyond an edge is lumped into the edge bin.
struct Span {
  double flo, fhi;
  int blo, bhi;
};
bool span_of(const Axis& a, double lo, double hi, Span& s);
// Float32 pi: pyFAI clips the azimuthal range of split pixels to it.
constexpr double kPi32 = 3.1415927410125732;

struct MapInputs {
  size_t npix = 0;
  const double* pos0 = nullptr;   // radial position of each pixel centre
  const double* dpos0 = nullptr;  // half-width for bbox splitting, or null for none
  const double* pos1 = nullptr;   // azimuth (rad) for 2D, or null for 1D
  const double* dpos1 = nullptr;
  const uint8_t* mask = nullptr;  // non-zero: excluded
  const float* norm = nullptr;    // per-pixel normalisation (solid angle x polarisation x flat), null: 1
  AxisSpec axis0, axis1;
};

enum class PixelType { i32, u32, u16, u8, f32 };

struct FrameInputs {
  const void* data = nullptr;
  PixelType type = PixelType::i32;
  const float* dark = nullptr;
  bool has_dummy = false;
  double dummy = 0, delta_dummy = 0;
  // Lit-pixel veto: count mapped, valid pixels whose (dark-subtracted) value
  // exceeds this threshold, in the same pass. NaN: do not count.
  double lit_threshold = std::numeric_limits<double>::quiet_NaN();
  // Pixels above this are excluded like markers: saturated or flagged (EIGER: 2^bits - 1).
  double max_valid = std::numeric_limits<double>::infinity();
  // Float frames that are calibrated (JUNGFRAU photons or keV) have real negative
  // values around zero: then only NaN marks an excluded pixel. Integer frames
  // keep the rule that negative values are the detector's markers.
  bool negative_valid = false;
};

// Running sums for one frame; a frame may be fed in tiles of consecutive pixels.
// Each array has one slot more than there are bins: the discard bin of unmapped pixels.
struct Accumulator {
  std::vector<double> sums;                  // [bin][signal, variance] (floating-point paths)
  std::vector<uint64_t> packed;              // integer fast path, see run_packed
  std::vector<uint64_t> counts;              // [bin][signal, zero pixels] flushed from `packed`
  size_t packed_pixels = 0;                  // pixels added to `packed` since the last flush
  std::vector<double> lost_norm, lost_count; // pixels excluded by their value in this frame
  uint64_t lit = 0;                          // pixels above FrameInputs::lit_threshold
  uint64_t excluded = 0;                     // mapped pixels excluded by their value
};

struct IntegrationResult {
  std::vector<double> signal, variance, normalization, count, intensity, sigma;
  uint64_t lit = 0;
  uint64_t excluded = 0;
};

// A built map is one contiguous blob (header + 8-byte aligned sections), so it
// can live in a SharedArrayBuffer read by every worker, or in a file of the
// on-disk cache, and an Integrator can read it in place without a copy.
struct MapHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t flags;  // kMapDirect | kMapTwoD | kMapIndex16 | kMapNorm
  uint64_t npix;
  int32_t bins0, bins1;
  double axis0[4];  // min, max_in, max, delta
  double axis1[4];
  uint64_t mapped;
  uint64_t entries;     // split maps: contributions
  uint64_t total_bytes; // whole blob, header included
  uint64_t checksum;    // of the bytes after the header
  // Section offsets from the start of the blob (0: absent).
  uint64_t static_norm, static_count, norm, bins, ptr, ebin, eweight;
  // Compact 1D bbox maps (kMapCompact): per pixel its first bin (in `bins`)
  // and its number of bins (u8, `counts`); weights only where a pixel spans
  // bins (first, interior, last: the interior ones are all equal), with the
  // weight index at every kCheckpoint-th pixel (`checkpoints`), so a tile can
  // start anywhere.
  uint64_t counts, checkpoints, weights;
  // kMapCompact: number of float weights; kMapNarrow: number of exception
  // records (section `exceptions`, see bbox_map.h).
  uint64_t nweights, exceptions;
  // kMapNormPacked: the `norm` section holds int16 residuals, with these
  // (block escape index, escapes and their number; see PackedNorm).
  uint64_t norm_escape_index, norm_escapes, norm_nescapes;
  uint64_t reserved;
};
static_assert(sizeof(MapHeader) == 256, "map header layout is part of the cache format");
constexpr uint64_t kMapMagic = 0x3150414d45474542ull;  // "BEGEMAP1"
// 2: narrow bbox maps and the packed normalisation (a version 1 file in the
// cache is refused by check_map and rebuilt).
constexpr uint32_t kMapVersion = 2;
constexpr uint32_t kMapDirect = 1, kMapTwoD = 2, kMapIndex16 = 4, kMapNorm = 8, kMapCompact = 16, kMapNarrow = 32,
                   kMapNormPacked = 64;
constexpr size_t kCheckpoint = 4096;

// Builds the blob of a map (throws std::invalid_argument on bad inputs).
std::vector<uint8_t> build_map(const MapInputs& in);

// A direct (no splitting) map laid out before its contents are known, so a
// builder can write its sections in place (the norm and bins sections, and
// the static per-bin sums) into zero-filled memory of `bytes`, then seal it.
struct DirectLayout {
  MapHeader header{};  // flags and section offsets; seal_direct_map adds the rest
  size_t bytes = 0;
  size_t bins = 0;     // bins0 x bins1: the index of the discard bin
};
DirectLayout layout_direct_map(size_t npix, int bins0, int bins1, bool two_d, bool has_norm);
// The static per-bin sums of a direct map whose bins and normalisation are
// written, added in pixel order as pyFAI adds them; returns the mapped pixels.
uint64_t sum_direct_map(uint8_t* blob, const DirectLayout& lay);
// Writes the header (axes, mapped pixels, checksum of the body) into blob.
void seal_direct_map(uint8_t* blob, const DirectLayout& lay, const Axis& axis0, const Axis& axis1, uint64_t mapped);
// Checksum of a blob's body (what follows the header).
uint64_t map_checksum(const uint8_t* blob, size_t len);
// Empty string when `blob` is a well-formed map (checksum included when
// `checksum`), else what is wrong with it. Bin indices are checked too, so a
// damaged file can never make the per-frame loop write out of bounds.
std::string check_map(const uint8_t* blob, size_t len, bool checksum);

}  // namespace beamedge
#include "bbox_map.h"
namespace beamedge {

class Integrator {
 public:
  explicit Integrator(const MapInputs& in);
  // Reads a blob in place (checked with check_map); the caller keeps it alive.
  Integrator(const uint8_t* blob, size_t len);

  const Axis& axis0() const { return axis0_; }
  const Axis& axis1() const { return axis1_; }
  size_t npix() const { return npix_; }
  size_t bins() const { return static_cast<size_t>(axis0_.bins) * axis1_.bins; }
  size_t entries() const { return direct_ ? mapped_ : entries_; }
  // Heap bytes held by the map (0 when it reads a blob owned elsewhere).
  size_t memory_bytes() const { return owned_.capacity(); }
  size_t map_bytes() const { return blob_len_; }
  const uint8_t* map_blob() const { return blob_; }

  Accumulator start() const;
  // Adds pixels [first, first + n) whose values are data[0 .. n).
  void accumulate(Accumulator& acc, const FrameInputs& frame, size_t first, size_t n) const;
  void finish(Accumulator& acc, double empty, IntegrationResult& out) const;

 private:
  void view(const uint8_t* blob, size_t len);
  // Copies of each bin's [signal, variance] in the floating-point sums.
  size_t lanes() const;
  template <typename T, typename Index, bool kLit, bool kMax>
  void run_packed(Accumulator& acc, const Index* map, const T* data, int64_t lit_above, double max_valid, size_t first,
                  size_t n) const;
  void flush_packed(Accumulator& acc) const;
  template <typename T, typename Index, bool kDark, bool kDummy, bool kLit>
  void run_direct(Accumulator& acc, const Index* map, const T* data, const FrameInputs& f, size_t first, size_t n) const;
  template <typename Index, bool kNegValid, bool kLit>
  void run_float(Accumulator& acc, const Index* map, const float* data, const FrameInputs& f, size_t first, size_t n) const;
  template <typename T, bool kDark, bool kDummy, bool kLit>
  void run_split(Accumulator& acc, const T* data, const FrameInputs& f, size_t first, size_t n) const;
  template <typename T, typename Index, bool kDark, bool kDummy, bool kLit>
  void run_compact(Accumulator& acc, const Index* bin, const T* data, const FrameInputs& f, size_t first, size_t n) const;
  template <typename T, bool kDark, bool kDummy, bool kLit>
  void run(Accumulator& acc, const T* data, const FrameInputs& f, size_t first, size_t n) const;
  template <typename T>
  void dispatch(Accumulator& acc, const T* data, const FrameInputs& f, size_t first, size_t n) const;

  std::vector<uint8_t> owned_;      // the blob, when this integrator built it
  const uint8_t* blob_ = nullptr;
  size_t blob_len_ = 0;
  size_t npix_ = 0;
  Axis axis0_, axis1_;
  bool direct_ = true;              // every mapped pixel falls in exactly one bin, weight 1
  size_t mapped_ = 0, entries_ = 0;
  // Direct map: bin per pixel (bins() when unmapped). 16-bit indices when the
  // bins allow it: the map is the largest thing read per frame, and half the
  // size keeps it (with a compressed frame) inside the last-level cache.
  const uint16_t* bin16_ = nullptr;
  const uint32_t* bin32_ = nullptr;
  const uint32_t* ptr_ = nullptr;   // split map: pixel i owns entries [ptr_[i], ptr_[i+1])
  const uint32_t* ebin_ = nullptr;
  const float* eweight_ = nullptr;
  const float* norm_ = nullptr;     // per-pixel normalisation (null: all ones)
  const uint8_t* counts_ = nullptr; // compact bbox map (see MapHeader)
  const uint32_t* checkpoints_ = nullptr;
  const float* weights_ = nullptr;
  bool narrow_ = false;             // narrow bbox map (bbox_map.h)
  NarrowMap narrow_map_;
  const double* static_norm_ = nullptr;
  const double* static_count_ = nullptr;
};

}  // namespace beamedge
