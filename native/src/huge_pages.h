// Large arrays on transparent huge pages (Linux; plain memory elsewhere).
// With 4 KiB pages, first touching a 6M-pixel detector's arrays costs as much
// as the work on them (a 36 MB map: 13 ms of page faults, 3 ms with 2 MiB
// pages), and writes to many streams at once miss the TLB.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace beamedge {

constexpr size_t kHugePage = size_t(1) << 21;

// Asks for huge pages on the 2 MiB-aligned part of [p, p + bytes): advice
// only, fine if refused. Also for memory someone else allocated (a
// SharedArrayBuffer), before its first touch.
inline void advise_huge_pages(void* p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t a = (reinterpret_cast<uintptr_t>(p) + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~uintptr_t(kHugePage - 1);
  if (e > a) madvise(reinterpret_cast<void*>(a), e - a, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

// Allocator: 2 MiB aligned and advised from 2 MiB up, plain below.
template <typename T>
struct HugePageAlloc {
  using value_type = T;
  HugePageAlloc() = default;
  template <typename U>
  HugePageAlloc(const HugePageAlloc<U>&) {}
  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePage) return std::allocator<T>().allocate(n);
    const size_t sz = (bytes + kHugePage - 1) & ~(kHugePage - 1);
    void* p = std::aligned_alloc(kHugePage, sz);
    if (!p) throw std::bad_alloc();
    advise_huge_pages(p, sz);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    if (n * sizeof(T) < kHugePage) std::allocator<T>().deallocate(p, n);
    else std::free(p);
  }
  template <typename U>
  bool operator==(const HugePageAlloc<U>&) const { return true; }
  template <typename U>
  bool operator!=(const HugePageAlloc<U>&) const { return false; }
};

// An uninitialised array of n T (trivial types) on huge pages: scratch that is written before it is read.
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
template <typename T>
std::unique_ptr<T[], FreeDeleter> huge_array(size_t n) {
  const size_t sz = std::max(kHugePage, (n * sizeof(T) + kHugePage - 1) & ~(kHugePage - 1));
  void* p = std::aligned_alloc(kHugePage, sz);
  if (!p) throw std::bad_alloc();
  advise_huge_pages(p, sz);
  return std::unique_ptr<T[], FreeDeleter>(static_cast<T*>(p));
}

}  // namespace beamedge
