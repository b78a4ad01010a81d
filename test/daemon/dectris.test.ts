// DECTRIS stream v2 over real ZeroMQ sockets: the captures replayed as a
// detector would send them, a consumer joining mid-series, and two daemon
// instances sharing one stream round-robin.
import { DcuPusher } from '../../daemon/sim/dcu-pusher';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { parseConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { decodeImage, decodeStream2 } from '../../daemon/decode/stream2';
import { AzimuthalIntegrator } from '../../daemon/integrate/azimuthal';
import { endParts, headerParts, imageParts, v1Image } from '../../daemon/sim/stream1-sender';
import { compressedImage, imageMessage, startMessage, uncompressedImage } from '../../daemon/sim/stream2-sender';
import { simulateStream2 } from '../../daemon/sim/stream2-simulator';
import { createLogger } from '../../daemon/system/logger';
import { dataFile, needData, readData } from '../helpers/data';
import { Collector } from '../helpers/mqtt-collector';
import { freePort } from '../helpers/net';
import { until } from '../helpers/wait';


async function instance(t: Test, name: string, endpoint: string, pipeline = '{ veto: { threshold: 2, min_pixels: 10 } }', protocol = 'v2'): Promise<{ d: Daemon; db: string; sub: Collector }> {
  const dir = mkdtempSync(path.join(tmpdir(), `beamedge-${name}-`));
  const db = path.join(dir, 'p.sqlite');
  writeFileSync(path.join(dir, 'g.poni'), 'PixelSize1: 75e-6\nPixelSize2: 75e-6\nDistance: 0.1\nPoni1: 0.0193\nPoni2: 0.0386\nWavelength: 1e-10\n');
  const loaded = parseConfig(
    `instance: ${name}\nhttp: { port: 0 }\ningest: { tcp: { enabled: false }, dectris: { enabled: true, endpoint: "${endpoint}", protocol: ${protocol} } }\nrings: { slots: 8, slot_mb: 12 }\nworkers: { threads: 1 }\nmqtt: { embedded_port: 0 }\nprovenance: { path: ${JSON.stringify(db)}, batch_ms: 20 }\npipeline: ${pipeline}\n`,
    name,
    dir,
  );
  const d = await Daemon.start({ loaded, log: createLogger('error') });
  const sub = await Collector.connect(d.mqttUrl, `beamedge/${name}/#`);
  t.teardown(async () => {
    await sub.close();
    await d.stop('test end');
    rmSync(dir, { recursive: true, force: true });
  });
  return { d, db, sub };
}

const frames = (db: string) =>
  new Database(db, { readonly: true }).prepare("SELECT series, frame, decision, reason FROM frames WHERE decision <> 'received' ORDER BY frame").all() as { series: string; frame: number; decision: string; reason: string }[];

t.test('captured stream v2 images reach MQTT with their ids, profiles and the start geometry', async (t) => {
  if (!needData(t)) return;
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const pusher = await DcuPusher.bind(endpoint);
  const { d, db, sub } = await instance(t, 'v2a', endpoint);
  const dir = 'r500k_bm_bslz4_16bit';
  const files = readdirSync(dataFile('stream2', dir)).sort();
  const first = decodeStream2(readData('stream2', dir, files[0]!));
  const uid = first.series_unique_id!;
  await new Promise((r) => setTimeout(r, 300)); // let the PULL connect
  // A pixel mask in the start message: a block of 100 x 200 pixels left out.
  const pixelMask = new Uint32Array(514 * 1030);
  for (let r = 50; r < 150; r++) for (let c = 600; c < 800; c++) pixelMask[r * 1030 + c] = 1;
  await pusher.send(startMessage({ series_id: 1, series_unique_id: uid, shape: [514, 1030], dtype: 'uint16', beam_center: [515, 257], pixel_size: 75e-6, distance: 0.1, wavelength_A: 1, number_of_images: 10, channels: ['threshold_1', 'threshold_2', 'difference'], saturation_value: 3, pixel_mask: pixelMask }));
  for (const f of files) await pusher.send(readData('stream2', dir, f));
  await sub.waitForCount('reduced', 10);
  const reduced = sub.reduced().sort((a, b) => a.frame - b.frame);
  t.same(reduced.map((m) => [m.series, m.frame]), Array.from({ length: 10 }, (_, i) => ['1', i]), 'series and image ids');
  t.equal((reduced[0]!.meta as { series_unique_id: string }).series_unique_id, uid);
  // Independent of the stream path: decode the capture directly and integrate with the start's geometry.
  const px = decodeImage(first.data!.threshold_1!) as Uint16Array;
  const ai = new AzimuthalIntegrator({ geometry: { dist: 0.1, poni1: 257 * 75e-6, poni2: 515 * 75e-6, rot1: 0, rot2: 0, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10 }, shape: [514, 1030], npt: 1000, unit: 'q_nm^-1', split: 'no', mask: Uint8Array.from(pixelMask) });
  const want = ai.integrate(px, { maxValid: 3 });
  const got = reduced[0]!.intensity!;
  const worst = Math.max(...Array.from(want.intensity, (v, i) => Math.abs(got[i]! - v) / Math.max(Math.abs(v), 1e-6)));
  t.ok(worst < 1e-6, `profile equals a direct integration of the decoded capture with the start's mask (worst ${worst.toExponential(2)})`);
  t.same(Array.from(reduced[0]!.count!), Array.from(want.count, (c) => Math.fround(c)), 'pixel counts per bin show the pixel mask applied');
  t.ok(reduced[0]!.excluded! > 0 && reduced[0]!.excluded === want.excluded, `pixels above saturation_value are excluded and counted (${reduced[0]!.excluded})`);
  await until(() => sub.events().some((e) => e.kind === 'series_end'), 'series_end event');
  await until(() => frames(db).length === 10 || undefined, 'provenance rows');
  t.ok(frames(db).every((r) => r.decision === 'kept'));
  await pusher.close(0);
  t.equal(d.stats.totals.errored, 0);
});

t.test('an image sent uncompressed uses the start geometry like a compressed one, with the same profile', async (t) => {
  if (!needData(t)) return;
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const pusher = await DcuPusher.bind(endpoint);
  t.teardown(() => pusher.close(0));
  const { db, sub } = await instance(t, 'v2raw', endpoint, '{ veto: { enabled: false } }');
  const dir = 'r500k_bm_bslz4_16bit';
  const first = decodeStream2(readData('stream2', dir, readdirSync(dataFile('stream2', dir)).sort()[0]!));
  const px = decodeImage(first.data!.threshold_1!) as Uint16Array;
  await new Promise((r) => setTimeout(r, 300)); // let the PULL connect
  await pusher.send(startMessage({ series_id: 7, series_unique_id: 'raw-1', shape: [514, 1030], dtype: 'uint16', beam_center: [515, 257], pixel_size: 75e-6, distance: 0.1, wavelength_A: 1, number_of_images: 2, channels: ['threshold_1'] }));
  await pusher.send(imageMessage(7, 'raw-1', 0, { threshold_1: compressedImage(px, [514, 1030]) }));
  await pusher.send(imageMessage(7, 'raw-1', 1, { threshold_1: uncompressedImage(px, [514, 1030]) }));
  await sub.waitForCount('reduced', 2);
  t.same(frames(db).map((r) => [r.frame, r.decision]), [[0, 'kept'], [1, 'kept']], 'both kept without a PONI: the geometry came from the start message');
  const [a, b] = sub.reduced().sort((x, y) => x.frame - y.frame);
  t.same(Array.from(b!.intensity!), Array.from(a!.intensity!), 'the uncompressed image integrates exactly like the compressed one');
  t.equal(b!.excluded, a!.excluded, 'and excludes the same flagged pixels');
});

t.test('images without a start message: recorded as errors without a PONI, processed with one', async (t) => {
  if (!needData(t)) return;
  for (const withPoni of [false, true]) {
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const pusher = await DcuPusher.bind(endpoint);
    const { d, db, sub } = await instance(t, withPoni ? 'midb' : 'mida', endpoint, withPoni ? '{ geometry: { poni: g.poni }, veto: { enabled: false } }' : undefined);
    await new Promise((r) => setTimeout(r, 300));
    for (const f of ['000001.cbor', '000002.cbor', '000003.cbor']) await pusher.send(readData('stream2', 'r500k_bm_lz4_8bit', f));
    await until(() => d.stats.totals.processed === 3, 'three images processed');
    await until(() => frames(db).length === 3 || undefined, 'rows');
    const rows = frames(db);
    if (withPoni) t.ok(rows.every((r) => r.decision === 'kept'), 'with pipeline.geometry.poni the images are integrated');
    else {
      t.ok(rows.every((r) => r.decision === 'error' && /no start message for series 1/.test(r.reason)), 'without a PONI each image is an error row that says why');
      t.ok(sub.events().some((e) => e.kind === 'series_without_start'), 'and one event tells the operator');
    }
    await pusher.close(0);
  }
});

t.test('two instances on one stream share it: every image exactly once', async (t) => {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  // What is shared is the images. Which consumer's pipe libzmq has in its
  // round-robin when the start messages go out is not something the pusher can
  // observe (its handshake event can run ahead of the pipe's attachment), so a
  // consumer may see the series first at an image, as one joining mid-series
  // does: with a PONI it processes those images too (that case is tested above).
  const pipeline = '{ geometry: { poni: g.poni }, veto: { enabled: false } }';
  const a = await instance(t, 'shareA', endpoint, pipeline);
  const b = await instance(t, 'shareB', endpoint, pipeline);
  const n = 40;
  await simulateStream2({ bind: endpoint, shape: [514, 1030], bits: 16, frames: n, rateHz: 0, hitFraction: 0.5, waitMs: 500, consumers: 2 });
  await until(() => a.d.stats.totals.processed + b.d.stats.totals.processed === n || undefined, 'all images processed', 60_000);
  await until(() => frames(a.db).length + frames(b.db).length === n || undefined, 'all rows');
  const ids = [...frames(a.db), ...frames(b.db)].map((r) => r.frame).sort((x, y) => x - y);
  t.same(ids, Array.from({ length: n }, (_, i) => i), 'the union is every image, with no duplicates');
  t.ok(frames(a.db).length > 0 && frames(b.db).length > 0, `split ${frames(a.db).length} / ${frames(b.db).length}`);
  t.ok(a.sub.on('reduced').every((m) => m.topic.startsWith('beamedge/shareA/')), 'each instance publishes under its own topic prefix');
  await until(() => a.sub.on('reduced').length + b.sub.on('reduced').length === n || undefined, `all reduced messages`).catch((e: Error) => {
    throw new Error(`${e.message}: ${a.sub.on('reduced').length} + ${b.sub.on('reduced').length}, published ${a.d.stats.totals.published} + ${b.d.stats.totals.published}, kept ${a.d.stats.totals.kept} + ${b.d.stats.totals.kept}; A rows ${JSON.stringify(frames(a.db).slice(0, 2))}; B rows ${JSON.stringify(frames(b.db).slice(0, 2))}`);
  });
  const published = [...a.sub.reduced(), ...b.sub.reduced()].map((m) => m.frame).sort((x, y) => x - y);
  t.same(published, Array.from({ length: n }, (_, i) => i), 'together they publish every image exactly once');
});


t.test('stream v1: the captures re-encoded as JSON multipart (bs16-lz4< and lz4<) decode to the same pixels and profiles', async (t) => {
  if (!needData(t)) return;
  for (const dir of ['r500k_bm_bslz4_16bit', 'r500k_bm_lz4_8bit']) {
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const pusher = await DcuPusher.bind(endpoint);
    const { d, sub } = await instance(t, `v1${dir.slice(-5)}`, endpoint, '{ veto: { enabled: false } }', 'v1');
    await new Promise((r) => setTimeout(r, 300));
    const images = readdirSync(dataFile('stream2', dir)).sort().map((f) => decodeStream2(readData('stream2', dir, f))).filter((m) => m.type === 'image');
    const img0 = images[0]!.data!.threshold_1!;
    await pusher.send(headerParts(1, { shape: [514, 1030], beam_center: [515, 257], pixel_size: 75e-6, distance: 0.1, wavelength_A: 1, nimages: images.length }));
    for (const m of images) await pusher.send(imageParts(1, m.image_id!, m.data!.threshold_1!));
    await pusher.send(endParts(1));
    await sub.waitForCount('reduced', images.length);
    const reduced = sub.reduced().sort((a, b) => a.frame - b.frame);
    t.same(reduced.map((m) => m.frame), images.map((m) => m.image_id), `${dir}: every image id`);
    t.equal(v1Image(img0).encoding, dir.includes('bslz4') ? 'bs16-lz4<' : 'lz4<');
    const px = decodeImage(img0);
    const ai = new AzimuthalIntegrator({ geometry: { dist: 0.1, poni1: 257 * 75e-6, poni2: 515 * 75e-6, rot1: 0, rot2: 0, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10 }, shape: [514, 1030], npt: 1000, unit: 'q_nm^-1', split: 'no' });
    const want = ai.integrate(px as Uint16Array, { maxValid: px instanceof Uint8Array ? 254 : 65534 });
    const worst = Math.max(...Array.from(want.intensity, (v, i) => Math.abs(reduced[0]!.intensity![i]! - v) / Math.max(Math.abs(v), 1e-6)));
    t.ok(worst < 1e-6, `${dir}: profile from the v1 header geometry equals a direct integration (worst ${worst.toExponential(2)})`);
    await until(() => sub.events().some((e) => e.kind === 'series_end') || undefined, 'series_end');
    t.equal(d.stats.totals.errored, 0);
    await pusher.close(0);
  }
});
