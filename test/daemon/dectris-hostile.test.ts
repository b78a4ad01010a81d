// Hostile DECTRIS stream v2 messages against one daemon over a real ZeroMQ
// socket: oversized strings, a stray end, bitshuffle headers declaring 1 GiB
// blocks, a detector-sized mask larger than a slot, garbage. Each is recorded
// where it belongs (an error row, an event), holds no slot, memory or main
// thread time beyond the configured bounds, and a good series afterwards is
// integrated exactly as a direct integration says.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import Database from 'better-sqlite3';
import type { Encoder as CborEncoder, Tag as CborTag } from 'cbor-x' with { 'resolution-mode': 'import' };
import t from 'tap';
import { parseConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import type { Geometry } from '../../daemon/geometry/geometry';
import { AzimuthalIntegrator } from '../../daemon/integrate/azimuthal';
import { native } from '../../daemon/native';
import { decodeReduced } from '../../daemon/publish/messages';
import { DcuPusher } from '../../daemon/sim/dcu-pusher';
import { endParts, headerParts, imageParts } from '../../daemon/sim/stream1-sender';
import { compressedImage, endMessage, imageMessage, startMessage } from '../../daemon/sim/stream2-sender';
import { createLogger } from '../../daemon/system/logger';
import { Collector } from '../helpers/mqtt-collector';
import { freePort } from '../helpers/net';
import { until } from '../helpers/wait';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Encoder, Tag } = require('cbor-x') as { Encoder: typeof CborEncoder; Tag: typeof CborTag };
const cbor = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
const message = (fields: unknown): Buffer => cbor.encode(new Tag(fields, 55799));
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const SLOTS = 8;
const SLOT_MB = 12;
const SHAPE: [number, number] = [256, 320];
const PIXEL = 75e-6;
const CENTRE: [number, number] = [150.5, 120.25]; // beam_center_x, beam_center_y (pixels)
const GEOMETRY: Geometry = { dist: 0.1, poni1: CENTRE[1] * PIXEL, poni2: CENTRE[0] * PIXEL, rot1: 0, rot2: 0, rot3: 0, pixel1: PIXEL, pixel2: PIXEL, wavelength: 1e-10 };

const start = (id: number, uid: string, extra: Partial<Parameters<typeof startMessage>[0]> = {}) =>
  startMessage({ series_id: id, series_unique_id: uid, shape: SHAPE, dtype: 'uint16', beam_center: CENTRE, pixel_size: PIXEL, distance: 0.1, wavelength_A: 1, number_of_images: 10, channels: ['threshold_1'], ...extra });

/** A powder-like uint16 frame: rings on a sloping background, different per index. */
function pixels(i: number, shape = SHAPE): Uint16Array {
  const [rows, cols] = shape;
  const px = new Uint16Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const d = Math.hypot(r - CENTRE[1], c - CENTRE[0]);
      px[r * cols + c] = 20 + ((r * 7 + c * 13 + i * 5) % 17) + (Math.abs((d % 40) - 20) < 2 ? 300 : 0);
    }
  return px;
}

const image = (id: number, uid: string, frame: number, px: Uint16Array | Uint32Array = pixels(frame), shape = SHAPE) => imageMessage(id, uid, frame, { threshold_1: compressedImage(px, shape) });

/** Peak resident memory of this process (the daemon's workers are threads in it), MiB. */
function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function resetPeakRss(): void {
  try {
    writeFileSync('/proc/self/clear_refs', '5'); // Linux >= 4.0: the peak restarts from the current RSS
  } catch {
    // Without it the peak is compared with an earlier, higher peak: a weaker but still valid bound.
  }
}

interface Row {
  series: string;
  frame: number | null;
  decision: string;
  reason: string;
}
interface EventRow {
  level: string;
  kind: string;
  message: string;
}

