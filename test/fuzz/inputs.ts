// The input layouts of the libFuzzer targets (native/fuzz/fuzz_input.h), and
// each target's input run through the addon's JavaScript entry points, so
// that the committed regression inputs are also checked by `npm test`,
// without clang.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { native, type FrameOptions, type IntegratorOptions } from '../../daemon/native';
import { peakBuffers } from '../../daemon/spots/peakfinder8';
import { repoRoot } from '../helpers/data';

export const FUZZ_DIR = path.join(repoRoot, 'native', 'fuzz');
export const REGRESSIONS_DIR = path.join(FUZZ_DIR, 'regressions');

/** Targets whose input is [selector][output size, u24 LE] payload. */
const PREFIXED = new Set(['byte_offset_avx2', 'byte_offset_scalar', 'lz4_block', 'lz4_framed', 'bslz4']);
export const TARGETS = ['cbf', 'cbf_integrate', 'map_check', 'jungfrau', 'pedestal', 'dispersion', 'peakfinder8', ...PREFIXED];

/** A property the libFuzzer target checks does not hold through the addon either: never an acceptable outcome. */
export class FuzzPropertyViolation extends Error {
  override name = 'FuzzPropertyViolation';
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new FuzzPropertyViolation(what);
}

export function prefixed(selector: number, outSize: number, payload: Uint8Array): Buffer {
  if (!(outSize >= 0 && outSize < 2 ** 24)) throw new RangeError(`output size ${outSize} does not fit 24 bits`);
  return Buffer.concat([Buffer.from([selector, outSize & 0xff, (outSize >> 8) & 0xff, outSize >> 16]), payload]);
}

interface Prefixed {
  selector: number;
  outSize: number;
  payload: Uint8Array;
}

function splitPrefix(input: Uint8Array): Prefixed | null {
  if (input.length < 4) return null;
  return { selector: input[0]!, outSize: input[1]! | (input[2]! << 8) | (input[3]! << 16), payload: input.subarray(4) };
}

/** The synthetic pixel-to-bin map and frame options of native/fuzz/cbf_integrate.cc. */
function integrateCbf(input: Uint8Array): void {
  if (input.length < 18) return;
  const mapSel = input[0]!;
  const frameSel = input[1]!;
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const limit = view.getFloat64(2, true);
  const threshold = view.getFloat64(10, true);
  const cbf = input.subarray(18);
  let npix = 64;
  try {
    npix = native.cbfLocate(cbf).elements;
  } catch {
    // any size works for a file that the locator rejects
  }
  if (mapSel & 0x80) npix++;
  npix = Math.max(npix, 2);
  const pos0 = new Float64Array(npix);
  const pos1 = new Float64Array(npix);
  const mask = new Uint8Array(npix);
  const norm = new Float32Array(npix);
  for (let i = 0; i < npix; i++) {
    pos0[i] = ((i * 7919) % 1009) * 0.01;
    pos1[i] = ((i * 31) % 360) * (Math.PI / 180) - Math.PI;
    mask[i] = i % 7 === 3 ? 1 : 0;
    norm[i] = 0.5 + (i % 5) * 0.25;
  }
  pos0[0] = 0;
  pos0[1] = 10;
  mask[0] = mask[1] = 0;
  const o: IntegratorOptions = { pos0, bins0: 1 + 9 * ((mapSel >> 4) & 7) };
  if (mapSel & 1) o.dpos0 = new Float64Array(npix).fill(0.37);
  if (mapSel & 2) {
    o.pos1 = pos1;
    if (mapSel & 1) o.dpos1 = new Float64Array(npix).fill(0.05);
    o.bins1 = 5;
  }
  if (mapSel & 4) o.mask = mask;
  if (mapSel & 8) o.norm = norm;
  const f: FrameOptions = {};
  if (frameSel & 1) f.litThreshold = threshold;
  if (frameSel & 2) f.maxValid = limit;
  if (frameSel & 4) (f.dummy = 7), (f.deltaDummy = 0.5);
  if (frameSel & 8) f.dark = new Float32Array(npix).fill(0.5);
  if (frameSel & 16) f.empty = -1;
  new native.Integrator(o).integrateCbf(cbf, f);
}

