// Angular cross-correlations: FFT, batched Hermitian accumulation (see fxs.h).
#include "fxs.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace beamedge {

// --- FFT ---

// std::complex's operator* checks for infinities and NaN through a library
// call (__muldc3) unless built with -ffast-math; the FFT's operands are finite.
static inline cplx cmul(const cplx& a, const cplx& b) {
  return cplx(a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real());
}

Fft::Fft(int n) : n_(n) {
  if (n < 1) throw std::invalid_argument("FFT length must be at least 1");
  tw_.resize(n);
  for (int t = 0; t < n; t++) {
    const double a = -2.0 * M_PI * t / n;
    tw_[t] = cplx(std::cos(a), std::sin(a));
  }
  int rest = n, p = 4, maxp = 1;
  while (rest > 1) {
    while (rest % p) {
      p = p == 4 ? 2 : p == 2 ? 3 : p + 2;
      if (static_cast<long long>(p) * p > rest) p = rest;
    }
    rest /= p;
    factors_.push_back(p);
    factors_.push_back(rest);
    maxp = std::max(maxp, p);
  }
  if (factors_.empty()) {  // n == 1
    factors_.push_back(1);
    factors_.push_back(1);
  }
  a_.resize(n);
  b_.resize(n);
  scratch_.resize(maxp);
}

void Fft::butterfly(cplx* out, size_t fstride, int m, int p) const {
  if (p == 2) {
    for (int u = 0; u < m; u++) {
      const cplx t = cmul(out[u + m], tw_[u * fstride]);
      out[u + m] = out[u] - t;
      out[u] += t;
    }
  } else if (p == 4) {
    for (int u = 0; u < m; u++) {
      const cplx a0 = out[u];
      const cplx a1 = cmul(out[u + m], tw_[u * fstride]);
      const cplx a2 = cmul(out[u + 2 * m], tw_[2 * u * fstride]);
      const cplx a3 = cmul(out[u + 3 * m], tw_[3 * u * fstride]);
      const cplx s02 = a0 + a2, d02 = a0 - a2, s13 = a1 + a3, d13 = a1 - a3;
      const cplx jd13(d13.imag(), -d13.real());  // -i * d13
      out[u] = s02 + s13;
      out[u + m] = d02 + jd13;
      out[u + 2 * m] = s02 - s13;
      out[u + 3 * m] = d02 - jd13;
    }
  } else if (p > 1) {
    // Direct DFT of the p interleaved sub-results, twiddled.
    const size_t n = static_cast<size_t>(n_);
    cplx* x = scratch_.data();
    for (int u = 0; u < m; u++) {
      for (int q = 0; q < p; q++) x[q] = out[u + q * m];
      for (int k = 0; k < p; k++) {
        const size_t f = static_cast<size_t>(u + k * m) * fstride;
        cplx s = x[0];
        size_t t = 0;
        for (int q = 1; q < p; q++) {
          t += f;
          if (t >= n) t %= n;
          s += cmul(x[q], tw_[t]);
        }
        out[u + k * m] = s;
      }
    }
  }
}

void Fft::work(cplx* out, const cplx* in, size_t fstride, const int* factors) const {
  const int p = factors[0], m = factors[1];
  if (m == 1) {
    for (int q = 0; q < p; q++) out[q] = in[q * fstride];
  } else {
    for (int q = 0; q < p; q++) work(out + q * m, in + q * fstride, fstride * p, factors + 2);
  }
  butterfly(out, fstride, m, p);
}

void Fft::forward(const cplx* in, cplx* out) const { work(out, in, 1, factors_.data()); }

void Fft::forward_real_pair(const double* a, const double* b, cplx* fa, cplx* fb) const {
  for (int k = 0; k < n_; k++) a_[k] = cplx(a[k], b[k]);
  forward(a_.data(), b_.data());
  const int h = n_ / 2 + 1;
  const cplx* z = b_.data();
  for (int k = 0; k < h; k++) {
    const cplx zk = z[k], zc = std::conj(z[(n_ - k) % n_]);
    fa[k] = 0.5 * (zk + zc);
    const cplx d = zk - zc;
    fb[k] = cplx(0.5 * d.imag(), -0.5 * d.real());  // d / 2i
  }
}

