// The lit-pixel count that drives the veto is computed inside the integration
// pass; check it against a plain count, on every code path, and on frames that
// live in SharedArrayBuffers (ring slots).
import t from 'tap';
import { readCbf } from '../../daemon/decode/cbf';
import { AzimuthalIntegrator, type Splitting } from '../../daemon/integrate/azimuthal';
import { needData, readData } from '../helpers/data';

t.test('lit pixels match a direct count on every integration path', async (t) => {
  if (!needData(t)) return;
  const buf = readData('cbf', 'in16c_010001.cbf');
  const frame = readCbf(buf);
  const mask = Uint8Array.from(frame.pixels, (v) => (v < 0 ? 1 : 0));
  const geometry = { dist: 0.04, poni1: 308 * 172e-6, poni2: 244 * 172e-6, rot1: 0, rot2: 0, rot3: 0, pixel1: 172e-6, pixel2: 172e-6, wavelength: 1.542e-10 };
  const dark = Float32Array.from({ length: frame.pixels.length }, (_, i) => (i % 5) * 0.5);
  for (const threshold of [0, 3, 10.5, 100]) {
    let plain = 0;
    let darkCount = 0;
    frame.pixels.forEach((v, i) => {
      if (mask[i]) return;
      if (v > threshold) plain++;
      if (v - dark[i]! > threshold) darkCount++;
    });
    for (const split of ['no', 'bbox'] as Splitting[]) {
      const ai = new AzimuthalIntegrator({ geometry, shape: frame.shape, npt: 300, unit: '2th_deg', split, mask });
      t.equal(ai.integrate(frame.pixels, { litThreshold: threshold }).lit, plain, `${split}, > ${threshold}: integer path`);
      t.equal(ai.integrateCbf(buf, { litThreshold: threshold }).lit, plain, `${split}, > ${threshold}: fused decode`);
      t.equal(ai.integrate(frame.pixels, { litThreshold: threshold, dark }).lit, darkCount, `${split}, > ${threshold}: with dark`);
      t.equal(ai.integrate(Float32Array.from(frame.pixels), { litThreshold: threshold }).lit, plain, `${split}, > ${threshold}: float frame`);
    }
  }
});

t.test('thresholds at the edges of the pixel type', async (t) => {
  const ai = new AzimuthalIntegrator({ geometry: { dist: 0.1, poni1: 0.001, poni2: 0.001, rot1: 0, rot2: 0, rot3: 0, pixel1: 1e-4, pixel2: 1e-4, wavelength: 1e-10 }, shape: [20, 20], npt: 10, unit: 'r_mm' });
  const u16 = new Uint16Array(400).map((_, i) => (i % 3) * 30000);
  t.equal(ai.integrate(u16, { litThreshold: -1 }).lit, 400, 'below the unsigned range: every pixel is lit');
  t.equal(ai.integrate(u16, { litThreshold: 0 }).lit, 266);
  t.equal(ai.integrate(u16, { litThreshold: 70000 }).lit, 0, 'above the type range: none');
  t.equal(ai.integrate(Uint8Array.from(u16, (v) => v >> 8), { litThreshold: 200 }).lit, 133);
});

t.test('frames and CBF bytes in SharedArrayBuffers integrate like ordinary ones', async (t) => {
  if (!needData(t)) return;
  const buf = readData('cbf', 'in16c_010001.cbf');
  const frame = readCbf(buf);
  const ai = new AzimuthalIntegrator({ geometry: { dist: 0.04, poni1: 0.05, poni2: 0.04, rot1: 0, rot2: 0, rot3: 0, pixel1: 172e-6, pixel2: 172e-6, wavelength: 1.542e-10 }, shape: frame.shape, npt: 100, unit: 'r_mm' });
  const sharedBytes = new Uint8Array(new SharedArrayBuffer(buf.length + 64), 64, buf.length);
  sharedBytes.set(buf);
  const sharedPixels = new Int32Array(new SharedArrayBuffer(frame.pixels.byteLength));
  sharedPixels.set(frame.pixels);
  const want = ai.integrate(frame.pixels);
  t.same(Array.from(ai.integrateCbf(sharedBytes).intensity), Array.from(want.intensity));
  t.same(Array.from(ai.integrate(sharedPixels).intensity), Array.from(want.intensity));
  t.same(Array.from(readCbf(sharedBytes).pixels.subarray(0, 1000)), Array.from(frame.pixels.subarray(0, 1000)));
});
