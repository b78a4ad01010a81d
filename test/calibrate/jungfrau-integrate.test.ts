// JUNGFRAU conversion fused with integration (Integrator.integrateJungfrau):
// on the real module's frames, the fused pass must give bit for bit what
// jungfrauConvert followed by integrate(out, { negativeValid: true }) gives:
// every result array, lit and excluded, the conversion counts, the converted
// frame when asked for, and the tracked pedestal. Tiles of any length (odd
// ones and ones that cut rows included), 1D and 2D, with and without bbox
// splitting, odd-sized frames.
//
// Why bit for bit and not a tolerance: each pixel's conversion does not depend
// on the tile it is in (the AVX2 kernel matches the scalar one bit for bit and
// takes any start and length), and the integrator adds a pixel into the copy of
// the sums that its index in the frame selects, in pixel order, so the floating-
// point additions happen in the same order whatever the tiling.
import t, { type Test } from 'tap';
import { JungfrauConverter } from '../../daemon/calibrate/jungfrau';
import { DEAD, excludeBitsPerGain, NO_PEDESTAL, PEDESTAL_RMS, USER_MASKED } from '../../daemon/calibrate/mask-bits';
import { AzimuthalIntegrator, type IntegrationSetup } from '../../daemon/integrate/azimuthal';
import { native, type JungfrauCalibrationArrays, type NativeIntegration } from '../../daemon/native';
import { need } from '../helpers/need';
import { haveJungfrau, jfArray, MOD5_ENERGY_KEV } from '../helpers/jungfrau';

const ROWS = 512;
const COLS = 1024;
const N = ROWS * COLS;
const E = MOD5_ENERGY_KEV;



const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const same = (a: ArrayBufferView, b: ArrayBufferView) => Buffer.compare(bytes(a), bytes(b)) === 0;
const RESULT_ARRAYS = ['intensity', 'sigma', 'signal', 'variance', 'normalization', 'count'] as const;

interface Module {
  rows: number;
  cols: number;
  raw: Uint16Array[];
  cal: JungfrauCalibrationArrays;
  rms: Float32Array;
  pedestalG0: Float32Array;
}

// The real module, or its top-left rows x cols corner (an odd pixel count).
function loadModule(rows: number, cols: number): Module {
  const n = rows * cols;
  const crop = <T extends Float32Array | Float64Array | Uint16Array>(src: T, out: T): T => {
    for (let r = 0; r < rows; r++) out.set(src.subarray(r * COLS, r * COLS + cols), r * cols);
    return out;
  };
  const pedestal = new Float32Array(3 * n);
  const gain = new Float64Array(3 * n);
  const gainAll = jfArray('mod5_gain_f64.bin', Float64Array);
  for (let g = 0; g < 3; g++) {
    crop(jfArray(`mod5_pedeG${g}.bin`, Float32Array), pedestal.subarray(g * n, (g + 1) * n));
    crop(gainAll.subarray(g * N, (g + 1) * N), gain.subarray(g * n, (g + 1) * n));
  }
  const rms = crop(jfArray('mod5_pedeG0_RMS.bin', Float32Array), new Float32Array(n));
  const raw = [0, 1, 2, 3, 4].map((k) => crop(jfArray(`mod5_raw${k}.bin`, Uint16Array), new Uint16Array(n)));
  // Every kind of mask bit on scattered pixels, read per frame (not folded).
  const mask = new Uint32Array(n);
  for (let i = 0; i < n; i += 89) mask[i] = [DEAD, NO_PEDESTAL[0], NO_PEDESTAL[1], PEDESTAL_RMS[2], USER_MASKED][i % 5]!;
  const cal = { pedestal, factor: JungfrauConverter.factorsFromGain(gain, E), mask, excludeBits: excludeBitsPerGain() };
  return { rows, cols, raw, cal, rms, pedestalG0: pedestal.slice(0, n) };
}