const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-hostile-'));
const dbPath = path.join(dir, 'p.sqlite');
function query<T>(sql: string): T[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}
const rows = () => query<Row>("SELECT series, frame, decision, reason FROM frames WHERE decision != 'received' ORDER BY id");
const events = () => query<EventRow>('SELECT level, kind, message FROM events ORDER BY id');
const rowsLike = (re: RegExp) => rows().filter((r) => re.test(r.reason ?? ''));
const eventsOf = (kind: string) => events().filter((e) => e.kind === kind);

let d: Daemon;
let pusher: DcuPusher;
let sub: Collector;

t.before(async () => {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  pusher = await DcuPusher.bind(endpoint);
  const loaded = parseConfig(
    `instance: hostile\nhttp: { port: 0 }\ningest: { tcp: { enabled: false }, dectris: { enabled: true, endpoint: "${endpoint}" } }\nrings: { slots: ${SLOTS}, slot_mb: ${SLOT_MB} }\nworkers: { threads: 1 }\nmqtt: { embedded_port: 0 }\nprovenance: { path: ${JSON.stringify(dbPath)}, batch_ms: 20 }\npipeline: { veto: { enabled: false } }\n`,
    'hostile',
    dir,
  );
  d = await Daemon.start({ loaded, log: createLogger('error') });
  sub = await Collector.connect(d.mqttUrl, 'beamedge/hostile/#');
  if (!(await pusher.waitForConsumers(1, 10_000))) throw new Error('the daemon did not connect to the stream');
});

t.teardown(async () => {
  await sub?.close();
  await d?.stop('test end');
  await pusher?.close(0);
  rmSync(dir, { recursive: true, force: true });
});

t.test('strings beyond 256 characters: each image refused before it takes a slot, every slot stays free', async (t) => {
  const long = 'u'.repeat(5000);
  await pusher.send(start(1, 'series-1'));
  for (let i = 0; i < 2 * SLOTS + 4; i++) await pusher.send(image(1, long, i));
  await pusher.send(imageMessage(1, 'series-1', 99, { ['c'.repeat(5000)]: compressedImage(pixels(0), SHAPE) }));
  await until(() => rowsLike(/characters exceeds 256/).length === 2 * SLOTS + 5 || undefined, 'a row for each refused image');
  const refused = rowsLike(/characters exceeds 256/);
  t.ok(refused.slice(0, -1).every((r) => r.decision === 'error' && r.series === '1' && /series_unique_id of 5000 characters exceeds 256/.test(r.reason)), `each row names the field and the limit: ${refused[0]!.reason}`);
  t.same(refused.map((r) => r.frame), [...Array.from({ length: 2 * SLOTS + 4 }, (_, i) => i), 99], 'and the image');
  t.match(refused.at(-1)!.reason, /channel name of 5000 characters exceeds 256/);
  t.ok(eventsOf('frame_error').length >= refused.length, 'with an event each');
  t.equal(d.freeSlots, SLOTS, 'no slot was taken (or kept)');
  // Ingest goes on: the next good image of the open series is integrated.
  await pusher.send(image(1, 'series-1', 5));
  await until(() => sub.reduced().some((m) => m.series === '1' && m.frame === 5) || undefined, 'the good image');
  t.ok(rows().every((r) => r.reason === null || !/[uc]{300}/.test(r.reason)), 'no row repeats the oversized string');
});

