// Accumulated correlation states merged (across workers) and turned into
// C2 = N / M: one inverse real FFT per pair, the valid-pair counts M from
// the distinct masks' spectra, rounded (they are integers).
import { native } from '../native';
import type { CorrelationState } from './accumulator';

/** Adds states of the same series and shape (from several workers); undefined when there are none. */
export function mergeStates(states: CorrelationState[]): CorrelationState | undefined {
  const [first, ...rest] = states;
  if (!first) return undefined;
  const out: CorrelationState = { ...first, re: first.re.slice(), im: first.im.slice(), masks: first.masks.map((m) => ({ ...m })) };
  if (first.mre) Object.assign(out, { mre: first.mre.slice(), mim: first.mim!.slice() });
  for (const s of rest) {
    if (s.npt !== out.npt || s.nptAzim !== out.nptAzim || s.unit !== out.unit || !sameInts(s.pairs, out.pairs))
      throw new Error(`cannot merge correlations of ${s.npt} x ${s.nptAzim} ${s.unit} with ${out.npt} x ${out.nptAzim} ${out.unit}`);
    out.frames += s.frames;
    addInto(out.re, s.re);
    addInto(out.im, s.im);
    if (s.mre) {
      out.mre ??= new Float64Array(s.mre.length);
      out.mim ??= new Float64Array(s.mim!.length);
      addInto(out.mre, s.mre);
      addInto(out.mim, s.mim!);
    }
    for (const m of s.masks) {
      const same = out.masks.find((o) => Buffer.from(o.mask.buffer, o.mask.byteOffset, o.mask.byteLength).equals(m.mask));
      if (same) same.count += m.count;
      else out.masks.push({ ...m });
    }
  }
  return out;
}

function sameInts(a: Int32Array, b: Int32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function addInto(a: Float64Array, b: Float64Array): void {
  if (a.length !== b.length) throw new Error('cannot merge spectra of different sizes');
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
}

export interface PairCorrelation {
  /** [P][nptAzim] each: sum N, sum M (valid pairs) and C2 = N / M (0 where M = 0). */
  n: Float64Array;
  m: Float64Array;
  c2: Float64Array;
}

export function finishPairs(s: CorrelationState): PairCorrelation {
  const k = s.nptAzim;
  const n = native.fxsIrfft(s.re, s.im, k);
  const cells = s.masks.length * s.npt * k;
  const masks = new Uint8Array(cells);
  s.masks.forEach((m, i) => masks.set(m.mask, i * s.npt * k));
  const w = native.fxsMaskSpectra(masks, Float64Array.from(s.masks, (m) => m.count), s.npt, k, s.pairs);
  if (s.mre) {
    addInto(w.re, s.mre);
    addInto(w.im, s.mim!);
  }
  const m = native.fxsIrfft(w.re, w.im, k);
  const c2 = new Float64Array(n.length);
  for (let t = 0; t < m.length; t++) {
    m[t] = Math.round(m[t]!);
    c2[t] = m[t]! > 0 ? n[t]! / m[t]! : 0;
  }
  return { n, m, c2 };
}

/** The whole C2 and M, [npt][npt][nptAzim], from a state of allPairs (i <= j); C2[j][i][D] = C2[i][j][-D]. */
export function fullCorrelation(s: CorrelationState): { c2: Float64Array; m: Float64Array } {
  const { npt, nptAzim: k } = s;
  if (s.pairs.length !== npt * (npt + 1)) throw new Error('the whole C2 needs the state of every pair');
  const r = finishPairs(s);
  const c2 = new Float64Array(npt * npt * k);
  const m = new Float64Array(npt * npt * k);
  let p = 0;
  for (let i = 0; i < npt; i++)
    for (let j = i; j < npt; j++, p++) {
      const src = p * k;
      const ij = (i * npt + j) * k;
      const ji = (j * npt + i) * k;
      for (let d = 0; d < k; d++) {
        c2[ij + d] = r.c2[src + d]!;
        m[ij + d] = r.m[src + d]!;
        const back = d === 0 ? 0 : k - d;
        c2[ji + back] = r.c2[src + d]!;
        m[ji + back] = r.m[src + d]!;
      }
    }
  return { c2, m };
}

/** Delta axis in degrees: D * 360 / nptAzim. */
export function deltaAxis(nptAzim: number): Float64Array {
  return Float64Array.from({ length: nptAzim }, (_, d) => (d * 360) / nptAzim);
}
