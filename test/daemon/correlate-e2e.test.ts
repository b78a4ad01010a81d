// FXS end to end: a DECTRIS stream v2 series of speckle-like frames (hits)
// and blanks through the daemon with pipeline.correlate enabled. Checked:
// correlation messages every publish_every kept frames and one at the end,
// the files written at the series end with their event, sha256 and
// provenance row, C2 and M against the definition's sums evaluated here on
// the same frames (integrated independently), and two workers = one.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { readNpy } from '../../daemon/calibrate/npy';
import { parseConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { AzimuthalIntegrator } from '../../daemon/integrate/azimuthal';
import { decodePayload, type CorrelationMessage } from '../../daemon/publish/messages';
import { DcuPusher } from '../../daemon/sim/dcu-pusher';
import { compressedImage, endMessage, imageMessage, startMessage } from '../../daemon/sim/stream2-sender';
import { createLogger } from '../../daemon/system/logger';
import { Collector } from '../helpers/mqtt-collector';
import { freePort } from '../helpers/net';
import { until } from '../helpers/wait';

const SHAPE: [number, number] = [160, 200];
const BEAM: [number, number] = [97.3, 81.6]; // x (fast), y (slow), pixels
const PIXEL = 172e-6;
const DIST = 0.12;
const WAVELENGTH_A = 1;
const NPT = 8;
const NAZIM = 12;
const PUBLISH_EVERY = 3;
const HITS = [true, true, false, true, true, true, false, true, true, false, true];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Hits: rings with a few angular lobes turned by a per-frame angle (what FXS correlates); blanks: faint noise. */
function frame(i: number, hit: boolean): Uint16Array {
  const r = rng(100 + i);
  const px = new Uint16Array(SHAPE[0] * SHAPE[1]);
  const phase = r() * 2 * Math.PI;
  for (let y = 0; y < SHAPE[0]; y++)
    for (let x = 0; x < SHAPE[1]; x++) {
      const dx = x + 0.5 - BEAM[0];
      const dy = y + 0.5 - BEAM[1];
      const rad = Math.hypot(dx, dy);
      const phi = Math.atan2(dy, dx);
      const v = hit ? 40 + 30 * Math.exp(-(((rad - 50) / 12) ** 2)) * (1 + Math.cos(3 * phi + phase)) + 10 * r() : 3 * r();
      px[y * SHAPE[1] + x] = Math.floor(v);
    }
  return px;
}

const FRAMES = HITS.map((hit, i) => frame(i, hit));

/** The definition on the kept frames, from an independent integration and direct sums. */
function expected(): { c2: Float64Array; m: Float64Array } {
  const ai = new AzimuthalIntegrator({
    geometry: { dist: DIST, poni1: BEAM[1] * PIXEL, poni2: BEAM[0] * PIXEL, rot1: 0, rot2: 0, rot3: 0, pixel1: PIXEL, pixel2: PIXEL, wavelength: WAVELENGTH_A * 1e-10 },
    shape: SHAPE,
    npt: NPT,
    nptAzim: NAZIM,
    unit: 'q_nm^-1',
    split: 'no',
  });
  const n = new Float64Array(NPT * NPT * NAZIM);
  const m = new Float64Array(n.length);
  FRAMES.forEach((px, f) => {
    if (!HITS[f]) return;
    const r = ai.integrate(px);
    const d: number[][] = [];
    const v: number[][] = [];
    for (let i = 0; i < NPT; i++) {
      const P = (k: number) => Math.fround(r.intensity[k * NPT + i]!);
      const valid = (k: number) => (r.count[k * NPT + i]! > 0 ? 1 : 0);
      let sum = 0;
      let cnt = 0;
      for (let k = 0; k < NAZIM; k++) if (valid(k)) (sum += P(k)), cnt++;
      const mean = cnt ? sum / cnt : 0;
      d.push(Array.from({ length: NAZIM }, (_, k) => (valid(k) ? P(k) - mean : 0)));
      v.push(Array.from({ length: NAZIM }, (_, k) => valid(k)));
    }
    for (let i = 0; i < NPT; i++)
      for (let j = 0; j < NPT; j++)
        for (let D = 0; D < NAZIM; D++)
          for (let k = 0; k < NAZIM; k++) {
            n[(i * NPT + j) * NAZIM + D]! += d[i]![k]! * d[j]![(k + D) % NAZIM]!;
            m[(i * NPT + j) * NAZIM + D]! += v[i]![k]! * v[j]![(k + D) % NAZIM]!;
          }
  });
  return { c2: n.map((x, i) => (m[i]! > 0 ? x / m[i]! : 0)), m };
}

interface Run {
  messages: CorrelationMessage[];
  files: Record<string, string>;
  c2: Float64Array;
  pairs: Float64Array;
}

async function run(t: Test, threads: number): Promise<Run> {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-fxs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const pusher = await DcuPusher.bind(endpoint);
  t.teardown(() => pusher.close(0));
  const db = path.join(dir, 'p.sqlite');
  const loaded = parseConfig(
    `instance: fxs\ningest: { tcp: { enabled: false }, dectris: { enabled: true, endpoint: "${endpoint}" } }\nrings: { slots: 8, slot_mb: 1 }\nworkers: { threads: ${threads} }\n` +
      `mqtt: { embedded_port: 0 }\nhttp: { port: 0 }\nprovenance: { path: ${JSON.stringify(db)}, batch_ms: 20 }\noutput: { directory: out }\n` +
      `pipeline:\n  veto: { threshold: 20, min_pixels: 1000 }\n  integrate: { npt: 50 }\n` +
      `  correlate: { enabled: true, npt: ${NPT}, npt_azim: ${NAZIM}, unit: q_nm^-1, publish_every: ${PUBLISH_EVERY}, q_pairs: [[1, 3], [5, 2]] }\n`,
    'fxs',
    dir,
  );
  const d = await Daemon.start({ loaded, log: createLogger('error') });
  t.teardown(() => d.stop('test end'));
  const sub = await Collector.connect(d.mqttUrl, 'beamedge/fxs/#');
  t.teardown(() => sub.close());
  t.ok(await pusher.waitForConsumers(1, 10_000), 'the daemon connected');
  await pusher.send(startMessage({ series_id: 5, series_unique_id: 'fxs-5', shape: SHAPE, dtype: 'uint16', beam_center: BEAM, pixel_size: PIXEL, distance: DIST, wavelength_A: WAVELENGTH_A, number_of_images: FRAMES.length, channels: ['threshold_1'] }));
  for (let i = 0; i < FRAMES.length; i++) await pusher.send(imageMessage(5, 'fxs-5', i, { threshold_1: compressedImage(FRAMES[i]!, SHAPE) }));
  await pusher.send(endMessage(5, 'fxs-5'));

  const final = (m: { topic: string; payload: Buffer; contentType?: string }) => m.topic.endsWith('/correlation') && decodePayload<CorrelationMessage>(m.payload, m.contentType).final;
  await sub.waitFor('the final correlation message', final, 30_000);
  const messages = sub.on('correlation').map((m) => decodePayload<CorrelationMessage>(m.payload, m.contentType));
  const event = await until(() => sub.events().find((e) => e.kind === 'correlation_written') as unknown as { message: string; details: { files: { name: string; path: string; sha256: string }[]; frames: number } } | undefined, 'correlation_written event');
  await d.sync();
  const kept = HITS.filter(Boolean).length;
  t.equal(d.stats.totals.kept, kept, 'the veto kept the hits');
  t.equal(d.stats.totals.rejected, HITS.length - kept, 'and rejected the blanks');

  // Files: named in the event with their sha256, and a provenance row.
  t.equal(event.details.frames, kept, 'the event counts the accumulated frames');
  const files: Record<string, string> = {};
  for (const f of event.details.files) {
    t.equal(createHash('sha256').update(readFileSync(f.path)).digest('hex'), f.sha256, `${f.name}: sha256 as the event says`);
    t.ok(f.path.startsWith(path.join(dir, 'out', 'correlation') + path.sep), `${f.name} under output.directory`);
    files[f.name] = f.path;
  }
  t.same(Object.keys(files).sort(), ['c2.npy', 'delta_deg.npy', 'meta.json', 'pairs.npy', 'radial.npy']);
  const meta = JSON.parse(readFileSync(files['meta.json']!, 'utf8')) as Record<string, unknown>;
  t.same([meta.series, meta.frames, meta.epochs, meta.npt, meta.npt_azim], ['5', kept, [1], NPT, NAZIM], 'meta.json: the series, its frame count, epochs and bins');
  const sql = new Database(db, { readonly: true });
  t.teardown(() => sql.close());
  const rows = sql.prepare("SELECT series, kind, epoch, calibration, frames, files, details FROM result_files").all() as { series: string; kind: string; epoch: number; calibration: string | null; frames: number; files: string; details: string }[];
  t.equal(rows.length, 1, 'one provenance row');
  t.same([rows[0]!.series, rows[0]!.kind, rows[0]!.epoch, rows[0]!.calibration, rows[0]!.frames], ['5', 'correlation', 1, null, kept], 'tied to the series, the epoch and (no) calibration set');
  t.same((JSON.parse(rows[0]!.files) as { sha256: string }[]).map((f) => f.sha256), event.details.files.map((f) => f.sha256), 'with the files and their sha256');

  const c2 = readNpy(readFileSync(files['c2.npy']!), '<f8', 'c2');
  const pairs = readNpy(readFileSync(files['pairs.npy']!), '<f8', 'pairs');
  t.same(c2.shape, [NPT, NPT, NAZIM], 'c2.npy float64 [npt][npt][npt_azim]');
  t.same(pairs.shape, [NPT, NPT, NAZIM], 'pairs.npy float64 [npt][npt][npt_azim]');
  return { messages, files, c2: c2.data as Float64Array, pairs: pairs.data as Float64Array };
}

t.test('a replayed series publishes its correlation every publish_every kept frames and writes it at the end', async (t) => {
  const one = await run(t, 1);
  const kept = HITS.filter(Boolean).length;
  const partial = one.messages.filter((m) => !m.final);
  const last = one.messages.filter((m) => m.final);
  t.equal(partial.length, Math.floor(kept / PUBLISH_EVERY), `a message per ${PUBLISH_EVERY} kept frames (${kept} kept; frames: ${one.messages.map((m) => `${m.frames}${m.final ? " final" : ""}`).join(", ")})`);
  partial.forEach((m, k) => t.ok(m.frames >= PUBLISH_EVERY * (k + 1) && m.frames <= kept, `message ${k + 1}: ${m.frames} frames accumulated`));
  t.equal(last.length, 1, 'one final message');
  const f = last[0]!;
  t.equal(f.frames, kept, 'the final message counts every kept frame');
  t.same(f.shape, [NPT, NAZIM]);
  t.ok(f.autocorrelation instanceof Float64Array && f.autocorrelation.length === NPT * NAZIM, 'autocorrelation as a float64 typed array [npt][npt_azim]');
  t.same(Array.from(f.delta_deg), Array.from({ length: NAZIM }, (_, d) => d * 30), 'delta axis in degrees');
  t.same(f.pairs.map((p) => [p.i, p.j]), [[1, 3], [5, 2]], 'the configured pairs');
  t.same(f.epochs, [1]);

  const want = expected();
  let scale = 0;
  let worst = 0;
  let mDiffer = 0;
  for (let i = 0; i < want.c2.length; i++) {
    scale = Math.max(scale, Math.abs(want.c2[i]!));
    worst = Math.max(worst, Math.abs(one.c2[i]! - want.c2[i]!));
    if (one.pairs[i] !== want.m[i]) mDiffer++;
  }
  t.ok(scale > 0, 'the frames correlate');
  t.equal(mDiffer, 0, 'M equals the direct count of valid pairs');
  t.ok(worst <= 1e-9 * scale, `C2 equals the direct sums on independently integrated frames (worst ${worst.toExponential(2)} of ${scale.toExponential(2)})`);
  // The message carries the same numbers as the file.
  const at = (i: number, j: number, d: number) => one.c2[(i * NPT + j) * NAZIM + d]!;
  t.ok(Array.from({ length: NPT * NAZIM }, (_, x) => Math.abs(f.autocorrelation[x]! - at(Math.floor(x / NAZIM), Math.floor(x / NAZIM), x % NAZIM))).every((e) => e <= 1e-12 * scale), 'autocorrelation = C2(i, i)');
  t.ok(Array.from({ length: NAZIM }, (_, d) => Math.abs(f.pairs[1]!.c2[d]! - at(5, 2, d))).every((e) => e <= 1e-12 * scale), 'pair (5, 2) = C2(5, 2)');

  const two = await run(t, 2);
  let w2 = 0;
  for (let i = 0; i < one.c2.length; i++) w2 = Math.max(w2, Math.abs(two.c2[i]! - one.c2[i]!));
  t.ok(w2 <= 1e-12 * scale, `two workers give the same C2 as one (worst ${w2.toExponential(2)})`);
  t.same(Array.from(two.pairs), Array.from(one.pairs), 'and the same M');
  t.equal(two.messages.find((m) => m.final)!.frames, kept);
});
