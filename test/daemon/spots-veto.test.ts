// The spots veto end to end: the synthetic stream (hits with Bragg spots,
// blanks with only rings and background) through the daemon with
// veto.method spots keeps the hits and rejects the blanks; spot lists and
// counts reach MQTT and provenance, hit rates reach stats, and a live reload
// of min_spots applies from the next frame.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { loadConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { FrameSender } from '../../daemon/sim/sender';
import { framePool, SyntheticDetector } from '../../daemon/sim/synthetic';
import { HitRates, SERIES_IDLE_MS } from '../../daemon/stats/hit-rates';
import { createLogger } from '../../daemon/system/logger';
import { Collector } from '../helpers/mqtt-collector';
import { until } from '../helpers/wait';

const config = (dir: string, minSpots: number) =>
  `instance: sv\nhttp: { port: 0 }\nmqtt: { embedded_port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 4, slot_mb: 4 }\n` +
  `provenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))}, batch_ms: 20 }\nstats: { interval_ms: 200 }\n` +
  `pipeline:\n  spots: { algorithm: dispersion, max_published: 25 }\n  veto: { method: spots, min_spots: ${minSpots} }\n  integrate: { npt: 200 }\n`;

t.test('veto.method spots keeps the hits of the synthetic stream and rejects the blanks', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-spots-veto-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = path.join(dir, 'c.yaml');
  writeFileSync(cfg, config(dir, 10));
  const d = await Daemon.start({ loaded: loadConfig(cfg), configPath: cfg, watchConfig: false, log: createLogger('error') });
  t.teardown(() => d.stop('test end'));
  const sub = await Collector.connect(d.mqttUrl, 'beamedge/sv/#', 4);
  t.teardown(() => sub.close());
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  t.teardown(() => s.close());

  const pool = framePool(new SyntheticDetector({ seed: 3 }), 20, 0.3);
  const hits = pool.filter((f) => f.hit).length;
  t.ok(hits > 0 && hits < pool.length, `${hits} hits among ${pool.length} frames`);
  for (let i = 0; i < pool.length; i++) await s.send({ series: 'sv', frame: i, encoding: 'cbf', meta: { hit: pool[i]!.hit } }, pool[i]!.cbf);
  await until(() => d.stats.totals.processed === pool.length, 'all processed');
  await d.sync();
  await sub.waitForCount('reduced', hits);
  const reduced = sub.reduced();
  t.same(reduced.map((m) => m.frame).sort((a, b) => a - b), pool.flatMap((f, i) => (f.hit ? [i] : [])), 'exactly the hits are kept');
  for (const m of reduced) {
    t.ok(m.spots && m.spots.count >= 10, `frame ${m.frame}: ${m.spots?.count} spots, reason "${m.reason}"`);
    t.match(m.reason, /^spots \d+ >= 10$/);
    t.equal(m.spots!.fs.length, Math.min(25, m.spots!.count), 'the list is capped at max_published, the count is not');
    t.ok(m.spots!.fs instanceof Float32Array && m.spots!.intensity.length === m.spots!.fs.length, 'spot arrays as float32');
  }
  const db = new Database(path.join(dir, 'p.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const rows = db.prepare("SELECT frame, decision, reason, spots FROM frames WHERE series = 'sv' ORDER BY frame").all() as { frame: number; decision: string; reason: string; spots: number }[];
  t.same(rows.map((r) => r.decision), pool.map((f) => (f.hit ? 'kept' : 'rejected')), 'provenance decisions');
  t.ok(rows.every((r) => Number.isInteger(r.spots)), 'every row has its spot count');
  t.ok(rows.filter((r) => r.decision === 'rejected').every((r) => /^spots \d+ < 10$/.test(r.reason)), 'rejects say what was counted');
  const full = (m: { topic: string; payload: Buffer }) => m.topic.endsWith('/stats') && JSON.parse(m.payload.toString()).hit_rates?.sv?.frames === pool.length;
  await sub.waitFor('stats with hit rates', full);
  const rate = JSON.parse(sub.on('stats').find(full)!.payload.toString()).hit_rates.sv as { hits: number; hit_rate: number };
  t.same([rate.hits, rate.hit_rate], [hits, hits / pool.length], 'stats: hit rate of the series since its start');

  // Live reload: a threshold no frame reaches rejects the very next hit.
  writeFileSync(cfg, config(dir, 1000));
  t.ok((await d.reload('test')).ok);
  const hit = pool.findIndex((f) => f.hit);
  await s.send({ series: 'sv', frame: 100, encoding: 'cbf' }, pool[hit]!.cbf);
  await until(() => d.stats.totals.processed === pool.length + 1, 'one more');
  await d.sync();
  const after = db.prepare("SELECT decision, reason, epoch FROM frames WHERE series = 'sv' AND frame = 100").get() as { decision: string; reason: string; epoch: number };
  t.equal(after.decision, 'rejected');
  t.match(after.reason, /^spots \d+ < 1000$/);
  t.equal(after.epoch, 2, 'from the next frame, under the new epoch');
});

t.test('hit rates: per interval and since the start, and a summary when a series ends', async (t) => {
  const h = new HitRates();
  const t0 = 1_000_000;
  for (let i = 0; i < 10; i++) h.judged('a', i % 4 === 0, i % 4 === 0 ? 10 + i : 3, t0);
  let snap = h.snapshot();
  t.same(snap.a, { frames: 10, hits: 3, hit_rate: 0.3, interval_hit_rate: 0.3 });
  h.judged('a', true, 40, t0 + 1);
  snap = h.snapshot();
  t.same([snap.a!.interval_hit_rate, snap.a!.hits], [1, 4], 'the interval starts again; the totals go on');
  t.same(h.idle(t0 + SERIES_IDLE_MS), [], 'not idle yet');
  t.same(h.idle(t0 + 1 + SERIES_IDLE_MS), ['a']);
  // Hits had 10, 14, 18 and 40 spots: the median is 16.
  t.same(h.end('a'), { series: 'a', frames: 11, hits: 4, hit_rate: 4 / 11, median_spots_per_hit: 16 });
  t.equal(h.end('a'), undefined, 'once');
});
