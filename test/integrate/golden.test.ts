// Acceptance against pyFAI 0.21.3's own output on thau_3_2_0001.cbf (../shared/data/golden).
import t from 'tap';
import { readCbf } from '../../daemon/decode/cbf';
import type { Geometry } from '../../daemon/geometry/geometry';
import { AzimuthalIntegrator, type Splitting } from '../../daemon/integrate/azimuthal';
import { agreement, readColumns } from '../helpers/compare';
import { needData, readData } from '../helpers/data';
import { npzArray, readNpzMembers } from '../helpers/npz';

// The golden files' geometry, as their README states it.
const geometry: Geometry = {
  dist: 0.351,
  poni1: 0.22479712,
  poni2: 0.21699692,
  rot1: 0,
  rot2: 0,
  rot3: 0,
  pixel1: 172e-6,
  pixel2: 172e-6,
  wavelength: 0.96859e-10,
};

function frameAndMask() {
  const frame = readCbf(readData('cbf', 'thau_3_2_0001.cbf'));
  const mask = Uint8Array.from(frame.pixels, (v) => (v < 0 ? 1 : 0));
  return { frame, mask };
}

for (const [split, file] of [
  ['no', 'thau_3_2_0001_1d_no_csr_q_nm-1_1000_poisson.txt'],
  ['bbox', 'thau_3_2_0001_1d_bbox_csr_q_nm-1_1000_poisson.txt'],
] as const) {
  t.test(`1D ${split} splitting, q_nm^-1, 1000 bins, matches pyFAI`, async (t) => {
    if (!needData(t)) return;
    const { frame, mask } = frameAndMask();
    const ai = new AzimuthalIntegrator({ geometry, shape: frame.shape, npt: 1000, unit: 'q_nm^-1', split: split as Splitting, mask, polarization: 0.99 });
    const r = ai.integrate(frame.pixels);
    const [q, I, sigma, sumSignal, sumVariance, sumNorm, count] = readColumns(readData('golden', file).toString('utf8'));
    const nonEmpty = (i: number) => count![i]! > 0;
    const a = agreement([[r.intensity, I!], [r.sigma, sigma!]], nonEmpty);
    t.equal(a.bins, 1000, 'every bin of the reference is populated');
    t.comment(`${split}: ${a.within(1e-4)}/${a.bins} bins within 1e-4, ${a.within(1e-3)} within 1e-3, worst ${a.worst.toExponential(2)} (bin ${a.worstBin})`);
    if (split === 'no') {
      t.ok(a.fraction(1e-4) >= 0.999, `>= 99.9% of bins within 1e-4 in I and sigma (${(100 * a.fraction(1e-4)).toFixed(2)}%)`);
      t.ok(a.fraction(1e-2) === 1, 'every bin within 1e-2');
      t.same(Array.from(r.count), count, 'pixel counts per bin are identical');
    } else {
      t.ok(a.fraction(1e-3) >= 0.99, `>= 99% of bins within 1e-3 (${(100 * a.fraction(1e-3)).toFixed(2)}%)`);
    }
    const sums = agreement([[r.signal, sumSignal!], [r.variance, sumVariance!], [r.normalization, sumNorm!], [r.count, count!]], nonEmpty);
    t.comment(`${split} sums: ${sums.within(1e-6)}/${sums.bins} bins within 1e-6, worst ${sums.worst.toExponential(2)} (bin ${sums.worstBin})`);
    t.ok(sums.fraction(1e-6) >= 0.999, `sum_signal, sum_variance, sum_normalization, count agree to 1e-6 (worst ${sums.worst.toExponential(2)})`);
    const radial = agreement([[ai.radial, q!]], () => true);
    t.ok(radial.worst < 1e-12, `bin centres agree (worst ${radial.worst.toExponential(2)})`);
  });
}

t.test('2D no splitting, 500 q x 360 chi, matches pyFAI', async (t) => {
  if (!needData(t)) return;
  const { frame, mask } = frameAndMask();
  const ai = new AzimuthalIntegrator({ geometry, shape: frame.shape, npt: 500, nptAzim: 360, unit: 'q_nm^-1', split: 'no', mask, polarization: 0.99 });
  const r = ai.integrate(frame.pixels);
  const npz = readNpzMembers(readData('golden', 'thau_3_2_0001_2d_no_csr_q500_chi360.npz'));
  const I = npzArray(npz, 'intensity');
  t.same(I.shape, [360, 500], 'reference is [chi][q]');
  const nonEmpty = (i: number) => r.count[i]! > 0 || I.data[i] !== 0;
  const a = agreement([[r.intensity, I.data]], nonEmpty);
  t.comment(`2D: ${a.within(1e-4)}/${a.bins} non-empty bins within 1e-4, worst ${a.worst.toExponential(2)}`);
  t.ok(a.bins > 100_000, `${a.bins} non-empty bins compared`);
  t.ok(a.fraction(1e-4) >= 0.999, `>= 99.9% within 1e-4 (${(100 * a.fraction(1e-4)).toFixed(3)}%)`);
  t.ok(agreement([[ai.radial, npzArray(npz, 'radial').data]], () => true).worst < 1e-12, 'radial centres');
  t.ok(agreement([[ai.azimuthal!, npzArray(npz, 'azimuthal').data]], () => true).worst < 1e-12, 'azimuthal centres (deg)');
});

t.test('fused decode+integrate equals decode then integrate', async (t) => {
  if (!needData(t)) return;
  const buf = readData('cbf', 'thau_3_2_0001.cbf');
  const { frame, mask } = frameAndMask();
  const ai = new AzimuthalIntegrator({ geometry, shape: frame.shape, npt: 1000, unit: 'q_nm^-1', split: 'bbox', mask, polarization: 0.99 });
  const a = ai.integrate(frame.pixels);
  const b = ai.integrateCbf(buf);
  t.same(Array.from(b.intensity), Array.from(a.intensity));
  t.same(Array.from(b.sigma), Array.from(a.sigma));
});

t.test('negative pixels outside the static mask are excluded per frame', async (t) => {
  if (!needData(t)) return;
  const { frame, mask } = frameAndMask();
  // Map built without the frame's markers: they must be dropped per frame, giving the same profile.
  const setup = { geometry, shape: frame.shape, npt: 300, unit: '2th_deg', split: 'no' as const, radialRange: [1, 40] as [number, number] };
  const a = new AzimuthalIntegrator({ ...setup, mask }).integrate(frame.pixels);
  const b = new AzimuthalIntegrator(setup).integrate(frame.pixels);
  t.same(Array.from(b.count), Array.from(a.count), 'same pixel counts');
  const agree = agreement([[b.intensity, a.intensity], [b.sigma, a.sigma]], (i) => a.count[i]! > 0);
  t.ok(agree.worst < 1e-6, `same result with the markers excluded per frame (worst ${agree.worst.toExponential(2)})`);
});
