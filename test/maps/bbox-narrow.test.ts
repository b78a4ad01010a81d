// Narrow 1D bbox maps (native/src/bbox_map.h): per pixel a first bin and a
// 24-bit share of the next, exceptions for pixels over three or more bins,
// the normalisation packed losslessly. Checked against a direct evaluation of
// pyFAI's bounding-box split written here (not the code under test), within
// the bound the quantised weights allow; bit for bit where the design says
// exact: one-bin pixels, the decoded normalisation, excluded pixels, any
// tiling, the AVX2 and the portable loop.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { readCbf } from '../../daemon/decode/cbf';
import { encodeCbf } from '../../daemon/decode/cbf-writer';
import type { Geometry } from '../../daemon/geometry/geometry';
import { mapSpec } from '../../daemon/integrate/azimuthal';
import { native, type IntegratorOptions, type NativeIntegration } from '../../daemon/native';
import { replay } from '../fuzz/inputs';
import { needData, readData } from '../helpers/data';

// MapHeader (native/src/integrator.h): byte offsets of the fields the tests touch.
const H = { version: 8, flags: 12, bins0: 24, bins: 152, weights: 200, nweights: 208, exceptions: 216, escapeIndex: 224 };
const NARROW = 32, NORM_PACKED = 64;
const flags = (blob: Uint8Array) => Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength).readUInt32LE(H.flags);
const field = (blob: Buffer, at: number) => Number(blob.readBigUInt64LE(at));

const ROWS = 103, COLS = 37, N = ROWS * COLS; // odd: not a multiple of 4 (AVX2 quads) nor of 128 (norm blocks)
const BINS = 50;
const RANGE: [number, number] = [0, 1.2];

/** A smooth radial layout with bounding boxes of a fraction of a bin, a few pixels over 3+ bins, a masked block. */
function layout() {
  const pos0 = new Float64Array(N), dpos0 = new Float64Array(N), norm = new Float32Array(N), mask = new Uint8Array(N);
  for (let i = 0; i < N; i++) {
    const r = i / COLS - 40.3, c = (i % COLS) - 10.7;
    pos0[i] = 0.01 * Math.hypot(r, c);
    dpos0[i] = 0.004 + 0.003 * Math.sin(i);
    // Solid-angle-like (a pixel is 1/2000 of the distance): smooth, with the float32 rounding of a product.
    const u = 0.0005 * Math.hypot(r, c);
    norm[i] = Math.fround(Math.fround(1 / (1 + u * u)) * Math.fround(0.9 + 0.1 * Math.cos(u)));
    mask[i] = i % COLS >= 20 && i % COLS < 23 && i < 30 * COLS ? 1 : 0;
  }
  for (const i of [5, 777, 1500, 3001]) dpos0[i] = 0.06; // five bins wide: exceptions
  return { pos0, dpos0, norm, mask };
}

/** Counts with markers (negative: excluded per frame), a bright pixel, zeros. */
function frame(): Int32Array {
  const f = new Int32Array(N);
  for (let i = 0; i < N; i++) f[i] = i % 97 === 0 ? -1 : (i * 7919) % 500;
  f[1234] = 4_000_000;
  f[777] = -2; // an exception pixel excluded
  f[3001] = 250;
  return f;
}

/** pyFAI's bbox split (splitBBox: C truncation, parts beyond an edge lumped into the edge bin), in doubles. */
function split(lo: number, hi: number): [number, number][] {
  const [min, maxIn] = RANGE;
  const delta = (maxIn * (1 + 2 ** -23) - min) / BINS;
  const flo = (lo - min) / delta, fhi = (hi - min) / delta;
  if (!(fhi > -1) || !(flo < BINS)) return [];
  const blo = Math.max(Math.trunc(Math.max(flo, -1)), 0), bhi = Math.min(Math.trunc(Math.min(fhi, BINS)), BINS - 1);
  if (blo === bhi) return [[blo, 1]];
  const inv = 1 / (fhi - flo);
  const out: [number, number][] = [[blo, inv * (blo + 1 - flo)]];
  for (let b = blo + 1; b < bhi; b++) out.push([b, inv]);
  out.push([bhi, inv * (fhi - bhi)]);
  return out;
}

