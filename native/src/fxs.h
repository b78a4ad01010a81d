// Fluctuation X-ray scattering: angular cross-correlations of polar images,
// accumulated in Fourier space (see README "Angular cross-correlations").
//
// Per frame, each radial row i of the polar image becomes d_i(k) (mean over
// valid bins subtracted, masked bins zero) and its real FFT A_i(n), n < H =
// K/2 + 1. The accumulator keeps S_n[i][j] = sum over frames of
// conj(A_i(n)) A_j(n) for i <= j; N[i][j][D] is then irfft_n(S_n[i][j]).
// Frames are batched: each harmonic's update is one Hermitian rank-B product
// (q x B)(B x q), so the triangle is read and written once per B frames
// instead of once per frame (it does not fit in cache at 300 x 256).
//
// The valid-pair counts M need the mask m's spectra the same way. A mask is
// usually the same frame after frame (a static geometry mask), so the masks
// are kept with how many frames had each, and M is built from them when a
// result is wanted: exact, and no per-frame cost. Only beyond MAX_MASKS
// distinct masks do mask spectra go through the batched product too.
#pragma once
#include <complex>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace beamedge {

using cplx = std::complex<double>;

// Complex DFT of any length, out[k] = sum_j in[j] exp(-2 pi i j k / n):
// mixed radix with radix-4 and radix-2 butterflies, and a direct butterfly for
// any other factor (O(p^2), so a large prime length is slow but correct).
class Fft {
 public:
  explicit Fft(int n);
  int size() const { return n_; }
  void forward(const cplx* in, cplx* out) const;
  // Two real rows a, b (length n) at once: their first h = n/2 + 1 harmonics.
  void forward_real_pair(const double* a, const double* b, cplx* fa, cplx* fb) const;
  // Inverse of two Hermitian half spectra (h harmonics each) into real rows
  // (numpy irfft: the imaginary parts of the DC and Nyquist terms are ignored).
  void inverse_real_pair(const cplx* fa, const cplx* fb, double* a, double* b) const;

 private:
  void work(cplx* out, const cplx* in, size_t fstride, const int* factors) const;
  void butterfly(cplx* out, size_t fstride, int m, int p) const;
  int n_;
  std::vector<int> factors_;  // (radix, remaining length) pairs
  std::vector<cplx> tw_;      // exp(-2 pi i t / n)
  mutable std::vector<cplx> a_, b_, scratch_;
};

class Correlator {
 public:
  static constexpr int MAX_MASKS = 8;

  Correlator(int nq, int nphi, int batch);
  // intensity and count are [nphi][nq], as the 2D integration writes them.
  void add(const double* intensity, const double* count);
  // Applies the frames waiting in the batch.
  void flush();
  int64_t frames() const { return frames_; }
  int nq() const { return nq_; }
  int nphi() const { return nphi_; }
  int harmonics() const { return h_; }
  size_t memory_bytes() const;
  // S_n[i][j] for n < H (flushes first); any order of i, j (S[j][i] = conj S[i][j]).
  void pair_spectrum(int i, int j, double* re, double* im);
  // The same for the mask spectra that went through the batched product (zero when none did).
  bool has_mask_spectra() const { return !msre_.empty(); }
  void mask_pair_spectrum(int i, int j, double* re, double* im);
  struct MaskCount {
    std::vector<uint8_t> mask;  // [nq][nphi], 1 = valid
    double count;
  };
  const std::vector<MaskCount>& masks() const { return masks_; }
  static const char* kernel_name();

 private:
  void spectra_into(const double* rows, std::vector<double>& xr, std::vector<double>& xi, int slot);
  void apply(const std::vector<double>& xr, const std::vector<double>& xi, int used, std::vector<double>& sre,
             std::vector<double>& sim);
  size_t at(int i, int j) const { return row_off_[i] + (j - (i & ~3)); }

  int nq_, nphi_, h_, qpad_, batch_;
  size_t tri_;  // elements of one harmonic's padded triangle
  std::vector<size_t> row_off_;
  Fft fft_;
  std::vector<double> sre_, sim_, xr_, xi_;     // accumulated triangle; batched spectra [h][batch][qpad]
  std::vector<double> msre_, msim_, wr_, wi_;   // mask spectra, only past MAX_MASKS distinct masks
  std::vector<double> rows_, mrows_;            // [qpad][nphi]
  std::vector<uint8_t> mask_;                   // this frame's [nq][nphi]
  std::vector<cplx> fa_, fb_;
  std::vector<MaskCount> masks_;
  int last_mask_ = -1;
  int used_ = 0, mused_ = 0;
  int64_t frames_ = 0;
};

// The first n/2 + 1 harmonics of each real row ([rows][n] -> [rows][h]).
void fxs_rfft(const double* rows, size_t nrows, int n, double* re, double* im);
// numpy irfft of each half spectrum ([rows][h] -> [rows][n]).
void fxs_irfft(const double* re, const double* im, size_t nrows, int n, double* out);
// sum over masks of count * conj(W_i(n)) W_j(n) for each pair (i, j): masks [nmask][nq][nphi].
void fxs_mask_spectra(const uint8_t* masks, const double* counts, int nmask, int nq, int nphi, const int32_t* pairs,
                      size_t npairs, double* re, double* im);

}  // namespace beamedge
