// The directory watcher against what else can sit in a watch folder: a
// directory named like a frame, a FIFO, a socket, dangling and escaping
// symlinks, a file larger than a slot, an unreadable file; and its memory of
// processed files across restarts. The daemon runs in-process (in a child
// process for the unreadable file, so that root can drop privileges).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { parseConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { createLogger } from '../../daemon/system/logger';
import { BIN, DaemonProcess, writeYaml } from '../helpers/daemon-process';
import { Collector } from '../helpers/mqtt-collector';
import { need } from '../helpers/need';
import { until } from '../helpers/wait';
import { needData, readData } from '../helpers/data';

const SLOTS = 4;

interface StatsMessage {
  totals: { processed: number; errored: number };
  queues: { free_slots: number };
}

function tempDir(t: Test, prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A watched directory, a directory beside it holding one good frame (for symlinks that leave), and the database path. */
function layout(t: Test, prefix: string, cbf: Buffer): { incoming: string; outside: string; db: string } {
  const root = tempDir(t, prefix);
  const incoming = path.join(root, 'incoming');
  const outside = path.join(root, 'outside');
  mkdirSync(incoming);
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'elsewhere.cbf'), cbf);
  return { incoming, outside, db: path.join(root, 'p.sqlite') };
}

function watchYaml(incoming: string, db: string, extra = ''): string {
  return [
    'instance: watchtest', 'http: { port: 0 }',
    'mqtt: { embedded_port: 0 }',
    `provenance: { path: ${JSON.stringify(db)}, batch_ms: 20 }`,
    'workers: { threads: 1 }',
    'stats: { interval_ms: 100 }',
    `rings: { slots: ${SLOTS}, slot_mb: 1 }`,
    'ingest:',
    '  tcp: { enabled: false }',
    `  watch: { enabled: true, directory: ${JSON.stringify(incoming)}, poll_ms: 20, incomplete_timeout_ms: 2000, series: hostile${extra} }`,
    '',
  ].join('\n');
}

async function startDaemon(t: Test, incoming: string, db: string, extra = ''): Promise<{ d: Daemon; stats: Collector }> {
  const d = await Daemon.start({ loaded: parseConfig(watchYaml(incoming, db, extra), 'test'), log: createLogger('error') });
  const stats = await Collector.connect(d.mqttUrl, `${d.topicPrefix}stats`);
  t.teardown(async () => {
    await stats.close();
    await d.stop('test end');
  });
  return { d, stats };
}

function statsMessages(c: Collector): StatsMessage[] {
  return c.on('stats').map((m) => JSON.parse(m.payload.toString()) as StatsMessage);
}

/**
 * Waits until `processed` frames are done with every slot free, then for three
 * more stats intervals (about fifteen more scans at poll_ms 20): a slot leaked
 * per scan, or a skip reported per scan, would show by then.
 */
async function settled(t: Test, c: Collector, processed: number): Promise<void> {
  const at = await until(() => {
    const all = statsMessages(c);
    const i = all.findIndex((s) => s.totals.processed === processed && s.queues.free_slots === SLOTS);
    return i >= 0 ? i + 1 : undefined;
  }, `${processed} processed with ${SLOTS} free slots`);
  await until(() => statsMessages(c).length >= at + 3, 'three more stats intervals');
  const later = statsMessages(c).slice(at);
  t.same(
    later.map((s) => s.queues.free_slots),
    later.map(() => SLOTS),
    `free slots stay at ${SLOTS} in the ${later.length} stats intervals after`,
  );
}

async function stopWithin(t: Test, d: Daemon, ms: number): Promise<void> {
  const t0 = Date.now();
  await d.stop('test');
  const took = Date.now() - t0;
  t.ok(took < ms, `stop() finished in ${took} ms (limit ${ms})`);
}

function rows<T>(db: string, sql: string, ...args: unknown[]): T[] {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare(sql).all(...args) as T[];
  } finally {
    conn.close();
  }
}

function skipEvents(db: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of rows<{ details: string; message: string }>(db, "SELECT details, message FROM events WHERE kind = 'watch_skipped' ORDER BY id")) {
    const name = (JSON.parse(e.details) as { name: string }).name;
    out.set(name, [...(out.get(name) ?? []), e.message]);
  }
  return out;
}

