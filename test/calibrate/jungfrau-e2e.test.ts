// JUNGFRAU end to end: PSI's constants for the real module imported as a
// calibration set, raw gain-switching words sent over TCP (by the test and by
// `beamedge simulate --jungfrau`), converted, integrated and published with the
// set's id; provenance names the set; a reload to a missing set is refused.
// The profile is checked against an independent route: the photon image the
// words were made from, integrated directly.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { loadCalibrationSet } from '../../daemon/calibrate/calibration-set';
import { loadConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { formatPoni } from '../../daemon/geometry/poni';
import { AzimuthalIntegrator } from '../../daemon/integrate/azimuthal';
import { encodeJungfrau } from '../../daemon/sim/jungfrau-encoder';
import { FrameSender } from '../../daemon/sim/sender';
import { SyntheticDetector } from '../../daemon/sim/synthetic';
import { createLogger } from '../../daemon/system/logger';
import { needData } from '../helpers/data';
import { importMod5Set, MOD5_ENERGY_KEV } from '../helpers/jungfrau';
import { BIN } from '../helpers/daemon-process';
import { Collector } from '../helpers/mqtt-collector';
import { until } from '../helpers/wait';

const SHAPE: [number, number] = [512, 1024];
const ENERGY = MOD5_ENERGY_KEV;
const GEOMETRY = { dist: 0.08, poni1: 0.5 * 512 * 75e-6, poni2: 0.45 * 1024 * 75e-6, rot1: 0, rot2: 0, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10, shape: SHAPE, detector: 'Jungfrau' };

t.test('raw JUNGFRAU frames over TCP arrive on MQTT converted, integrated and traced to their calibration set', async (t) => {
  if (!needData(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-jf-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const imported = importMod5Set(path.join(dir, 'mod5'));
  t.equal(imported.status, 0, imported.stderr);
  const set = loadCalibrationSet(path.join(dir, 'mod5'), false);
  writeFileSync(path.join(dir, 'jf.poni'), formatPoni(GEOMETRY));
  const cfg = path.join(dir, 'c.yaml');
  const yaml = (setDir: string) =>
    `instance: jf\nhttp: { port: 0 }\nmqtt: { embedded_port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 4, slot_mb: 2 }\n` +
    `provenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))}, batch_ms: 20 }\n` +
    `pipeline:\n  geometry: { poni: jf.poni }\n  calibration: { set: ${setDir} }\n  veto: { enabled: false }\n  integrate: { npt: 300, unit: q_nm^-1 }\n`;
  writeFileSync(cfg, yaml('mod5'));
  const d = await Daemon.start({ loaded: loadConfig(cfg), configPath: cfg, watchConfig: false, log: createLogger('error') });
  t.teardown(() => d.stop('test end'));
  const sub = await Collector.connect(d.mqttUrl, 'beamedge/jf/#', 4);
  t.teardown(() => sub.close());

  // A photon image (rings and spots on a Poisson background), as the detector would see it.
  const photons = Float32Array.from(new SyntheticDetector({ shape: SHAPE, seed: 7 }).pixels(true), (v) => Math.max(0, v));
  photons[1000] = 3000; // deep into G1
  photons[2000] = 20000; // beyond G2: saturated
  const words = encodeJungfrau(photons, { pedestal: set.arrays.pedestal!, gain: set.arrays.gain! }, ENERGY);
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  t.teardown(() => s.close());
  await s.send({ series: 'jf', frame: 0, encoding: 'raw', dtype: 'uint16', shape: SHAPE, detector: 'jungfrau' }, new Uint8Array(words.buffer));
  await sub.waitForCount('reduced', 1);
  const m = sub.reduced()[0]!;
  t.equal(m.decision, 'kept', m.reason);
  t.equal(m.calibration, set.id, 'the message carries the calibration id');
  t.same(m.calibration_excluded, { saturated: 1, invalid_gain: 0, error_word: 0, masked: 0 }, 'the saturated pixel is excluded and counted');

  // Independent route: the photon image itself, with the saturated pixel masked.
  const mask = new Uint8Array(photons.length);
  mask[2000] = 1;
  const ai = new AzimuthalIntegrator({ geometry: GEOMETRY, shape: SHAPE, npt: 300, unit: 'q_nm^-1', split: 'no', mask, solidAngle: true });
  const want = ai.integrate(photons);
  let worst = 0;
  let compared = 0;
  for (let i = 0; i < 300; i++) {
    if (!(want.count[i]! > 0)) continue;
    compared++;
    // ADC words are whole numbers: a pixel's photons are known to 0.5 ADU / (gain x E), about 1e-3 photons.
    const err = Math.abs(m.intensity![i]! - want.intensity[i]!) / Math.max(1, Math.abs(want.intensity[i]!));
    worst = Math.max(worst, err);
  }
  t.ok(compared > 250, `${compared} bins compared`);
  t.ok(worst < 2e-3, `profile equals the photon image's within ADC rounding (worst relative ${worst.toExponential(2)})`);

  // `beamedge simulate --jungfrau` makes frames from the same set.
  // (Not spawnSync: the daemon runs in this process and must keep reading.)
  const sim = spawn(process.execPath, [BIN, 'simulate', '--to', `127.0.0.1:${d.tcpPort}`, '--jungfrau', path.join(dir, 'mod5'), '--frames', '5', '--rate', '0', '--series', 'sim'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const simExit = await new Promise<number | null>((resolve) => sim.once('exit', resolve));
  t.equal(simExit, 0, 'simulate --jungfrau exits 0');
  await sub.waitForCount('reduced', 6);
  t.ok(sub.reduced().slice(1).every((r) => r.series === 'sim' && r.decision === 'kept' && r.calibration === set.id), 'simulated frames converted with the set');

  // A reload pointing at a set that is not there: refused, and the set keeps converting.
  writeFileSync(cfg, yaml('mod5-missing'));
  const r = await d.reload('test');
  t.notOk(r.ok);
  t.match(r.message, /mod5-missing\/calibration\.json: cannot read/, r.message);
  await s.send({ series: 'jf', frame: 1, encoding: 'raw', dtype: 'uint16', shape: SHAPE, detector: 'jungfrau' }, new Uint8Array(words.buffer));
  await sub.waitForCount('reduced', 7);
  t.equal(sub.reduced()[6]!.calibration, set.id, 'after the refused reload');
  await until(() => d.stats.totals.processed === 7, '7 processed');
  await d.sync();
  const db = new Database(path.join(dir, 'p.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const named = db.prepare("SELECT count(*) AS n FROM frames WHERE calibration = ? AND decision = 'kept'").get(set.id) as { n: number };
  t.equal(named.n, 7, 'provenance names the set on every frame');
});

t.test('pedestal tracking: dark frames move the G0 pedestal; a snapshot is a derived set with its parent, used from the next frame', async (t) => {
  if (!needData(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-jf-track-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const imported = importMod5Set(path.join(dir, 'base'));
  t.equal(imported.status, 0, imported.stderr);
  const base = loadCalibrationSet(path.join(dir, 'base'), false);
  writeFileSync(path.join(dir, 'jf.poni'), formatPoni(GEOMETRY));
  const cfg = path.join(dir, 'c.yaml');
  writeFileSync(
    cfg,
    `instance: jft\nhttp: { port: 0 }\nmqtt: { embedded_port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 2 }\nrings: { slots: 4, slot_mb: 2 }\n` +
      `provenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))}, batch_ms: 20 }\n` +
      `pipeline:\n  geometry: { poni: jf.poni }\n  calibration: { set: base, tracking: true, tracking_window: 128, tracking_k: 1, snapshot_s: 86400 }\n  veto: { enabled: false }\n  integrate: { npt: 100 }\n`,
  );
  const d = await Daemon.start({ loaded: loadConfig(cfg), configPath: cfg, watchConfig: false, log: createLogger('error') });
  t.teardown(() => d.stop('test end'));
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  t.teardown(() => s.close());

  // The detector's dark level drifted up by 2 ADU: dark frames read round(pedestal + 2) in G0.
  const n = SHAPE[0] * SHAPE[1];
  const drifted = Float32Array.from(base.arrays.pedestal!, (v, i) => (i < n ? v + 2 : v));
  const dark = encodeJungfrau(new Float32Array(n), { pedestal: drifted, gain: base.arrays.gain! }, ENERGY);
  const FRAMES = 40;
  for (let i = 0; i < FRAMES; i++) await s.send({ series: 'dark', frame: i, encoding: 'raw', dtype: 'uint16', shape: SHAPE, detector: 'jungfrau' }, new Uint8Array(dark.buffer));
  await until(() => d.stats.totals.processed === FRAMES, `${FRAMES} processed`);
  const id = d.maybeSnapshot(true);
  t.ok(id, 'a snapshot was taken');
  const snapshots = readdirSync(path.join(dir, 'calibrations-jft'));
  t.equal(snapshots.length, 1, 'one snapshot directory beside the provenance database');
  const derived = loadCalibrationSet(path.join(dir, 'calibrations-jft', snapshots[0]!), false);
  t.equal(derived.id, id, 'the derived set on disk has the announced id');
  t.equal(derived.json.parent, base.id, 'and names its parent');
  t.same(derived.arrays.gain, base.arrays.gain, 'gains unchanged');
  // Independent closed form: each of a worker's frames moves its p towards the ADC a by (a - p) / (128 / 2 workers),
  // so after m_w frames p_w = a + (p0 - a)(1 - 2/128)^m_w; the snapshot is the mean weighted by m_w.
  const perWorker = derived.json.summary!.frames_per_worker as number[];
  t.equal(perWorker.reduce((a, b) => a + b, 0), FRAMES, `frames per worker ${perWorker.join(' + ')}`);
  const decay = perWorker.reduce((sum, m) => sum + (m / FRAMES) * (1 - 2 / 128) ** m, 0);
  const g0 = derived.arrays.pedestal!;
  const rms = base.arrays.pedestal_rms!;
  let worst = 0;
  let tracked = 0;
  for (let i = 0; i < n; i++) {
    const a = dark[i]! & 0x3fff;
    const p0 = base.arrays.pedestal![i]!;
    if (!(Math.abs(a - p0) < rms[i]!)) continue;
    tracked++;
    worst = Math.max(worst, Math.abs(g0[i]! - (a + (p0 - a) * decay)));
  }
  t.ok(tracked > 0.99 * n, `${tracked} pixels tracked`);
  // float32 updates round at ~1e-4 ADU each (pedestals are ~1e3-1e4 ADU): 1e-2 ADU over tens of frames, against a 2 ADU drift.
  t.ok(worst < 1e-2, `tracked pedestal follows the closed form over ${FRAMES} frames split between 2 workers (worst ${worst.toExponential(2)} ADU)`);
  t.same(Array.from(derived.arrays.pedestal!.subarray(n)), Array.from(base.arrays.pedestal!.subarray(n)), 'G1 and G2 pedestals unchanged');

  await s.send({ series: 'after', frame: 0, encoding: 'raw', dtype: 'uint16', shape: SHAPE, detector: 'jungfrau' }, new Uint8Array(dark.buffer));
  await until(() => d.stats.totals.processed === FRAMES + 1, 'one more processed');
  await d.sync();
  const db = new Database(path.join(dir, 'p.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const after = db.prepare("SELECT calibration FROM frames WHERE series = 'after'").get() as { calibration: string };
  t.equal(after.calibration, id, 'the next frame is converted with the derived set');
  const sets = db.prepare('SELECT id, parent, origin FROM calibration_sets ORDER BY origin').all();
  t.same(sets, [{ id: base.id, parent: null, origin: 'configured' }, { id, parent: base.id, origin: 'tracking' }], 'provenance records the set and its snapshot');
});
