// End to end over real sockets: beamedge run as a child process, frames sent
// over the TCP framing, results read from MQTT and the provenance database.
// Runs against the embedded broker, and against Mosquitto when installed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { FrameSender } from '../../daemon/sim/sender';
import { needMosquitto, startMosquitto } from '../helpers/mosquitto';
import { freePort, waitForPort } from '../helpers/net';
import { until } from '../helpers/wait';
import { dataFile, needData, readData } from '../helpers/data';
import { BIN, DaemonProcess, writeYaml } from '../helpers/daemon-process';
import { Collector } from '../helpers/mqtt-collector';



function config(db: string, mqtt: string, veto: { threshold: number; min_pixels: number }, threads = 1): string {
  return `instance: e2e
http: { port: 0 }
log: { level: info }
ingest: { tcp: { host: 127.0.0.1, port: 0 } }
rings: { slots: 8, slot_mb: 8 }
workers: { threads: ${threads} }
pipeline:
  veto: { enabled: true, threshold: ${veto.threshold}, min_pixels: ${veto.min_pixels} }
  integrate: { npt: 1000, unit: q_nm^-1, split: "no" }
${mqtt}
provenance: { path: ${JSON.stringify(db)}, batch_ms: 50 }
stats: { interval_ms: 500 }
`;
}

interface FrameRowDb {
  series: string;
  frame: number;
  decision: string;
  reason: string;
  epoch: number;
  published: number;
  error: string | null;
}

function rows(db: string): FrameRowDb[] {
  const d = new Database(db, { readonly: true });
  try {
    // Outcome rows only: a frame still being processed has a 'received' row.
    return d.prepare("SELECT series, frame, decision, reason, epoch, published, error FROM frames WHERE decision <> 'received' ORDER BY id").all() as FrameRowDb[];
  } finally {
    d.close();
  }
}



