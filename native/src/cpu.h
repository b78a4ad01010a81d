// Run-time CPU feature dispatch: the shipped build targets baseline x86-64,
// kernels compiled for AVX2 are picked only where the CPU has it.
#pragma once
#include <cstdlib>
#include <string_view>

namespace beamedge {

inline bool cpu_has_avx2() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = [] {
    __builtin_cpu_init();
    // BEAMEDGE_KERNELS=scalar forces the portable kernels (tests compare both paths).
    const char* force = std::getenv("BEAMEDGE_KERNELS");
    if (force && std::string_view(force) == "scalar") return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
#else
  return false;
#endif
}

// AVX-512F as well (BEAMEDGE_KERNELS=avx2 stops at AVX2, so tests on such a
// CPU can compare all three paths).
inline bool cpu_has_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = [] {
    if (!cpu_has_avx2()) return false;
    const char* force = std::getenv("BEAMEDGE_KERNELS");
    if (force && std::string_view(force) == "avx2") return false;
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return has;
#else
  return false;
#endif
}

}  // namespace beamedge