void Fft::inverse_real_pair(const cplx* fa, const cplx* fb, double* a, double* b) const {
  // y = conj(A + iB) over the full Hermitian spectra; then a + ib = conj(FFT(y)) / n.
  const int h = n_ / 2 + 1;
  for (int k = 0; k < n_; k++) {
    cplx x, y;
    if (k < h) {
      x = fa[k];
      y = fb[k];
      if (k == 0 || 2 * k == n_) {
        x = cplx(x.real(), 0);
        y = cplx(y.real(), 0);
      }
    } else {
      x = std::conj(fa[n_ - k]);
      y = std::conj(fb[n_ - k]);
    }
    a_[k] = std::conj(x + cplx(-y.imag(), y.real()));
  }
  forward(a_.data(), b_.data());
  const double s = 1.0 / n_;
  for (int k = 0; k < n_; k++) {
    a[k] = b_[k].real() * s;
    b[k] = -b_[k].imag() * s;
  }
}

void fxs_rfft(const double* rows, size_t nrows, int n, double* re, double* im) {
  Fft fft(n);
  const int h = n / 2 + 1;
  std::vector<double> zero(n, 0.0);
  std::vector<cplx> fa(h), fb(h);
  for (size_t r = 0; r < nrows; r += 2) {
    const double* b = r + 1 < nrows ? rows + (r + 1) * n : zero.data();
    fft.forward_real_pair(rows + r * n, b, fa.data(), fb.data());
    for (int k = 0; k < h; k++) {
      re[r * h + k] = fa[k].real();
      im[r * h + k] = fa[k].imag();
      if (r + 1 < nrows) {
        re[(r + 1) * h + k] = fb[k].real();
        im[(r + 1) * h + k] = fb[k].imag();
      }
    }
  }
}

void fxs_irfft(const double* re, const double* im, size_t nrows, int n, double* out) {
  Fft fft(n);
  const int h = n / 2 + 1;
  std::vector<cplx> fa(h), fb(h, cplx(0, 0));
  std::vector<double> dummy(n);
  for (size_t r = 0; r < nrows; r += 2) {
    for (int k = 0; k < h; k++) {
      fa[k] = cplx(re[r * h + k], im[r * h + k]);
      fb[k] = r + 1 < nrows ? cplx(re[(r + 1) * h + k], im[(r + 1) * h + k]) : cplx(0, 0);
    }
    fft.inverse_real_pair(fa.data(), fb.data(), out + r * n, r + 1 < nrows ? out + (r + 1) * n : dummy.data());
  }
}

void fxs_mask_spectra(const uint8_t* masks, const double* counts, int nmask, int nq, int nphi, const int32_t* pairs,
                      size_t npairs, double* re, double* im) {
  const int h = nphi / 2 + 1;
  const size_t rows = static_cast<size_t>(nq);
  std::vector<double> m(rows * nphi), wr(rows * h), wi(rows * h);
  std::fill(re, re + npairs * h, 0.0);
  std::fill(im, im + npairs * h, 0.0);
  for (int s = 0; s < nmask; s++) {
    const uint8_t* mk = masks + static_cast<size_t>(s) * rows * nphi;
    for (size_t t = 0; t < rows * nphi; t++) m[t] = mk[t] ? 1.0 : 0.0;
    fxs_rfft(m.data(), rows, nphi, wr.data(), wi.data());
    const double c = counts[s];
    for (size_t p = 0; p < npairs; p++) {
      const size_t i = pairs[2 * p], j = pairs[2 * p + 1];
      for (int k = 0; k < h; k++) {
        const double ar = wr[i * h + k], ai = wi[i * h + k], br = wr[j * h + k], bi = wi[j * h + k];
        re[p * h + k] += c * (ar * br + ai * bi);
        im[p * h + k] += c * (ar * bi - ai * br);
      }
    }
  }
}

