// peakfinder8 against OM's own output (shared/data/spots, README "spots/"):
// the same peaks, centroids within 0.01 px, total intensity within 1e-3
// relative; and recall / precision against the simulated truth.
import { spawnSync } from 'node:child_process';
import t, { type Test } from 'tap';
import { beamCentreFromPoni, Peakfinder8, radiusMap, type Peakfinder8Peaks } from '../../daemon/spots/peakfinder8';
import { needData, readData } from '../helpers/data';
import { lysoCase, thauCase, type OmPeak, type Pf8Case } from './pf8-cases';

interface Deviation {
  centroid: number;
  intensity: number;
  unmatched: number;
}

// Each OM peak against our nearest centroid.
function compare(om: OmPeak[], got: Peakfinder8Peaks): Deviation {
  const d: Deviation = { centroid: 0, intensity: 0, unmatched: 0 };
  for (const p of om) {
    let best = -1;
    let bd = Infinity;
    for (let i = 0; i < got.fs.length; i++) {
      const e = Math.hypot(got.fs[i]! - p.fs, got.ss[i]! - p.ss);
      if (e < bd) [bd, best] = [e, i];
    }
    if (best < 0 || got.pixels[best] !== p.pixels) d.unmatched++;
    if (best < 0) continue;
    d.centroid = Math.max(d.centroid, bd);
    d.intensity = Math.max(d.intensity, Math.abs(got.intensity[best]! - p.intensity) / Math.abs(p.intensity));
  }
  return d;
}

function check(t: Test, c: Pf8Case): Peakfinder8Peaks {
  const pf = new Peakfinder8(c.width, c.height, c.radius, c.mask, c.params);
  const got = pf.find(c.frame);
  t.equal(got.found, c.om.length, `${c.name}: OM's peak count`);
  const d = compare(c.om, got);
  t.equal(d.unmatched, 0, `${c.name}: every OM peak has a partner of the same size`);
  t.ok(d.centroid <= 0.01, `${c.name}: centroids within 0.01 px (max ${d.centroid.toExponential(2)})`);
  t.ok(d.intensity <= 1e-3, `${c.name}: total intensity within 1e-3 (max ${d.intensity.toExponential(2)})`);
  t.comment(`${c.name}: ${got.found} peaks, max centroid deviation ${d.centroid.toExponential(2)} px, max intensity deviation ${d.intensity.toExponential(2)} (OM's tsv has 4 decimals)`);
  // a second frame through the same buffers gives the same list
  const again = pf.find(c.frame);
  t.same(Array.from(again.fs), Array.from(got.fs), `${c.name}: repeatable on reused buffers`);
  return got;
}

t.test('lyso_noise: OM peak list, and recall / precision against the truth', (t) => {
  if (!needData(t)) return t.end();
  const c = lysoCase();
  const got = check(t, c);
  // float frame and int32 frame agree
  const pf = new Peakfinder8(c.width, c.height, c.radius, c.mask, c.params);
  const asInt = pf.find(Int32Array.from(c.frame as Float32Array));
  t.same(Array.from(asInt.intensity), Array.from(got.intensity), 'Int32Array frame: same peaks');

  const truth = JSON.parse(readData('spots', 'lyso_truth_spots.json').toString('utf8')) as { fs: number; ss: number }[];
  const used = new Set<number>();
  let tp = 0;
  for (let i = 0; i < got.fs.length; i++) {
    let best = -1;
    let bd = 2;
    truth.forEach((s, j) => {
      const e = Math.hypot(s.fs - got.fs[i]!, s.ss - got.ss[i]!);
      if (e <= bd && !used.has(j)) [bd, best] = [e, j];
    });
    if (best >= 0) {
      used.add(best);
      tp++;
    }
  }
  const recall = tp / truth.length;
  const precision = tp / got.fs.length;
  t.comment(`lyso_noise vs truth (2 px): ${tp} matched, recall ${recall.toFixed(3)} (${tp}/${truth.length}), precision ${precision.toFixed(3)} (${tp}/${got.fs.length})`);
  t.ok(precision > 0.9, 'precision above 0.9');
  t.end();
});

t.test('thau_3_2_0001 (PILATUS3 6M): OM peak list', (t) => {
  if (!needData(t)) return t.end();
  check(t, thauCase());
  t.end();
});

