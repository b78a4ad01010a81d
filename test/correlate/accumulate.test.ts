// The Fourier-space accumulation against a direct evaluation of the
// definition's sums, written here from the README: several frames, masks
// that change, odd sizes, batches that do not divide the frame count, the
// merge of several accumulators, and the FFT against a direct DFT.
import t, { type Test } from 'tap';
import { allPairs, CorrelationAccumulator } from '../../daemon/correlate/accumulator';
import { finishPairs, fullCorrelation, mergeStates } from '../../daemon/correlate/result';
import { native } from '../../daemon/native';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Polar {
  intensity: Float64Array;
  count: Float64Array;
}

/** Polar images [nphi][nq] with float32-exact intensities; `holes` of the bins empty (count 0). */
function frames(n: number, nq: number, nphi: number, seed: number, holes: (f: number) => number): Polar[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, f) => {
    const intensity = new Float64Array(nq * nphi);
    const count = new Float64Array(nq * nphi);
    for (let t = 0; t < nq * nphi; t++) {
      intensity[t] = Math.fround(100 + 50 * r() + 20 * Math.cos((2 * Math.PI * 3 * Math.floor(t / nq)) / nphi));
      count[t] = r() < holes(f) ? 0 : 1 + Math.floor(r() * 4);
    }
    return { intensity, count };
  });
}

/** The definition, summed directly: C2[i][j][D] = sum N / sum M, N and M per frame as the README states them. */
function direct(fs: Polar[], nq: number, nphi: number): { c2: Float64Array; m: Float64Array } {
  const n = new Float64Array(nq * nq * nphi);
  const m = new Float64Array(nq * nq * nphi);
  for (const { intensity, count } of fs) {
    const d: number[][] = [];
    const v: number[][] = [];
    for (let i = 0; i < nq; i++) {
      let sum = 0;
      let valid = 0;
      for (let k = 0; k < nphi; k++)
        if (count[k * nq + i]! > 0) {
          sum += intensity[k * nq + i]!;
          valid++;
        }
      const mean = valid ? sum / valid : 0;
      v.push(Array.from({ length: nphi }, (_, k) => (count[k * nq + i]! > 0 ? 1 : 0)));
      d.push(Array.from({ length: nphi }, (_, k) => (intensity[k * nq + i]! - mean) * v[i]![k]!));
    }
    for (let i = 0; i < nq; i++)
      for (let j = 0; j < nq; j++)
        for (let D = 0; D < nphi; D++) {
          let sn = 0;
          let sm = 0;
          for (let k = 0; k < nphi; k++) {
            sn += d[i]![k]! * d[j]![(k + D) % nphi]!;
            sm += v[i]![k]! * v[j]![(k + D) % nphi]!;
          }
          n[(i * nq + j) * nphi + D]! += sn;
          m[(i * nq + j) * nphi + D]! += sm;
        }
  }
  return { c2: n.map((x, i) => (m[i]! > 0 ? x / m[i]! : 0)), m };
}

function compare(t: Test, got: { c2: Float64Array; m: Float64Array }, want: { c2: Float64Array; m: Float64Array }, what: string): void {
  let mDiffer = 0;
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < want.m.length; i++) {
    if (got.m[i] !== want.m[i]) mDiffer++;
    scale = Math.max(scale, Math.abs(want.c2[i]!));
  }
  for (let i = 0; i < want.c2.length; i++) worst = Math.max(worst, Math.abs(got.c2[i]! - want.c2[i]!));
  t.equal(mDiffer, 0, `${what}: M (valid pairs) exactly the direct count`);
  t.ok(worst <= 1e-9 * scale, `${what}: C2 within 1e-9 of the largest |C2| (${scale.toExponential(2)}): worst ${worst.toExponential(2)}`);
}

const radial = (nq: number) => Float64Array.from({ length: nq }, (_, i) => i + 0.5);

for (const [nq, nphi, nframes, batch, holes, label] of [
  [5, 12, 7, 3, () => 0.05, 'static-ish masks, batch 3 of 7 frames'],
  [7, 15, 11, 4, (f: number) => (f % 3 ? 0.1 : 0), 'odd q and phi (15 = 3 x 5)'],
  [6, 17, 5, 2, () => 0.2, 'prime phi (17)'],
  [4, 180, 3, 32, () => 0.02, '180 phi, fewer frames than a batch'],
  [3, 16, 20, 5, () => 0.3, 'more distinct masks than are kept (batched mask spectra)'],
  [9, 1, 4, 2, () => 0, 'one azimuthal bin'],
] as const) {
  t.test(`accumulation over frames equals the direct sums: ${nq} x ${nphi}, ${label}`, async (t) => {
    const fs = frames(nframes, nq, nphi, nq * 1000 + nphi, holes);
    const acc = new CorrelationAccumulator(nq, nphi, 'q_nm^-1', radial(nq), batch);
    for (const f of fs) acc.add(f.intensity, f.count);
    t.equal(acc.frames, nframes);
    compare(t, fullCorrelation(acc.state()), direct(fs, nq, nphi), 'whole C2');
  });
}

