// JUNGFRAU conversion against Jungfraujoch's own output for one real module,
// the AVX2 kernel against the scalar one, the special words, per-gain mask
// bits and G0 pedestal tracking against its closed form.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { flagBadGains } from '../../daemon/calibrate/constants-files';
import { JungfrauConverter } from '../../daemon/calibrate/jungfrau';
import { DEAD, excludeBitsPerGain, GAIN_UNUSABLE, NO_PEDESTAL, PEDESTAL_RMS, USER_MASKED, WRONG_GAIN } from '../../daemon/calibrate/mask-bits';
import { native, type JungfrauCounts } from '../../daemon/native';
import { repoRoot } from '../helpers/data';
import { need } from '../helpers/need';
import { haveJungfrau, jfArray, MOD5_ENERGY_KEV } from '../helpers/jungfrau';

const N = 512 * 1024;
const E = MOD5_ENERGY_KEV;
// What Jungfraujoch writes for a saturated pixel in these files (see data/README.md).
const JFJOCH_SATURATED = 32678;



function loadModule() {
  const pedestal = new Float32Array(3 * N);
  for (let g = 0; g < 3; g++) pedestal.set(jfArray(`mod5_pedeG${g}.bin`, Float32Array), g * N);
  const gain = jfArray('mod5_gain_f64.bin', Float64Array);
  const rms = jfArray('mod5_pedeG0_RMS.bin', Float32Array);
  const raw = [0, 1, 2, 3, 4].map((k) => jfArray(`mod5_raw${k}.bin`, Uint16Array));
  const conv = [0, 1, 2, 3, 4].map((k) => jfArray(`mod5_conv${k}.bin`, Float32Array));
  return { pedestal, gain, rms, raw, conv };
}

const total = (c: JungfrauCounts) => c.g0 + c.g1 + c.g2 + c.saturated + c.invalidCode + c.errorWord + c.masked;

t.test('matches Jungfraujoch on a real module within 1e-5 relative', async (t) => {
  if (!need(t, haveJungfrau(), 'JUNGFRAU data (shared/data/jungfrau) not found', 'required when CI=true')) return;
  const m = loadModule();
  const conv = JungfrauConverter.fromGain(m.pedestal, m.gain, E, 'photons');
  const out = new Float32Array(N);
  let maxRel = 0;
  for (let k = 0; k < 5; k++) {
    const raw = m.raw[k]!;
    const ref = m.conv[k]!;
    const c = conv.convert(raw, out);
    t.equal(total(c), N, `frame ${k}: every pixel counted once`);
    // Special = the words that carry no ADC value: 0xFFFF, gain code 10, 0xC000.
    let special = 0;
    let refSaturated = 0;
    let unflagged = 0;
    let bad = 0;
    for (let i = 0; i < N; i++) {
      const w = raw[i]!;
      const isSpecial = w === 0xffff || w >> 14 === 2 || w === 0xc000;
      if (ref[i] === JFJOCH_SATURATED) {
        refSaturated++;
        if (!Number.isNaN(out[i]!)) unflagged++;
      }
      if (isSpecial) {
        special++;
        if (!Number.isNaN(out[i]!)) unflagged++;
        continue;
      }
      const a = out[i]!;
      const b = ref[i]!;
      const diff = Math.abs(a - b);
      if (diff === 0) continue;
      const rel = diff / Math.abs(b);
      if (!(rel <= 1e-5)) bad++;
      if (rel > maxRel) maxRel = rel;
    }
    t.equal(bad, 0, `frame ${k}: every ordinary pixel within 1e-5 relative`);
    t.equal(unflagged, 0, `frame ${k}: every special pixel (and every pixel Jungfraujoch marks saturated) is NaN`);
    t.equal(c.saturated + c.errorWord + c.invalidCode, special, `frame ${k}: ${special} special pixels counted (${c.saturated} saturated, ${c.errorWord} 0xFFFF, ${c.invalidCode} code 10; G1 ${c.g1}, G2 ${c.g2})`);
    t.equal(refSaturated, c.saturated, `frame ${k}: Jungfraujoch's saturated pixels are ours`);
  }
  t.ok(maxRel <= 1e-5, `max relative error over 5 frames: ${maxRel.toExponential(2)}`);
});

