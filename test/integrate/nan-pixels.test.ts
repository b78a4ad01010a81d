// Calibrated float frames (JUNGFRAU photons) mark excluded pixels as NaN: the
// integrator must treat them exactly like masked pixels, and, when asked, keep
// the negative values that noise around zero gives.
import t from 'tap';
import { AzimuthalIntegrator, type Splitting } from '../../daemon/integrate/azimuthal';

const geometry = { dist: 0.1, poni1: 0.0024, poni2: 0.0031, rot1: 0, rot2: 0, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10 };
const shape: [number, number] = [64, 80];
const n = shape[0] * shape[1];

t.test('NaN pixels give the same profile as the same pixels masked', async (t) => {
  const frame = Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 113) / 7 - 3); // includes negatives
  const nanAt = (i: number) => i % 11 === 0 || i % 17 === 3;
  const withNaN = frame.map((v, i) => (nanAt(i) ? NaN : v));
  const mask = Uint8Array.from({ length: n }, (_, i) => (nanAt(i) ? 1 : 0));
  const excludedCount = mask.reduce((a, b) => a + b, 0);
  for (const split of ['no', 'bbox'] as Splitting[]) {
    // One explicit range for both: the default one follows the unmasked pixels.
    const radialRange: [number, number] = [0, 2.5]; // every pixel inside
    const open = new AzimuthalIntegrator({ geometry, shape, npt: 50, unit: 'q_nm^-1', split, radialRange });
    const masked = new AzimuthalIntegrator({ geometry, shape, npt: 50, unit: 'q_nm^-1', split, mask, radialRange });
    const a = open.integrate(withNaN, { negativeValid: true });
    const b = masked.integrate(frame, { negativeValid: true });
    t.equal(a.excluded, excludedCount, `${split}: NaN pixels counted as excluded`);
    const close = (x: Float64Array, y: Float64Array) => x.every((v, i) => Math.abs(v - y[i]!) <= 1e-9 * Math.max(1, Math.abs(y[i]!)));
    t.ok(close(a.intensity, b.intensity), `${split}: same intensity`);
    t.ok(close(a.signal, b.signal), `${split}: same signal`);
    t.ok(close(a.count, b.count), `${split}: same pixel counts`);
    t.ok(close(a.normalization, b.normalization), `${split}: same normalization`);
    // Without negativeValid, negative floats stay excluded as markers (the old rule).
    const negatives = frame.reduce((k, v, i) => k + (v < 0 && !nanAt(i) ? 1 : 0), 0);
    t.equal(open.integrate(withNaN).excluded, excludedCount + negatives, `${split}: default rule excludes negatives too`);
  }
});

// Float frames without a dark or dummy take a vectorised path (four pixels per
// step, two copies of the sums); a dummy that matches no pixel forces the
// per-pixel path, which must give the same sums, counts and lit pixels.
t.test('the float fast path agrees with the per-pixel path', async (t) => {
  const odd: [number, number] = [63, 81]; // not a multiple of four pixels: the tail too
  const m = odd[0] * odd[1];
  const frame = Float32Array.from({ length: m }, (_, i) => (i % 29 === 5 ? NaN : i % 31 === 7 ? 500 : ((i * 7919) % 113) / 37 - 1));
  const ai = new AzimuthalIntegrator({ geometry, shape: odd, npt: 40, unit: 'q_nm^-1' });
  const noMatch = { dummy: -1e30, deltaDummy: 0 };
  for (const negativeValid of [true, false])
    for (const extra of [{}, { maxValid: 100, litThreshold: 0.5 }]) {
      const opts = { negativeValid, ...extra };
      const fast = ai.integrate(frame, opts);
      const slow = ai.integrate(frame, { ...opts, ...noMatch });
      const what = JSON.stringify(opts);
      t.equal(fast.excluded, slow.excluded, `${what}: excluded`);
      t.equal(fast.lit, slow.lit, `${what}: lit`);
      const close = (x: Float64Array, y: Float64Array) => x.every((v, i) => Math.abs(v - y[i]!) <= 1e-12 * Math.max(1, Math.abs(y[i]!)));
      t.ok(close(fast.signal, slow.signal), `${what}: signal`);
      t.ok(close(fast.variance, slow.variance), `${what}: variance`);
      t.ok(close(fast.count, slow.count), `${what}: count`);
    }
});
