// Hostile TCP clients: none of them stops the daemon, holds a slot, or keeps a
// well-behaved sender from being served. After each case every slot is free
// again, and the daemon still stops in under 5 s.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { parseConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { encodeFrame } from '../../daemon/ingest/tcp-framing';
import { FrameSender } from '../../daemon/sim/sender';
import { createLogger } from '../../daemon/system/logger';
import { SystemdNotifier } from '../../daemon/system/sd-notify';
import { needData, readData } from '../helpers/data';
import { until } from '../helpers/wait';

const SLOTS = 4;

async function daemonWith(t: Test, tcp: string): Promise<{ d: Daemon; db: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-hostile-'));
  const db = path.join(dir, 'p.sqlite');
  const loaded = parseConfig(
    `instance: hostile\nhttp: { port: 0 }\ningest: { tcp: { port: 0, ${tcp} } }\nrings: { slots: ${SLOTS}, slot_mb: 1 }\nworkers: { threads: 1 }\nmqtt: { embedded_port: 0 }\nprovenance: { path: ${JSON.stringify(db)}, batch_ms: 20 }\n`,
    'test',
  );
  const d = await Daemon.start({ loaded, log: createLogger('error') });
  t.teardown(async () => {
    const t0 = Date.now();
    await d.stop('test end');
    if (Date.now() - t0 > 5000) throw new Error(`stop took ${Date.now() - t0} ms`);
    rmSync(dir, { recursive: true, force: true });
  });
  return { d, db };
}

function rows(db: string, where = '1'): { series: string; frame: number | null; decision: string; reason: string }[] {
  const d = new Database(db, { readonly: true });
  try {
    return d.prepare(`SELECT series, frame, decision, reason FROM frames WHERE ${where} ORDER BY id`).all() as never;
  } finally {
    d.close();
  }
}

async function raw(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await new Promise<void>((r) => s.once('connect', () => r()));
  return s;
}

function closed(s: net.Socket): Promise<void> {
  return s.destroyed ? Promise.resolve() : new Promise((r) => s.once('close', () => r()));
}

/** A good frame still goes through, and then every slot is free again. */
async function stillServes(t: Test, d: Daemon, series: string): Promise<void> {
  const before = d.stats.totals.processed;
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  await s.send({ series, frame: 0, encoding: 'cbf' }, readData('cbf', 'in16c_010001.cbf'));
  await until(() => d.stats.totals.processed > before, `a good frame processed after ${series}`);
  await s.close();
  await until(() => d.freeSlots === SLOTS, `all ${SLOTS} slots free after ${series}`, 10_000);
  t.pass(`${series}: a good frame is processed and all ${SLOTS} slots are free again`);
}

t.test('metadata that cannot fit a slot is refused per frame, not by crashing', async (t) => {
  if (!needData(t)) return;
  const { d, db } = await daemonWith(t, '');
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  await s.send({ series: 'big-meta', frame: 0, encoding: 'cbf', meta: { note: 'x'.repeat(5000) } }, cbf);
  await s.send({ series: 'y'.repeat(5000), frame: 1, encoding: 'cbf' }, cbf);
  await s.send({ series: 'after', frame: 3, encoding: 'cbf' }, cbf);
  await until(() => rows(db).length === 3 && rows(db).every((r) => r.decision !== 'received'), 'three rows');
  const r = rows(db);
  t.match(r[0], { series: 'big-meta', frame: 0, decision: 'error', reason: /meta of 50\d\d bytes exceeds 2048/ });
  t.match(r[1], { frame: 1, decision: 'error', reason: /series of 5000 characters exceeds 256/ });
  t.equal(r[1]!.series.length, 256, 'the recorded series id is cut to the limit');
  t.match(r[2], { series: 'after', decision: 'kept' });
  t.equal(s.closed, false, 'the connection stays open: the stream is still in sync');
  await s.close();
  await until(() => d.freeSlots === SLOTS, 'slots free');
});

