// The on-disk spool: order, replay after reopening, a torn tail, damaged
// records, the size bound (oldest dropped first, each one reported), rewind
// after a lost connection, and one owner per directory.
import { appendFileSync, closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { CORRUPT_TOPIC, Spool, type FrameRef, type SpoolMessage } from '../../daemon/publish/spool';
import { createLogger } from '../../daemon/system/logger';

interface Drop {
  topic: string;
  reason: string;
  ref: FrameRef | undefined;
  id: number | undefined;
}

function harness(t: Test) {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-spool-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const drops: Drop[] = [];
  const warnings: string[] = [];
  const log = createLogger('warn', (l) => warnings.push((JSON.parse(l) as { msg: string }).msg));
  const open: Spool[] = [];
  t.teardown(() => open.forEach((s) => s.close()));
  const spool = (maxBytes = 64 << 20, segmentBytes?: number) => {
    const s = Spool.open({ directory: dir, maxBytes, ...(segmentBytes ? { segmentBytes } : {}), log, onDrop: (topic, reason, ref, id) => drops.push({ topic, reason, ref, id }) });
    open.push(s);
    return s;
  };
  const segments = () => readdirSync(dir).filter((f) => f.endsWith('.seg')).sort();
  const diskBytes = () => segments().reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
  return { dir, drops, warnings, spool, segments, diskBytes };
}

function msg(i: number, size = 100 + ((i * 37) % 900)): SpoolMessage {
  const payload = Buffer.alloc(size, i & 0xff);
  payload.writeUInt32LE(i, 0);
  return { topic: `beamedge/t/${i % 3 ? 'reduced' : 'events'}`, payload, qos: 1, retain: i % 5 === 0, ...(i % 2 ? { contentType: 'application/cbor' } : {}), ...(i % 3 ? { ref: { run: 7, seq: i + 1, series: 's', frame: i } } : {}) };
}

/** Hands out and acknowledges everything; returns the payload numbers in order. */
function drain(s: Spool): number[] {
  const got: number[] = [];
  for (let m = s.next(); m; m = s.next()) {
    got.push(m.payload.readUInt32LE(0));
    s.ack(m.id);
  }
  return got;
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

t.test('records come back in order with topic, options, frame reference and payload', async (t) => {
  const h = harness(t);
  const s = h.spool(64 << 20, 8192);
  for (let i = 0; i < 300; i++) t.equal(s.append(msg(i)), undefined);
  t.equal(s.records, 300);
  t.ok(h.segments().length > 10, 'spread over several segments');
  for (let i = 0; i < 300; i++) {
    const m = s.next()!;
    const want = msg(i);
    t.same({ topic: m.topic, qos: m.qos, retain: m.retain, contentType: m.contentType, ref: m.ref }, { topic: want.topic, qos: 1, retain: want.retain, contentType: want.contentType, ref: want.ref }, `record ${i} fields`);
    t.ok(m.payload.equals(want.payload), `record ${i} payload`);
    s.ack(m.id);
  }
  t.equal(s.next(), undefined);
  t.ok(s.empty);
  t.equal(s.records, 0);
  t.same(h.segments().length, 1, 'acknowledged segments deleted');
  t.equal(h.diskBytes(), 0, 'the last segment is emptied');
  t.same(h.drops, []);
});

t.test('reopening replays what was not acknowledged, in order; acknowledged records are not replayed', async (t) => {
  const h = harness(t);
  let s = h.spool(64 << 20, 4096);
  for (let i = 0; i < 50; i++) s.append(msg(i));
  const handed = range(0, 20).map(() => s.next()!);
  // Acknowledged out of order: 0-9 and 15; the cursor can only pass 0-9.
  for (const m of handed.slice(0, 10)) s.ack(m.id);
  s.ack(handed[15]!.id);
  t.equal(s.records, 40);
  s.close();
  s = h.spool(64 << 20, 4096);
  t.equal(s.records, 40, 'count after reopening');
  t.same(drain(s), range(10, 50), 'replay starts at the oldest unacknowledged record');
  s.close();
  s = h.spool(64 << 20, 4096);
  t.ok(s.empty, 'nothing replayed once all is acknowledged');
  t.equal(s.next(), undefined);
});

t.test('rewind hands out again everything not acknowledged', async (t) => {
  const h = harness(t);
  const s = h.spool();
  for (let i = 0; i < 6; i++) s.append(msg(i));
  const a = [s.next()!, s.next()!, s.next()!];
  s.ack(a[0]!.id);
  s.ack(a[2]!.id); // held back: record 1 is still out
  s.rewind();
  s.ack(a[1]!.id); // from before the rewind: ignored
  t.same(drain(s), [1, 2, 3, 4, 5], 'at least once: 2 is sent again because 1 was not acknowledged');
});

t.test('a torn record at the end (crash mid-write) is cut off with a warning', async (t) => {
  const h = harness(t);
  // The bytes of one whole record, from a spool of its own.
  const other = mkdtempSync(path.join(tmpdir(), 'beamedge-spool-rec-'));
  t.teardown(() => rmSync(other, { recursive: true, force: true }));
  const o = Spool.open({ directory: other, maxBytes: 1 << 20, log: createLogger('error'), onDrop: () => {} });
  o.append(msg(99, 500));
  o.close();
  const record = readFileSync(path.join(other, readdirSync(other).find((f) => f.endsWith('.seg'))!));

  let s = h.spool();
  for (let i = 0; i < 5; i++) s.append(msg(i));
  s.close();
  const last = path.join(h.dir, h.segments().at(-1)!);
  const good = statSync(last).size;
  appendFileSync(last, record.subarray(0, 60)); // header and part of the body
  s = h.spool();
  t.ok(h.warnings.some((w) => w.includes('torn record')), 'warned');
  t.equal(statSync(last).size, good, 'truncated to the last whole record');
  t.equal(s.records, 5);
  s.append(msg(5));
  t.same(drain(s), [0, 1, 2, 3, 4, 5], 'the whole records and a new one, nothing else');
  t.same(h.drops, [], 'a torn tail was never acknowledged by anyone: not a drop');
});

t.test('a damaged record in the middle is skipped and counted; the rest is delivered', async (t) => {
  const h = harness(t);
  let s = h.spool();
  const offsets: number[] = [];
  let off = 0;
  for (let i = 0; i < 6; i++) {
    offsets.push(off);
    s.append(msg(i, 200));
    off = h.diskBytes();
  }
  s.close();
  const file = path.join(h.dir, h.segments()[0]!);
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.from([0xff]), 0, 1, offsets[2]! + 150); // payload byte of record 2: CRC mismatch
  writeSync(fd, Buffer.from('XXXX'), 0, 4, offsets[4]!); // record marker of record 4: resynchronised
  closeSync(fd);
  s = h.spool();
  t.equal(s.records, 4, 'only valid records counted');
  t.same(drain(s), [0, 1, 3, 5]);
  t.equal(h.drops.length, 2, 'each damaged record reported once');
  t.ok(h.drops.every((d) => d.topic === CORRUPT_TOPIC && d.ref === undefined));
  t.match(h.drops[0]!.reason, /CRC mismatch/);
  t.match(h.drops[1]!.reason, /no record marker/);
  t.ok(s.empty);
});

t.test('when full, the oldest records are dropped first, each reported with its topic and frame', async (t) => {
  const h = harness(t);
  const max = 64 * 1024;
  const s = h.spool(max, 4096);
  const N = 200;
  for (let i = 0; i < N; i++) {
    t.equal(s.append(msg(i, 1000)), undefined);
    if (h.diskBytes() > max) t.fail(`files exceed max_mb after record ${i}: ${h.diskBytes()}`);
  }
  const dropped = h.drops.map((d) => d.ref?.frame ?? -1);
  const kept = drain(s);
  t.ok(h.drops.length > 100, `${h.drops.length} dropped`);
  // Every record is either delivered or reported dropped, the dropped ones being exactly the oldest.
  t.same(kept, range(h.drops.length, N), 'the newest records survive, in order');
  t.same(
    h.drops.map((d) => d.topic),
    range(0, h.drops.length).map((i) => msg(i).topic),
    'dropped oldest first, with their topics',
  );
  t.same(
    dropped.filter((f) => f >= 0),
    range(0, h.drops.length).filter((i) => i % 3),
    'frame references of the dropped reduced messages',
  );
  t.ok(h.drops.every((d) => /spool full/.test(d.reason) && d.id === undefined));
});

t.test('records handed out but not acknowledged are the oldest: dropped first, with their id', async (t) => {
  const h = harness(t);
  const s = h.spool(16 * 1024, 4096);
  for (let i = 0; i < 10; i++) s.append(msg(i, 1000));
  const out = [s.next()!, s.next()!];
  for (let i = 10; i < 30; i++) s.append(msg(i, 1000));
  t.same(
    h.drops.slice(0, 2).map((d) => d.id),
    out.map((m) => m.id),
    'the two in flight go first',
  );
  s.ack(out[1]!.id); // too late: ignored
  const kept = drain(s);
  t.same(kept, range(30 - kept.length, 30));
  t.equal(h.drops.length + kept.length, 30, 'nothing lost without a report');
});

t.test('a message larger than the spool is refused, not stored', async (t) => {
  const h = harness(t);
  const s = h.spool(16 * 1024, 4096);
  t.match(s.append(msg(1, 20_000)), /larger than the spool/);
  t.ok(s.empty);
});

t.test('a damaged cursor replays from the first record (duplicates, never loss)', async (t) => {
  const h = harness(t);
  let s = h.spool();
  for (let i = 0; i < 4; i++) s.append(msg(i));
  s.ack(s.next()!.id);
  s.close();
  const fd = openSync(path.join(h.dir, 'cursor'), 'r+');
  writeSync(fd, Buffer.from([0xee]), 0, 1, 20);
  closeSync(fd);
  s = h.spool();
  t.ok(h.warnings.some((w) => w.includes('cursor file damaged')));
  t.same(drain(s), [0, 1, 2, 3]);
});

t.test('one process per spool directory', async (t) => {
  const h = harness(t);
  const s = h.spool();
  t.throws(() => h.spool(), /in use by process/);
  s.close();
  t.doesNotThrow(() => h.spool(), 'free again after close');
});