t.test('a stray end for another series leaves the open series and its geometry alone', async (t) => {
  const pixelMask = new Uint32Array(SHAPE[0] * SHAPE[1]);
  for (let r = 10; r < 60; r++) for (let c = 200; c < 300; c++) pixelMask[r * SHAPE[1] + c] = 1;
  await pusher.send(start(7, 'series-7', { pixel_mask: pixelMask }));
  await pusher.send(endMessage(8, 'series-8'));
  await pusher.send(endMessage(7, 'not-series-7'));
  await pusher.send(image(7, 'series-7', 3));
  await until(() => sub.reduced().some((m) => m.series === '7' && m.frame === 3) || undefined, 'the image after the stray ends');
  const got = sub.reduced().find((m) => m.series === '7' && m.frame === 3)!;
  const ai = new AzimuthalIntegrator({ geometry: GEOMETRY, shape: SHAPE, npt: 1000, unit: 'q_nm^-1', split: 'no', mask: Uint8Array.from(pixelMask) });
  const want = ai.integrate(pixels(3), { maxValid: 65534 });
  const worst = Math.max(...Array.from(want.intensity, (v, i) => Math.abs(got.intensity![i]! - v) / Math.max(Math.abs(v), 1e-6)));
  t.ok(worst < 1e-6, `integrated with the start's geometry and mask (worst ${worst.toExponential(2)})`);
  t.same(Array.from(got.count!), Array.from(want.count, (c) => Math.fround(c)), 'the mask applied, pixel for pixel');
  await until(() => eventsOf('series_end_mismatch').length === 2 || undefined, 'two mismatch events');
  const [other, wrongUid] = eventsOf('series_end_mismatch');
  t.match(other!.message, /end of series 8 \(series-8\) ignored: series 7 \(series-7\) stays open/);
  t.match(wrongUid!.message, /end of series 7 \(not-series-7\) ignored: series 7 \(series-7\) stays open/);
  t.equal(eventsOf('series_end').length, 0, 'no series was closed');
  await pusher.send(endMessage(7, 'series-7'));
  await until(() => eventsOf('series_end').length === 1 || undefined, 'its own end closes it');
  t.match(eventsOf('series_end')[0]!.message, /series 7 ended after 1 image/);
});

t.test('bitshuffle headers declaring 1 GiB blocks or sizes: a clean error per frame, bounded memory', async (t) => {
  await pusher.send(start(3, 'series-3'));
  resetPeakRss();
  const base = peakRssMiB();
  const frames = Array.from({ length: 5 }, (_, i) => {
    const bytes = Buffer.from(native.bslz4Encode(pixels(i), 2));
    bytes.writeUInt32BE(1 << 30, 8); // block size: 1 GiB
    return bytes;
  });
  const total = Buffer.from(native.bslz4Encode(pixels(9), 2));
  total.writeUInt32BE(0, 0);
  total.writeUInt32BE(1 << 30, 4); // uncompressed size: 1 GiB
  const tagged = (bytes: Buffer) => new Tag([SHAPE, new Tag(new Tag(['bslz4', 2, bytes], 56500), 69)], 40);
  for (const [i, bytes] of [...frames, total].entries()) await pusher.send(imageMessage(3, 'series-3', i, { threshold_1: tagged(bytes) }));
  await until(() => rows().filter((r) => r.series === '3').length === 6 || undefined, 'six rows');
  const errs = rows().filter((r) => r.series === '3');
  t.ok(errs.every((r) => r.decision === 'error'), 'every frame is an error');
  t.ok(errs.slice(0, 5).every((r) => /LZ4 block decodes to \d+ bytes, expected 163840/.test(r.reason)), `the 1 GiB block is read as one block of the frame, and its data does not fill it: ${errs[0]!.reason}`);
  t.match(errs[5]!.reason, /bitshuffle header says 1073741824 bytes, the frame needs 163840/);
  const growth = peakRssMiB() - base;
  t.ok(growth < 200, `peak resident memory grew by ${growth.toFixed(0)} MiB (< 200)`);
  t.equal(d.freeSlots, SLOTS, 'every slot given back');
});

/** The main thread's time on a CPU so far (ns), as the scheduler counts it; undefined where /proc does not say. */
function mainThreadCpuNs(): number | undefined {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return undefined;
  }
}

/**
 * The longest the main thread (the daemon's: this process's) ran without
 * getting back to its event loop while `run` went on, in ms: the most CPU time
 * it used between two ticks of a 5 ms timer. Time on a CPU, not on the clock:
 * waiting to be scheduled on this shared 2-core machine is not blocking. Where
 * /proc has no schedstat, the clock's gap between ticks stands in (an upper
 * bound). One attempt: a repeat would measure code the JIT has warmed up.
 */