function integrator(m: Module, twoD: boolean, split: 'no' | 'bbox', radialRange?: [number, number]): AzimuthalIntegrator {
  // Beam off the module, so the rings cross it; a static mask on a block of pixels.
  const geometry = { dist: 0.08, poni1: -0.004, poni2: 0.03, rot1: 0.05, rot2: 0.02, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10 };
  const mask = new Uint8Array(m.rows * m.cols);
  for (let r = 100; r < 140; r++) mask.fill(1, r * m.cols + 200, r * m.cols + 260);
  const setup: IntegrationSetup = { geometry, shape: [m.rows, m.cols], npt: 300, unit: 'q_nm^-1', split, mask, polarization: 0.95, ...(radialRange ? { radialRange } : {}) };
  return new AzimuthalIntegrator(twoD ? { ...setup, nptAzim: 36 } : setup);
}

// Fails t once per difference (naming it); true when there is none.
function compareResults(t: Test, label: string, a: NativeIntegration, b: NativeIntegration): boolean {
  const bad: string[] = RESULT_ARRAYS.filter((k) => !same(a[k], b[k]));
  if (a.lit !== b.lit) bad.push(`lit ${a.lit} vs ${b.lit}`);
  if (a.excluded !== b.excluded) bad.push(`excluded ${a.excluded} vs ${b.excluded}`);
  for (const d of bad) t.fail(`${label}: ${d}`);
  return bad.length === 0;
}

t.test('fused conversion + integration equals convert-then-integrate bit for bit on real frames', async (t) => {
  if (!need(t, haveJungfrau(), 'JUNGFRAU data (shared/data/jungfrau) not found', 'required when CI=true')) return;
  for (const [rows, cols] of [[ROWS, COLS], [511, 1023]] as const) {
    const m = loadModule(rows, cols);
    const n = rows * cols;
    for (const [twoD, split] of [[false, 'no'], [true, 'no'], [false, 'bbox'], [true, 'bbox']] as const) {
      const ai = integrator(m, twoD, split);
      const what = `${rows} x ${cols}, ${twoD ? '2D' : '1D'}, split ${split}`;
      // 1000 and 777 do not divide the 1024-pixel rows; 777 is odd (tiles alternate pixel parity); 13 is all tails.
      const tiles = split === 'bbox' && twoD ? [undefined, 777] : [undefined, 1000, 777, 13];
      let checks = 0;
      let failures = 0;
      for (const tilePixels of tiles)
        for (const withOut of [false, true])
          for (const tracking of [false, true]) {
            const label = `${what}, tile ${tilePixels ?? 'default'}, ${withOut ? 'with' : 'no'} out, tracking ${tracking ? 'on' : 'off'}`;
            const refTrack = { pedestal: m.pedestalG0.slice(), rms: m.rms, k: 3, window: 16 };
            const fusedTrack = { pedestal: m.pedestalG0.slice(), rms: m.rms, k: 3, window: 16 };
            const refOut = new Float32Array(n);
            const fusedOut = new Float32Array(n).fill(7);
            // Five frames in a row: the tracked pedestal must evolve identically.
            for (let k = 0; k < m.raw.length; k++) {
              const raw = m.raw[k]!;
              const lit = 0.5 + k;
              const c = native.jungfrauConvert(raw, m.cal.pedestal, m.cal.factor, m.cal.mask, m.cal.excludeBits, refOut, { litThreshold: lit, ...(tracking ? { track: refTrack } : {}) });
              const ref = ai.integrate(refOut, { negativeValid: true, litThreshold: lit });
              const r = ai.integrateJungfrau(raw, m.cal, { litThreshold: lit, ...(tracking ? { track: fusedTrack } : {}), ...(withOut ? { out: fusedOut } : {}), ...(tilePixels ? { tilePixels } : {}) });
              const bad: string[] = [];
              if (!compareResults(t, `${label}, frame ${k}`, r, ref)) bad.push('result');
              if (JSON.stringify(r.jungfrau) !== JSON.stringify(c)) bad.push(`counts ${JSON.stringify(r.jungfrau)} vs ${JSON.stringify(c)}`);
              if (withOut && !same(fusedOut, refOut)) bad.push('out differs');
              if (tracking && !same(fusedTrack.pedestal, refTrack.pedestal)) bad.push('tracked pedestal differs');
              for (const d of bad.filter((x) => x !== 'result')) t.fail(`${label}, frame ${k}: ${d}`);
              checks++;
              if (bad.length) failures++;
            }
            if (tracking && same(refTrack.pedestal, m.pedestalG0)) t.fail(`${label}: the tracked pedestal never moved (the check would be empty)`);
          }
      t.equal(failures, 0, `${what}: ${checks} frames (tiles ${tiles.map((x) => x ?? 'default').join(', ')}; out, tracking on and off): every array, lit, excluded, counts, out and tracked pedestal bit for bit`);
      ai.dispose();
    }
  }
});