/** native/fuzz/map_check.cc: a small valid map, edited; checkMap and the Integrator must agree, and an accepted map integrates. */
function mapCheck(input: Uint8Array): void {
  if (input.length < 1) return;
  const sel = input[0]!;
  const npix = 1007;
  const pos0 = new Float64Array(npix), dpos0 = new Float64Array(npix), pos1 = new Float64Array(npix), mask = new Uint8Array(npix), norm = new Float32Array(npix);
  for (let i = 0; i < npix; i++) {
    pos0[i] = ((i * 7919) % 1009) * 0.01;
    dpos0[i] = i % 23 === 0 ? 0.37 : 0.04;
    pos1[i] = ((i * 31) % 360) * (Math.PI / 180) - Math.PI;
    mask[i] = i % 7 === 3 ? 1 : 0;
    norm[i] = 1 / (1 + 1e-6 * i);
  }
  pos0[0] = 0;
  pos0[1] = 10;
  mask[0] = mask[1] = 0;
  const o: IntegratorOptions = { pos0, bins0: 10 + 9 * (sel & 7) };
  if (sel & 32) o.dpos0 = dpos0;
  if (sel & 64) {
    o.pos1 = pos1;
    if (sel & 32) o.dpos1 = new Float64Array(npix).fill(0.05);
    o.bins1 = 5;
  }
  if (sel & 16) o.mask = mask;
  if (sel & 8) o.norm = norm;
  const blob = new native.Integrator(o).mapBlob();
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  for (let k = 1; k + 5 <= input.length; k += 5) blob[view.getUint32(k, true) % blob.length] = input[k + 4]!;
  const accepted = native.checkMap(blob, false) === '';
  let integ;
  try {
    integ = new native.Integrator({ map: blob });
  } catch (err) {
    check(!accepted, 'checkMap accepts a map the Integrator refuses');
    throw err;
  }
  check(accepted, 'the Integrator accepts a map checkMap refuses');
  // The map's own pixel count (MapHeader.npix): an edit may change it.
  const n = Number(blob.readBigUInt64LE(16));
  const px = Int32Array.from({ length: n }, (_, i) => (i % 17 === 0 ? -1 : (i * 7919) % 500));
  integ.integrate(px, { litThreshold: 100 });
  integ.integrate(Float32Array.from({ length: n }, (_, i) => (i % 19 === 0 ? NaN : (i % 300) * 0.5)));
}