function listenUnixSocket(t: Test, file: string): Promise<void> {
  const server = net.createServer();
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
}

t.test('hostile entries are skipped once each, never hold up later files, never keep a slot', async (t) => {
  if (!needData(t)) return;
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const { incoming, outside, db } = layout(t, 'beamedge-hostile-', cbf);
  const { d, stats } = await startDaemon(t, incoming, db);

  // Each hostile entry sorts before a good file, so a hostile entry that blocks, leaks or freezes shows.
  const p = (n: number) => path.join(incoming, `img_${String(n).padStart(5, '0')}.cbf`);
  const hostile = new Map<number, RegExp>([
    [2, /a directory, not a regular file/],
    [4, /a FIFO, not a regular file/],
    [6, /a dangling symlink/],
    [8, /outside the watched directory \(ingest\.watch\.follow_symlinks is false\)/],
    [10, /a socket, not a regular file/],
    [14, /a symlink to .*img_00004\.cbf, which is a FIFO/],
  ]);
  mkdirSync(p(2));
  execFileSync('mkfifo', [p(4)]);
  symlinkSync(path.join(incoming, 'no-such-file.cbf'), p(6));
  symlinkSync(path.join(outside, 'elsewhere.cbf'), p(8));
  await listenUnixSocket(t, p(10));
  writeFileSync(p(12), Buffer.alloc(1.5 * 1024 * 1024)); // larger than slot_mb: 1
  symlinkSync(p(4), p(14));
  for (const n of [1, 3, 5, 7, 9, 11, 13]) writeFileSync(p(n), cbf);
  symlinkSync(p(1), p(15)); // a symlink to a file inside the directory is taken

  await until(() => d.stats.totals.processed === 8, 'eight good files processed', 20_000);
  await settled(t, stats, 8);
  t.equal(d.stats.totals.errored, 1, 'one error: the file larger than a slot');
  await stopWithin(t, d, 5000);

  const frames = rows<{ frame: number; decision: string; reason: string; source: string }>(db, 'SELECT frame, decision, reason, source FROM frames ORDER BY id');
  t.same(
    frames.filter((f) => f.decision !== 'error').map((f) => f.frame),
    [1, 3, 5, 7, 9, 11, 13, 15],
    'the good files, in name order, each once',
  );
  const errors = frames.filter((f) => f.decision === 'error');
  t.equal(errors.length, 1, 'exactly one error row');
  t.equal(errors[0]?.frame, 12, 'for img_00012.cbf');
  t.match(errors[0]?.reason, /file of 1572864 bytes is larger than a frame slot \(1048576 bytes; raise rings\.slot_mb\)/, 'saying why');
  t.equal(errors[0]?.source, p(12), 'naming the file');
  const tooLargeEvents = rows<{ message: string }>(db, "SELECT message FROM events WHERE kind = 'frame_error'");
  t.equal(tooLargeEvents.length, 1, 'one frame_error event');

  const skipped = skipEvents(db);
  t.same([...skipped.keys()].sort(), [...hostile.keys()].map((n) => path.basename(p(n))).sort(), 'a skip event for each hostile entry, none for good files');
  for (const [n, why] of hostile) {
    const name = path.basename(p(n));
    const msgs = skipped.get(name) ?? [];
    t.equal(msgs.length, 1, `${name}: exactly one event over all scans`);
    t.match(msgs[0], why, `${name}: ${msgs[0]}`);
    t.match(msgs[0], incoming, `${name}: the message names the directory`);
  }
});

t.test('follow_symlinks: true takes a symlink to a file outside the directory', async (t) => {
  if (!needData(t)) return;
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const { incoming, outside, db } = layout(t, 'beamedge-follow-', cbf);
  const { d, stats } = await startDaemon(t, incoming, db, ', follow_symlinks: true');
  symlinkSync(path.join(outside, 'elsewhere.cbf'), path.join(incoming, 'img_1.cbf'));
  symlinkSync(path.join(outside, 'gone.cbf'), path.join(incoming, 'img_2.cbf'));
  writeFileSync(path.join(incoming, 'img_3.cbf'), cbf);
  await until(() => d.stats.totals.processed === 2, 'two processed');
  await settled(t, stats, 2);
  await stopWithin(t, d, 5000);
  t.same(rows<{ frame: number; decision: string }>(db, 'SELECT frame, decision FROM frames ORDER BY id'), [
    { frame: 1, decision: 'kept' },
    { frame: 3, decision: 'kept' },
  ]);
  t.same([...skipEvents(db).keys()], ['img_2.cbf'], 'a dangling symlink is still skipped, once');
});