t.test('bit for bit even where the double sums round: odd tiles keep each pixel in its copy of the sums', async (t) => {
  // Converted values spread over 2^-40 .. 2^40, so that a bin's double sum
  // rounds and depends on which pixels go into which of its two copies. (On
  // real photon values the sums happen to be exact, so tiles that moved pixels
  // between copies would still pass the test above; this one fails when the
  // copy follows the index in the tile, as it did before the fused path.)
  const rows = 64;
  const cols = 63;
  const n = rows * cols;
  const geometry = { dist: 0.05, poni1: 0.001, poni2: 0.002, rot1: 0, rot2: 0, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10 };
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const pedestal = new Float32Array(3 * n);
  const factor = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) factor[i] = Math.pow(2, Math.floor(rand() * 80) - 40) * (1 + rand());
  const raw = Uint16Array.from({ length: n }, () => 1 + Math.floor(rand() * 16000));
  const cal = { pedestal, factor, mask: null, excludeBits: excludeBitsPerGain() };
  for (const twoD of [false, true]) {
    const ai = new AzimuthalIntegrator({ geometry, shape: [rows, cols], npt: 4, unit: 'q_nm^-1', ...(twoD ? { nptAzim: 3 } : {}) });
    const out = new Float32Array(n);
    native.jungfrauConvert(raw, pedestal, factor, null, cal.excludeBits, out);
    const ref = ai.integrate(out, { negativeValid: true });
    for (const tilePixels of [7, 777, 1001]) {
      const r = ai.integrateJungfrau(raw, cal, { tilePixels });
      t.ok(compareResults(t, `${twoD ? '2D' : '1D'}, tile ${tilePixels}`, r, ref), `${twoD ? '2D' : '1D'}, tile ${tilePixels}: identical`);
    }
    ai.dispose();
  }
});

t.test('the float fast path counts lit pixels as the per-pixel path does (16- and 32-bit maps)', async (t) => {
  if (!need(t, haveJungfrau(), 'JUNGFRAU data (shared/data/jungfrau) not found', 'required when CI=true')) return;
  const m = loadModule(ROWS, COLS);
  const out = new Float32Array(N);
  const zero = new Float32Array(N);
  for (const [npt, nptAzim] of [[300, undefined], [700, 100]] as const) {
    const geometry = { dist: 0.08, poni1: -0.004, poni2: 0.03, rot1: 0.05, rot2: 0.02, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10 };
    const ai = new AzimuthalIntegrator({ geometry, shape: [ROWS, COLS], npt, unit: 'q_nm^-1', radialRange: [5, 30], ...(nptAzim ? { nptAzim } : {}) });
    for (let k = 0; k < 5; k++) {
      native.jungfrauConvert(m.raw[k]!, m.cal.pedestal, m.cal.factor, m.cal.mask, m.cal.excludeBits, out);
      for (const lit of [-1, 0.5, 3]) {
        const fast = ai.integrate(out, { negativeValid: true, litThreshold: lit });
        // A dark of zeros takes the per-pixel path (run_direct): same sums, independent lit count.
        const slow = ai.integrate(out, { negativeValid: true, litThreshold: lit, dark: zero });
        const fused = ai.integrateJungfrau(m.raw[k]!, m.cal, { litThreshold: lit });
        if (fast.lit !== slow.lit || fused.lit !== slow.lit) t.fail(`${npt} x ${nptAzim ?? 1} bins, frame ${k}, threshold ${lit}: lit ${fast.lit} / fused ${fused.lit} / per-pixel ${slow.lit}`);
      }
    }
    const last = ai.integrate(out, { negativeValid: true, litThreshold: 0.5, dark: zero });
    t.pass(`${npt} x ${nptAzim ?? 1} bins (${npt * (nptAzim ?? 1) < 0xffff ? '16' : '32'}-bit map), radial range cutting the module: lit counts agree on 5 frames x 3 thresholds (last: ${last.lit} lit, ${last.excluded} excluded)`);
    ai.dispose();
  }
});