// The clipping passes have an AVX2 and a portable kernel; both must give the
// same bits. A child process per kernel (the choice is made once per process)
// hashes every output column on both references and on a float frame with
// fractional values, NaN and infinities.
t.test('the AVX2 and portable kernels give the same peak lists, bit for bit', (t) => {
  if (!needData(t)) return t.end();
  const script = `
    const crypto = require('node:crypto');
    const { native } = require(${JSON.stringify(require.resolve('../../daemon/native'))});
    const { Peakfinder8, radiusMap } = require(${JSON.stringify(require.resolve('../../daemon/spots/peakfinder8'))});
    const { lysoCase, thauCase } = require(${JSON.stringify(require.resolve('./pf8-cases'))});
    const w = 300, h = 200, f = new Float32Array(w * h);
    let s = 7;
    for (let i = 0; i < f.length; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      f[i] = 10 + (s % 1000) / 97 + (s % 199 === 0 ? 400 : 0);
      if (s % 997 === 0) f[i] = NaN;
      if (s % 1999 === 0) f[i] = -Infinity;
    }
    const synth = { name: 'synthetic float', width: w, height: h, frame: f, mask: null, radius: radiusMap(w, h, { fs: 140.3, ss: 90.7 }),
      params: { adcThresh: 20, minSnr: 4, minPixCount: 1, maxPixCount: 50, localBgRadius: 2, minRes: 3, maxRes: 150, maxNumPeaks: 500 } };
    const out = {};
    for (const c of [lysoCase(), thauCase(), synth]) {
      const p = new Peakfinder8(c.width, c.height, c.radius, c.mask, c.params).find(c.frame);
      const hash = crypto.createHash('sha256');
      for (const k of ['fs', 'ss', 'intensity', 'maxIntensity', 'sigma', 'snr', 'pixels']) hash.update(new Uint8Array(p[k].buffer, p[k].byteOffset, p[k].byteLength));
      out[c.name] = p.found + ' ' + hash.digest('hex');
    }
    console.log(JSON.stringify({ kernel: native.kernels.peakfinder8, out }));`;
  const run = (kernels?: string) => {
    const env = { ...process.env };
    if (kernels) env.BEAMEDGE_KERNELS = kernels;
    else delete env.BEAMEDGE_KERNELS;
    const r = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as { kernel: string; out: Record<string, string> };
  };
  const scalar = run('scalar');
  const fast = run();
  t.equal(scalar.kernel, 'scalar');
  t.comment(`run-time kernel on this CPU: ${fast.kernel}; ${JSON.stringify(fast.out)}`);
  t.same(fast.out, scalar.out);
  t.end();
});

t.test('radius maps', (t) => {
  const r = radiusMap(4, 3, { fs: 1, ss: 1 });
  t.equal(r[0], Math.fround(Math.SQRT2));
  t.equal(r[1 * 4 + 1], 0);
  t.equal(r[2 * 4 + 3], Math.fround(Math.sqrt(5)));
  // pyFAI: pixel i's centre at (i + 0.5) * pixel
  t.same(beamCentreFromPoni({ poni1: 0.1, poni2: 0.05, pixel1: 1e-4, pixel2: 1e-4 }), { fs: 499.5, ss: 999.5 });
  t.throws(() => beamCentreFromPoni({ poni1: 0.1, poni2: 0.05, pixel1: 1e-4, pixel2: 1e-4, rot1: 0.1 }), RangeError);
  t.end();
});

t.test('synthetic: one spot, masks, limits and argument checks', (t) => {
  const w = 64;
  const h = 64;
  const frame = new Float32Array(w * h);
  let s = 1;
  for (let i = 0; i < frame.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    frame[i] = 10 + (s % 5);
  }
  frame[20 * w + 30] = 200;
  frame[20 * w + 31] = 120;
  frame[21 * w + 30] = 100;
  const radius = radiusMap(w, h, { fs: 32, ss: 32 });
  const params = { adcThresh: 0, minSnr: 5, minPixCount: 2, maxPixCount: 50, localBgRadius: 3, minRes: 0, maxRes: 1e4, maxNumPeaks: 10 };
  const pf = new Peakfinder8(w, h, radius, null, params);
  const p = pf.find(frame);
  t.equal(p.found, 1);
  t.equal(p.pixels[0], 3);
  t.ok(Math.abs(p.fs[0]! - 30.25) < 0.2 && Math.abs(p.ss[0]! - 20.2) < 0.2, 'centroid near the spot');
  const mask = new Uint8Array(w * h);
  mask[20 * w + 30] = 1;
  mask[20 * w + 31] = 1;
  t.equal(new Peakfinder8(w, h, radius, mask, params).find(frame).found, 0, 'masked pixels are not peak pixels');
  t.equal(new Peakfinder8(w, h, radius, null, { ...params, maxRes: 5 }).find(frame).found, 0, 'outside maxRes: masked');
  t.equal(new Peakfinder8(w, h, radius, null, { ...params, maxNumPeaks: 0 }).find(frame).found, 1, 'found counts past maxNumPeaks');
  const T = TypeError;
  t.throws(() => new Peakfinder8(w, h, radius.subarray(1), null, params), T, 'short radius');
  t.throws(() => new Peakfinder8(w, h, new Float32Array(w * h).fill(-1), null, params), T, 'negative radius');
  t.throws(() => new Peakfinder8(w, h, new Float32Array(w * h).fill(NaN), null, params), T, 'NaN radius');
  t.throws(() => new Peakfinder8(w, h, radius, new Uint8Array(3), params), T, 'short mask');
  t.throws(() => new Peakfinder8(w, h, radius, null, { ...params, maxPixCount: 0 }), T, 'maxPixCount 0');
  t.throws(() => new Peakfinder8(w, h, radius, null, { ...params, minSnr: NaN }), T, 'NaN minSnr');
  t.throws(() => new Peakfinder8(w, h, radius, null, { ...params, asicNx: 5 }), T, 'asicNx not dividing');
  t.throws(() => new Peakfinder8(2.5, h, radius, null, params), T, 'fractional width');
  t.throws(() => pf.find(new Float64Array(w * h) as unknown as Float32Array), T, 'Float64Array frame');
  t.throws(() => pf.find(new Float32Array(3)), T, 'short frame');
  t.end();
});
