// Calibration files are loaded and checked when the configuration is: a
// missing or misspelt PONI, mask or calibration set fails check-config and is
// refused on reload (the running epoch keeps going); a PONI or mask for
// another detector is a clear per-frame error naming both shapes; every frame
// row and reduced message names the calibration set it was processed with.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { writeCalibrationSet } from '../../daemon/calibrate/calibration-set';
import { encodeNpy } from '../../daemon/calibrate/npy';
import { loadConfig } from '../../daemon/config/config';
import { readCbf } from '../../daemon/decode/cbf';
import { Daemon } from '../../daemon/daemon';
import { formatPoni } from '../../daemon/geometry/poni';
import { FrameSender } from '../../daemon/sim/sender';
import { createLogger } from '../../daemon/system/logger';
import { dataFile, needData, readData } from '../helpers/data';
import { BIN } from '../helpers/daemon-process';
import { Collector } from '../helpers/mqtt-collector';
import { until } from '../helpers/wait';

const FILE = 'in16c_010001.cbf';
const GEOMETRY = { dist: 0.04, poni1: 308 * 172e-6, poni2: 244 * 172e-6, rot1: 0, rot2: 0, rot3: 0, pixel1: 172e-6, pixel2: 172e-6, wavelength: 1.542e-10 };

