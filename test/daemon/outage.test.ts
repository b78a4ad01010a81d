// Broker outage: the daemon keeps processing, holds a bounded queue, counts
// what it had to drop, and delivers the rest once the broker is back.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { FrameSender } from '../../daemon/sim/sender';
import { createLogger } from '../../daemon/system/logger';
import { needMosquitto, startMosquitto } from '../helpers/mosquitto';
import { freePort } from '../helpers/net';
import { until } from '../helpers/wait';
import { needData, readData } from '../helpers/data';
import { Collector } from '../helpers/mqtt-collector';



t.test('frames keep flowing while the broker is down; the queue is bounded and counted', async (t) => {
  if (!needData(t) || !needMosquitto(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-outage-'));
  const port = await freePort();

  const cfg = path.join(dir, 'c.yaml');
  writeFileSync(cfg, `instance: outage\ningest: { tcp: { port: 0 } }\nrings: { slots: 4, slot_mb: 1 }\nworkers: { threads: 1 }\nmqtt: { url: "mqtt://127.0.0.1:${port}", queue_limit: 4 }\nprovenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))} }\nstats: { interval_ms: 60000 }\n`);
  const d = await Daemon.start({ loaded: loadConfig(cfg), log: createLogger('error') });
  let broker: ChildProcess | undefined;
  let sub: Collector | undefined;
  // One teardown, in order: subscriber, daemon (while the broker is still up), broker, files.
  t.teardown(async () => {
    await sub?.close();
    await d.stop('test end');
    broker?.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  for (let i = 0; i < 8; i++) await s.send({ series: 'o', frame: i, encoding: 'cbf' }, cbf);
  await until(() => d.stats.totals.processed === 8, 'processing without a broker');
  // 8 reduced + 1 status were queued against a limit of 4: the 5 oldest are dropped and counted.
  t.equal(d.stats.totals.undeliverable, 5, 'messages beyond the queue limit are counted as undeliverable');
  t.equal(d.stats.totals.published, 0);

  broker = startMosquitto(port, dir);
  // The back-off is at most a few seconds at this point.
  await until(() => d.stats.totals.published === 4, 'the queued frames delivered after reconnecting', 40_000);
  t.pass('the 4 queued reduced frames are delivered once the broker is up');
  sub = await Collector.connect(`mqtt://127.0.0.1:${port}`, 'beamedge/outage/#', 5);
  await s.send({ series: 'o', frame: 8, encoding: 'cbf' }, cbf);
  await sub.waitFor('a new reduced frame', (m) => m.topic.endsWith('/reduced'));
  await s.close();
  t.equal(d.stats.totals.published, 5);
});

t.test('an edit of the configuration file is picked up without a signal', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-watchcfg-'));
  const cfg = path.join(dir, 'c.yaml');
  const yaml = (min: number) => `instance: w\ningest: { tcp: { port: 0 } }\nrings: { slots: 2, slot_mb: 1 }\nworkers: { threads: 1 }\npipeline: { veto: { min_pixels: ${min} } }\nmqtt: { embedded_port: 0 }\nprovenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))} }\n`;
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