t.test('fused path: mask folded into the factors, scalar kernel, empty and maxValid', async (t) => {
  if (!need(t, haveJungfrau(), 'JUNGFRAU data (shared/data/jungfrau) not found', 'required when CI=true')) return;
  const m = loadModule(ROWS, COLS);
  // A radial range past the module's corner (about 48 / nm): the last bins are empty.
  const ai = integrator(m, false, 'no', [0, 80]);
  const folded = new JungfrauConverter({ pedestal: m.cal.pedestal, factor: JungfrauConverter.foldMask(m.cal.factor.slice(), m.cal.mask!, m.cal.excludeBits) });
  const out = new Float32Array(N);
  const raw = m.raw[2]!;
  const c = folded.convert(raw, out, { litThreshold: 1 });
  const ref = ai.integrate(out, { negativeValid: true, litThreshold: 1, maxValid: 50, empty: -1 });
  for (const kernel of [undefined, 'scalar'] as const) {
    // A JungfrauConverter is itself a valid calibration argument.
    const r = ai.integrateJungfrau(raw, folded, { litThreshold: 1, maxValid: 50, empty: -1, ...(kernel ? { kernel } : {}) });
    t.ok(compareResults(t, `folded mask, ${kernel ?? native.kernels.jungfrau}`, r, ref), `folded mask, ${kernel ?? native.kernels.jungfrau} kernel: identical result (maxValid 50, empty -1)`);
    t.same(r.jungfrau, c, 'identical counts');
  }
  t.ok(ref.excluded > c.masked, `maxValid excluded pixels beyond the NaN ones (${ref.excluded} vs ${c.masked})`);
  t.ok(Array.from(ref.intensity).includes(-1), 'empty bins read as empty');
  ai.dispose();
});

t.test('integrateJungfrau argument checks', async (t) => {
  const rows = 8;
  const cols = 16;
  const n = rows * cols;
  const geometry = { dist: 0.1, poni1: 0, poni2: 0, rot1: 0, rot2: 0, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10 };
  const ai = new AzimuthalIntegrator({ geometry, shape: [rows, cols], npt: 10, unit: 'q_nm^-1' });
  const cal = { pedestal: new Float32Array(3 * n), factor: new Float32Array(3 * n).fill(1), mask: null, excludeBits: excludeBitsPerGain() };
  const raw = new Uint16Array(n).fill(5);
  const r = ai.integrateJungfrau(raw, cal);
  t.equal(r.jungfrau.g0, n, 'all G0');
  t.equal(r.lit, 0, 'no lit count unless asked');
  t.equal(r.unit, 'q_nm^-1', 'wrapped like integrate()');
  t.throws(() => ai.integrateJungfrau(raw.subarray(1), cal), RangeError, 'frame size');
  t.throws(() => ai.integrateJungfrau(raw, { ...cal, pedestal: cal.pedestal.subarray(1) }), TypeError, 'short pedestal');
  t.throws(() => ai.integrateJungfrau(raw, { ...cal, mask: new Uint32Array(3) }), TypeError, 'short mask');
  t.throws(() => ai.integrateJungfrau(raw, cal, { out: new Float32Array(n - 1) }), TypeError, 'short out');
  t.throws(() => ai.integrateJungfrau(raw, cal, { tilePixels: 0.5 }), TypeError, 'fractional tile');
  t.throws(() => ai.integrateJungfrau(raw, cal, { tilePixels: -4 }), TypeError, 'negative tile');
  t.throws(() => ai.integrateJungfrau(raw, cal, { track: { pedestal: new Float32Array(n), rms: new Float32Array(2) } }), TypeError, 'short rms');
  ai.dispose();
  t.throws(() => ai.integrateJungfrau(raw, cal), /disposed/, 'disposed integrator');
});