t.test('an entry that vanishes is just passed over; a directory replaced by a file later is taken', async (t) => {
  if (!needData(t)) return;
  const root = tempDir(t, 'beamedge-vanish-');
  const incoming = path.join(root, 'incoming');
  mkdirSync(incoming);
  const db = path.join(root, 'p.sqlite');
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const { d, stats } = await startDaemon(t, incoming, db);
  mkdirSync(path.join(incoming, 'img_1.cbf'));
  writeFileSync(path.join(incoming, 'img_2.cbf'), cbf);
  await until(() => d.stats.totals.processed === 1, 'img_2 processed');
  // The watcher forgets img_1.cbf once it leaves the directory: a file of that name later is new.
  rmSync(path.join(incoming, 'img_1.cbf'), { recursive: true });
  const seen = statsMessages(stats).length;
  await until(() => statsMessages(stats).length >= seen + 2, 'two stats intervals: several listings at poll_ms 20');
  writeFileSync(path.join(incoming, 'img_1.cbf'), cbf);
  await until(() => d.stats.totals.processed === 2, 'img_1 processed once it is a file');
  await settled(t, stats, 2);
  await stopWithin(t, d, 5000);
  t.same(rows<{ frame: number }>(db, 'SELECT frame FROM frames ORDER BY id').map((r) => r.frame), [2, 1]);
  t.equal(skipEvents(db).get('img_1.cbf')?.length, 1, 'the directory was reported once');
});

t.test('back-pressure: more files than slots, all taken in order as slots come back', async (t) => {
  if (!needData(t)) return;
  const root = tempDir(t, 'beamedge-bp-');
  const incoming = path.join(root, 'incoming');
  mkdirSync(incoming);
  const db = path.join(root, 'p.sqlite');
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const names = Array.from({ length: 3 * SLOTS }, (_, i) => i + 1);
  for (const n of names) writeFileSync(path.join(incoming, `bp_${n}.cbf`), cbf);
  const { d, stats } = await startDaemon(t, incoming, db);
  await until(() => d.stats.totals.processed === names.length, `${names.length} processed`);
  await settled(t, stats, names.length);
  await stopWithin(t, d, 5000);
  t.same(rows<{ frame: number }>(db, 'SELECT frame FROM frames ORDER BY id').map((r) => r.frame), names, 'each once, in name order');
});

t.test('restart: what an earlier run processed is not processed again; rewritten and new files are', async (t) => {
  if (!needData(t)) return;
  const root = tempDir(t, 'beamedge-restart-');
  const incoming = path.join(realpathSync(root), 'incoming');
  mkdirSync(incoming);
  const db = path.join(root, 'p.sqlite');
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const f = (n: number) => path.join(incoming, `img_${n}.cbf`);
  for (const n of [1, 2, 3]) writeFileSync(f(n), cbf);
  mkdirSync(f(9)); // skipped in every run, once per run, never recorded as processed

  const framesOf = (run: number) => rows<{ frame: number }>(db, 'SELECT frame FROM frames WHERE run_id = ? ORDER BY frame', run).map((r) => r.frame);
  const resumeOf = (run: number) => rows<{ details: string }>(db, "SELECT details FROM events WHERE kind = 'watch_resume' AND run_id = ?", run).map((r) => JSON.parse(r.details) as Record<string, unknown>);

  const first = await startDaemon(t, incoming, db);
  const run1 = first.d.runId;
  await until(() => first.d.stats.totals.processed === 3, 'first run: three files');
  await settled(t, first.stats, 3);
  await stopWithin(t, first.d, 5000);
  t.same(framesOf(run1), [1, 2, 3], 'first run processed all three');
  t.same(resumeOf(run1), [], 'nothing to resume in the first run');

  // Rewritten: same name and size, another mtime. New: a name never seen.
  const st = statSync(f(2));
  utimesSync(f(2), st.atime, new Date(st.mtimeMs - 60_000));
  writeFileSync(f(4), cbf);

  const second = await startDaemon(t, incoming, db);
  const run2 = second.d.runId;
  await until(() => second.d.stats.totals.processed === 2, 'second run: two files');
  await settled(t, second.stats, 2);
  await stopWithin(t, second.d, 5000);
  t.same(framesOf(run2), [2, 4], 'second run: only the rewritten and the new file (no frame rows for 1 and 3)');
  t.same(resumeOf(run2), [{ directory: incoming, known: 3, skipped: 2, changed: 1 }], 'one resume event: 2 skipped, 1 rewritten');
  t.equal(skipEvents(db).get('img_9.cbf')?.length, 2, 'the directory: one event per run');

  const third = await startDaemon(t, incoming, db, ', reprocess: true');
  const run3 = third.d.runId;
  await until(() => third.d.stats.totals.processed === 4, 'third run: all four files');
  await settled(t, third.stats, 4);
  await stopWithin(t, third.d, 5000);
  t.same(framesOf(run3), [1, 2, 3, 4], 'reprocess: true processes everything again');
  t.equal(rows(db, "SELECT 1 FROM events WHERE kind = 'watch_resume' AND run_id = ? AND message LIKE '%reprocess is true%'", run3).length, 1, 'and says so');
});

