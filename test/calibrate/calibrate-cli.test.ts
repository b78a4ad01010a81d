// beamedge calibrate through its command line: three dark runs into one set,
// a run received over TCP on top of it, PSI's constants imported, and inputs
// that must be refused without leaving a set behind.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadCalibrationSet } from '../../daemon/calibrate/calibration-set';
import { encodeNpy } from '../../daemon/calibrate/npy';
import { FrameSender } from '../../daemon/sim/sender';
import { dataFile, needData, readData, repoRoot } from '../helpers/data';
import { mulberry32, NormalTable } from './synth';

const BIN = path.join(repoRoot, 'dist', 'daemon', 'cli', 'main.js');
const ROWS = 64;
const COLS = 128;
const N = ROWS * COLS;
const SHAPE = `${ROWS}x${COLS}`;
const TRUE_PED = [2000, 13500, 14000];
const TRUE_RMS = [20, 6, 4];
const GAIN_BITS = [0, 0x4000, 0xc000];

function beamedge(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const tmp = mkdtempSync(path.join(tmpdir(), 'beamedge-calibrate-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const normal = new NormalTable(mulberry32(7), 1 << 16);

function darkFrames(gain: number, frames: number): Uint16Array<ArrayBuffer> {
  const all = new Uint16Array(frames * N);
  const ped = new Float32Array(N).fill(TRUE_PED[gain]!);
  const rms = new Float32Array(N).fill(TRUE_RMS[gain]!);
  for (let f = 0; f < frames; f++) normal.frame(ped, rms, all.subarray(f * N, (f + 1) * N), GAIN_BITS[gain]);
  return all;
}

const bytes = (a: Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const g0 = path.join(tmp, 'g0.bin');
const g1 = path.join(tmp, 'g1.npy');
const g2 = path.join(tmp, 'g2.bin');
writeFileSync(g0, bytes(darkFrames(0, 300)));
writeFileSync(g1, encodeNpy(darkFrames(1, 150), [150, ROWS, COLS]));
writeFileSync(g2, bytes(darkFrames(2, 150)));

function near(t: { ok(v: unknown, m: string): unknown }, got: Float32Array, gain: number, tol: number, what: string) {
  let worst = 0;
  for (let i = 0; i < N; i++) worst = Math.max(worst, Math.abs(got[gain * N + i]! - TRUE_PED[gain]!));
  t.ok(worst < tol, `${what}: G${gain} pedestals within ${tol} ADU of the truth (worst ${worst.toFixed(2)})`);
}

t.test('three dark runs make one set', async (t) => {
  const out = path.join(tmp, 'three');
  const r = beamedge('calibrate', 'pedestal', '--g0', g0, '--g1', g1, '--g2', g2, '--shape', SHAPE, '--energy-kev', '12.4', '--out', out);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /calibration set [0-9a-f]{64}/);
  t.match(r.out, /G1 dark run: 150 frames, in G1/);
  t.match(r.out, /defaults 41, -1.439, -0.1145/);
  const set = loadCalibrationSet(out);
  t.equal(set.id, createHash('sha256').update(readFileSync(path.join(out, 'calibration.json'))).digest('hex'));
  t.equal(set.json.energy_kev, 12.4);
  t.same(set.json.inputs.map((i) => i.role), ['dark_g0', 'dark_g1', 'dark_g2']);
  t.equal(set.json.inputs[1]!.sha256, createHash('sha256').update(readFileSync(g1)).digest('hex'));
  // 6 standard errors of the worst gain: no pixel of 8192 should be beyond.
  for (const g of [0, 1, 2]) near(t, set.arrays.pedestal!, g, (6 * TRUE_RMS[g]!) / Math.sqrt(150), 'files');
  t.equal(set.arrays.mask!.reduce((a, m) => a + (m ? 1 : 0), 0), 0, 'no pixel masked');
});

t.test('a G1 run over TCP, the other gains from an earlier set', async (t) => {
  const base = path.join(tmp, 'three');
  const out = path.join(tmp, 'listened');
  const child = spawn(process.execPath, [BIN, 'calibrate', 'pedestal', '--listen', '127.0.0.1:0', '--frames', '120', '--shape', SHAPE, '--pedestal-from', base, '--out', out]);
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /listening on [^:]+:(\d+)/.exec(stdout);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', () => reject(new Error(`exited before listening: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const frames = darkFrames(1, 120);
  const sender = await FrameSender.connect('127.0.0.1', port);
  for (let f = 0; f < 120; f++)
    await sender.send({ series: 'dark-g1', frame: f, encoding: 'raw', dtype: 'uint16', shape: [ROWS, COLS] }, new Uint8Array(frames.buffer, f * N * 2, N * 2));
  t.equal(await exited, 0, stderr);
  t.match(stdout, /from tcp|dark run from 127\.0\.0\.1/);
  const set = loadCalibrationSet(out);
  const earlier = loadCalibrationSet(base);
  t.equal(set.json.parent, earlier.id);
  near(t, set.arrays.pedestal!, 1, (6 * TRUE_RMS[1]!) / Math.sqrt(120), 'tcp');
  t.same(set.arrays.pedestal!.subarray(0, N), earlier.arrays.pedestal!.subarray(0, N), 'G0 taken from the earlier set');
  t.same(set.arrays.pedestal!.subarray(2 * N), earlier.arrays.pedestal!.subarray(2 * N), 'G2 taken from the earlier set');
});

t.test('import of PSI constants', async (t) => {
  if (!needData(t)) return;
  const out = path.join(tmp, 'imported');
  const f = (name: string) => dataFile('jungfrau', name);
  const r = beamedge('calibrate', 'import', '--pedestal', f('mod5_pedeG0.bin'), f('mod5_pedeG1.bin'), f('mod5_pedeG2.bin'), '--rms', f('mod5_pedeG0_RMS.bin'), '--gain', f('mod5_gain_f64.bin'), '--shape', '512x1024', '--energy-kev', '12.398', '--out', out);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /G1 unknown/);
  const set = loadCalibrationSet(out);
  t.equal(set.id, createHash('sha256').update(readFileSync(path.join(out, 'calibration.json'))).digest('hex'));
  const n = 512 * 1024;
  const raw = (name: string) => readData('jungfrau', name);
  const ped = Buffer.from(set.arrays.pedestal!.buffer);
  for (const g of [0, 1, 2]) t.ok(ped.subarray(g * n * 4, (g + 1) * n * 4).equals(raw(`mod5_pedeG${g}.bin`)), `G${g} pedestal equals its file`);
  t.ok(Buffer.from(set.arrays.pedestal_rms!.buffer).subarray(0, n * 4).equals(raw('mod5_pedeG0_RMS.bin')), 'G0 rms equals its file');
  t.ok(Buffer.from(set.arrays.gain!.buffer).equals(raw('mod5_gain_f64.bin')), 'gain equals the gain file');
  t.same(set.json.summary?.rms_known, [true, false, false]);
});

t.test('hostile inputs: a clear error, a non-zero exit, no set', async (t) => {
  const truncated = path.join(tmp, 'truncated.bin');
  writeFileSync(truncated, readFileSync(g0).subarray(0, 5 * N * 2 + 100));
  const cases: [string, string[], RegExp][] = [
    ['truncated file', [truncated, '--shape', SHAPE], /not a whole number of 64x128 uint16 frames/],
    ['wrong shape', [g0, '--shape', '100x100'], /not a whole number of 100x100/],
    ['npy of another shape', ['--g1', g1, '--shape', '32x256'], /frames are 64x128, expected 32x256/],
    ['nonexistent file', [path.join(tmp, 'nope.bin'), '--shape', SHAPE], /nope\.bin: cannot open \(ENOENT\)/],
    ['bad shape text', [g0, '--shape', '64by128'], /is not ROWSxCOLS/],
    ['a run in the wrong gain', ['--g2', g0, '--shape', SHAPE], /in G0, not G2/],
  ];
  for (const [what, args, message] of cases) {
    const out = path.join(tmp, `hostile-${what.replace(/\W+/g, '-')}`);
    const r = beamedge('calibrate', 'pedestal', ...args, '--out', out);
    t.not(r.code, 0, `${what}: non-zero exit`);
    t.match(r.err, message, `${what}: says why`);
    t.notOk(existsSync(path.join(out, 'calibration.json')), `${what}: no set written`);
  }
  const imp = beamedge('calibrate', 'import', '--pedestal', g0, g0, g0, '--gain', g0, '--shape', SHAPE, '--out', path.join(tmp, 'bad-import'));
  t.not(imp.code, 0);
  t.match(imp.err, /bytes, but the G0 pedestal/);
  t.notOk(existsSync(path.join(tmp, 'bad-import')), 'import: nothing written');
});