t.test('a static mask is counted, not recomputed: M over many frames is exact', async (t) => {
  const nq = 8;
  const nphi = 30;
  const one = frames(1, nq, nphi, 5, () => 0.25)[0]!;
  const fs = frames(40, nq, nphi, 6, () => 0).map((f) => ({ intensity: f.intensity, count: one.count }));
  const acc = new CorrelationAccumulator(nq, nphi, 'q_nm^-1', radial(nq), 7);
  for (const f of fs) acc.add(f.intensity, f.count);
  const s = acc.state();
  t.equal(s.masks.length, 1, 'one distinct mask');
  t.equal(s.masks[0]!.count, 40, 'counted 40 times');
  t.notOk(s.mre, 'no mask spectra accumulated per frame');
  compare(t, fullCorrelation(s), direct(fs, nq, nphi), 'static mask');
});

t.test('accumulators merged (frames spread over workers) equal one accumulator over all frames', async (t) => {
  const nq = 6;
  const nphi = 20;
  const fs = frames(23, nq, nphi, 11, (f) => (f % 2 ? 0.1 : 0.3));
  const parts = [new CorrelationAccumulator(nq, nphi, 'q_nm^-1', radial(nq), 4), new CorrelationAccumulator(nq, nphi, 'q_nm^-1', radial(nq), 8)];
  fs.forEach((f, i) => parts[i % 3 === 0 ? 0 : 1]!.add(f.intensity, f.count));
  const merged = mergeStates(parts.map((p) => p.state()))!;
  t.equal(merged.frames, 23);
  compare(t, fullCorrelation(merged), direct(fs, nq, nphi), 'merged');
  // Selected pairs, in either order, against the same sums.
  const want = direct(fs, nq, nphi);
  const pairs = Int32Array.from([2, 2, 1, 4, 4, 1]);
  const sub = finishPairs(mergeStates(parts.map((p) => p.state(pairs)))!);
  let worst = 0;
  [[2, 2], [1, 4], [4, 1]].forEach(([i, j], p) => {
    for (let d = 0; d < nphi; d++) worst = Math.max(worst, Math.abs(sub.c2[p * nphi + d]! - want.c2[(i! * nq + j!) * nphi + d]!));
  });
  t.ok(worst < 1e-9, `pairs (2,2), (1,4), (4,1): worst ${worst.toExponential(2)}`);
  t.throws(() => mergeStates([parts[0]!.state(), new CorrelationAccumulator(nq, nphi + 2, 'q_nm^-1', radial(nq)).state()]), /cannot merge/);
  t.equal(allPairs(3).length, 12);
});

t.test('the real FFT equals a direct DFT, and irfft inverts it, for any length', async (t) => {
  const r = rng(3);
  for (const n of [1, 2, 3, 5, 7, 9, 12, 15, 17, 45, 97, 180, 256, 257, 360]) {
    const rows = 3;
    const x = Float64Array.from({ length: rows * n }, () => r() - 0.5);
    const { re, im } = native.fxsRfft(x, n);
    const h = Math.floor(n / 2) + 1;
    let worst = 0;
    for (let row = 0; row < rows; row++)
      for (let k = 0; k < h; k++) {
        let sr = 0;
        let si = 0;
        for (let j = 0; j < n; j++) {
          sr += x[row * n + j]! * Math.cos((2 * Math.PI * j * k) / n);
          si -= x[row * n + j]! * Math.sin((2 * Math.PI * j * k) / n);
        }
        worst = Math.max(worst, Math.abs(re[row * h + k]! - sr), Math.abs(im[row * h + k]! - si));
      }
    const back = native.fxsIrfft(re, im, n);
    const roundTrip = Math.max(...Array.from(x, (v, i) => Math.abs(back[i]! - v)));
    t.ok(worst < 1e-11 && roundTrip < 1e-13, `n = ${n}: DFT worst ${worst.toExponential(1)}, round trip ${roundTrip.toExponential(1)}`);
  }
});

t.test('bad arguments are refused with a clear error', async (t) => {
  t.throws(() => new native.Correlator(0, 10, 4), /nq must be/);
  const acc = new CorrelationAccumulator(4, 8, 'q_nm^-1', radial(4));
  t.throws(() => acc.add(new Float64Array(31), new Float64Array(32)), /intensity has 31 elements, expected 32/);
  t.throws(() => acc.state(Int32Array.from([0, 4])), /outside \[0, 4\)/);
  t.throws(() => new CorrelationAccumulator(4, 8, 'q_nm^-1', radial(3)), /radial axis has 3 bins/);
});