/** The uid and gid that cannot read a mode-000 file: ourselves, or nobody when we are root. */
function unprivileged(): { uid: number; gid: number } {
  return process.getuid!() === 0 ? { uid: 65534, gid: 65534 } : { uid: process.getuid!(), gid: process.getgid!() };
}

t.test('an unreadable file is rejected once, later files still flow', async (t) => {
  if (!needData(t)) return;
  const who = unprivileged();
  const root = tempDir(t, 'beamedge-unreadable-');
  const incoming = path.join(root, 'incoming');
  mkdirSync(incoming);
  const db = path.join(root, 'p.sqlite');
  const cbf = readData('cbf', 'in16c_010001.cbf');
  const f = (n: number) => path.join(incoming, `a_${n}.cbf`);
  writeFileSync(f(2), cbf);
  chmodSync(f(2), 0o000);
  if (process.getuid!() === 0) {
    // The daemon runs as nobody: it must be able to write its database and list the directory.
    chmodSync(root, 0o755);
    for (const p of [root, incoming]) chownSync(p, who.uid, who.gid);
    chownSync(f(2), 0, 0);
  }
  const probe = spawnSync(process.execPath, ['-e', `require('fs').openSync(${JSON.stringify(f(2))}, 'r')`], { ...who, stdio: 'ignore' });
  if (!need(t, probe.status !== 0, `a mode-000 file is readable by uid ${who.uid} here`, 'cannot test EACCES')) return;

  const cfg = writeYaml(path.join(root, 'beamedge.yaml'), watchYaml(incoming, db));
  const child = new DaemonProcess(spawn(process.execPath, [BIN, 'run', '--config', cfg, '--no-watch'], { ...who, stdio: ['ignore', 'pipe', 'pipe'] }), cfg);
  t.teardown(() => (child.child.exitCode === null ? child.stop('SIGKILL') : undefined));
  const { mqtt } = await child.ready();
  const stats = await Collector.connect(mqtt, 'beamedge/watchtest/stats');
  t.teardown(() => stats.close());
  writeFileSync(f(1), cbf);
  writeFileSync(f(3), cbf);
  await settled(t, stats, 2);
  const t0 = Date.now();
  t.equal(await child.stop('SIGTERM'), 0, 'exits with 0 on SIGTERM');
  t.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);

  const frames = rows<{ frame: number; decision: string; reason: string; source: string }>(db, 'SELECT frame, decision, reason, source FROM frames ORDER BY id');
  t.same(frames.filter((r) => r.decision === 'kept').map((r) => r.frame), [1, 3], 'the readable files, in order');
  const errors = frames.filter((r) => r.decision === 'error');
  t.equal(errors.length, 1, 'one error row for the unreadable file, over all scans');
  t.equal(errors[0]?.source, f(2), 'naming the file');
  t.match(errors[0]?.reason, /cannot open: EACCES: permission denied/, 'saying why');
  t.equal(rows(db, "SELECT 1 FROM events WHERE kind = 'frame_error'").length, 1, 'one frame_error event');
});