// --- batched Hermitian accumulation ---

namespace {

// One harmonic: S[i][j] += sum_b conj(X[b][i]) X[b][j] for i <= j (and the few
// j < i of the 4-aligned row start, which are never read). X is [used][qpad].
using ApplyFn = void (*)(const double*, const double*, int, int, const size_t*, double*, double*);

void apply_scalar(const double* xr, const double* xi, int used, int qpad, const size_t* row_off, double* sre,
                  double* sim) {
  for (int i = 0; i < qpad; i++) {
    const int j0 = i & ~3;
    double* ro = sre + row_off[i] - j0;
    double* io = sim + row_off[i] - j0;
    for (int j = j0; j < qpad; j += 4) {
      double r[4] = {0, 0, 0, 0}, m[4] = {0, 0, 0, 0};
      for (int b = 0; b < used; b++) {
        const double* pr = xr + static_cast<size_t>(b) * qpad;
        const double* pi = xi + static_cast<size_t>(b) * qpad;
        const double ar = pr[i], ai = pi[i];
        for (int l = 0; l < 4; l++) {
          r[l] += ar * pr[j + l] + ai * pi[j + l];
          m[l] += ar * pi[j + l] - ai * pr[j + l];
        }
      }
      for (int l = 0; l < 4; l++) {
        ro[j + l] += r[l];
        io[j + l] += m[l];
      }
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// Two rows (i, i+1 share the 4-aligned start) by 8 or 4 columns in registers over the batch.
template <int W>
__attribute__((target("avx2,fma"))) inline void tile_avx2(const double* xr, const double* xi, int used, int qpad,
                                                          int i, int j, double* r0, double* m0, double* r1,
                                                          double* m1) {
  __m256d sr0[W], si0[W], sr1[W], si1[W];
  for (int w = 0; w < W; w++) sr0[w] = si0[w] = sr1[w] = si1[w] = _mm256_setzero_pd();
  for (int b = 0; b < used; b++) {
    const double* pr = xr + static_cast<size_t>(b) * qpad;
    const double* pi = xi + static_cast<size_t>(b) * qpad;
    const __m256d ar0 = _mm256_broadcast_sd(pr + i), ai0 = _mm256_broadcast_sd(pi + i);
    const __m256d ar1 = _mm256_broadcast_sd(pr + i + 1), ai1 = _mm256_broadcast_sd(pi + i + 1);
    for (int w = 0; w < W; w++) {
      const __m256d br = _mm256_loadu_pd(pr + j + 4 * w), bi = _mm256_loadu_pd(pi + j + 4 * w);
      sr0[w] = _mm256_fmadd_pd(ar0, br, _mm256_fmadd_pd(ai0, bi, sr0[w]));
      si0[w] = _mm256_fmadd_pd(ar0, bi, _mm256_fnmadd_pd(ai0, br, si0[w]));
      sr1[w] = _mm256_fmadd_pd(ar1, br, _mm256_fmadd_pd(ai1, bi, sr1[w]));
      si1[w] = _mm256_fmadd_pd(ar1, bi, _mm256_fnmadd_pd(ai1, br, si1[w]));
    }
  }
  for (int w = 0; w < W; w++) {
    _mm256_storeu_pd(r0 + 4 * w, _mm256_add_pd(_mm256_loadu_pd(r0 + 4 * w), sr0[w]));
    _mm256_storeu_pd(m0 + 4 * w, _mm256_add_pd(_mm256_loadu_pd(m0 + 4 * w), si0[w]));
    _mm256_storeu_pd(r1 + 4 * w, _mm256_add_pd(_mm256_loadu_pd(r1 + 4 * w), sr1[w]));
    _mm256_storeu_pd(m1 + 4 * w, _mm256_add_pd(_mm256_loadu_pd(m1 + 4 * w), si1[w]));
  }
}

__attribute__((target("avx2,fma"))) void apply_avx2(const double* xr, const double* xi, int used, int qpad,
                                                    const size_t* row_off, double* sre, double* sim) {
  for (int i = 0; i < qpad; i += 2) {
    const int j0 = i & ~3;
    double* r0 = sre + row_off[i] - j0;
    double* m0 = sim + row_off[i] - j0;
    double* r1 = sre + row_off[i + 1] - j0;
    double* m1 = sim + row_off[i + 1] - j0;
    int j = j0;
    for (; j + 8 <= qpad; j += 8) tile_avx2<2>(xr, xi, used, qpad, i, j, r0 + j, m0 + j, r1 + j, m1 + j);
    if (j < qpad) tile_avx2<1>(xr, xi, used, qpad, i, j, r0 + j, m0 + j, r1 + j, m1 + j);
  }
}
#endif

ApplyFn pick_apply() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx2()) return apply_avx2;
#endif
  return apply_scalar;
}

}  // namespace

const char* Correlator::kernel_name() { return pick_apply() == apply_scalar ? "scalar" : "avx2"; }

Correlator::Correlator(int nq, int nphi, int batch)
    : nq_(nq), nphi_(nphi), h_(nphi / 2 + 1), qpad_((nq + 3) & ~3), batch_(batch), fft_(nphi) {
  if (nq < 1 || nphi < 1 || batch < 1) throw std::invalid_argument("correlator needs nq, nphi and batch >= 1");
  row_off_.resize(qpad_);
  size_t off = 0;
  for (int i = 0; i < qpad_; i++) {
    row_off_[i] = off;
    off += qpad_ - (i & ~3);
  }
  tri_ = off;
  const size_t s = tri_ * h_, x = static_cast<size_t>(h_) * batch_ * qpad_;
  sre_.assign(s, 0.0);
  sim_.assign(s, 0.0);
  xr_.assign(x, 0.0);
  xi_.assign(x, 0.0);
  rows_.assign(static_cast<size_t>(qpad_) * nphi_, 0.0);
  mask_.assign(static_cast<size_t>(nq_) * nphi_, 0);
  fa_.resize(h_);
  fb_.resize(h_);
}

size_t Correlator::memory_bytes() const {
  size_t b = (sre_.size() + sim_.size() + xr_.size() + xi_.size() + msre_.size() + msim_.size() + wr_.size() +
              wi_.size() + rows_.size() + mrows_.size()) *
             sizeof(double);
  b += mask_.size();
  for (const auto& m : masks_) b += m.mask.size();
  return b;
}

void Correlator::spectra_into(const double* rows, std::vector<double>& xr, std::vector<double>& xi, int slot) {
  const size_t stride = static_cast<size_t>(batch_) * qpad_;
  double* r = xr.data() + static_cast<size_t>(slot) * qpad_;
  double* m = xi.data() + static_cast<size_t>(slot) * qpad_;
  // rows has qpad >= nq + 1 rows when nq is odd: the pair's second row is then zero padding.
  for (int i = 0; i < nq_; i += 2) {
    fft_.forward_real_pair(rows + static_cast<size_t>(i) * nphi_, rows + static_cast<size_t>(i + 1) * nphi_,
                           fa_.data(), fb_.data());
    for (int n = 0; n < h_; n++) {
      const size_t o = n * stride + i;
      r[o] = fa_[n].real();
      m[o] = fa_[n].imag();
      r[o + 1] = fb_[n].real();
      m[o + 1] = fb_[n].imag();
    }
  }
}

void Correlator::apply(const std::vector<double>& xr, const std::vector<double>& xi, int used,
                       std::vector<double>& sre, std::vector<double>& sim) {
  static const ApplyFn fn = pick_apply();
  const size_t stride = static_cast<size_t>(batch_) * qpad_;
  for (int n = 0; n < h_; n++)
    fn(xr.data() + n * stride, xi.data() + n * stride, used, qpad_, row_off_.data(), sre.data() + n * tri_,
       sim.data() + n * tri_);
}

// The polar image is taken as float32, as pyFAI returns it and as beamedge
// publishes it: C2 is then numpy's on the very same image (a mean-subtracted
// product amplifies the last bits of a double image by up to 1e-5).
static inline double polar(double v) { return static_cast<double>(static_cast<float>(v)); }

void Correlator::add(const double* intensity, const double* count) {
  for (int i = 0; i < nq_; i++) {
    double sum = 0;
    int valid = 0;
    for (int k = 0; k < nphi_; k++) {
      const size_t t = static_cast<size_t>(k) * nq_ + i;
      if (count[t] > 0) {
        sum += polar(intensity[t]);
        valid++;
      }
    }
    const double mean = valid ? sum / valid : 0.0;
    double* row = rows_.data() + static_cast<size_t>(i) * nphi_;
    uint8_t* mrow = mask_.data() + static_cast<size_t>(i) * nphi_;
    for (int k = 0; k < nphi_; k++) {
      const size_t t = static_cast<size_t>(k) * nq_ + i;
      const bool v = count[t] > 0;
      mrow[k] = v;
      row[k] = v ? polar(intensity[t]) - mean : 0.0;
    }
  }
  spectra_into(rows_.data(), xr_, xi_, used_);
  used_++;

  const size_t bytes = mask_.size();
  int found = -1;
  if (last_mask_ >= 0 && std::memcmp(masks_[last_mask_].mask.data(), mask_.data(), bytes) == 0) found = last_mask_;
  for (int s = 0; found < 0 && s < static_cast<int>(masks_.size()); s++)
    if (std::memcmp(masks_[s].mask.data(), mask_.data(), bytes) == 0) found = s;
  if (found < 0 && static_cast<int>(masks_.size()) < MAX_MASKS) {
    masks_.push_back({mask_, 0.0});
    found = static_cast<int>(masks_.size()) - 1;
  }
  if (found >= 0) {
    masks_[found].count += 1;
    last_mask_ = found;
  } else {
    if (msre_.empty()) {
      msre_.assign(sre_.size(), 0.0);
      msim_.assign(sim_.size(), 0.0);
      wr_.assign(xr_.size(), 0.0);
      wi_.assign(xi_.size(), 0.0);
      mrows_.assign(rows_.size(), 0.0);
    }
    for (size_t t = 0; t < bytes; t++) mrows_[t] = mask_[t];
    spectra_into(mrows_.data(), wr_, wi_, mused_);
    if (++mused_ == batch_) {
      apply(wr_, wi_, mused_, msre_, msim_);
      mused_ = 0;
    }
  }
  frames_++;
  if (used_ == batch_) {
    apply(xr_, xi_, used_, sre_, sim_);
    used_ = 0;
  }
}

void Correlator::flush() {
  if (used_) apply(xr_, xi_, used_, sre_, sim_);
  if (mused_) apply(wr_, wi_, mused_, msre_, msim_);
  used_ = mused_ = 0;
}

void Correlator::pair_spectrum(int i, int j, double* re, double* im) {
  flush();
  const bool swap = i > j;
  const size_t o = swap ? at(j, i) : at(i, j);
  for (int n = 0; n < h_; n++) {
    re[n] = sre_[n * tri_ + o];
    im[n] = swap ? -sim_[n * tri_ + o] : sim_[n * tri_ + o];
  }
}

void Correlator::mask_pair_spectrum(int i, int j, double* re, double* im) {
  flush();
  const bool swap = i > j;
  const size_t o = swap ? at(j, i) : at(i, j);
  for (int n = 0; n < h_; n++) {
    re[n] = msre_.empty() ? 0.0 : msre_[n * tri_ + o];
    im[n] = msre_.empty() ? 0.0 : (swap ? -msim_[n * tri_ + o] : msim_[n * tri_ + o]);
  }
}

}  // namespace beamedge