function reference(l: ReturnType<typeof layout>, f: Int32Array, litThreshold: number) {
  const z = () => new Float64Array(BINS);
  const r = { signal: z(), variance: z(), normalization: z(), count: z(), absSignal: z(), sumV: z(), sumNorm: z(), touching: z(), lit: 0, excluded: 0 };
  for (let i = 0; i < N; i++) {
    if (l.mask[i]) continue;
    const parts = split(l.pos0[i]! - l.dpos0[i]!, l.pos0[i]! + l.dpos0[i]!);
    if (!parts.length) continue;
    const x = f[i]!;
    if (x < 0) {
      r.excluded++;
      continue;
    }
    const v = Math.max(x, 1);
    if (x > litThreshold) r.lit++;
    for (const [b, w] of parts) {
      r.signal[b] += w * x;
      r.variance[b] += w * w * v;
      r.normalization[b] += w * l.norm[i]!;
      r.count[b] += w;
      r.absSignal[b] += x;
      r.sumV[b] += v;
      r.sumNorm[b] += l.norm[i]!;
      r.touching[b] += 1;
    }
  }
  return r;
}

const options = (l: ReturnType<typeof layout>): IntegratorOptions => ({ pos0: l.pos0, dpos0: l.dpos0, norm: l.norm, mask: l.mask, bins0: BINS, range0: RANGE });

function digest(r: NativeIntegration): string {
  const h = createHash('sha256');
  for (const k of ['signal', 'variance', 'normalization', 'count', 'intensity', 'sigma'] as const) h.update(new Uint8Array(Float64Array.from(r[k]).buffer));
  return h.update(`${r.lit} ${r.excluded}`).digest('hex');
}

function narrowDigest(): string {
  const l = layout();
  return digest(new native.Integrator(options(l)).integrate(frame(), { litThreshold: 100 }));
}

