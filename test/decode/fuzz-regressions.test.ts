// Every input the fuzzers found a bug with (native/fuzz/regressions/<target>/)
// goes through the addon's JavaScript entry points, with the AVX2 and the
// portable byte-offset kernel: each must end in a result or a clean Error,
// without allocating what a hostile header claims.
// `npm run fuzz` runs the same inputs under AddressSanitizer first.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FUZZ_DIR, regressionInputs, replay, TARGETS } from '../fuzz/inputs';

const inputs = regressionInputs();

t.test('regression inputs are small and belong to a fuzz target', async (t) => {
  const targets = readdirSync(FUZZ_DIR).filter((f) => f.endsWith('.cc')).map((f) => f.slice(0, -3));
  t.same(targets.sort(), [...TARGETS].sort(), 'every fuzz target in native/fuzz has a replay through the addon');
  t.ok(inputs.length > 0, 'regression inputs are committed');
  for (const r of inputs) {
    t.ok(TARGETS.includes(r.target), `${r.target} is a fuzz target (native/fuzz/${r.target}.cc)`);
    t.ok(statSync(r.file).size <= 64 * 1024, `${r.target}/${r.name} is at most 64 KiB`);
  }
});

t.test('each regression input ends in a result or a clean Error', async (t) => {
  for (const r of inputs) {
    const got = replay(r.target, readFileSync(r.file));
    t.ok(got.outcome === 'result' || got.outcome === 'error', `${r.target}/${r.name}: ${got.outcome}${got.message ? ` (${got.message})` : ''}`);
  }
});

t.test('the jungfrau and pedestal replays hold on generated inputs', async (t) => {
  // Not regressions: inputs in those targets' layouts, so their replays (the
  // AVX2 kernel against the portable one; the accumulator against a two-pass
  // reference) run in every test run even before a fuzzer finds anything.
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) & 0xff;
  const bytes = (n: number, head: number[]) => Uint8Array.from({ length: n }, (_, i) => (i < head.length ? head[i]! : rand()));
  for (const flags of [0, 7, 8 | 16 | 3, 8 | 16 | 5, 8 | 16 | 2, 31]) {
    const input = bytes(25 + 38 * 300 + 11, [flags]);
    t.equal(replay('jungfrau', input).outcome, 'result', `jungfrau, flags ${flags}`);
  }
  for (const [pixels, resetAfter] of [[64, 255], [17, 3], [1, 0]] as const) {
    const input = bytes(2 + 2 * pixels * 40 + 1, [pixels - 1, resetAfter]);
    t.equal(replay('pedestal', input).outcome, 'result', `pedestal, ${pixels} pixels, reset after ${resetAfter}`);
  }
});

t.test('the same with the portable byte-offset kernel', async (t) => {
  const script = path.join(__dirname, '..', 'fuzz', 'inputs.js');
  const child = spawnSync(process.execPath, [script], { env: { ...process.env, BEAMEDGE_KERNELS: 'scalar' }, encoding: 'utf8' });
  t.equal(child.signal, null, 'no crash');
  t.equal(child.status, 0, child.stderr);
  const lines = child.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { target: string; name: string; outcome: string; maxRssMiB?: number });
  const peak = lines.pop()?.maxRssMiB;
  // Outputs are at most 16 MiB each: a decoder that allocates what a hostile header claims shows here.
  t.ok(peak !== undefined && peak < 1024, `peak memory ${peak} MiB stays under 1 GiB`);
  t.same(lines.map((l) => `${l.target}/${l.name}`), inputs.map((r) => `${r.target}/${r.name}`), 'every input replayed');
  t.ok(lines.every((l) => l.outcome === 'result' || l.outcome === 'error'), 'each ends in a result or a clean Error');
});
