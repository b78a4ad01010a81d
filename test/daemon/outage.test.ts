// Broker outage: the daemon keeps processing and spools what the broker has
// not acknowledged to disk. Once the broker is back, or after a restart, every
// frame's reduced message is delivered in order. Only a full spool drops
// anything, oldest first, and each drop is counted and marked in provenance.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import t from 'tap';
import { loadConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { decodeReduced } from '../../daemon/publish/messages';
import { FrameSender } from '../../daemon/sim/sender';
import { createLogger } from '../../daemon/system/logger';
import { needData, readData } from '../helpers/data';
import { needMosquitto, startMosquitto, stopMosquitto } from '../helpers/mosquitto';
import { Collector } from '../helpers/mqtt-collector';
import { freePort, waitForPort } from '../helpers/net';
import { until } from '../helpers/wait';

interface Setup {
  dir: string;
  db: string;
  cfg: string;
  port: number;
}

/** A daemon configuration in a fresh directory; the caller's teardown removes it, after stopping everything. */
async function setup(instance: string, mqttExtra: string, statsMs = 60_000): Promise<Setup> {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-outage-'));
  const port = await freePort();
  const db = path.join(dir, 'p.sqlite');
  const cfg = path.join(dir, 'c.yaml');
  writeFileSync(
    cfg,
    `instance: ${instance}\nhttp: { port: 0 }\ningest: { tcp: { port: 0 } }\nrings: { slots: 4, slot_mb: 1 }\nworkers: { threads: 1 }\n` +
      `mqtt: { url: "mqtt://127.0.0.1:${port}"${mqttExtra} }\nprovenance: { path: ${JSON.stringify(db)}, batch_ms: 50 }\nstats: { interval_ms: ${statsMs} }\n`,
  );
  return { dir, db, cfg, port };
}

function frameRows(db: string, run?: number): { run_id: number; frame: number; published: number }[] {
  const d = new Database(db, { readonly: true });
  try {
    return d.prepare(`SELECT run_id, frame, published FROM frames ${run ? 'WHERE run_id = ?' : ''} ORDER BY frame`).all(...(run ? [run] : [])) as { run_id: number; frame: number; published: number }[];
  } finally {
    d.close();
  }
}

async function sendFrames(port: number, series: string, from: number, to: number): Promise<void> {
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const s = await FrameSender.connect('127.0.0.1', port);
  for (let i = from; i < to; i++) await s.send({ series, frame: i, encoding: 'cbf' }, cbf);
  await s.close();
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

function spoolBytes(dir: string): number {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.seg'))
    .reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
}

t.test('broker stopped while frames are processed: nothing undeliverable, every reduced message delivered in order once it is back', async (t) => {
  if (!needData(t) || !needMosquitto(t)) return;
  const s = await setup('outage', '');
  let broker: ChildProcess = startMosquitto(s.port, s.dir, { persistent: true });
  await waitForPort(s.port);
  // A persistent session (clean off, MQTT 3.1.1): the broker keeps the
  // subscription across its restart and queues for the subscriber, so it does
  // not matter who reconnects first.
  const sub = mqtt.connect(`mqtt://127.0.0.1:${s.port}`, { protocolVersion: 4, clientId: 'outage-subscriber', clean: false, reconnectPeriod: 100 });
  const frames: number[] = [];
  sub.on('message', (topic, payload) => topic.endsWith('/reduced') && frames.push(decodeReduced(payload).frame));
  await sub.subscribeAsync('beamedge/outage/reduced', { qos: 1 });
  const d = await Daemon.start({ loaded: loadConfig(s.cfg), log: createLogger('error') });
  t.teardown(async () => {
    await d.stop('test end');
    await sub.endAsync(true);
    await stopMosquitto(broker);
    rmSync(s.dir, { recursive: true, force: true });
  });
  await until(() => d.mqttState.connected, 'daemon connected');

  await sendFrames(d.tcpPort!, 'o', 0, 3);
  await until(() => frames.length === 3, 'the fast path while the broker is up');

  await stopMosquitto(broker);
  await until(() => !d.mqttState.connected, 'daemon sees the broker gone');
  const N = 40;
  await sendFrames(d.tcpPort!, 'o', 3, 3 + N);
  await until(() => d.stats.totals.processed === 3 + N, 'processing without a broker');
  t.equal(d.stats.totals.undeliverable, 0, 'nothing dropped');
  t.equal(d.stats.totals.published, 3);
  // A result is handed to MQTT once its provenance row is committed: wait for that, not for the worker.
  await d.sync();
  t.ok(d.mqttState.spooled >= N, `the spool holds the ${N} reduced messages (${d.mqttState.spooled} messages)`);
  t.ok(spoolBytes(path.join(s.dir, 'spool-outage')) > N * 10_000, 'on disk, beside the provenance database');

  broker = startMosquitto(s.port, s.dir, { persistent: true });
  await until(() => d.stats.totals.published === 3 + N, 'every spooled frame acknowledged after reconnecting', 25_000);
  await until(() => new Set(frames).size === 3 + N, 'the subscriber has every frame', 10_000);
  const firsts = frames.filter((f, i) => frames.indexOf(f) === i);
  t.same(firsts, range(0, 3 + N), 'in order');
  t.comment(`${frames.length - firsts.length} duplicate(s) (QoS 1 is at least once)`);
  t.equal(d.stats.totals.undeliverable, 0);
  await until(() => d.mqttState.spooled === 0, 'spool drained');
  await until(() => frameRows(s.db).every((r) => r.published === 1) && frameRows(s.db).length === 3 + N, 'provenance: every frame published');
});

t.test('a tiny spool: overflow drops the oldest, each counted per topic, and provenance names the frames not delivered', async (t) => {
  if (!needData(t) || !needMosquitto(t)) return;
  // 256 KiB: about a dozen 20 KB reduced messages.
  // No stats tick during the test: its undeliverable event would go to the full spool and push out one more frame.
  const s = await setup('tiny', ', spool: { max_mb: 0.25 }');
  const d = await Daemon.start({ loaded: loadConfig(s.cfg), log: createLogger('error') });
  let broker: ChildProcess | undefined;
  t.teardown(async () => {
    await d.stop('test end');
    if (broker) await stopMosquitto(broker);
    rmSync(s.dir, { recursive: true, force: true });
  });
  const N = 30;
  await sendFrames(d.tcpPort!, 'tiny', 0, N);
  await until(() => d.stats.totals.processed === N, 'processing without a broker');
  await d.sync();
  const stats = d.stats.snapshot(d.epoch, {});
  const dropped = stats.undeliverable_by_topic['beamedge/tiny/reduced'] ?? 0;
  t.ok(dropped >= 10 && dropped < N, `${dropped} reduced messages dropped`);
  t.equal(
    Object.values(stats.undeliverable_by_topic).reduce((a, b) => a + b, 0),
    stats.totals.undeliverable,
    'per-topic counts add up to the total',
  );
  t.ok(spoolBytes(path.join(s.dir, 'spool-tiny')) <= 256 * 1024, 'the files stay within max_mb');
  await until(() => frameRows(s.db).filter((r) => r.published === -1).length === dropped, 'provenance marks the dropped frames');
  t.same(
    frameRows(s.db)
      .filter((r) => r.published === -1)
      .map((r) => r.frame),
    range(0, dropped),
    'the oldest frames were dropped',
  );

  broker = startMosquitto(s.port, s.dir);
  await until(() => d.stats.totals.published === N - dropped, 'the rest delivered after reconnecting', 25_000);
  await until(() => frameRows(s.db).every((r) => r.published !== 0), 'provenance: every frame either published or marked undelivered');
  t.same(
    frameRows(s.db)
      .filter((r) => r.published === 1)
      .map((r) => r.frame),
    range(dropped, N),
  );
  // Reported once per stats interval (here the last one, at stop) as an event with the counts by topic.
  await d.stop('test end');
  const d0 = new Database(s.db, { readonly: true });
  const ev = d0.prepare("SELECT details FROM events WHERE kind = 'undeliverable'").all() as { details: string }[];
  d0.close();
  t.same(
    ev.map((e) => (JSON.parse(e.details) as { by_topic: Record<string, number> }).by_topic),
    // The start event was the oldest message in the spool: it went first.
    [{ 'beamedge/tiny/events': 1, 'beamedge/tiny/reduced': dropped }],
    'an undeliverable event with the counts by topic',
  );
});

t.test('stopped with the broker down, restarted with it up: the last run\'s spool is delivered', async (t) => {
  if (!needData(t) || !needMosquitto(t)) return;
  const s = await setup('restart', '');
  const N = 12;
  let broker: ChildProcess | undefined;
  let sub: Collector | undefined;
  let d2: Daemon | undefined;
  t.teardown(async () => {
    await sub?.close();
    await d2?.stop('test end');
    if (broker) await stopMosquitto(broker);
    rmSync(s.dir, { recursive: true, force: true });
  });
  const d1 = await Daemon.start({ loaded: loadConfig(s.cfg), log: createLogger('error') });
  const run1 = d1.runId;
  await sendFrames(d1.tcpPort!, 'r', 0, N);
  await until(() => d1.stats.totals.processed === N, 'processing without a broker');
  await d1.stop('test: broker down');
  const lost = d1.stats.snapshot(1, {}).undeliverable_by_topic;
  t.same(Object.keys(lost), ['beamedge/restart/status'], 'only the final status could not be kept (retained state, superseded at the next start)');
  t.ok(spoolBytes(path.join(s.dir, 'spool-restart')) > N * 10_000, 'the reduced messages are on disk');

  broker = startMosquitto(s.port, s.dir);
  await waitForPort(s.port);
  sub = await Collector.connect(`mqtt://127.0.0.1:${s.port}`, 'beamedge/restart/#', 5);
  d2 = await Daemon.start({ loaded: loadConfig(s.cfg), log: createLogger('error') });
  await sub.waitForCount('reduced', N);
  t.same(
    sub.reduced().map((m) => [m.series, m.frame]),
    range(0, N).map((i) => ['r', i]),
    'every frame of the first run, in order',
  );
  t.equal(sub.on('reduced')[0]!.contentType, 'application/cbor', 'the content type was kept in the spool');
  t.equal(d2.stats.totals.undeliverable, 0);
  await until(() => frameRows(s.db, run1).length === N && frameRows(s.db, run1).every((r) => r.published === 1), "provenance: the first run's frames published");
  await until(() => d2!.mqttState.spooled === 0, 'spool drained');
});

t.test('with the spool disabled, the memory queue is bounded and overflow is counted', async (t) => {
  if (!needData(t)) return;
  const s = await setup('nospool', ', queue_limit: 4, spool: { enabled: false }');
  const d = await Daemon.start({ loaded: loadConfig(s.cfg), log: createLogger('error') });
  t.teardown(async () => {
    await d.stop('test end');
    rmSync(s.dir, { recursive: true, force: true });
  });
  await sendFrames(d.tcpPort!, 'n', 0, 8);
  await until(() => d.stats.totals.processed === 8, 'processing without a broker');
  await d.sync();
  // The start event and 8 reduced messages against a limit of 4: the 5 oldest are dropped.
  t.equal(d.stats.totals.undeliverable, 5);
  t.same(d.stats.snapshot(1, {}).undeliverable_by_topic, { 'beamedge/nospool/events': 1, 'beamedge/nospool/reduced': 4 });
  t.notOk(readdirSync(s.dir).some((f) => f.startsWith('spool-')), 'no spool directory');
  await until(() => frameRows(s.db).filter((r) => r.published === -1).length === 4, 'provenance marks frames 0-3');
  t.same(
    frameRows(s.db)
      .filter((r) => r.published === -1)
      .map((r) => r.frame),
    [0, 1, 2, 3],
  );
});

t.test('an edit of the configuration file is picked up without a signal', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-watchcfg-'));
  const cfg = path.join(dir, 'c.yaml');
  const yaml = (min: number) => `instance: w\nhttp: { port: 0 }\ningest: { tcp: { port: 0 } }\nrings: { slots: 2, slot_mb: 1 }\nworkers: { threads: 1 }\npipeline: { veto: { min_pixels: ${min} } }\nmqtt: { embedded_port: 0 }\nprovenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))} }\n`;
  writeFileSync(cfg, yaml(30));
  const d = await Daemon.start({ loaded: loadConfig(cfg), configPath: cfg, watchConfig: true, log: createLogger('error') });
  t.teardown(async () => {
    await d.stop('test end');
    rmSync(dir, { recursive: true, force: true });
  });
  // Let the file's mtime move on by more than the filesystem's granularity.
  await new Promise((r) => setTimeout(r, 50));
  writeFileSync(cfg, yaml(40));
  await until(() => d.epoch === 2, 'epoch 2 after the edit', 10_000);
  t.equal(d.running.pipeline.veto.min_pixels, 40);
  writeFileSync(cfg, yaml(40).replace('min_pixels: 40', 'min_pixels: lots'));
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(d.epoch, 2, 'an invalid edit leaves epoch 2 running');
});