async function scenario(t: Test, broker: { name: string; mqttYaml: (port: number) => string; url?: string; v5: boolean }): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), `beamedge-e2e-${broker.name}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = path.join(dir, 'prov.sqlite');
  const mqttPort = await freePort();
  const cfg = writeYaml(path.join(dir, 'beamedge.yaml'), config(db, broker.mqttYaml(mqttPort), { threshold: 20, min_pixels: 30 }));
  // With an external broker a subscriber can be there before the daemon: it sees the start event.
  const early = broker.url ? await Collector.connect(broker.url, 'beamedge/e2e/events', broker.v5 ? 5 : 4) : undefined;
  if (early) t.teardown(() => early.close());
  const d = DaemonProcess.start(cfg);
  t.teardown(() => void d.stop('SIGKILL'));
  const { tcpPort, mqtt } = await d.ready();
  if (early) {
    await early.waitFor('start event', (m) => JSON.parse(m.payload.toString()).kind === 'start');
    const start = early.events().find((e) => e.kind === 'start')!;
    t.match(start.details, { epoch: 1, workers: 1 }, 'the start event reaches MQTT with the epoch and workers');
  }
  const sub = await Collector.connect(mqtt, 'beamedge/e2e/#', broker.v5 ? 5 : 4);
  t.teardown(() => sub.close());
  await sub.waitFor('status running', (m) => m.topic === 'beamedge/e2e/status' && JSON.parse(m.payload.toString()).state === 'running');

  const cbf = readData('cbf', 'in16c_010001.cbf');
  const sender = await FrameSender.connect('127.0.0.1', tcpPort);

  // 1. Three frames: published with ids, metadata and the same profile as `beamedge integrate`.
  for (let i = 0; i < 3; i++) await sender.send({ series: 'scan7', frame: i, encoding: 'cbf', meta: { sample: 'lysozyme' } }, cbf);
  await sub.waitForCount('reduced', 3);
  const reduced = sub.reduced();
  t.same(reduced.map((m) => [m.series, m.frame, m.decision, m.epoch]), [['scan7', 0, 'kept', 1], ['scan7', 1, 'kept', 1], ['scan7', 2, 'kept', 1]], 'ids, decisions and epoch');
  t.same(reduced[0]!.meta, { sample: 'lysozyme' }, 'sender metadata passes through');
  t.equal(reduced[0]!.unit, 'q_nm^-1');
  t.ok(reduced[0]!.intensity instanceof Float32Array && reduced[0]!.radial instanceof Float64Array, 'profile as typed arrays');
  if (broker.v5) t.equal(sub.on('reduced')[0]!.contentType, 'application/cbor', 'MQTT v5 content type');
  const cli = spawnSync(process.execPath, [BIN, 'integrate', dataFile('cbf', 'in16c_010001.cbf'), '--from-header', '--npt', '1000', '--unit', 'q_nm^-1', '--split', 'no', '--json'], { encoding: 'utf8' });
  const ref = JSON.parse(cli.stdout) as { intensity: number[]; radial: number[] };
  const worst = Math.max(...ref.intensity.map((v, i) => Math.abs(reduced[0]!.intensity![i]! - v) / Math.max(Math.abs(v), 1e-6)));
  t.ok(worst < 1e-6, `profile equals beamedge integrate on the same file (worst relative ${worst.toExponential(2)})`);
  t.same(Array.from(reduced[0]!.radial!), ref.radial, 'radial positions equal');

  // A late subscriber gets the status as a retained message.
  const late = await Collector.connect(mqtt, 'beamedge/e2e/status', broker.v5 ? 5 : 4);
  await late.waitFor('retained status', (m) => m.retain && JSON.parse(m.payload.toString()).state === 'running');
  await late.close();
  t.pass('status is retained');

  // 2. One provenance row per frame with the decision.
  await until(() => (rows(db).filter((r) => r.published).length === 3 ? true : undefined), 'provenance rows');
  t.same(rows(db).map((r) => [r.series, r.frame, r.decision, r.epoch, r.published]), [['scan7', 0, 'kept', 1, 1], ['scan7', 1, 'kept', 1, 1], ['scan7', 2, 'kept', 1, 1]], 'provenance rows');

  // 3. SIGHUP with a stricter veto: decisions change from the next frame, new epoch.
  writeFileSync(cfg, config(db, broker.mqttYaml(mqttPort), { threshold: 20, min_pixels: 1_000_000 }));
  d.child.kill('SIGHUP');
  await sub.waitFor('reload event', (m) => m.topic.endsWith('/events') && JSON.parse(m.payload.toString()).kind === 'reload');
  const reloadEvent = sub.events().find((e) => e.kind === 'reload')!;
  t.same(reloadEvent.details?.changed, ['pipeline.veto.min_pixels'], 'the reload event lists the keys that changed');
  t.match(reloadEvent.message, /changed pipeline\.veto\.min_pixels/);
  await sender.send({ series: 'scan7', frame: 3, encoding: 'cbf' }, cbf);
  const r3 = await until(() => rows(db).find((r) => r.frame === 3), 'frame 3 row');
  t.same([r3.decision, r3.epoch], ['rejected', 2], 'the next frame is judged with the new threshold, epoch 2');
  t.match(r3.reason, /lit \d+ < 1000000/);
  const epochs = new Database(db, { readonly: true }).prepare('SELECT epoch, source FROM config_epochs ORDER BY epoch').all();
  t.same(epochs, [{ epoch: 1, source: 'start' }, { epoch: 2, source: 'SIGHUP' }], 'config epochs recorded');

  // 4. An invalid configuration is rejected and epoch 2 keeps running; so is a restart-only change.
  writeFileSync(cfg, config(db, broker.mqttYaml(mqttPort), { threshold: -1, min_pixels: 1.5 }));
  d.child.kill('SIGHUP');
  await sub.waitFor('reload_rejected event', (m) => m.topic.endsWith('/events') && JSON.parse(m.payload.toString()).kind === 'reload_rejected');
  const rejectedEvent = sub.events().find((e) => e.kind === 'reload_rejected')!;
  t.match(rejectedEvent.message, /pipeline\.veto\.min_pixels: 1\.5 must be an integer/, 'the message names key, value and rule');
  writeFileSync(cfg, config(db, broker.mqttYaml(mqttPort), { threshold: 20, min_pixels: 1_000_000 }, 2));
  d.child.kill('SIGHUP');
  // Wait for the rejection by what it says, not by count: the file watcher may see an edit as well as the SIGHUP.
  await sub.waitFor('restart-only rejection', (m) => m.topic.endsWith('/events') && /workers\.threads: changed, but takes effect only at restart/.test((JSON.parse(m.payload.toString()) as { message: string }).message));
  t.pass('a restart-only change is rejected with a message naming the key');
  await sender.send({ series: 'scan7', frame: 4, encoding: 'cbf' }, cbf);
  const r4 = await until(() => rows(db).find((r) => r.frame === 4), 'frame 4 row');
  t.same([r4.decision, r4.epoch], ['rejected', 2], 'epoch 2 still in force');

  // 5. Garbage and truncated frames: error event, error row, and the next frame is fine.
  await sender.send({ series: 'scan8', frame: 0, encoding: 'cbf' }, Buffer.from('this is not a CBF file'));
  await sender.send({ series: 'scan8', frame: 1, encoding: 'cbf' }, cbf.subarray(0, 200_000));
  await sender.send({ series: 'scan8', frame: 2, encoding: 'raw' }, cbf.subarray(0, 1000));
  await sender.send({ series: 'scan8', frame: 3, encoding: 'cbf' }, cbf);
  const r8 = await until(() => {
    // Frame 2 is refused at ingest, before 0 and 1 come back from the worker: order by frame.
    const rs = rows(db).filter((r) => r.series === 'scan8').sort((a, b) => a.frame - b.frame);
    return rs.length === 4 ? rs : undefined;
  }, 'scan8 rows');
  t.same(r8.map((r) => [r.frame, r.decision]), [[0, 'error'], [1, 'error'], [2, 'error'], [3, 'rejected']], 'bad frames are error rows; the next one is processed');
  t.match(r8[0]!.error, /not a CBF/);
  t.match(r8[1]!.error, /truncated/);
  t.match(r8[2]!.error, /raw frames need dtype/);
  await until(() => (sub.events().filter((e) => e.kind === 'frame_error').length >= 3 ? true : undefined), 'error events');
  t.ok(sub.events().some((e) => e.kind === 'frame_error' && /series scan8 frame 0 .*not a CBF/.test(e.message)), 'error event names the series, frame and problem');

  // 6. Stats on MQTT count all of it.
  // frames_in counts a frame on arrival; wait for a stats message that has all 9 outcomes, not only arrivals.
  const outcomes = (m: { payload: Buffer }) => {
    const { totals } = JSON.parse(m.payload.toString()) as { totals: Record<string, number> };
    return totals.kept! + totals.rejected! + totals.errored!;
  };
  await sub.waitFor('stats with 9 outcomes', (m) => m.topic.endsWith('/stats') && outcomes(m) === 9);
  const stats = JSON.parse(sub.on('stats').at(-1)!.payload.toString()) as { totals: Record<string, number> };
  t.same([stats.totals.kept, stats.totals.rejected, stats.totals.errored, stats.totals.reloads], [3, 3, 3, 1], 'stats totals');

  // 7. SIGTERM: drains, flushes provenance, publishes offline (retained), exits 0.
  await sender.close();
  t.equal(await d.stop('SIGTERM'), 0, 'exit code 0 after SIGTERM');
  await sub.waitFor('status offline', (m) => m.topic === 'beamedge/e2e/status' && JSON.parse(m.payload.toString()).state === 'offline');
  const run = new Database(db, { readonly: true }).prepare('SELECT stopped, stop_reason FROM runs').get() as { stopped: string; stop_reason: string };
  t.ok(run.stopped, 'run marked stopped');
  t.equal(run.stop_reason, 'SIGTERM');
  t.equal(rows(db).length, 9, 'every frame has its row after shutdown');
}

t.test('end to end with the embedded broker', async (t) => {
  if (!needData(t)) return;
  await scenario(t, { name: 'embedded', v5: false, mqttYaml: (port) => `mqtt: { embedded_host: 127.0.0.1, embedded_port: ${port} }` });
});

t.test('end to end with a real Mosquitto broker', async (t) => {
  if (!needData(t) || !needMosquitto(t)) return;
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-mosquitto-'));
  const broker = startMosquitto(port, dir);
  t.teardown(() => {
    broker.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  await waitForPort(port);
  await scenario(t, { name: 'mosquitto', v5: true, url: `mqtt://127.0.0.1:${port}`, mqttYaml: () => `mqtt: { url: "mqtt://127.0.0.1:${port}" }` });
});