t.test('connections that send a header and stop hold no slot', async (t) => {
  if (!needData(t)) return;
  const { d, db } = await daemonWith(t, 'idle_timeout_ms: 400, frame_timeout_ms: 60000');
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const idle: net.Socket[] = [];
  for (let i = 0; i < SLOTS * 4; i++) {
    const s = await raw(d.tcpPort!);
    const [prefix, header] = encodeFrame({ series: 'idle', frame: i, encoding: 'cbf' }, cbf);
    s.write(Buffer.concat([prefix!, header!]));
    idle.push(s);
  }
  // While they sit there, a real sender is served at once.
  await stillServes(t, d, 'header-only connections open');
  // Then the idle timeout closes each, and each half-sent frame gets its row.
  await Promise.all(idle.map(closed));
  await until(() => rows(db, "series = 'idle'").length === SLOTS * 4, 'a row for each abandoned frame');
  t.ok(rows(db, "series = 'idle'").every((r) => r.decision === 'error' && /no data for 400 ms .*\(0 of 307605 payload bytes\)/.test(r.reason)), 'rejected as idle');
  t.equal(d.freeSlots, SLOTS);
});

t.test('a frame that stops half way releases its slot after the idle timeout', async (t) => {
  if (!needData(t)) return;
  const { d, db } = await daemonWith(t, 'idle_timeout_ms: 300');
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const socks: net.Socket[] = [];
  for (let i = 0; i < SLOTS; i++) {
    const s = await raw(d.tcpPort!);
    const [prefix, header, payload] = encodeFrame({ series: 'half', frame: i, encoding: 'cbf' }, cbf);
    s.write(Buffer.concat([prefix!, header!, payload!.subarray(0, 1000)]));
    socks.push(s);
  }
  await until(() => d.freeSlots === 0, 'all slots claimed by half-sent frames');
  await Promise.all(socks.map(closed));
  await until(() => rows(db, "series = 'half'").length === SLOTS, 'rows for the half-sent frames');
  t.ok(rows(db, "series = 'half'").every((r) => /1000 of 307605 payload bytes/.test(r.reason)), 'the row says how far the frame got');
  await stillServes(t, d, 'half-sent frames');
});

t.test('a slowloris client is cut off by the frame deadline', async (t) => {
  if (!needData(t)) return;
  const { d, db } = await daemonWith(t, 'frame_timeout_ms: 500, idle_timeout_ms: 60000');
  const s = await raw(d.tcpPort!);
  const [prefix, header] = encodeFrame({ series: 'slow', frame: 0, encoding: 'cbf' }, Buffer.alloc(100));
  const bytes = Buffer.concat([prefix!, header!]);
  let i = 0;
  const drip = setInterval(() => !s.destroyed && i < bytes.length && s.write(bytes.subarray(i, ++i)), 20);
  t.teardown(() => clearInterval(drip));
  await closed(s);
  clearInterval(drip);
  t.ok(i < bytes.length, `disconnected after ${i} of ${bytes.length} header bytes`);
  await stillServes(t, d, 'slowloris');
  t.equal(rows(db, "series = 'slow'").length, 0, 'no frame row: its header never arrived');
});

t.test('connections beyond max_connections are refused; the others keep working', async (t) => {
  if (!needData(t)) return;
  const { d } = await daemonWith(t, 'max_connections: 3');
  const held = await Promise.all([0, 1, 2].map(() => raw(d.tcpPort!)));
  const extra = await raw(d.tcpPort!);
  await closed(extra);
  t.pass('the fourth connection is closed by the daemon');
  held[0]!.destroy();
  await until(() => (d as unknown as { sources: { describe(): { connections: number } }[] }).sources[0]!.describe().connections === 2, 'a place frees up');
  await stillServes(t, d, 'a full connection table');
  for (const s of held) s.destroy();
});

