// Shared by the libFuzzer targets in this folder: the input layouts, bounded
// output buffers and the failure report. test/fuzz/inputs.ts reads the same
// layouts, so committed regression inputs also run through the addon in `npm test`.
//
// Layouts (payload = what the decoder under test sees):
//   cbf                  a whole CBF file
//   cbf_integrate        [map selector][frame selector][limit, f64 LE][threshold, f64 LE] CBF file
//   map_check            [map selector] then 5-byte edits [offset, u32 LE][byte] (see map_check.cc)
//   byte_offset_*, lz4_block, lz4_framed, bslz4
//                        [selector][output size, u24 little-endian] payload
// The output size is in bytes, or in elements for byte_offset_*; 24 bits cap
// every output at 16 MiB elements, so a declared size never exhausts memory.
// Selector bit 7 of lz4_block, lz4_framed and bslz4 also runs the payload
// through our encoder and back (a fresh 512 KiB hash table per block: too slow
// to do for every input).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#endif
#endif
#ifndef ASAN_POISON_MEMORY_REGION
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

namespace fuzz {

struct Prefixed {
  uint8_t selector = 0;
  size_t out_size = 0;
  const uint8_t* payload = nullptr;
  size_t len = 0;
};

inline bool split_prefix(const uint8_t* data, size_t size, Prefixed& p) {
  if (size < 4) return false;
  p.selector = data[0];
  p.out_size = size_t(data[1]) | size_t(data[2]) << 8 | size_t(data[3]) << 16;
  p.payload = data + 4;
  p.len = size - 4;
  return true;
}

// Exactly n elements on the heap and nothing more, so AddressSanitizer's
// redzone starts right after the last one (new T[0] is a valid, non-null
// pointer with no usable bytes: a zero-size output still has an address).
template <typename T>
struct Exact {
  explicit Exact(size_t n) : n(n), p(new T[n]) {}
  T* data() { return p.get(); }
  const T* data() const { return p.get(); }
  size_t n;
  std::unique_ptr<T[]> p;
};

// The output of the decoder under test, `n` bytes with poisoned memory on both
// sides, carved from one arena: a fresh multi-MiB heap block per execution
// (mmap, shadow poisoning, munmap) costs a hundred times the decoding. The
// output ends at the arena's end, where AddressSanitizer's own redzone starts
// (and a partial last 8-byte granule is poisoned past n); the 64 KiB before it,
// as far back as an LZ4 match offset reaches, is poisoned for the duration.
// One at a time.
class Output {
 public:
  static constexpr size_t kMax = size_t(1) << 24;
  static constexpr size_t kGuard = size_t(1) << 16;

  explicit Output(size_t n) : n_(n) {
    static uint8_t* const arena = new uint8_t[kGuard + kMax];
    static bool busy = false;
    if (busy || n > kMax) std::abort();
    busy_ = &busy;
    busy = true;
    end_ = arena + kGuard + kMax;
    start_ = end_ - ((n + 7) & ~size_t(7));
    ASAN_POISON_MEMORY_REGION(start_ - kGuard, kGuard);
    ASAN_POISON_MEMORY_REGION(start_ + n, static_cast<size_t>(end_ - (start_ + n)));
  }
  ~Output() {
    ASAN_UNPOISON_MEMORY_REGION(start_ - kGuard, kGuard);
    ASAN_UNPOISON_MEMORY_REGION(start_ + n_, static_cast<size_t>(end_ - (start_ + n_)));
    *busy_ = false;
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;
  uint8_t* data() { return start_; }
  size_t size() const { return n_; }

 private:
  size_t n_;
  uint8_t* start_;
  uint8_t* end_;
  bool* busy_;
};

// A broken property that is not a memory error: print why and abort, so
// libFuzzer records the input as a crash.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "FUZZ PROPERTY VIOLATED: %s\n", what);
  std::abort();
}

inline void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

}  // namespace fuzz