/** native/fuzz/jungfrau.cc: the AVX2 (default) and the portable kernel on the same frame, through the addon. */
function jungfrau(input: Uint8Array): void {
  const HEADER = 25;
  const RECORD = 38;
  if (input.length < HEADER) return;
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const flags = input[0]!;
  const tame = (flags & 8) !== 0;
  const n = Math.floor((input.length - HEADER) / RECORD);
  const tamePedestal = (b: number) => (b >>> 28 === 0xf ? NaN : (b & 0x3fff) + ((b >>> 14) & 0xff) / 256);
  const tameFactor = (b: number) => (b >>> 28 === 0xf ? NaN : Math.fround(((b % 2001) - 1000) / 1000));
  const raw = new Uint16Array(n);
  const pedestal = new Float32Array(3 * n);
  const factor = new Float32Array(3 * n);
  const mask = new Uint32Array(n);
  const tped = new Float32Array(n);
  const trms = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = HEADER + i * RECORD;
    let w = view.getUint16(r, true);
    if (flags & 16 && (w & 0x0f00) !== 0x0f00) w &= 0x3fff;
    raw[i] = w;
    for (let g = 0; g < 3; g++) {
      pedestal[g * n + i] = tame ? tamePedestal(view.getUint32(r + 2 + 4 * g, true)) : view.getFloat32(r + 2 + 4 * g, true);
      factor[g * n + i] = tame ? tameFactor(view.getUint32(r + 14 + 4 * g, true)) : view.getFloat32(r + 14 + 4 * g, true);
    }
    mask[i] = view.getUint32(r + 26, true);
    tped[i] = tame ? tamePedestal(view.getUint32(r + 30, true)) : view.getFloat32(r + 30, true);
    trms[i] = tame ? (view.getUint32(r + 34, true) % 200) / 4 : view.getFloat32(r + 34, true);
  }
  const exclude = Uint32Array.from([0, 1, 2], (g) => view.getUint32(1 + 4 * g, true));
  let lit = view.getFloat32(13, true);
  if (Number.isNaN(lit)) lit = 0;
  let k = Math.abs(view.getFloat32(17, true));
  if (!Number.isFinite(k)) k = 1;
  let window = view.getFloat32(21, true);
  if (!(window >= 1) || !Number.isFinite(window)) window = 128;
  const run = (kernel?: 'scalar') => {
    const out = new Float32Array(n);
    const track = flags & 4 ? { pedestal: tped.slice(), rms: trms, k, window } : undefined;
    const counts = native.jungfrauConvert(raw, pedestal, factor, flags & 1 ? mask : null, exclude, out, {
      ...(flags & 2 ? { litThreshold: lit } : {}),
      ...(track ? { track } : {}),
      ...(kernel ? { kernel } : {}),
    });
    return { out, counts, tracked: track?.pedestal ?? tped };
  };
  const a = run();
  const b = run('scalar');
  const sum = (c: typeof a.counts) => c.g0 + c.g1 + c.g2 + c.saturated + c.invalidCode + c.errorWord + c.masked;
  check(sum(a.counts) === n && sum(b.counts) === n, 'counts do not add up to the pixels');
  check(JSON.stringify(a.counts) === JSON.stringify(b.counts), 'kernels return different counts');
  const same = (x: Float32Array, y: Float32Array) => {
    const xb = new Uint32Array(x.buffer);
    const yb = new Uint32Array(y.buffer);
    for (let i = 0; i < x.length; i++) if (!(Number.isNaN(x[i]!) && Number.isNaN(y[i]!)) && xb[i] !== yb[i]) return false;
    return true;
  };
  check(same(a.out, b.out), 'kernels convert to different values or NaN positions');
  check(same(a.tracked, b.tracked), 'kernels track the G0 pedestal differently');
  let nan = 0;
  for (let i = 0; i < n; i++) if (Number.isNaN(b.out[i]!)) nan++;
  check(nan === n - b.counts.g0 - b.counts.g1 - b.counts.g2, 'NaN pixels are not the excluded ones');
}

/** native/fuzz/pedestal.cc: the dark-run accumulator against counts and a two-pass rms, through the addon. */
function pedestal(input: Uint8Array): void {
  if (input.length < 2) return;
  const pixels = (input[0]! & 63) + 1;
  const frames = Math.floor((input.length - 2) / (2 * pixels));
  const resetAfter = input[1]!;
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const acc = new native.PedestalAccumulator(pixels);
  let seen: number[][] = Array.from({ length: 3 * pixels }, () => []);
  let since = 0;
  const frame = new Uint16Array(pixels);
  for (let f = 0; f < frames; f++) {
    for (let i = 0; i < pixels; i++) frame[i] = view.getUint16(2 + 2 * (f * pixels + i), true);
    acc.add(frame);
    since++;
    for (let i = 0; i < pixels; i++) {
      const w = frame[i]!;
      const code = w >> 14;
      if (w === 0xffff || w === 0xc000 || code === 2) continue;
      seen[(code === 3 ? 2 : code) * pixels + i]!.push(w & 0x3fff);
    }
    if (f === resetAfter) {
      acc.reset();
      since = 0;
      seen = Array.from({ length: 3 * pixels }, () => []);
    }
  }
  check(acc.frames() === since, 'frames() is not the frames added since the last reset');
  const counts = acc.counts();
  const mean = new Float32Array(3 * pixels);
  const rms = new Float32Array(3 * pixels);
  acc.stats(mean, rms);
  for (let k = 0; k < 3 * pixels; k++) {
    const s = seen[k]!;
    check(counts[k] === s.length, 'frames per pixel and gain miscounted');
    if (s.length === 0) {
      check(Number.isNaN(mean[k]!) && Number.isNaN(rms[k]!), 'a gain a pixel never was in has a mean or rms');
      continue;
    }
    const m = s.reduce((a, v) => a + v, 0) / s.length;
    const r = Math.sqrt(s.reduce((a, v) => a + (v - m) * (v - m), 0) / s.length);
    check(Math.abs(mean[k]! - m) <= 1e-6 * m + 1e-6, 'mean differs from the reference');
    check(Math.abs(rms[k]! - r) <= 1e-6 * r + 1e-6, 'rms differs from the two-pass reference');
  }
}

