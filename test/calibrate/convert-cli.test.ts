// beamedge convert through its command line: a set imported from the real
// module's constants, its five raw frames converted, and the result compared
// with Jungfraujoch's own conversion of the same frames; then inputs that must
// be refused without leaving an output behind.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { encodeNpy, readNpy } from '../../daemon/calibrate/npy';
import { dataFile, needData, readData, repoRoot } from '../helpers/data';
import { need } from '../helpers/need';

const BIN = path.join(repoRoot, 'dist', 'daemon', 'cli', 'main.js');
const ROWS = 512;
const COLS = 1024;
const N = ROWS * COLS;
const FRAMES = 5;

function beamedge(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const tmp = mkdtempSync(path.join(tmpdir(), 'beamedge-convert-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const setDir = path.join(tmp, 'set');
const raws = Array.from({ length: FRAMES }, (_, k) => `mod5_raw${k}.bin`);

/** Nothing left in tmp beside the set and the inputs: no output, no temporary file. */
const leftovers = (keep: string[]) => readdirSync(tmp).filter((f) => !keep.includes(f));

t.test('the real module against Jungfraujoch', async (t) => {
  if (!needData(t)) return;
  const f = (name: string) => dataFile('jungfrau', name);
  const imp = beamedge('calibrate', 'import', '--pedestal', f('mod5_pedeG0.bin'), f('mod5_pedeG1.bin'), f('mod5_pedeG2.bin'), '--rms', f('mod5_pedeG0_RMS.bin'), '--gain', f('mod5_gain_f64.bin'), '--shape', '512x1024', '--energy-kev', '12.398', '--out', setDir);
  t.equal(imp.code, 0, imp.err);

  const out = path.join(tmp, 'conv.npy');
  const r = beamedge('convert', ...raws.map(f), '--calibration', setDir, '--out', out);
  t.equal(r.code, 0, r.err);
  for (const name of raws) t.match(r.out, new RegExp(`${name}: 1 frame, excluded pixels: saturated \\d+, invalid gain code \\d+, error word \\d+, masked \\d+`));
  t.match(r.out, /float32 \(5, 512, 1024\) photons at 12\.398 keV/);
  t.match(r.out, /frames 5, pixels excluded \d+ of 2621440/);
  t.same(leftovers(['set', 'conv.npy']), [], 'no temporary file left');

  const got = readNpy(readFileSync(out), '<f4', out);
  t.same(got.shape, [FRAMES, ROWS, COLS]);
  const conv = got.data as Float32Array;
  let worst = 0;
  let ordinary = 0;
  let special = 0;
  let wrongNaN = 0;
  const reasons = { saturated: 0, invalid: 0, error: 0 };
  for (let k = 0; k < FRAMES; k++) {
    const rawBuf = readData('jungfrau', raws[k]!);
    const raw = new Uint16Array(rawBuf.buffer, rawBuf.byteOffset, N);
    const refBuf = readData('jungfrau', `mod5_conv${k}.bin`);
    const ref = new Float32Array(refBuf.buffer.slice(refBuf.byteOffset, refBuf.byteOffset + N * 4));
    for (let i = 0; i < N; i++) {
      const w = raw[i]!;
      const v = conv[k * N + i]!;
      const isSpecial = w === 0xc000 || w === 0xffff || w >> 14 === 2;
      if (isSpecial) {
        special++;
        if (w === 0xc000) reasons.saturated++;
        else if (w === 0xffff) reasons.error++;
        else reasons.invalid++;
        if (!Number.isNaN(v)) wrongNaN++;
        continue;
      }
      if (Number.isNaN(v)) {
        wrongNaN++;
        continue;
      }
      ordinary++;
      const want = ref[i]!;
      const rel = want === 0 ? Math.abs(v) : Math.abs(v - want) / Math.abs(want);
      if (rel > worst) worst = rel;
    }
  }
  t.equal(wrongNaN, 0, 'NaN exactly where the raw word is 0xC000, 0xFFFF or gain code 10');
  t.equal(ordinary + special, FRAMES * N);
  t.ok(worst <= 1e-5, `within 1e-5 relative of Jungfraujoch on ${ordinary} ordinary pixels (worst ${worst.toExponential(2)})`);
  t.comment(`max relative error vs Jungfraujoch ${worst.toExponential(3)} over ${ordinary} pixels; ${special} special words`);
  const line = (label: string) => Number(new RegExp(`^  ${label} +(\\d+)`, 'm').exec(r.out)?.[1]);
  t.equal(line('saturated'), reasons.saturated, 'saturated count in the summary');
  t.equal(line('invalid gain code'), reasons.invalid, 'invalid gain code count in the summary');
  t.equal(line('error word'), reasons.error, 'error word count in the summary');
  t.equal(line('masked'), 0, 'nothing masked by this set');

  const py = spawnSync('/usr/bin/python3', ['-c', 'import numpy, sys; a = numpy.load(sys.argv[1]); print(a.shape, a.dtype, int(numpy.isnan(a).sum()))', out], { encoding: 'utf8' });
  if (need(t, py.error === undefined && !/No module named/.test(py.stderr ?? ''), 'numpy for /usr/bin/python3 not installed', 'apt-get install python3-numpy')) {
    t.equal(py.status, 0, py.stderr);
    t.equal(py.stdout.trim(), `(5, 512, 1024) float32 ${special}`, 'numpy loads it: shape, dtype and NaN count');
  }

  // keV: the same pixels times E; a .npy input of two frames gives the same values.
  const npyIn = path.join(tmp, 'two.npy');
  const two = new Uint16Array(2 * N);
  for (let k = 0; k < 2; k++) {
    const b = readData('jungfrau', raws[k]!);
    two.set(new Uint16Array(b.buffer, b.byteOffset, N), k * N);
  }
  writeFileSync(npyIn, encodeNpy(two, [2, ROWS, COLS]));
  const kev = path.join(tmp, 'kev.npy');
  const rk = beamedge('convert', npyIn, '--calibration', setDir, '--unit', 'keV', '--out', kev);
  t.equal(rk.code, 0, rk.err);
  t.match(rk.out, /two\.npy: 2 frames/);
  const k = readNpy(readFileSync(kev), '<f4', kev);
  t.same(k.shape, [2, ROWS, COLS]);
  let kevWorst = 0;
  for (let i = 0; i < 2 * N; i++) {
    const a = (k.data as Float32Array)[i]!;
    const p = conv[i]!;
    if (Number.isNaN(p) !== Number.isNaN(a)) kevWorst = Infinity;
    else if (!Number.isNaN(p) && Math.abs(p) > 1e-3) kevWorst = Math.max(kevWorst, Math.abs(a / (p * 12.398) - 1));
  }
  t.ok(kevWorst < 1e-5, `keV = photons x E (worst ${kevWorst.toExponential(2)})`);
  rmSync(npyIn);
  rmSync(kev);
  rmSync(out);
});

t.test('error words, gain code 10 and masked pixels: NaN and counted by reason', async (t) => {
  if (!needData(t)) return;
  const f = (name: string) => dataFile('jungfrau', name);
  const maskFile = path.join(tmp, 'mask.npy');
  const mask = new Uint32Array(N);
  const masked = [5, 1000, 77777, 300001, N - 1];
  for (const i of masked) mask[i] = 1 << 8; // user
  writeFileSync(maskFile, encodeNpy(mask, [ROWS, COLS]));
  const maskedSet = path.join(tmp, 'masked-set');
  const imp = beamedge('calibrate', 'import', '--pedestal', f('mod5_pedeG0.bin'), f('mod5_pedeG1.bin'), f('mod5_pedeG2.bin'), '--gain', f('mod5_gain_f64.bin'), '--mask', maskFile, '--shape', '512x1024', '--energy-kev', '12.398', '--out', maskedSet);
  t.equal(imp.code, 0, imp.err);
  const b = readData('jungfrau', 'mod5_raw0.bin');
  const raw = new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + N * 2));
  const errors = [3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 100000];
  const invalid = [20, 21, 22, 23, 24, 25, 26, 27, 200000];
  for (const i of errors) raw[i] = 0xffff;
  for (const i of invalid) raw[i] = 0x8000 | (i & 0x3fff);
  const before = { saturated: 0 };
  for (let i = 0; i < N; i++) if (raw[i] === 0xc000 && !masked.includes(i)) before.saturated++;
  const input = path.join(tmp, 'specials.bin');
  writeFileSync(input, Buffer.from(raw.buffer));
  const out = path.join(tmp, 'specials.npy');
  const r = beamedge('convert', input, '--calibration', maskedSet, '--out', out);
  t.equal(r.code, 0, r.err);
  t.match(r.out, `specials.bin: 1 frame, excluded pixels: saturated ${before.saturated}, invalid gain code ${invalid.length}, error word ${errors.length}, masked ${masked.length}`);
  const v = readNpy(readFileSync(out), '<f4', out).data as Float32Array;
  const nan = new Set([...errors, ...invalid, ...masked]);
  for (let i = 0; i < N; i++) if (raw[i] === 0xc000) nan.add(i);
  let mismatches = 0;
  for (let i = 0; i < N; i++) if (Number.isNaN(v[i]!) !== nan.has(i)) mismatches++;
  t.equal(mismatches, 0, `NaN at exactly the ${nan.size} excluded pixels`);
  rmSync(out);
  rmSync(input);
  rmSync(maskFile);
  rmSync(maskedSet, { recursive: true });
});

t.test('hostile inputs: a clear error, a non-zero exit, no output', async (t) => {
  if (!needData(t)) return;
  const raw0 = dataFile('jungfrau', 'mod5_raw0.bin');
  const truncated = path.join(tmp, 'truncated.bin');
  writeFileSync(truncated, readFileSync(raw0).subarray(0, N * 2 - 6));
  const small = path.join(tmp, 'small.npy');
  writeFileSync(small, encodeNpy(new Uint16Array(64 * 128), [64, 128]));
  const inputs = ['set', 'truncated.bin', 'small.npy'];
  const out = path.join(tmp, 'hostile.npy');
  const cases: [string, string[], RegExp, number?][] = [
    ['wrong file size', [truncated, '--calibration', setDir], /truncated\.bin: 1048570 bytes is not a whole number of 512x1024 uint16 frames/],
    ['a good file, then a wrong one', [raw0, truncated, '--calibration', setDir], /truncated\.bin: .*not a whole number/],
    ['npy of another shape', [small, '--calibration', setDir], /small\.npy: frames are 64x128, the calibration set .* is 512x1024/],
    ['missing set', [raw0, '--calibration', path.join(tmp, 'nope')], /nope[/\\]calibration\.json: cannot read the calibration set: ENOENT/],
    ['shape unlike the set', [raw0, '--calibration', setDir, '--shape', '256x2048'], /--shape 256x2048, but the calibration set .* is 512x1024/],
    ['nonexistent input', [path.join(tmp, 'gone.bin'), '--calibration', setDir], /gone\.bin: cannot open \(ENOENT\)/],
    ['no --calibration', [raw0], /--calibration DIR is required/, 2],
    ['bad unit', [raw0, '--calibration', setDir, '--unit', 'eV'], /--unit: 'eV' is not one of photons, keV/, 2],
  ];
  for (const [what, args, message, code] of cases) {
    const r = beamedge('convert', ...args, '--out', out);
    if (code !== undefined) t.equal(r.code, code, `${what}: exit ${code}`);
    else t.not(r.code, 0, `${what}: non-zero exit`);
    t.match(r.err, message, `${what}: says why`);
    t.notOk(existsSync(out), `${what}: no output`);
    t.same(leftovers(inputs), [], `${what}: no temporary file`);
  }
});

t.test('a set without an energy needs --energy-kev for photons', async (t) => {
  if (!needData(t)) return;
  const f = (name: string) => dataFile('jungfrau', name);
  const noE = path.join(tmp, 'no-energy');
  const imp = beamedge('calibrate', 'import', '--pedestal', f('mod5_pedeG0.bin'), f('mod5_pedeG1.bin'), f('mod5_pedeG2.bin'), '--gain', f('mod5_gain_f64.bin'), '--shape', '512x1024', '--out', noE);
  t.equal(imp.code, 0, imp.err);
  const out = path.join(tmp, 'e.npy');
  const r = beamedge('convert', f('mod5_raw0.bin'), '--calibration', noE, '--out', out);
  t.equal(r.code, 2);
  t.match(r.err, /records no photon energy: give --energy-kev E/);
  t.notOk(existsSync(out));
  const ok = beamedge('convert', f('mod5_raw0.bin'), '--calibration', noE, '--energy-kev', '12.398', '--out', out);
  t.equal(ok.code, 0, ok.err);
  t.match(ok.out, /photons at 12\.398 keV/);
  rmSync(out);
  rmSync(noE, { recursive: true });
});
