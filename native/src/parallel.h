// Runs a loop body on bands of an index range, on a few short-lived threads:
// for the map builds, which run rarely and on threads of their own.
#pragma once
#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace beamedge {

// Runs f(k0, k1) on bands of [0, n), on up to `threads` threads (the calling
// one among them), no band smaller than `grain` items but the last.
template <typename F>
void parallel_range(size_t n, int threads, size_t grain, F&& f) {
  const size_t t = std::max<size_t>(1, std::min<size_t>(threads < 1 ? 1 : size_t(threads), n / grain + 1));
  if (t == 1) {
    f(size_t(0), n);
    return;
  }
  std::vector<std::thread> pool;
  const size_t band = (n + t - 1) / t;
  for (size_t i = 1; i < t; ++i) {
    const size_t k0 = std::min(n, i * band), k1 = std::min(n, k0 + band);
    pool.emplace_back([&f, k0, k1] { f(k0, k1); });
  }
  f(size_t(0), std::min(n, band));
  for (auto& th : pool) th.join();
}

}  // namespace beamedge