async function blockedMs(run: () => Promise<void>): Promise<{ cpu: number; wall: number }> {
  gc(); // this test's own garbage (the frames it built) is not the daemon's to collect
  let lastCpu = mainThreadCpuNs();
  let lastWall = performance.now();
  let cpu = 0;
  let wall = 0;
  const tick = () => {
    const c = mainThreadCpuNs();
    const w = performance.now();
    if (c !== undefined && lastCpu !== undefined) cpu = Math.max(cpu, (c - lastCpu) / 1e6);
    wall = Math.max(wall, w - lastWall);
    lastCpu = c;
    lastWall = w;
  };
  const timer = setInterval(tick, 5);
  try {
    await run();
  } finally {
    tick();
    clearInterval(timer);
  }
  return { cpu: lastCpu === undefined ? wall : cpu, wall };
}

const isEvent = (re: RegExp) => (m: { topic: string; payload: Buffer }) => m.topic.endsWith('/events') && re.test(m.payload.toString());

t.test('a start message with an 8192 x 8192 mask is refused without blocking the main thread; a slot-sized mask is decoded on a worker', async (t) => {
  // 256 MiB of uint32 zeros as bitshuffle-LZ4: 32768 blocks of 8192 bytes, about 1.4 MB in all.
  const n = 8192 * 8192;
  const block = native.lz4BlockEncode(new Uint8Array(8192));
  const parts: Buffer[] = [Buffer.alloc(12)];
  parts[0]!.writeUInt32BE(Math.floor((n * 4) / 2 ** 32), 0);
  parts[0]!.writeUInt32BE((n * 4) % 2 ** 32, 4);
  parts[0]!.writeUInt32BE(8192, 8);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(block.length);
  for (let i = 0; i < (n * 4) / 8192; i++) parts.push(len, block);
  const huge = new Tag([[8192, 8192], new Tag(new Tag(['bslz4', 4, Buffer.concat(parts)], 56500), 70)], 40);
  const bigStart = (id: number) =>
    message({ type: 'start', series_id: id, series_unique_id: `series-${id}`, beam_center_x: 4096, beam_center_y: 4096, detector_translation: [0, 0, 0.1], pixel_size_x: PIXEL, pixel_size_y: PIXEL, incident_wavelength: 1, image_size_x: 8192, image_size_y: 8192, channels: ['threshold_1'], number_of_images: 1, pixel_mask: { threshold_1: huge } });
  t.ok(bigStart(9).length > 1_000_000, `the start message is ${(bigStart(9).length / 1e6).toFixed(2)} MB`);
  const id = 9;
  const start = bigStart(id);
  const big = await blockedMs(async () => {
    const refused = sub.waitFor(`the image of refused series ${id}`, isEvent(new RegExp(`frame rejected: series ${id} frame 0 `)));
    await pusher.send(start);
    await pusher.send(image(id, `series-${id}`, 0));
    await refused;
  });
  t.ok(big.cpu < 50, `main thread busy at most ${big.cpu.toFixed(1)} ms at a stretch (< 50; ${big.wall.toFixed(1)} ms between timer ticks) while the start was handled`);
  await until(() => eventsOf('series_start_refused').length === 1 || undefined, 'an event for the refused start');
  t.match(eventsOf('series_start_refused')[0]!.message, /start of series 9 refused.*pixel_mask \(8192 x 8192 uint32\) needs 256\.0 MiB \(268435456 bytes\) decoded; the limit is 48\.0 MiB \(50331648 bytes\) \(4 x rings\.slot_mb\)/);
  await until(() => rows().some((r) => r.series === '9') || undefined, 'its row');
  const row = rows().find((r) => r.series === '9')!;
  t.equal(row.decision, 'error');
  t.match(row.reason, /the start message of series 9 was refused: pixel_mask .* the limit is/);

  // A mask exactly a slot in size (1536 x 2048 uint32 = 12 MiB) is accepted; a
  // worker decodes it when the first frame needs it, not the main thread.
  const shape: [number, number] = [1536, 2048];
  const mask = new Uint32Array(shape[0] * shape[1]);
  for (let r = 100; r < 400; r++) for (let c = 1000; c < 1500; c++) mask[r * shape[1] + c] = 1;
  const maskTag = compressedImage(mask, shape);
  const frameTag = compressedImage(new Uint16Array(shape[0] * shape[1]).fill(5), shape);
  const start10 = message({ type: 'start', series_id: 10, series_unique_id: 'series-10', beam_center_x: 1024, beam_center_y: 768, detector_translation: [0, 0, 0.2], pixel_size_x: PIXEL, pixel_size_y: PIXEL, incident_wavelength: 1, image_size_x: shape[1], image_size_y: shape[0], channels: ['threshold_1'], number_of_images: 1, pixel_mask: { threshold_1: maskTag } });
  const frame10 = imageMessage(10, 'series-10', 0, { threshold_1: frameTag });
  const slotSized = await blockedMs(async () => {
    const done = sub.waitFor('the frame of series 10', (m) => m.topic.endsWith('/reduced') && decodeReduced(m.payload, m.contentType ?? 'application/cbor').series === '10', 60_000);
    await pusher.send(start10);
    await pusher.send(frame10);
    await done;
  });
  t.ok(slotSized.cpu < 50, `main thread busy at most ${slotSized.cpu.toFixed(1)} ms at a stretch (< 50; ${slotSized.wall.toFixed(1)} ms between timer ticks) while the mask was decoded and applied`);
  const counted = sub.reduced().find((m) => m.series === '10')!.count!.reduce((a, b) => a + b, 0);
  t.equal(counted, shape[0] * shape[1] - 300 * 500, 'every pixel counted except the 300 x 500 masked by the start message');
});

