// pipeline.stages names which stages run after decoding: without the veto
// every frame is kept and says so; without integrate the veto still decides
// (its count comes from the integration pass) but no profile is published;
// without calibrate the mask file is not applied.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { encodeNpy } from '../../daemon/calibrate/npy';
import { parseConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { readCbf } from '../../daemon/decode/cbf';
import { FrameSender } from '../../daemon/sim/sender';
import { createLogger } from '../../daemon/system/logger';
import { needData, readData } from '../helpers/data';
import { Collector } from '../helpers/mqtt-collector';

t.test('pipeline.stages selects the stages, in the data path order whatever the list order', async (t) => {
  if (!needData(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-stages-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const frame = readCbf(cbf);
  const [rows, cols] = frame.shape;
  // A mask file that leaves 100 pixels of one row: with calibrate, the veto counts only those.
  const mask = new Uint32Array(rows * cols).fill(1);
  const open = Array.from({ length: 100 }, (_, i) => 300 * cols + 100 + i);
  for (const i of open) mask[i] = 0;
  const unmaskedValid = open.filter((i) => frame.pixels[i]! >= 0).length;
  writeFileSync(path.join(dir, 'all.npy'), encodeNpy(mask, [rows, cols]));
  const run = async (stages: string, veto: string) => {
    const loaded = parseConfig(
      `instance: st\nhttp: { port: 0 }\nmqtt: { embedded_port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 2, slot_mb: 4 }\n` +
        `provenance: { path: ${JSON.stringify(path.join(dir, `${Math.random()}.sqlite`))}, batch_ms: 20 }\n` +
        `pipeline: { stages: ${stages}, mask: all.npy, veto: ${veto}, integrate: { npt: 100 } }\n`,
      'test',
      dir,
    );
    const d = await Daemon.start({ loaded, log: createLogger('error') });
    const sub = await Collector.connect(d.mqttUrl, 'beamedge/st/#', 4);
    const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
    try {
      await s.send({ series: 's', frame: 0, encoding: 'cbf' }, cbf);
      await sub.waitForCount('reduced', 1);
      return sub.reduced()[0]!;
    } finally {
      await s.close();
      await sub.close();
      await d.stop('test end');
    }
  };
  const integrateOnly = await run('[integrate]', '{ threshold: 1e9, min_pixels: 1 }');
  t.equal(integrateOnly.reason, 'no veto stage', 'no veto: kept, and the reason says why');
  t.ok(Array.from(integrateOnly.count!).some((c) => c > 0), 'no calibrate: the all-pixels mask file is not applied');
  const noIntegrate = await run('[veto, calibrate]', '{ threshold: -0.5, min_pixels: 1, keep_one_in: 0 }');
  t.equal(noIntegrate.decision, 'kept');
  t.equal(noIntegrate.reason, `lit ${unmaskedValid} >= 1`, `calibrate ran before the veto: only the ${unmaskedValid} valid pixels the mask leaves are counted`);
  t.equal(noIntegrate.intensity, undefined, 'no integrate stage: no profile published');
});

t.test('check-config refuses an unknown or repeated stage', async (t) => {
  t.throws(() => parseConfig('pipeline: { stages: [calibrate, reconstruct] }', 'test'), /pipeline\.stages: .* must be a list of calibrate, spots, veto, integrate, correlate/);
  t.throws(() => parseConfig('pipeline: { stages: [veto, veto] }', 'test'), /pipeline\.stages: .* names a value twice/);
});
