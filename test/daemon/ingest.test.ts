// Ingest policies and the directory watcher, with the daemon in-process.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { parseConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { FrameSender } from '../../daemon/sim/sender';
import { createLogger } from '../../daemon/system/logger';
import { until } from '../helpers/wait';
import { dataFile, needData, readData } from '../helpers/data';

async function daemonWith(t: Test, yaml: string): Promise<{ d: Daemon; dir: string; db: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-ingest-'));
  const db = path.join(dir, 'p.sqlite');
  const loaded = parseConfig(`instance: ingest\nhttp: { port: 0 }\nmqtt: { embedded_port: 0 }\nprovenance: { path: ${JSON.stringify(db)}, batch_ms: 20 }\nworkers: { threads: 1 }\n${yaml}`, 'test');
  const d = await Daemon.start({ loaded, log: createLogger('error') });
  t.teardown(async () => {
    await d.stop('test end');
    rmSync(dir, { recursive: true, force: true });
  });
  return { d, dir, db };
}


t.test('backpressure: more frames than slots, none lost', async (t) => {
  if (!needData(t)) return;
  const { d } = await daemonWith(t, 'ingest: { tcp: { port: 0, policy: backpressure } }\nrings: { slots: 2, slot_mb: 8 }');
  const cbf = readData('cbf', 'thau_3_2_0001.cbf');
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  for (let i = 0; i < 12; i++) await s.send({ series: 'bp', frame: i, encoding: 'cbf' }, cbf);
  await s.close();
  await until(() => d.stats.totals.processed === 12, '12 processed');
  t.same([d.stats.totals.frames_in, d.stats.totals.dropped, d.stats.totals.errored], [12, 0, 0], 'all 12 frames in, none dropped with 2 slots');
});

t.test('drop policy: frames beyond the free slots are dropped, counted and recorded', async (t) => {
  if (!needData(t)) return;
  const { d, db } = await daemonWith(t, 'ingest: { tcp: { port: 0, policy: drop } }\nrings: { slots: 2, slot_mb: 8 }');
  const cbf = readData('cbf', 'thau_3_2_0001.cbf');
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  for (let i = 0; i < 12; i++) await s.send({ series: 'dr', frame: i, encoding: 'cbf' }, cbf);
  await s.close();
  await until(() => d.stats.totals.processed + d.stats.totals.dropped === 12, 'all frames accounted for');
  const { processed, dropped } = d.stats.totals;
  t.ok(dropped > 0, `${dropped} dropped, ${processed} processed`);
  await until(() => {
    const n = (new Database(db, { readonly: true }).prepare("SELECT count(*) n FROM frames WHERE decision = 'dropped'").get() as { n: number }).n;
    return n === dropped;
  }, 'dropped rows');
  t.pass('every dropped frame has a provenance row');
});

t.test('directory watcher: each complete file once, in name order', async (t) => {
  if (!needData(t)) return;
  const incoming = mkdtempSync(path.join(tmpdir(), 'beamedge-watch-'));
  t.teardown(() => rmSync(incoming, { recursive: true, force: true }));
  const { d, db } = await daemonWith(t, `ingest:\n  tcp: { enabled: false }\n  watch: { enabled: true, directory: ${JSON.stringify(incoming)}, poll_ms: 30, incomplete_timeout_ms: 20000, series: run1 }\nrings: { slots: 4, slot_mb: 1 }`);
  const cbf = readData('cbf', 'in16c_010001.cbf');
  // image_10 is still being written when image_2 and image_3 are complete: they must wait for it.
  // incomplete_timeout_ms is long so that a slow machine cannot pass image_10 on before the first check.
  writeFileSync(path.join(incoming, 'image_10.cbf.tmp'), '');
  writeFileSync(path.join(incoming, 'image_3.cbf'), cbf);
  writeFileSync(path.join(incoming, 'image_2.cbf'), cbf);
  writeFileSync(path.join(incoming, 'image_10.cbf'), cbf.subarray(0, 100_000));
  writeFileSync(path.join(incoming, 'notes.txt'), 'not a frame');
  await until(() => d.stats.totals.processed === 2, 'two complete files');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(d.stats.totals.processed, 2, 'the incomplete file is not taken yet');
  writeFileSync(path.join(incoming, 'image_10.cbf'), cbf);
  copyFileSync(dataFile('cbf', 'in16c_010001.cbf'), path.join(incoming, 'image_11.cbf'));
  await until(() => d.stats.totals.processed === 4, 'all four files');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(d.stats.totals.processed, 4, 'no file is processed twice');
  await until(() => (new Database(db, { readonly: true }).prepare("SELECT count(*) n FROM frames WHERE decision <> 'received'").get() as { n: number }).n === 4, 'rows');
  const frames = new Database(db, { readonly: true }).prepare('SELECT series, frame, decision FROM frames ORDER BY id').all();
  t.same(frames, [
    { series: 'run1', frame: 2, decision: 'kept' },
    { series: 'run1', frame: 3, decision: 'kept' },
    { series: 'run1', frame: 10, decision: 'kept' },
    { series: 'run1', frame: 11, decision: 'kept' },
  ], 'in natural name order, frame number from the name');
});

t.test('directory watcher: a file that stays incomplete is rejected, later ones still flow', async (t) => {
  if (!needData(t)) return;
  const incoming = mkdtempSync(path.join(tmpdir(), 'beamedge-watch-'));
  t.teardown(() => rmSync(incoming, { recursive: true, force: true }));
  const { d } = await daemonWith(t, `ingest:\n  tcp: { enabled: false }\n  watch: { enabled: true, directory: ${JSON.stringify(incoming)}, poll_ms: 30, incomplete_timeout_ms: 300 }\nrings: { slots: 4, slot_mb: 1 }`);
  const cbf = readData('cbf', 'in16c_010001.cbf');
  writeFileSync(path.join(incoming, 'a_1.cbf'), cbf.subarray(0, 50_000));
  writeFileSync(path.join(incoming, 'a_2.cbf'), cbf);
  await until(() => d.stats.totals.processed === 2, 'both files');
  t.same([d.stats.totals.kept, d.stats.totals.errored], [1, 1], 'the truncated file is an error, the next is kept');
});