t.test('garbage between messages: an error row for what may have been a frame, an event for the rest', async (t) => {
  const before = rows().length;
  const eventsBefore = events().length;
  const good = compressedImage(pixels(0), SHAPE);
  const bytes16 = native.bslz4Encode(pixels(0), 2);
  const garbage: [Buffer, RegExp][] = [
    [Buffer.from('definitely not CBOR'), /stream v2 message \d+: 19 bytes that do not decode: .*self-describe tag 55799/],
    [message({ type: 'image', series_id: 1, image_id: 1, data: { threshold_1: good } }).subarray(0, 40), /bytes that do not decode/],
    [message(42), /do not decode: stream v2: message is not a map with a type/],
    [message({ type: 'image', series_id: 1, image_id: 100, data: 5 }), /no channel "\(none\)" in data \(has none\)/],
    [message({ type: 'image', series_id: -3, image_id: 101, data: { threshold_1: good } }), /image series_id is not an integer >= 0: -3/],
    [message({ type: 'image', series_id: 1, image_id: 1.5, data: { threshold_1: good } }), /image_id is not an integer >= 0: 1\.5/],
    [message({ type: 'image', series_id: 1, image_id: 102, data: { threshold_1: new Tag([[100000, 100000], new Tag(new Tag(['bslz4', 4, bytes16], 56500), 70)], 40) } }), /channel "threshold_1" \(100000 x 100000 uint32\) needs 38147\.0 MiB \(40000000000 bytes\) decoded; the limit is 48\.0 MiB/],
    [message({ type: 'image', series_id: 1, image_id: 103, data: { threshold_1: new Tag([SHAPE, new Tag(new Tag(['bslz4', 4, bytes16], 56500), 69)], 40) } }), /compressed uint16 data declares 4-byte elements/],
    [message({ type: 'image', series_id: 1, image_id: 104, data: { threshold_1: new Tag([SHAPE, new Tag({ algorithm: 'bslz4', elemSize: 2, bytes: bytes16 }, 69)], 40) } }), /typed-array tag 69 holds neither bytes nor a tag 56500 compressed payload/],
    [message({ type: 'image', series_id: 1, image_id: 105, data: { threshold_1: { shape: [1e9, 1e9], dtype: 'uint8', encoding: 'raw', bytes: Buffer.alloc(4) } } }), /\(1000000000 x 1000000000 uint8\) needs .* decoded; the limit is/],
    [message({ type: 'image', series_id: 1, image_id: 106, data: { threshold_1: new Tag([SHAPE, new Uint16Array(10)], 40) } }), /has 20 bytes of raw pixels, its shape needs 163840/],
  ];
  const controls: [Buffer, string, RegExp][] = [
    [message({ type: 't'.repeat(5000) }), 'stream_ignored', /ignoring a message of type "t{64}"\.\.\. \(5000 characters\)$/],
    [message({ type: 'start', series_unique_id: 'x' }), 'stream_start_refused', /start message series_id is missing/],
    [message({ type: 'end', series_id: 1, series_unique_id: 'e'.repeat(5000) }), 'stream_end_refused', /end message series_unique_id of 5000 characters exceeds 256/],
  ];
  // Decoding time grows with CBOR items, not bytes: 4 million one-byte integers are refused before any decoder sees them.
  const items = message({ type: 'image', series_id: 1, image_id: 107, user_data: new Array(4_000_000).fill(1), data: { threshold_1: good } });
  garbage.push([items, /bytes that do not decode: stream v2: more than 100000 CBOR items/]);
  const busy = await blockedMs(async () => {
    const refused = sub.waitFor('the refused many-item message', isEvent(/more than 100000 CBOR items/));
    for (const [m] of garbage) await pusher.send(m);
    await refused;
  });
  t.ok(busy.cpu < 50, `main thread busy at most ${busy.cpu.toFixed(1)} ms at a stretch (< 50; ${busy.wall.toFixed(1)} ms between timer ticks) while the garbage was handled`);
  for (const [m] of controls) await pusher.send(m);
  await until(() => rows().length - before === garbage.length || undefined, 'a row for each message that may have been a frame');
  await until(() => controls.every(([, kind]) => eventsOf(kind).length > 0) || undefined, 'an event for each other message');
  const got = rows().slice(before);
  for (const [i, [, re]] of garbage.entries()) t.match(got[i]!.reason, re, `garbage ${i}: ${got[i]!.reason}`);
  t.ok(got.every((r) => r.decision === 'error'));
  for (const [, kind, re] of controls) t.match(eventsOf(kind).at(-1)!.message, re, kind);
  t.ok(events().slice(eventsBefore).every((e) => e.message.length < 700), 'no event message carries a hostile field whole');
  t.equal(d.freeSlots, SLOTS);
});

