// beamedge integrate FILE...: after a geometry's first frame the CBF frames are
// decoded and integrated in one pass (no decoded frame) from a reused read
// buffer. The reference for each frame is a run given that file alone (decode,
// then integrate: the path the pyFAI golden tests check); the profiles must be
// the same text, bit for bit.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { encodeNpy } from '../../daemon/calibrate/npy';
import { readCbf } from '../../daemon/decode/cbf';
import { dataFile, needData, readData } from '../helpers/data';
import { BIN } from '../helpers/daemon-process';

// The golden files' geometry (shared/data/golden/README).
const PONI = 'Detector: Pilatus6M\nPixelSize1: 0.000172\nPixelSize2: 0.000172\nDistance: 0.351\nPoni1: 0.22479712\nPoni2: 0.21699692\nRot1: 0\nRot2: 0\nRot3: 0\nWavelength: 0.96859e-10\n';
// Two different PILATUS 6M frames.
const FRAMES = ['thau_3_2_0001.cbf', 'DLS_I03_smargon_0001.cbf'];

function setup(t: Test) {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-integrate-many-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const poni = path.join(dir, 'g.poni');
  writeFileSync(poni, PONI);
  // The static mask is the mask file plus the first frame's negative pixels:
  // a mask file holding both frames' makes one map for every run below, so
  // the profiles can be equal to the bit.
  const frames = FRAMES.map((f) => readCbf(readData('cbf', f)));
  const [rows, cols] = frames[0]!.shape;
  const mask = new Uint8Array(rows * cols);
  for (const f of frames) for (let i = 0; i < mask.length; i++) if (f.pixels[i]! < 0) mask[i] = 1;
  writeFileSync(path.join(dir, 'mask.npy'), encodeNpy(mask, [rows, cols]));
  // A dark image with fractions, so the subtraction is exercised too.
  const dark = Float32Array.from({ length: rows * cols }, (_, i) => (i % 7) * 0.25);
  writeFileSync(path.join(dir, 'dark.npy'), encodeNpy(dark, [rows, cols]));
  // The same frames under other names: the run reads each file once more.
  const files = FRAMES.map((f) => dataFile('cbf', f));
  for (const f of FRAMES) {
    const copy = path.join(dir, `again-${f}`);
    copyFileSync(dataFile('cbf', f), copy);
    files.push(copy);
  }
  return { dir, poni, files };
}

/** Each profile of a run by its file, without the timing line (the one line that differs between runs). */
function profiles(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of stdout.split(/^(?=# == beamedge)/m).filter((s) => s.length)) {
    const file = /^# file: (.*)$/m.exec(p)?.[1];
    if (file === undefined) throw new Error(`a profile without its file line: ${p.slice(0, 200)}`);
    out.set(file, p.replace(/^# Time: .*\n/m, ''));
  }
  return out;
}

for (const [name, extra] of [
  ['mask file', ['--split', 'no', '--polarization', '0.99']],
  ['mask file, dark, dummy, bbox splitting', ['--split', 'bbox', '--dark', 'DARK', '--dummy', '-2']],
] as const)
  t.test(`profiles of a many-file run equal one-file runs bit for bit (${name})`, async (t) => {
    if (!needData(t)) return;
    const { dir, poni, files } = setup(t);
    const args = ['--poni', poni, '--npt', '500', '--unit', 'q_nm^-1', '--mask', path.join(dir, 'mask.npy'), '--map-cache', path.join(dir, 'maps'), ...extra.map((a) => (a === 'DARK' ? path.join(dir, 'dark.npy') : a))];
    const run = (inputs: string[]) => {
      const r = spawnSync(process.execPath, [BIN, 'integrate', ...inputs, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
      t.equal(r.status, 0, r.stderr);
      return profiles(r.stdout);
    };
    const many = run(files);
    t.equal(many.size, files.length, 'one profile per file');
    for (const f of files) {
      const alone = run([f]);
      t.equal(many.get(f), alone.get(f), `${path.basename(f)}: the same profile as when given alone`);
    }
    // Both frames are in the run, and they differ: the comparison above could have failed.
    t.not(many.get(files[0]!)!.replace(/^# file: .*$/m, ''), many.get(files[1]!)!.replace(/^# file: .*$/m, ''), 'the two frames give different profiles');
  });

t.test('a damaged CBF after the first frame is named as when given alone; the others still integrate', async (t) => {
  if (!needData(t)) return;
  const { dir, poni, files } = setup(t);
  // Header and sizes intact, the middle of the byte-offset stream overwritten
  // with escape bytes: only decoding finds it (here the one-pass decode).
  const damaged = Buffer.from(readData('cbf', FRAMES[1]!));
  damaged.fill(0x80, 3_000_000, 3_200_000);
  const bad = path.join(dir, 'damaged.cbf');
  writeFileSync(bad, damaged);
  const run = (inputs: string[]) =>
    spawnSync(process.execPath, [BIN, 'integrate', ...inputs, '--poni', poni, '--npt', '100', '--unit', 'q_nm^-1', '--map-cache', path.join(dir, 'maps')], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const r = run([files[0]!, bad, files[1]!]);
  t.equal(r.status, 1, 'exit 1: one input failed');
  t.match(r.stderr, /damaged\.cbf: byte-offset data: element \d+ \(byte \d+\) does not fit a signed 32-bit integer/, 'the failure names the file and the problem');
  t.equal(r.stderr, run([bad]).stderr, 'the same message as when the file is given alone');
  t.same([...profiles(r.stdout).keys()], [files[0], files[1]], 'the files before and after it are integrated');
});
