// JUNGFRAU raw frames with pipeline.correlate: the integrate stage's fused
// convert+integrate pass would leave no converted frame for the polar image,
// so the frame is converted whole first. Checked against the photon image the
// words were made from, integrated and correlated here.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadCalibrationSet } from '../../daemon/calibrate/calibration-set';
import { readNpy } from '../../daemon/calibrate/npy';
import { loadConfig } from '../../daemon/config/config';
import { CorrelationAccumulator } from '../../daemon/correlate/accumulator';
import { fullCorrelation } from '../../daemon/correlate/result';
import { Daemon } from '../../daemon/daemon';
import { formatPoni } from '../../daemon/geometry/poni';
import { AzimuthalIntegrator } from '../../daemon/integrate/azimuthal';
import { encodeJungfrau } from '../../daemon/sim/jungfrau-encoder';
import { FrameSender } from '../../daemon/sim/sender';
import { SyntheticDetector } from '../../daemon/sim/synthetic';
import { createLogger } from '../../daemon/system/logger';
import { needData } from '../helpers/data';
import { importMod5Set, MOD5_ENERGY_KEV } from '../helpers/jungfrau';
import { until } from '../helpers/wait';

const SHAPE: [number, number] = [512, 1024];
const GEOMETRY = { dist: 0.08, poni1: 0.5 * 512 * 75e-6, poni2: 0.45 * 1024 * 75e-6, rot1: 0, rot2: 0, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10, shape: SHAPE, detector: 'Jungfrau' };

t.test('JUNGFRAU frames are converted once and correlated', async (t) => {
  if (!needData(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-jf-fxs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const imported = importMod5Set(path.join(dir, 'mod5'));
  t.equal(imported.status, 0, imported.stderr);
  const set = loadCalibrationSet(path.join(dir, 'mod5'), false);
  writeFileSync(path.join(dir, 'jf.poni'), formatPoni(GEOMETRY));
  const cfg = path.join(dir, 'c.yaml');
  writeFileSync(
    cfg,
    `instance: jf\nmqtt: { embedded_port: 0 }\nhttp: { port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 4, slot_mb: 2 }\n` +
      `provenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))}, batch_ms: 20 }\noutput: { directory: out }\n` +
      `pipeline:\n  geometry: { poni: jf.poni }\n  calibration: { set: mod5, tracking: false }\n  veto: { enabled: false }\n  integrate: { npt: 300, unit: q_nm^-1 }\n` +
      `  correlate: { enabled: true, npt: 6, npt_azim: 16, unit: q_nm^-1 }\n`,
  );
  const d = await Daemon.start({ loaded: loadConfig(cfg), configPath: cfg, watchConfig: false, log: createLogger('error') });
  let stopped = false;
  t.teardown(() => (stopped ? undefined : d.stop('test end')));
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  const photons = [3, 4].map((seed) => Float32Array.from(new SyntheticDetector({ shape: SHAPE, seed }).pixels(true), (v) => Math.max(0, Math.min(v, 2000))));
  for (let f = 0; f < photons.length; f++) {
    const words = encodeJungfrau(photons[f]!, { pedestal: set.arrays.pedestal!, gain: set.arrays.gain! }, MOD5_ENERGY_KEV);
    await s.send({ series: 'jf', frame: f, encoding: 'raw', dtype: 'uint16', shape: SHAPE, detector: 'jungfrau' }, new Uint8Array(words.buffer));
  }
  await until(() => d.stats.totals.processed === photons.length, 'processed');
  await s.close();
  t.equal(d.stats.totals.errored, 0, 'no frame failed');
  // The series ends with the daemon: its files are written before the workers stop.
  await d.stop('test end');
  stopped = true;
  const outDir = path.join(dir, 'out', 'correlation');
  const series = readdirSync(outDir);
  t.equal(series.length, 1, 'one series written at stop');
  const meta = JSON.parse(readFileSync(path.join(outDir, series[0]!, 'meta.json'), 'utf8')) as { frames: number; why: string };
  t.same([meta.frames, meta.why], [2, 'daemon stopping']);
  const c2 = readNpy(readFileSync(path.join(outDir, series[0]!, 'c2.npy')), '<f8', 'c2').data;
  const pairs = readNpy(readFileSync(path.join(outDir, series[0]!, 'pairs.npy')), '<f8', 'pairs').data;

  // Independent: the photon images integrated to the same polar grid and correlated.
  const ai = new AzimuthalIntegrator({ geometry: GEOMETRY, shape: SHAPE, npt: 6, nptAzim: 16, unit: 'q_nm^-1', split: 'no', solidAngle: true });
  const acc = new CorrelationAccumulator(6, 16, 'q_nm^-1', ai.radial);
  for (const p of photons) {
    const r = ai.integrate(p);
    acc.add(r.intensity, r.count);
  }
  const want = fullCorrelation(acc.state());
  t.same(Array.from(pairs), Array.from(want.m), 'the same valid pairs');
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < c2.length; i++) {
    scale = Math.max(scale, Math.abs(want.c2[i]!));
    worst = Math.max(worst, Math.abs(c2[i]! - want.c2[i]!));
  }
  // ADC words are whole numbers: a pixel's photons are known to about 1e-3; C2 is a product of two such images.
  t.ok(scale > 0 && worst < 1e-3 * scale, `C2 from the raw words = C2 from the photon images (worst ${worst.toExponential(2)} of ${scale.toExponential(2)})`);
});