t.test('a message over 8 slot payloads + 1 MiB is not read: the connection is closed and made again', async (t) => {
  const limit = 8 * SLOT_MB * 1048576 + 1048576;
  const before = rows().length;
  const closed = sub.waitFor('the disconnect event', isEvent(/connection closed, reconnecting; ZeroMQ also closes it on a message over \d+ bytes/));
  await pusher.send(Buffer.alloc(limit + 1));
  await closed;
  t.match(eventsOf('stream_disconnected')[0]?.message ?? (await until(() => eventsOf('stream_disconnected')[0], 'its row')).message, new RegExp(`over ${limit} bytes \\(8 slot payloads \\+ 1 MiB\\), which is not read`));
  t.equal(rows().length, before, 'nothing of it was read, so nothing was recorded as a frame');
  // libzmq gives up on a peer after such a message; the daemon connects again itself.
  // A PUSH socket with no consumer waits: without a new connection these sends never complete.
  let sent = false;
  void (async () => {
    await pusher.send(start(12, 'series-12'));
    await pusher.send(image(12, 'series-12', 0));
    sent = true;
  })().catch(() => {});
  await until(() => sent || undefined, 'the daemon to connect again and take the messages', 15_000);
  await until(() => sub.reduced().some((m) => m.series === '12') || undefined, 'an image over the new connection');
  t.pass('the stream goes on over a new connection');
});

