// Acceptance: `beamedge correlate` on DLS_I03_smargon_0001.cbf against the
// golden C2 that pyFAI 0.21.3 (integrate2d, no splitting) and numpy computed
// (../shared/data/golden/fxs_DLS_I03_smargon_0001_q64_chi180, see its README).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { readNpy, type NpyDtype } from '../../daemon/calibrate/npy';
import { dataFile, needData, repoRoot } from '../helpers/data';

const BIN = path.join(repoRoot, 'dist', 'daemon', 'cli', 'main.js');
const GOLDEN = 'golden/fxs_DLS_I03_smargon_0001_q64_chi180';

const npy = (file: string, dtype: NpyDtype) => readNpy(readFileSync(file), dtype, file);

function correlate(out: string, env: NodeJS.ProcessEnv = {}) {
  return spawnSync(
    process.execPath,
    [BIN, 'correlate', dataFile('cbf', 'DLS_I03_smargon_0001.cbf'), '--poni', dataFile(GOLDEN, 'geometry.poni'), '--npt', '64', '--npt-azim', '180', '--unit', 'q_nm^-1', '--polarization', '0.99', '--out', out],
    { encoding: 'utf8', env: { ...process.env, ...env } },
  );
}

for (const kernels of ['default', 'scalar']) {
  t.test(`beamedge correlate equals pyFAI + numpy on the golden frame (${kernels} kernels)`, async (t) => {
    if (!needData(t)) return;
    const out = mkdtempSync(path.join(tmpdir(), 'beamedge-correlate-'));
    t.teardown(() => rmSync(out, { recursive: true, force: true }));
    const r = correlate(out, kernels === 'scalar' ? { BEAMEDGE_KERNELS: 'scalar' } : {});
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, /^correlated 1 frame\(s\): C2 64 x 64 x 180 \(q_nm\^-1\)/);
    t.equal(r.stdout.trim().split('\n').length, 1, 'a one-line summary');

    const wantPairs = npy(dataFile(GOLDEN, 'pairs.npy'), '<i4');
    const gotPairs = npy(path.join(out, 'pairs.npy'), '<i4');
    t.same(gotPairs.shape, [64, 64, 180]);
    let differ = 0;
    for (let i = 0; i < wantPairs.data.length; i++) if (gotPairs.data[i] !== wantPairs.data[i]) differ++;
    t.equal(differ, 0, 'pairs.npy identical');

    const want = npy(dataFile(GOLDEN, 'c2.npy'), '<f8').data;
    const got = npy(path.join(out, 'c2.npy'), '<f8');
    t.same(got.shape, [64, 64, 180]);
    let bad = 0;
    let compared = 0;
    let worstAbs = 0;
    for (let i = 0; i < want.length; i++) {
      if (!(wantPairs.data[i]! > 0)) continue;
      compared++;
      const err = Math.abs(got.data[i]! - want[i]!);
      worstAbs = Math.max(worstAbs, err);
      if (err > Math.max(1e-6 * Math.abs(want[i]!), 1e-9)) bad++;
    }
    t.ok(compared > 0.9 * want.length, `${compared} elements with pairs > 0`);
    t.equal(bad, 0, `c2.npy within 1e-6 relative or 1e-9 absolute everywhere pairs > 0 (worst absolute ${worstAbs.toExponential(2)})`);

    for (const [name, tol] of [['radial.npy', 1e-12], ['delta_deg.npy', 0]] as const) {
      const w = npy(dataFile(GOLDEN, name), '<f8').data;
      const g = npy(path.join(out, name), '<f8').data;
      t.equal(g.length, w.length, `${name} length`);
      t.ok(Array.from(w).every((v, i) => Math.abs(g[i]! - v) <= tol * Math.max(1, Math.abs(v))), `${name} equal`);
    }
  });
}

t.test('beamedge correlate refuses what it cannot do, with a clear message', async (t) => {
  const out = mkdtempSync(path.join(tmpdir(), 'beamedge-correlate-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'correlate', ...args], { encoding: 'utf8' });
  const noOut = run('x.cbf', '--from-header', '--npt', '8', '--npt-azim', '12', '--unit', 'q_nm^-1');
  t.equal(noOut.status, 2);
  t.match(noOut.stderr, /--out is required/);
  const missing = run(path.join(out, 'missing.cbf'), '--from-header', '--npt', '8', '--npt-azim', '12', '--unit', 'q_nm^-1', '--out', out);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /missing\.cbf/);
  t.match(missing.stderr, /nothing written/);
});
