// The daemon's map store end to end: a reload that changes only the veto
// threshold builds nothing (the workers keep their maps), a reload that
// changes npt builds the new map once for both workers, and a restarted
// daemon loads its maps from the disk cache instead of building them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { FrameSender } from '../../daemon/sim/sender';
import { createLogger } from '../../daemon/system/logger';
import { needData, readData } from '../helpers/data';
import { Collector } from '../helpers/mqtt-collector';
import { until } from '../helpers/wait';

t.test('reloads reuse maps; an npt change builds once for two workers; a restart loads from disk', async (t) => {
  if (!needData(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-map-reuse-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfgPath = path.join(dir, 'c.yaml');
  const write = (threshold: number, npt: number) =>
    writeFileSync(
      cfgPath,
      `instance: mr\nmqtt: { embedded_port: 0 }\nhttp: { port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 2 }\nrings: { slots: 8, slot_mb: 4 }\n` +
        `provenance: { path: p.sqlite, batch_ms: 20 }\n` +
        `pipeline: { veto: { threshold: ${threshold}, min_pixels: 1 }, integrate: { npt: ${npt} } }\n`,
    );
  const cbf = readData('cbf', 'in16c_010001.cbf');
  write(20, 300);

  const session = async (fn: (d: Daemon, send: (n: number) => Promise<void>) => Promise<void>) => {
    const d = await Daemon.start({ loaded: loadConfig(cfgPath), configPath: cfgPath, watchConfig: false, log: createLogger('error') });
    const sub = await Collector.connect(d.mqttUrl, 'beamedge/mr/#', 4);
    const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
    let sent = 0;
    // n frames sent back to back (both workers get some), then wait for their outcomes.
    const send = async (n: number) => {
      for (let i = 0; i < n; i++) await s.send({ series: 's', frame: sent++, encoding: 'cbf' }, cbf);
      await sub.waitForCount('reduced', sent);
    };
    try {
      await fn(d, send);
    } finally {
      await s.close();
      await sub.close();
      await d.stop('test end');
    }
  };

  await session(async (d, send) => {
    await send(8);
    t.equal(d.maps.stats().builds, 1, 'first geometry: one build for both workers');
    const requests = () => {
      const s = d.maps.stats();
      return s.hits + s.joined + s.builds + s.disk_loads;
    };
    const before = requests();
    for (let i = 1; i <= 3; i++) {
      write(20 + i, 300);
      t.equal((await d.reload('test')).ok, true, `veto reload ${i}`);
      await send(6);
    }
    t.equal(d.maps.stats().builds, 1, 'veto threshold reloads: still one build');
    t.ok(requests() - before <= 1, `and the workers kept their maps (${requests() - before} request(s) to the store, at most one from a worker that had no frame yet)`);
    write(23, 400);
    await d.reload('test');
    const shared = d.maps.stats().joined + d.maps.stats().hits;
    await send(12);
    t.equal(d.maps.stats().builds, 2, 'npt change: one more build, not one per worker');
    t.ok(d.maps.stats().joined + d.maps.stats().hits > shared, 'the other worker got the same map from the store');
    t.equal(d.maps.stats().maps, 2, 'both maps kept');
  });

  await session(async (d, send) => {
    await send(4);
    t.equal(d.maps.stats().builds, 0, 'restarted daemon: no build');
    t.equal(d.maps.stats().disk_loads, 1, 'the map came from the disk cache');
  });
});

t.test('frames queued at a reload finish with the epoch they were received under', async (t) => {
  if (!needData(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-map-epoch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfgPath = path.join(dir, 'c.yaml');
  const write = (npt: number) =>
    writeFileSync(
      cfgPath,
      `instance: me\nmqtt: { embedded_port: 0 }\nhttp: { port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 16, slot_mb: 8 }\n` +
        `maps: { disk_cache: false }\nprovenance: { path: p.sqlite, batch_ms: 20 }\npipeline: { veto: { enabled: false }, integrate: { npt: ${npt} } }\n`,
    );
  write(300);
  // 6M frames: the one worker is still busy with the first ones when the reload comes.
  const cbf = readData('cbf', 'thau_3_2_0001.cbf');
  const d = await Daemon.start({ loaded: loadConfig(cfgPath), configPath: cfgPath, watchConfig: false, log: createLogger('error') });
  const sub = await Collector.connect(d.mqttUrl, 'beamedge/me/#', 4);
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  try {
    for (let i = 0; i < 8; i++) await s.send({ series: 'e', frame: i, encoding: 'cbf' }, cbf);
    // Every one of them is received (stamped with epoch 1) before the reload.
    await until(() => d.stats.totals.frames_in === 8, '8 frames received');
    const queued = 8 - d.stats.totals.processed;
    write(400);
    t.equal((await d.reload('test')).epoch, 2);
    for (let i = 8; i < 12; i++) await s.send({ series: 'e', frame: i, encoding: 'cbf' }, cbf);
    await sub.waitForCount('reduced', 12, 60_000);
    const byFrame = new Map(sub.reduced().map((m) => [m.frame, m]));
    const wrong = [...byFrame.values()].filter((m) => m.epoch !== (m.frame < 8 ? 1 : 2) || m.intensity?.length !== (m.frame < 8 ? 300 : 400));
    t.same(wrong.map((m) => `${m.frame}: epoch ${m.epoch}, ${m.intensity?.length} bins`), [], `frames 0-7 (${queued} still queued at the reload) with epoch 1 and 300 bins, 8-11 with epoch 2 and 400`);
    t.ok(queued > 0, `the reload found ${queued} frame(s) queued`);
  } finally {
    await s.close();
    await sub.close();
    await d.stop('test end');
  }
});