t.test('after all of that, a good series integrates exactly and the daemon stops in under 5 s', async (t) => {
  const pixelMask = new Uint32Array(SHAPE[0] * SHAPE[1]);
  for (let r = 100; r < 140; r++) for (let c = 0; c < 320; c++) pixelMask[r * SHAPE[1] + c] = 1;
  const n = 6;
  const reducedBefore = sub.reduced().length;
  // The start announces one image fewer than come: all are processed, the operator is told once.
  await pusher.send(start(11, 'series-11', { pixel_mask: pixelMask, saturation_value: 40, number_of_images: n - 1 }));
  for (let i = 0; i < n; i++) await pusher.send(image(11, 'series-11', i));
  await pusher.send(endMessage(11, 'series-11'));
  await until(() => sub.reduced().length - reducedBefore === n || undefined, 'every image of the good series');
  await until(() => eventsOf('series_end').some((e) => /series 11 ended after 6 image/.test(e.message)) || undefined, 'its end');
  t.same(eventsOf('series_overrun').map((e) => e.message), [`series 11: image ${n - 1} is beyond the ${n - 1} image(s) its start message announced; processing it anyway`]);
  const ai = new AzimuthalIntegrator({ geometry: GEOMETRY, shape: SHAPE, npt: 1000, unit: 'q_nm^-1', split: 'no', mask: Uint8Array.from(pixelMask) });
  for (const m of sub.reduced().filter((r) => r.series === '11')) {
    const want = ai.integrate(pixels(m.frame), { maxValid: 40 });
    const worst = Math.max(...Array.from(want.intensity, (v, i) => Math.abs(m.intensity![i]! - v) / Math.max(Math.abs(v), 1e-6)));
    t.ok(worst < 1e-6 && m.excluded === want.excluded, `image ${m.frame}: profile and saturation from the start message (worst ${worst.toExponential(2)}, ${m.excluded} excluded)`);
  }
  await until(() => d.freeSlots === SLOTS || undefined, 'every slot free');
  const t0 = performance.now();
  await d.stop('test end');
  const ms = performance.now() - t0;
  t.ok(ms < 5000, `stopped in ${ms.toFixed(0)} ms`);
});