/** native/fuzz/dispersion.cc: integer path = reference path, no masked pixel marked, spots cover the strong pixels. */
function dispersion(input: Uint8Array): void {
  if (input.length < 8) return;
  const w = (input[0]! & 31) + 1;
  const h = (input[1]! & 31) + 1;
  const n = w * h;
  const flags = input[5]!;
  const params = {
    kernelX: (input[2]! % 4) + 1,
    kernelY: (input[3]! % 4) + 1,
    minLocal: (input[4]! << 24) >> 24,
    extended: (flags & 1) !== 0,
    gain: flags & 2 ? 2.5 : null,
    sigmaBackground: input[6]! / 4,
    sigmaStrong: input[7]! / 4,
  };
  const img = new Int32Array(n);
  const mask = new Uint8Array(n);
  let q = 8;
  for (let k = 0; k < n && input.length - q >= 2; k++, q += 2) img[k] = ((input[q]! | (input[q + 1]! << 8)) << 16) >> 16;
  for (let k = 0; k < n && input.length - q >= 1; k++, q++) mask[k] = input[q]! & 1;
  let f;
  try {
    f = new native.DispersionSpotFinder(w, h, params);
  } catch (e) {
    if (e instanceof RangeError) return;
    throw e;
  }
  const a = new Uint8Array(n);
  const b = new Uint8Array(n);
  const ca = f.threshold(img, mask, a);
  const cb = f.thresholdReference(img, mask, b);
  check(ca === cb, 'integer and reference paths count differently');
  for (let k = 0; k < n; k++) {
    check(a[k] === b[k], 'integer and reference paths differ');
    check(!(a[k] && mask[k]), 'a masked pixel is marked strong');
  }
  const spots = f.spots(img, a, { minSpotSize: 1, maxSpotSize: 1e6 });
  check(spots.reduce((s, x) => s + x.pixels, 0) === ca, 'spot pixels do not add up to the strong pixels');
}

/** native/fuzz/peakfinder8.cc: peakfinder8 on a small hostile frame, through the addon; same layout and properties. */
function peakfinder8(input: Uint8Array): void {
  if (input.length < 8) return;
  const w = (input[0]! & 31) + 3;
  const h = (input[1]! & 31) + 3;
  const n = w * h;
  const b2 = input[2]!;
  const params = {
    minPixCount: b2 & 3,
    localBgRadius: (b2 >> 2) & 3,
    maxNumPeaks: b2 >> 4,
    adcThresh: input[3]!,
    minSnr: Math.fround(input[4]! / 8),
    maxPixCount: input[5]! || 1,
    minRes: 0,
    maxRes: 1e4,
  };
  const cfs = Math.fround(input[6]! / 4);
  const css = Math.fround(input[7]! / 4);
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const frame = new Float32Array(n);
  const radius = new Float32Array(n);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const at = 8 + 2 * i;
    if (at + 1 < input.length) {
      frame[i] = view.getInt16(at, true);
      mask[i] = frame[i] === -32768 ? 1 : 0;
    }
    const dx = Math.fround((i % w) - cfs);
    const dy = Math.fround(Math.floor(i / w) - css);
    radius[i] = Math.sqrt(Math.fround(Math.fround(dx * dx) + Math.fround(dy * dy)));
  }
  const pf = new native.Peakfinder8(w, h, radius, mask, params);
  const outs = [0, 1].map(() => peakBuffers(params.maxNumPeaks));
  const found = outs.map((o) => pf.find(frame, o));
  check(found[0] === found[1], 'a second find() counts differently');
  const [a, b] = outs as [(typeof outs)[0], (typeof outs)[0]];
  for (let k = 0; k < Math.min(found[0]!, params.maxNumPeaks); k++) {
    check(a.fs[k] === b.fs[k] && a.ss[k] === b.ss[k] && a.intensity[k] === b.intensity[k] && a.pixels[k] === b.pixels[k], 'a second find() differs');
    check(a.pixels[k]! >= params.minPixCount && a.pixels[k]! <= params.maxPixCount, 'peak size outside min..max');
    check(a.snr[k]! >= params.minSnr, 'peak below min_snr');
    check(a.fs[k]! >= 0 && a.fs[k]! <= w - 1 && a.ss[k]! >= 0 && a.ss[k]! <= h - 1, 'centroid outside the frame');
  }
}