function tmp(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-calcfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function checkConfig(file: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'check-config', file], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

const base = (dir: string, pipeline: string) =>
  `instance: calcfg\nhttp: { port: 0 }\nmqtt: { embedded_port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 4, slot_mb: 8 }\n` +
  `provenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))}, batch_ms: 20 }\npipeline:\n${pipeline}\n`;

t.test('check-config fails, naming the key and the file, when a calibration file cannot be used', async (t) => {
  const dir = tmp(t);
  writeFileSync(path.join(dir, 'good.poni'), formatPoni({ ...GEOMETRY, shape: [4, 5] }));
  writeFileSync(path.join(dir, 'mask45.npy'), encodeNpy(new Uint32Array(20), [4, 5]));
  writeFileSync(path.join(dir, 'dark56.npy'), encodeNpy(new Float32Array(30), [5, 6]));
  writeFileSync(path.join(dir, 'bad.poni'), 'PixelSize1: 1e-4\nPixelSize2: 1e-4\nDistance: far\n');
  const set = writeCalibrationSet(path.join(dir, 'set'), { detector: 'generic', shape: [4, 5], energy_kev: null, tool: { name: 'test', version: '0', command: [] }, inputs: [], parent: null }, { mask: new Uint32Array(20) });
  const cases: [string, string, RegExp][] = [
    ['a misspelt PONI', '  geometry: { poni: geometyr.poni }', /pipeline\.geometry\.poni: .*geometyr\.poni: cannot read \(ENOENT\)/],
    ['an unreadable PONI', '  geometry: { poni: bad.poni }', /pipeline\.geometry\.poni: .*bad\.poni: Distance is 'far', not a number/],
    ['a missing mask', '  mask: nomask.npy', /pipeline\.mask: .*nomask\.npy: cannot read \(ENOENT\)/],
    ['a missing calibration set', '  calibration: { set: nosuchset }', /pipeline\.calibration\.set: .*nosuchset\/calibration\.json: cannot read/],
    ['a mask and a dark of different shapes', '  mask: mask45.npy\n  dark: dark56.npy', /pipeline\.dark \(.*dark56\.npy\) is 5 x 6, but pipeline\.mask \(.*mask45\.npy\) is 4 x 5/],
    ['a PONI for another detector than the mask', '  geometry: { poni: good.poni }\n  dark: dark56.npy', /is 4 x 5, but pipeline\.dark .* is 5 x 6|is 5 x 6/],
  ];
  for (const [what, yaml, message] of cases) {
    const file = path.join(dir, 'c.yaml');
    writeFileSync(file, base(dir, yaml));
    const r = checkConfig(file);
    t.equal(r.status, 1, `${what}: exit 1`);
    t.match(r.stderr, message, `${what}: ${r.stderr.trim()}`);
  }
  // A set whose array changed after it was made is refused by its hash.
  const mask = path.join(set.dir, 'mask.npy');
  const bytes = readFileSync(mask);
  bytes[bytes.length - 1] = 1;
  writeFileSync(mask, bytes);
  writeFileSync(path.join(dir, 'c.yaml'), base(dir, '  calibration: { set: set }'));
  const r = checkConfig(path.join(dir, 'c.yaml'));
  t.equal(r.status, 1);
  t.match(r.stderr, /mask\.npy: sha256 .* does not match .*calibration\.json/, `a tampered array is named: ${r.stderr.trim()}`);
  writeFileSync(path.join(dir, 'c.yaml'), base(dir, '  geometry: { poni: good.poni }\n  mask: mask45.npy'));
  t.equal(checkConfig(path.join(dir, 'c.yaml')).status, 0, 'files that agree pass');
});

t.test('frames: calibration id on every row and message, reloads to a missing set refused, shape mismatches named', async (t) => {
  if (!needData(t)) return;
  const dir = tmp(t);
  const cbf = readData('cbf', FILE);
  copyFileSync(dataFile('cbf', FILE), path.join(dir, 'frame.cbf'));
  const frame = readCbf(cbf);
  const [rows, cols] = frame.shape;
  const n = rows * cols;
  // A generic set: a pixel mask (one block masked) and a flat of ones.
  const mask = new Uint32Array(n);
  for (let i = 0; i < 2000; i++) mask[i] = 1 << 8;
  const tool = { name: 'test', version: '0', command: [] };
  const set = writeCalibrationSet(path.join(dir, 'set-a'), { detector: 'generic', shape: [rows, cols], energy_kev: null, tool, inputs: [], parent: null }, { mask, flat: new Float32Array(n).fill(1) });
  const other = writeCalibrationSet(path.join(dir, 'set-b'), { detector: 'generic', shape: [rows + 1, cols], energy_kev: null, tool, inputs: [], parent: null }, { mask: new Uint32Array(n + cols) });
  const cfg = path.join(dir, 'c.yaml');
  writeFileSync(cfg, base(dir, '  calibration: { set: set-a }\n  veto: { enabled: false }\n  integrate: { npt: 200 }'));
  const d = await Daemon.start({ loaded: loadConfig(cfg), configPath: cfg, watchConfig: false, log: createLogger('error') });
  t.teardown(() => d.stop('test end'));
  const sub = await Collector.connect(d.mqttUrl, 'beamedge/calcfg/#', 4);
  t.teardown(() => sub.close());
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  t.teardown(() => s.close());

  await s.send({ series: 'a', frame: 0, encoding: 'cbf' }, cbf);
  await sub.waitForCount('reduced', 1);
  t.equal(sub.reduced()[0]!.calibration, set.id, 'the reduced message carries the set id');

  // A reload pointing at a set that is not there is refused; the old set keeps converting.
  writeFileSync(cfg, base(dir, '  calibration: { set: set-missing }\n  veto: { enabled: false }\n  integrate: { npt: 200 }'));
  const refused = await d.reload('test');
  t.notOk(refused.ok, 'reload refused');
  t.match(refused.message, /pipeline\.calibration\.set: .*set-missing\/calibration\.json: cannot read/, refused.message);
  await s.send({ series: 'a', frame: 1, encoding: 'cbf' }, cbf);
  await sub.waitForCount('reduced', 2);
  t.same([sub.reduced()[1]!.calibration, sub.reduced()[1]!.epoch], [set.id, 1], 'epoch 1 and its set keep running');

  // A set for another detector shape: each frame is an error naming both shapes.
  writeFileSync(cfg, base(dir, '  calibration: { set: set-b }\n  veto: { enabled: false }\n  integrate: { npt: 200 }'));
  t.ok((await d.reload('test')).ok, 'a valid set of another shape loads');
  await s.send({ series: 'a', frame: 2, encoding: 'cbf' }, cbf);
  await until(() => d.stats.totals.processed === 3, 'frame 2 processed under set-b');
  // A PONI whose detector has another shape: refused per frame, as pyFAI does.
  writeFileSync(path.join(dir, 'p6m.poni'), formatPoni({ ...GEOMETRY, shape: [2527, 2463], detector: 'Pilatus6M' }));
  writeFileSync(cfg, base(dir, '  geometry: { poni: p6m.poni }\n  veto: { enabled: false }\n  integrate: { npt: 200 }'));
  t.ok((await d.reload('test')).ok);
  await s.send({ series: 'a', frame: 3, encoding: 'cbf' }, cbf);
  await d.sync();
  await until(() => d.stats.totals.processed === 4, '4 processed');
  await d.sync();
  const db = new Database(path.join(dir, 'p.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const got = db.prepare("SELECT frame, decision, reason, calibration, epoch FROM frames WHERE series = 'a' ORDER BY frame").all() as { frame: number; decision: string; reason: string; calibration: string | null; epoch: number }[];
  t.same(got.slice(0, 2).map((r) => [r.decision, r.calibration]), [['kept', set.id], ['kept', set.id]], 'frame rows name the set');
  t.equal(got[2]!.decision, 'error');
  t.match(got[2]!.reason, new RegExp(`calibration set .*set-b is ${rows + 1} x ${cols}, the frames are ${rows} x ${cols}`), got[2]!.reason);
  t.equal(got[3]!.decision, 'error');
  t.match(got[3]!.reason, new RegExp(`pipeline.geometry.poni describes a 2527 x 2463 detector \\(Pilatus6M\\), but the frames are ${rows} x ${cols}`), got[3]!.reason);
  const epochs = db.prepare('SELECT epoch, calibration FROM config_epochs ORDER BY epoch').all() as { epoch: number; calibration: string | null }[];
  t.same(JSON.parse(epochs[0]!.calibration!), { set: set.id }, 'config_epochs records the set id');
  t.equal(JSON.parse(epochs[1]!.calibration!).set, other.id);

  // `beamedge provenance calibrations` says which frames used which set.
  const r = spawnSync(process.execPath, [BIN, 'provenance', 'calibrations', '--db', path.join(dir, 'p.sqlite'), '--json'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const listed = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { calibration: string; frames: number; first_frame: number; last_frame: number });
  t.same(listed.map((l) => [l.calibration, l.frames, l.first_frame, l.last_frame]), [[set.id, 2, 0, 1]], 'two frames of series a used set-a');
  const byPrefix = spawnSync(process.execPath, [BIN, 'provenance', 'frames', '--db', path.join(dir, 'p.sqlite'), '--calibration', set.id.slice(0, 10), '--json'], { encoding: 'utf8' });
  t.equal(byPrefix.stdout.trim().split('\n').length, 2, 'frames --calibration PREFIX');
});