t.test('stream v1: a stray end, an oversized image, an oversized JSON part and a bad series are refused; the series goes on', async (t) => {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const v1 = await DcuPusher.bind(endpoint);
  const v1db = path.join(dir, 'v1.sqlite');
  const loaded = parseConfig(
    `instance: hostile1\nhttp: { port: 0 }\ningest: { tcp: { enabled: false }, dectris: { enabled: true, endpoint: "${endpoint}", protocol: v1 } }\nrings: { slots: ${SLOTS}, slot_mb: ${SLOT_MB} }\nworkers: { threads: 1 }\nmqtt: { embedded_port: 0 }\nprovenance: { path: ${JSON.stringify(v1db)}, batch_ms: 20 }\npipeline: { veto: { enabled: false } }\n`,
    'hostile1',
    dir,
  );
  const d1 = await Daemon.start({ loaded, log: createLogger('error') });
  const sub1 = await Collector.connect(d1.mqttUrl, 'beamedge/hostile1/#');
  t.teardown(async () => {
    await sub1.close();
    await d1.stop('test end');
    await v1.close(0);
  });
  t.ok(await v1.waitForConsumers(1, 10_000), 'the v1 daemon connected');
  const q = <T>(sql: string): T[] => {
    const db = new Database(v1db, { readonly: true });
    try {
      return db.prepare(sql).all() as T[];
    } finally {
      db.close();
    }
  };
  const v1rows = () => q<Row>("SELECT series, frame, decision, reason FROM frames WHERE decision != 'received' ORDER BY id");
  const v1events = (kind: string) => q<EventRow>(`SELECT level, kind, message FROM events WHERE kind = '${kind}' ORDER BY id`);
  const pixelMask = new Uint32Array(SHAPE[0] * SHAPE[1]);
  for (let r = 0; r < 30; r++) for (let c = 0; c < SHAPE[1]; c++) pixelMask[r * SHAPE[1] + c] = 1;
  const img = (i: number) => ({ shape: SHAPE, dtype: 'uint16' as const, encoding: 'bslz4' as const, bytes: native.bslz4Encode(pixels(i), 2) });
  const j = (o: object) => Buffer.from(JSON.stringify(o));

  await v1.send(headerParts(5, { shape: SHAPE, beam_center: CENTRE, pixel_size: PIXEL, distance: 0.1, wavelength_A: 1, nimages: 3 }, pixelMask));
  await v1.send(endParts(6));
  const huge = imageParts(5, 0, img(0));
  huge[1] = j({ htype: 'dimage_d-1.0', shape: [100000, 100000], type: 'uint32', encoding: 'bs32-lz4<' });
  await v1.send(huge);
  const padded = imageParts(5, 1, img(1));
  padded[0] = j({ htype: 'dimage-1.0', series: 5, frame: 1, pad: 'x'.repeat(2 << 20) });
  await v1.send(padded);
  const badSeries = imageParts(5, 2, img(2));
  badSeries[0] = j({ htype: 'dimage-1.0', series: 'five', frame: 2 });
  await v1.send(badSeries);
  await v1.send([j({ htype: `d${'q'.repeat(5000)}` })]);
  await v1.send(imageParts(5, 3, img(3)));
  await v1.send(endParts(5));

  await until(() => v1events('series_end').length === 1 || undefined, 'the end of series 5');
  await until(() => v1rows().length === 4 || undefined, 'four rows');
  const [tooBig, tooLong, notSeries, good] = v1rows();
  t.match(tooBig!, { series: '5', frame: 0, decision: 'error', reason: /image 0 \(100000 x 100000 uint32\) needs .* decoded; the limit is 48\.0 MiB/ });
  t.match(tooLong!, { series: '5', frame: null, decision: 'error', reason: /first part of \d+ bytes exceeds 1048576 \(JSON parts are headers\)/ });
  t.match(notSeries!, { frame: 2, decision: 'error', reason: /dimage series is not an integer >= 0: NaN/ });
  t.match(good!, { series: '5', frame: 3, decision: 'kept' });
  t.match(v1events('series_end_mismatch')[0]!.message, /end of series 6 ignored: series 5 \(v1-5-\d+\) stays open/);
  t.match(v1events('stream_ignored')[0]!.message, /ignoring a message of htype "dq{63}"\.\.\. \(5001 characters\)$/);
  t.match(v1events('series_end')[0]!.message, /series 5 ended after 1 image/);
  // Its message goes out once its row is committed: wait for it rather than assume it is there.
  await until(() => sub1.reduced().some((r) => r.frame === 3) || undefined, 'the good image on MQTT');
  const m = sub1.reduced().find((r) => r.frame === 3)!;
  const ai = new AzimuthalIntegrator({ geometry: GEOMETRY, shape: SHAPE, npt: 1000, unit: 'q_nm^-1', split: 'no', mask: Uint8Array.from(pixelMask) });
  const want = ai.integrate(pixels(3), { maxValid: 65534 });
  const worst = Math.max(...Array.from(want.intensity, (v, i) => Math.abs(m.intensity![i]! - v) / Math.max(Math.abs(v), 1e-6)));
  t.ok(worst < 1e-6, `the good image is integrated with the header's geometry and mask (worst ${worst.toExponential(2)})`);
  t.equal(d1.freeSlots, SLOTS);
});