if (process.argv.includes('--digest')) {
  process.stdout.write(`DIGEST ${narrowDigest()}\n`);
} else {
  t.test('narrow map against a direct evaluation of the bbox split', async (t) => {
    const l = layout();
    const integ = new native.Integrator(options(l));
    const f = frame();
    const got = integ.integrate(f, { litThreshold: 100 });
    const ref = reference(l, f, 100);
    // Each weight is off by at most 2^-25 (the 24-bit share) plus its float32 rounding (2^-24 relative), so a
    // bin's sum is off by at most 1.5e-7 per unit of what touches it (twice that for squared weights).
    const e = 1.5e-7;
    let worst = 0;
    for (let b = 0; b < BINS; b++) {
      const checks: [string, number, number, number][] = [
        ['signal', got.signal[b]!, ref.signal[b]!, e * ref.absSignal[b]!],
        ['variance', got.variance[b]!, ref.variance[b]!, 2 * e * ref.sumV[b]!],
        ['normalization', got.normalization[b]!, ref.normalization[b]!, e * ref.sumNorm[b]!],
        ['count', got.count[b]!, ref.count[b]!, e * ref.touching[b]!],
      ];
      for (const [name, ours, theirs, bound] of checks) {
        const d = Math.abs(ours - theirs);
        worst = Math.max(worst, d / Math.max(Math.abs(theirs), 1e-300));
        if (!(d <= bound + 1e-12 * Math.abs(theirs))) t.fail(`bin ${b} ${name}: ${ours} against ${theirs} (bound ${bound})`);
      }
    }
    t.comment(`worst relative difference from exact weights: ${worst.toExponential(2)}`);
    t.ok(ref.touching.some((n) => n > 0) && worst > 0, 'weights are quantised (and the comparison sees it)');
    t.equal(got.lit, ref.lit, 'lit pixels');
    t.equal(got.excluded, ref.excluded, 'excluded pixels');
  });

  t.test('the layout is the narrow one, with exceptions and a packed normalisation', async (t) => {
    const l = layout();
    const spec = { geometry: { dist: 0.2, poni1: 0.01, poni2: 0.01, rot1: 0, rot2: 0, rot3: 0, pixel1: 172e-6, pixel2: 172e-6, wavelength: 1e-10 }, rows: 195, cols: 487, radial: 'q' as const, split: true, twoD: false, solidAngle: true, polarization: 0.99, bins0: 300 };
    const blob = native.buildMap(spec);
    t.ok(flags(blob) & NARROW, 'geometry map: narrow');
    t.ok(flags(blob) & NORM_PACKED, 'geometry map: solid angle x polarization packed');
    t.ok(blob.length < 6.4 * 195 * 487 + 16 * 300 + 4096, `${(blob.length / (195 * 487)).toFixed(2)} bytes per pixel`);
    const synthetic = mapFromOptions(options(l));
    t.ok(flags(synthetic) & NARROW && flags(synthetic) & NORM_PACKED, 'synthetic layout: narrow, normalisation packed');
    t.equal(field(synthetic, H.nweights), 4, 'the four pixels over five bins are exceptions');
  });

  t.test('one-bin pixels add exactly what a direct map adds, excluded pixels included', async (t) => {
    // Pixel centres at bin centres with boxes a thousandth of a bin wide: every pixel in one bin.
    const pos0 = new Float64Array(N), dpos0 = new Float64Array(N).fill(1e-5), norm = new Float32Array(N), mask = new Uint8Array(N);
    const delta = (RANGE[1] * (1 + 2 ** -23)) / BINS;
    for (let i = 0; i < N; i++) {
      pos0[i] = ((Math.floor(i / COLS + (i % COLS) / 3) % BINS) + 0.5) * delta;
      norm[i] = Math.fround(1 / (1 + 0.001 * i));
      mask[i] = i % 101 === 7 ? 1 : 0;
    }
    const split = new native.Integrator({ pos0, dpos0, norm, mask, bins0: BINS, range0: RANGE });
    const blob = split.mapBlob();
    t.ok(flags(blob) & NARROW && flags(blob) & NORM_PACKED, 'narrow map, packed normalisation (the direct one keeps floats)');
    const direct = new native.Integrator({ pos0, norm, mask, bins0: BINS, range0: RANGE });
    const f = frame();
    for (const [what, o] of [
      ['plain', {}],
      ['lit-pixel veto', { litThreshold: 200 }],
      ['saturation limit', { maxValid: 300 }],
    ] as const) {
      const a = split.integrate(f, o), b = direct.integrate(f, o);
      t.ok(a.excluded > 0, `${what}: the frame excludes pixels (${a.excluded})`);
      for (const k of ['signal', 'variance', 'normalization', 'count', 'intensity', 'sigma'] as const) t.same(Array.from(a[k]), Array.from(b[k]), `${what}: ${k}`);
      t.equal(a.lit, b.lit, `${what}: lit`);
      t.equal(a.excluded, b.excluded, `${what}: excluded`);
    }
  });

  t.test('the packed normalisation decodes bit for bit; noise stays plain', async (t) => {
    const l = layout();
    const cases: [string, Float32Array, boolean][] = [
      ['smooth', l.norm, true],
      ['noise', Float32Array.from({ length: N }, (_, i) => ((i * 2654435761) % 1000003) / 1000003 + 0.5), false],
      ['jumps, zeros, negatives, tiny and huge values', Float32Array.from(l.norm, (v, i) => (i % 500 === 3 ? 0 : i % 333 === 1 ? -v : i % 777 === 5 ? 1e-40 : i % 901 === 9 ? 3e38 : v)), true],
    ];
    for (const [what, norm, packed] of cases) {
      const pos0 = l.pos0, dpos0 = l.dpos0;
      const blob = mapFromOptions({ pos0, dpos0, norm, mask: l.mask, bins0: BINS, range0: RANGE });
      t.equal(Boolean(flags(blob) & NORM_PACKED), packed, `${what}: ${packed ? 'packed' : 'plain'}`);
      const back = new Uint32Array(native.mapNorm(blob).buffer), want = new Uint32Array(norm.buffer);
      let bad = 0;
      for (let i = 0; i < N; i++) if (!l.mask[i] && split(pos0[i]! - dpos0[i]!, pos0[i]! + dpos0[i]!).length && back[i] !== want[i]) bad++;
      t.equal(bad, 0, `${what}: every mapped pixel's normalisation, bit for bit`);
    }
  });

  t.test('any tiling adds in the same order: integrate equals integrateCbf (16k tiles)', async (t) => {
    // 40 000 pixels: several tiles, exceptions in more than one.
    const rows = 200, cols = 200, n = rows * cols;
    const pos0 = new Float64Array(n), dpos0 = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      pos0[i] = 0.01 * Math.hypot(i / cols - 90.2, (i % cols) - 80.9);
      dpos0[i] = i % 4999 === 11 ? 0.05 : 0.005;
    }
    const f = new Int32Array(n);
    for (let i = 0; i < n; i++) f[i] = i % 89 === 0 ? -1 : (i * 7919) % 300;
    const integ = new native.Integrator({ pos0, dpos0, bins0: 300 });
    const a = integ.integrate(f, { litThreshold: 50 }), b = integ.integrateCbf(encodeCbf(f, rows, cols), { litThreshold: 50 });
    t.equal(digest(b), digest(a), 'bit for bit');
    t.ok(a.excluded > 0 && a.lit > 0, 'exclusions and lit pixels present');
  });

  t.test('float and 16-bit frames take the portable loop and give the integer frame sums', async (t) => {
    const l = layout();
    const integ = new native.Integrator(options(l));
    const f = frame();
    const a = integ.integrate(f, { litThreshold: 100 });
    t.equal(digest(integ.integrate(Float32Array.from(f), { litThreshold: 100 })), digest(a), 'Float32Array: bit for bit');
    // Unsigned: markers become 65535, excluded as above the limit; the bright pixel is clipped under it.
    const u16 = Uint16Array.from(f, (v) => (v < 0 ? 65535 : Math.min(v, 60000)));
    const i32 = Int32Array.from(f, (v) => (v < 0 ? -1 : Math.min(v, 60000)));
    t.equal(digest(integ.integrate(u16, { litThreshold: 100, maxValid: 65534 })), digest(integ.integrate(i32, { litThreshold: 100, maxValid: 65534 })), 'Uint16Array: bit for bit');
    // An infinite value in a pixel that lies in one bin must not turn the next bin's sums into NaN (0 x inf).
    const pos0 = Float64Array.from({ length: 64 }, (_, i) => 0.05 + (i % 8) * 0.1), dpos0 = new Float64Array(64).fill(1e-4);
    const one = new native.Integrator({ pos0, dpos0, bins0: 8, range0: [0, 0.8] });
    const x = new Float32Array(64).fill(2);
    x[3] = Infinity;
    const r = one.integrate(x);
    t.equal(r.signal[3], Infinity, 'the own bin of the pixel is infinite');
    t.ok(Array.from(r.signal).every((v, b) => b === 3 || v === 16), 'every other bin keeps its finite sum');
  });

  t.test('AVX2 and portable loops give identical sums', async (t) => {
    const child = spawnSync(process.execPath, [__filename, '--digest'], { env: { ...process.env, BEAMEDGE_KERNELS: 'scalar' }, encoding: 'utf8' });
    t.equal(child.status, 0, `child exited 0 ${child.stderr.slice(0, 500)}`);
    const line = child.stdout.split('\n').find((x) => x.startsWith('DIGEST ')) ?? 'DIGEST none';
    t.equal(line.slice(7), narrowDigest(), 'same digest');
  });

  t.test('a damaged narrow map is refused before any frame reads it', async (t) => {
    const l = layout();
    const good = mapFromOptions(options(l));
    t.equal(native.checkMap(good, true), '', 'a fresh map passes');
    const damaged = (what: string, change: (b: Buffer) => void, expect: RegExp) => {
      const b = Buffer.from(good);
      change(b);
      t.match(native.checkMap(b, false), expect, `${what}: checkMap says so`);
      t.throws(() => new native.Integrator({ map: b }), expect, `${what}: the integrator refuses it`);
    };
    const bins0 = good.readInt32LE(H.bins0);
    damaged('a first bin past the discard bin', (b) => b.writeUInt16LE(bins0 + 1, field(b, H.bins) + 2 * 10), /bin index out of range/);
    const exc = field(good, H.exceptions);
    damaged('an exception past the bins', (b) => b.writeUInt32LE(bins0 - 2, exc + 4), /bin index out of range/);
    damaged('exceptions out of order', (b) => b.writeUInt32LE(N - 1, exc), /exception list inconsistent/);
    damaged('an exception past the frame', (b) => b.writeUInt32LE(N + 5, exc + 24 * 3), /exception list inconsistent/);
    damaged('more exceptions than the section holds', (b) => b.writeBigUInt64LE(BigInt(N), H.nweights), /out of bounds/);
    damaged('a normalisation escape index off by one', (b) => b.writeUInt32LE(b.readUInt32LE(field(b, H.escapeIndex) + 4) + 1, field(b, H.escapeIndex) + 4), /escapes inconsistent/);
    damaged('narrow and 2D at once', (b) => b.writeUInt32LE(flags(b) | 2, H.flags), /flags inconsistent/);
    damaged('a packed normalisation without a narrow map', (b) => b.writeUInt32LE(flags(b) & ~NARROW, H.flags), /flags inconsistent/);
    damaged('a version 1 map (the previous format)', (b) => b.writeUInt32LE(1, H.version), /map format version 1, expected 2/);
    t.throws(() => new native.Integrator({ map: good.subarray(0, good.length - 8) }), /bytes, its header says/);
  });

  t.test('the map_check fuzz input layout replays through the addon', async (t) => {
    // native/fuzz/map_check.cc: [selector] then 5-byte edits; checkMap and the Integrator must agree.
    const edit = (off: number, v: number) => [off & 255, (off >> 8) & 255, (off >> 16) & 255, off >>> 24, v];
    t.same(replay('map_check', Uint8Array.from([40])), { outcome: 'result' }, 'narrow map, packed normalisation, unedited');
    t.same(replay('map_check', Uint8Array.from([104])), { outcome: 'result' }, '2D bbox entry table, unedited');
    const r = replay('map_check', Uint8Array.from([40, ...edit(12, 0x7f)]));
    t.equal(r.outcome, 'error', 'every flag set: refused');
    t.match(r.message ?? '', /flags inconsistent/);
  });

  t.test('the 6M thau bbox map is narrow and under 40 MB', async (t) => {
    if (!needData(t)) return;
    const cbf = readCbf(readData('cbf', 'thau_3_2_0001.cbf'));
    const mask = Uint8Array.from(cbf.pixels, (v) => (v < 0 ? 1 : 0));
    const geometry: Geometry = { dist: 0.351, poni1: 0.22479712, poni2: 0.21699692, rot1: 0, rot2: 0, rot3: 0, pixel1: 172e-6, pixel2: 172e-6, wavelength: 0.96859e-10 };
    const blob = native.buildMap(mapSpec({ geometry, shape: cbf.shape, npt: 1000, unit: 'q_nm^-1', split: 'bbox', mask, polarization: 0.99 }));
    t.ok(flags(blob) & NARROW && flags(blob) & NORM_PACKED, 'narrow, normalisation packed');
    t.ok(blob.length < 40e6, `${(blob.length / 1e6).toFixed(1)} MB (${(blob.length / cbf.pixels.length).toFixed(2)} bytes per pixel)`);
  });
}

/** The blob an integrator builds from these options (build_map, as the map store's builds). */
function mapFromOptions(o: IntegratorOptions): Buffer {
  return new native.Integrator(o).mapBlob();
}