/**
 * Runs one fuzz input of `target` through the addon: 'result' when it
 * decodes, 'error' with the message when the addon throws an Error. Anything
 * else (a thrown non-Error, an unknown target) throws.
 */
export function replay(target: string, input: Uint8Array): { outcome: 'result' | 'error'; message?: string } {
  const run = (): void => {
    if (target === 'cbf') {
      native.cbfLocate(input);
      native.cbfDecode(input);
      return;
    }
    if (target === 'cbf_integrate') return integrateCbf(input);
    if (target === 'map_check') return mapCheck(input);
    if (target === 'jungfrau') return jungfrau(input);
    if (target === 'pedestal') return pedestal(input);
    if (target === 'dispersion') return dispersion(input);
    if (target === 'peakfinder8') return peakfinder8(input);
    if (!PREFIXED.has(target)) throw new TypeError(`unknown fuzz target '${target}'`);
    const p = splitPrefix(input);
    if (!p) return;
    if (target.startsWith('byte_offset_')) native.byteOffsetDecode(p.payload, Math.min(p.outSize, p.payload.length + 1));
    else if (target === 'lz4_block') native.lz4Decode(p.payload, new Uint8Array(p.outSize), false);
    else if (target === 'lz4_framed') native.lz4Decode(p.payload, new Uint8Array(p.outSize), true);
    else native.bslz4Decode(p.payload, new Uint8Array(p.outSize), 1 << (p.selector & 3));
  };
  try {
    run();
    return { outcome: 'result' };
  } catch (err) {
    if (err instanceof TypeError && /unknown fuzz target/.test(err.message)) throw err;
    if (err instanceof FuzzPropertyViolation) throw new Error(`${target}: ${err.message}`);
    if (err instanceof Error && err.message.length > 0) return { outcome: 'error', message: err.message };
    throw new Error(`${target}: the addon threw something that is not an Error: ${String(err)}`);
  }
}

export interface RegressionInput {
  target: string;
  name: string;
  file: string;
}

/** Every committed regression input, as native/fuzz/regressions/<target>/<name>. */
export function regressionInputs(): RegressionInput[] {
  if (!existsSync(REGRESSIONS_DIR)) return [];
  return readdirSync(REGRESSIONS_DIR)
    .sort()
    .flatMap((target) =>
      readdirSync(path.join(REGRESSIONS_DIR, target))
        .sort()
        .map((name) => ({ target, name, file: path.join(REGRESSIONS_DIR, target, name) })),
    );
}

// As a script: replays every regression input and prints one JSON line each,
// then the peak resident memory, so a test can run them in a child process
// with another kernel (BEAMEDGE_KERNELS=scalar) and see what they cost.
if (require.main === module) {
  for (const r of regressionInputs()) {
    const { outcome } = replay(r.target, readFileSync(r.file));
    process.stdout.write(JSON.stringify({ target: r.target, name: r.name, outcome }) + '\n');
  }
  process.stdout.write(JSON.stringify({ maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }) + '\n');
}