t.test('garbage and a closed connection mid-payload leave every slot free', async (t) => {
  if (!needData(t)) return;
  const { d, db } = await daemonWith(t, '');
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const g = await raw(d.tcpPort!);
  g.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  await closed(g);
  const c = await raw(d.tcpPort!);
  const [prefix, header, payload] = encodeFrame({ series: 'cut', frame: 9, encoding: 'cbf' }, cbf);
  c.write(Buffer.concat([prefix!, header!, payload!.subarray(0, 5000)]));
  await until(() => d.freeSlots === SLOTS - 1, 'the half-sent frame holds one slot');
  c.destroy();
  await until(() => rows(db, "series = 'cut'").length === 1, 'row for the cut frame');
  t.match(rows(db, "series = 'cut'")[0], { frame: 9, decision: 'error', reason: /closed in the middle of a frame \(5000 of 307605/ });
  await stillServes(t, d, 'garbage and a cut connection');
});

t.test('acknowledgements: once in a slot, or once the row is committed', async (t) => {
  if (!needData(t)) return;
  for (const mode of ['slot', 'durable'] as const) {
    const { d, db } = await daemonWith(t, `ack: ${mode}`);
    const cbf = readData('cbf', 'in16c_010001.cbf');
    const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
    await s.send({ series: 'acked', frame: 0, encoding: 'cbf', ack: true }, cbf);
    await s.send({ series: 'acked', frame: 1, encoding: 'raw', ack: true }, cbf.subarray(0, 10));
    await s.send({ series: 'quiet', frame: 2, encoding: 'cbf' }, cbf);
    await s.send({ series: 'acked', frame: 3, encoding: 'cbf', ack: true }, cbf);
    t.ok(await s.waitAcks(3), `${mode}: three acknowledgements`);
    // With ack durable, answers come as outcomes are committed, so not necessarily in order.
    const acks = [...s.acks].sort((a, b) => a.frame! - b.frame!);
    t.same(
      acks.map((a) => [a.series, a.frame, a.status]),
      [['acked', 0, 'received'], ['acked', 1, 'rejected'], ['acked', 3, 'received']],
      `${mode}: one line per frame that asked, none for the frame that did not`,
    );
    t.match(acks[1]!.reason, /raw frames need dtype/);
    if (mode === 'durable') {
      // Each answer came after the frame's outcome was committed.
      const seen = rows(db, "series = 'acked'").map((r) => [r.frame, r.decision]);
      t.same(seen, [[0, 'kept'], [1, 'error'], [3, 'kept']], 'durable: every acknowledged frame already has its outcome row');
    }
    await s.close();
    await until(() => d.freeSlots === SLOTS, 'slots free');
  }
});

t.test('the systemd watchdog is not fed while slots are busy and nothing finishes', async (t) => {
  if (!needData(t)) return;
  // A notifier that records what it would send, with WatchdogSec as if 0.2 s.
  const pings: number[] = [];
  class Recording extends SystemdNotifier {
    override send(...lines: string[]): void {
      if (lines.includes('WATCHDOG=1')) pings.push(performance.now());
    }
  }
  const saved = process.env.WATCHDOG_USEC;
  process.env.WATCHDOG_USEC = '200000';
  t.teardown(() => (saved === undefined ? delete process.env.WATCHDOG_USEC : (process.env.WATCHDOG_USEC = saved)));
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-stall-'));
  const loaded = parseConfig(
    `instance: stall\nhttp: { port: 0 }\ningest: { tcp: { port: 0, frame_timeout_ms: 60000 } }\nrings: { slots: ${SLOTS}, slot_mb: 1 }\nworkers: { threads: 1, stall_timeout_ms: 500 }\nmqtt: { embedded_port: 0 }\nprovenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))} }\n`,
    'test',
  );
  const d = await Daemon.start({ loaded, log: createLogger('error'), notifier: new Recording() });
  t.teardown(async () => {
    await d.stop('test end');
    rmSync(dir, { recursive: true, force: true });
  });
  const fed = (n: number) => until(() => pings.length >= n, `${n} watchdog pings`);
  await fed(3);
  t.pass('idle with every slot free: the watchdog is fed');
  // A frame that never completes holds a slot: nothing can finish.
  const s = await raw(d.tcpPort!);
  const [prefix, header, payload] = encodeFrame({ series: 'wedge', frame: 0, encoding: 'cbf' }, readData('cbf', 'in16c_010001.cbf'));
  s.write(Buffer.concat([prefix!, header!, payload!.subarray(0, 100)]));
  await until(() => d.freeSlots === SLOTS - 1, 'the slot is held');
  await until(() => performance.now() - pings.at(-1)! > 1000, 'the watchdog withheld for a second');
  t.pass('slots busy and no progress for longer than stall_timeout_ms: no WATCHDOG=1');
  s.destroy();
  await until(() => d.freeSlots === SLOTS, 'the slot is given back');
  const n = pings.length;
  await fed(n + 3);
  t.pass('progress again: the watchdog is fed again');
});