t.test('the scalar kernel gives bit-identical output, counts and tracked pedestal', async (t) => {
  if (!need(t, haveJungfrau(), 'JUNGFRAU data (shared/data/jungfrau) not found', 'required when CI=true')) return;
  t.comment(`dispatched kernel: ${native.kernels.jungfrau}`);
  const addon = path.join(repoRoot, 'build', 'Release', 'beamedge.node');
  const child = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(addon)}).kernels.jungfrau)`], { env: { ...process.env, BEAMEDGE_KERNELS: 'scalar' }, encoding: 'utf8' });
  t.equal(child.stdout, 'scalar', 'BEAMEDGE_KERNELS=scalar selects the scalar kernel, as the option does');
  const m = loadModule();
  const factor = JungfrauConverter.factorsFromGain(m.gain, E);
  // A mask with every kind of bit on scattered pixels, and odd frame lengths (tails).
  const mask = new Uint32Array(N);
  for (let i = 0; i < N; i += 97) mask[i] = [DEAD, NO_PEDESTAL[0], NO_PEDESTAL[1], PEDESTAL_RMS[2], USER_MASKED][i % 5]!;
  const ex = excludeBitsPerGain();
  for (const n of [N, N - 5, 13]) {
    for (const [label, opts] of [['plain', {}], ['lit', { litThreshold: 0.5 }], ['track', { litThreshold: 2 }]] as const) {
      const outs: Float32Array[] = [];
      const counts: JungfrauCounts[] = [];
      const tracked: Float32Array[] = [];
      for (const kernel of [undefined, 'scalar'] as const) {
        const raw = m.raw[1]!.subarray(0, n);
        const ped = new Float32Array(3 * n);
        const fac = new Float32Array(3 * n);
        for (let g = 0; g < 3; g++) {
          ped.set(m.pedestal.subarray(g * N, g * N + n), g * n);
          fac.set(factor.subarray(g * N, g * N + n), g * n);
        }
        const out = new Float32Array(n);
        const track = label === 'track' ? { pedestal: ped.slice(0, n), rms: m.rms.slice(0, n), k: 3, window: 128 } : undefined;
        for (let rep = 0; rep < 3; rep++)
          counts.push(native.jungfrauConvert(raw, ped, fac, mask.subarray(0, n), ex, out, { ...opts, ...(track ? { track } : {}), ...(kernel ? { kernel } : {}) }));
        outs.push(out);
        if (track) tracked.push(track.pedestal);
      }
      const same = (a: ArrayBufferView, b: ArrayBufferView) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
      t.ok(same(outs[0]!, outs[1]!), `${n} pixels, ${label}: output bytes identical`);
      t.same(counts.slice(0, 3), counts.slice(3), `${n} pixels, ${label}: counts identical`);
      if (tracked.length) t.ok(same(tracked[0]!, tracked[1]!), `${n} pixels: tracked pedestal bytes identical after 3 frames`);
    }
  }
});

// A small synthetic calibration: pedestal 1000 / 14000 / 15000, gains 40 / -1.5 / -0.1.
function synthetic(n: number) {
  const pedestal = new Float32Array(3 * n);
  const gain = new Float64Array(3 * n);
  for (let i = 0; i < n; i++) {
    pedestal[i] = 1000;
    pedestal[n + i] = 14000;
    pedestal[2 * n + i] = 15000;
    gain[i] = 40;
    gain[n + i] = -1.5;
    gain[2 * n + i] = -0.1;
  }
  return { pedestal, gain };
}

t.test('special words and codes: counts and NaNs, on both kernels', async (t) => {
  const words = [0x0000 | 1400, 0xffff, 0x8000, 0x8123, 0xbfff, 0xc000, 0x4000 | 13000, 0xc000 | 14000, 0x0000 | 1000, 0x4000];
  const n = 40; // 4 x the list: covers the eight-pixel groups and the tail
  const raw = Uint16Array.from({ length: n }, (_, i) => words[i % words.length]!);
  const { pedestal, gain } = synthetic(n);
  const conv = JungfrauConverter.fromGain(pedestal, gain, 10, 'keV');
  for (const kernel of [undefined, 'scalar'] as const) {
    const out = new Float32Array(n);
    const c = conv.convert(raw, out, { litThreshold: 5, ...(kernel ? { kernel } : {}) });
    t.same(c, { g0: 8, g1: 8, g2: 4, saturated: 4, invalidCode: 12, errorWord: 4, masked: 0, lit: 16 }, `${kernel ?? native.kernels.jungfrau}: counts`);
    const at = (k: number) => out[k]!;
    t.equal(at(0), Math.fround(Math.fround(400) * Math.fround(1 / 40)), 'G0 keV');
    t.ok([1, 2, 3, 4, 5].every((k) => Number.isNaN(at(k))), '0xFFFF, code 10 and 0xC000 are NaN');
    t.equal(at(6), Math.fround(Math.fround(-1000) * Math.fround(1 / -1.5)), 'G1 keV');
    t.equal(at(7), Math.fround(Math.fround(-1000) * Math.fround(1 / -0.1)), 'G2 keV');
    t.equal(at(8), 0, 'G0 at the pedestal is 0');
    t.equal(at(9), Math.fround(Math.fround(-14000) * Math.fround(1 / -1.5)), '0x4000 (G1, ADC 0) is an ordinary G1 value');
  }
});

t.test('per-gain mask bits exclude only in their gain; general bits in every gain', async (t) => {
  const n = 24;
  // Pixels 0-7 in G0, 8-15 in G1, 16-23 in G2 (ADC mid-range).
  const raw = Uint16Array.from({ length: n }, (_, i) => [0x0000, 0x4000, 0xc000][Math.floor(i / 8)]! | 5000);
  const { pedestal, gain } = synthetic(n);
  const factor = JungfrauConverter.factorsFromGain(gain, E);
  for (let g = 0; g < 3; g++) {
    for (const bits of [NO_PEDESTAL[g], PEDESTAL_RMS[g], GAIN_UNUSABLE[g]]) {
      const mask = new Uint32Array(n).fill(bits);
      for (const kernel of [undefined, 'scalar'] as const) {
        const out = new Float32Array(n);
        const c = new JungfrauConverter({ pedestal, factor, mask }).convert(raw, out, kernel ? { kernel } : {});
        t.equal(c.masked, 8, `bit 0x${bits.toString(16)} (gain ${g}), ${kernel ?? 'dispatched'}: 8 masked`);
        for (let i = 0; i < n; i++) if (Number.isNaN(out[i]!) !== (Math.floor(i / 8) === g)) t.fail(`pixel ${i} with bit 0x${bits.toString(16)}`);
      }
    }
  }
  for (const bits of [DEAD, WRONG_GAIN, USER_MASKED]) {
    const out = new Float32Array(n);
    const c = new JungfrauConverter({ pedestal, factor, mask: new Uint32Array(n).fill(bits) }).convert(raw, out);
    t.equal(c.masked, n, `general bit 0x${bits.toString(16)}: every gain masked`);
  }
  // Folding the mask into the factors gives the same output and counts without a mask.
  const mask = Uint32Array.from({ length: n }, (_, i) => [0, NO_PEDESTAL[0], NO_PEDESTAL[1], PEDESTAL_RMS[2], DEAD][i % 5]!);
  const a = new Float32Array(n);
  const b = new Float32Array(n);
  const ca = new JungfrauConverter({ pedestal, factor, mask }).convert(raw, a);
  const cb = new JungfrauConverter({ pedestal, factor: JungfrauConverter.foldMask(factor.slice(), mask) }).convert(raw, b);
  t.same(cb, ca, 'folded mask: same counts');
  t.same(Array.from(b).map(String), Array.from(a).map(String), 'folded mask: same output');
  // Unusable gains give NaN factors, excluded even with no mask at all.
  const badGain = gain.slice();
  badGain[3] = 0;
  badGain[n + 9] = 1.5; // G1 of the wrong sign
  badGain[2 * n + 17] = NaN;
  const c = JungfrauConverter.fromGain(pedestal, badGain, E).convert(raw, new Float32Array(n));
  t.equal(c.masked, 3, 'zero, wrong-sign and NaN gains exclude the pixel in their gain');
  const marked = new Uint32Array(n);
  flagBadGains(badGain, marked);
  t.same([marked[3], marked[9], marked[17]], [GAIN_UNUSABLE[0], GAIN_UNUSABLE[1], GAIN_UNUSABLE[2]], 'flagBadGains sets bits 16-18');
});

t.test('G0 pedestal tracking follows the closed form, and only for G0 pixels within k * rms', async (t) => {
  const n = 37;
  const a = 1100; // constant dark level in ADU
  const p0 = 1000;
  const rms = 20;
  const windowN = 128;
  // 0-15: G0 at a; |a - p0| = 100 ADU = 5 rms, so k = 6 lets them track.
  // 16-23: G1 words; 24-31: G0 but masked; 32-36: G0 at a far level (beyond k * rms).
  const raw = Uint16Array.from({ length: n }, (_, i) => (i < 16 ? a : i < 24 ? 0x4000 | a : i < 32 ? a : 3000));
  const mask = Uint32Array.from({ length: n }, (_, i) => (i >= 24 && i < 32 ? DEAD : 0));
  const { pedestal, gain } = synthetic(n);
  const conv = new JungfrauConverter({ pedestal, factor: JungfrauConverter.factorsFromGain(gain, E), mask });
  for (const kernel of [undefined, 'scalar'] as const) {
    const tracked = new Float32Array(n).fill(p0);
    const track = { pedestal: tracked, rms: new Float32Array(n).fill(rms), k: 6, window: windowN };
    const out = new Float32Array(n);
    const frames = 300;
    for (let f = 0; f < frames; f++) conv.convert(raw, out, { track, ...(kernel ? { kernel } : {}) });
    const expected = a + (p0 - a) * Math.pow(1 - 1 / windowN, frames);
    const err = Math.abs(tracked[0]! - expected);
    t.ok(err < 1e-3, `${kernel ?? native.kernels.jungfrau}: after ${frames} frames ${tracked[0]} vs closed form ${expected.toFixed(4)} (|diff| ${err.toExponential(1)})`);
    t.ok(tracked.subarray(0, 16).every((v) => v === tracked[0]), 'every tracked G0 pixel moved alike');
    t.ok(tracked.subarray(16).every((v) => v === p0), 'G1, masked and beyond-k*rms pixels did not move');
    t.equal(pedestal[0], 1000, 'the applied pedestal is untouched');
  }
  // With k = 1 (the default) a level 5 rms away never starts moving.
  const tracked = new Float32Array(n).fill(p0);
  conv.convert(raw, new Float32Array(n), { track: { pedestal: tracked, rms: new Float32Array(n).fill(rms) } });
  t.ok(tracked.every((v) => v === p0), 'default k = 1: a jump of 5 rms is not tracked');
});

t.test('argument checks throw TypeErrors, never crash', async (t) => {
  const n = 16;
  const { pedestal, gain } = synthetic(n);
  const factor = JungfrauConverter.factorsFromGain(gain, E);
  const ex = excludeBitsPerGain();
  const raw = new Uint16Array(n);
  const out = new Float32Array(n);
  const call = (...args: unknown[]) => () => (native.jungfrauConvert as (...a: unknown[]) => unknown)(...args);
  t.throws(call(raw, pedestal.subarray(1), factor, null, ex, out), TypeError, 'short pedestal');
  t.throws(call(raw, pedestal, factor.subarray(3), null, ex, out), TypeError, 'short factor');
  t.throws(call(raw, pedestal, factor, new Uint32Array(3), ex, out), TypeError, 'short mask');
  t.throws(call(raw, pedestal, factor, new Uint8Array(n), ex, out), TypeError, 'mask of the wrong type');
  t.throws(call(raw, pedestal, factor, null, new Uint32Array(2), out), TypeError, 'excludeBits not 3');
  t.throws(call(raw, pedestal, factor, null, ex, new Float32Array(n - 1)), TypeError, 'short out');
  t.throws(call(new Int16Array(n), pedestal, factor, null, ex, out), TypeError, 'raw not Uint16Array');
  t.throws(call(raw, pedestal, factor, null, ex, out, { track: { pedestal: new Float32Array(n), rms: new Float32Array(2) } }), TypeError, 'short rms');
  t.throws(call(raw, pedestal, factor, null, ex, out, { track: { pedestal: new Float32Array(n), rms: new Float32Array(n), window: 0 } }), TypeError, 'window 0');
  t.throws(call(raw, pedestal, factor, null, ex, out, { kernel: 'avx512' }), TypeError, 'unknown kernel');
  t.throws(call(raw, pedestal), TypeError, 'too few arguments');
  // Shared memory works (worker threads share the calibration).
  const sab = new Float32Array(new SharedArrayBuffer(pedestal.byteLength));
  sab.set(pedestal);
  t.equal(new JungfrauConverter({ pedestal: sab, factor }).convert(raw, out).g0, n, 'SharedArrayBuffer-backed calibration');
  t.throws(() => new JungfrauConverter({ pedestal, factor: factor.subarray(1) }), RangeError, 'wrapper checks lengths too');
});
