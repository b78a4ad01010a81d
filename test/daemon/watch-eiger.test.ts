// EIGER/NXmx files in the watched directory integrate exactly like the same
// frames sent over DECTRIS stream v2: one daemon takes both, the capture over
// ZeroMQ with a start message and the NXmx pair (made from the same capture
// with HDF5's own bitshuffle filter) from its directory, with the same
// geometry, pixel mask and saturation. Bad HDF5 files are rejected, named, and
// the watcher goes on.
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { parseConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { DcuPusher } from '../../daemon/sim/dcu-pusher';
import { startMessage } from '../../daemon/sim/stream2-sender';
import { decodeStream2 } from '../../daemon/decode/stream2';
import { createLogger } from '../../daemon/system/logger';
import { dataFile, needData, readData } from '../helpers/data';
import { Collector } from '../helpers/mqtt-collector';
import { freePort } from '../helpers/net';
import { CAPTURE, capturePixels, makeNxmx, needHdf5Plugin, SHAPE } from '../helpers/nxmx';
import { until } from '../helpers/wait';

t.test('an NXmx master + data files integrate like the same frames over stream v2', async (t) => {
  if (!needData(t) || !needHdf5Plugin(t)) return;
  const root = mkdtempSync(path.join(tmpdir(), 'beamedge-watch-eiger-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const watched = path.join(root, 'watched');
  const staging = path.join(root, 'staging');
  mkdirSync(watched);
  mkdirSync(staging);
  const db = path.join(root, 'p.sqlite');
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const pusher = await DcuPusher.bind(endpoint);
  t.teardown(() => pusher.close(0));
  const loaded = parseConfig(
    `instance: eiger
ingest:
  tcp: { enabled: false }
  dectris: { enabled: true, endpoint: "${endpoint}" }
  watch: { enabled: true, directory: ${JSON.stringify(watched)}, pattern: "*.h5", poll_ms: 50, incomplete_timeout_ms: 60000 }
rings: { slots: 8, slot_mb: 4 }
workers: { threads: 1 }
mqtt: { embedded_port: 0 }
http: { port: 0 }
provenance: { path: ${JSON.stringify(db)}, batch_ms: 20 }
pipeline: { veto: { threshold: 2, min_pixels: 10 } }
output: { formats: [nexus], flush_ms: 50 }
`,
    'eiger',
    root,
  );
  const d = await Daemon.start({ loaded, log: createLogger('error') });
  const sub = await Collector.connect(d.mqttUrl, 'beamedge/eiger/#');
  t.teardown(async () => {
    await sub.close();
    await d.stop('test end');
  });

  const pixels = capturePixels();
  const mask = new Uint32Array(SHAPE[0] * SHAPE[1]);
  for (let r = 50; r < 150; r++) for (let c = 600; c < 800; c++) mask[r * SHAPE[1] + c] = 1;

  // Stream v2: the capture as the detector sent it, after a start with the same geometry, mask and saturation.
  t.ok(await pusher.waitForConsumers(1, 10_000), 'the daemon connected to the stream');
  const files = readdirSync(dataFile('stream2', CAPTURE)).sort();
  await pusher.send(startMessage({ series_id: 1, series_unique_id: decodeStream2(readData('stream2', CAPTURE, files[0]!)).series_unique_id!, shape: SHAPE, dtype: 'uint16', beam_center: [515, 257], pixel_size: 75e-6, distance: 0.1, wavelength_A: 1, number_of_images: 10, channels: ['threshold_1', 'threshold_2', 'difference'], saturation_value: 3, pixel_mask: mask }));
  for (const f of files) await pusher.send(readData('stream2', CAPTURE, f));

  // Files: written elsewhere, then moved in, as a file writer's rename would.
  const { master, data } = makeNxmx(staging, pixels, { perFile: 4, mask, saturation: 3, prefix: 'scan' });
  for (const f of [master, ...data]) renameSync(f, path.join(watched, path.basename(f)));

  await sub.waitForCount('reduced', 20, 15_000).catch((e) => { console.error(JSON.stringify(sub.events(), null, 1)); throw e; });
  const reduced = sub.reduced();
  const stream = reduced.filter((m) => m.series === '1').sort((a, b) => a.frame - b.frame);
  const files2 = reduced.filter((m) => m.series === 'scan').sort((a, b) => a.frame - b.frame);
  t.same(stream.map((m) => m.frame), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'stream v2 image ids');
  t.same(files2.map((m) => m.frame), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'the files keep the same ids (image_nr_low - 1 + index)');
  let differing = 0;
  stream.forEach((s, i) => {
    const f = files2[i]!;
    if (!s.intensity!.every((v, k) => Object.is(v, f.intensity![k])) || !s.count!.every((v, k) => v === f.count![k]) || s.excluded !== f.excluded) differing++;
  });
  t.equal(differing, 0, 'every frame: identical intensities, pixel counts and excluded pixels');
  t.ok(files2[0]!.excluded! > 0, `saturated pixels excluded (${files2[0]!.excluded})`);
  t.ok(files2[0]!.source.endsWith('scan_data_000001.h5#0'), 'source names the data file and frame');

  // The last data file completes the declared images: the series ends and its NeXus file closes.
  await until(() => sub.events().find((e) => e.kind === 'output_closed' && (e.details as { series?: string }).series === 'scan'), 'the series NeXus file closed');
  t.pass('series_end from the files closes the NeXus file');

  // Hostile files: each is one rejection naming it; a good series after them is still taken.
  writeFileSync(path.join(watched, 'bad_master.h5'), 'not HDF5');
  writeFileSync(path.join(watched, 'bad_data_000001.h5'), 'not HDF5 either');
  const later = makeNxmx(staging, pixels.slice(0, 2), { perFile: 2, prefix: 'later' });
  for (const f of [later.master, ...later.data]) renameSync(f, path.join(watched, path.basename(f)));
  await sub.waitForCount('reduced', 22, 60_000);
  t.same(sub.reduced().filter((m) => m.series === 'later').map((m) => m.frame).sort(), [0, 1], 'the next series is taken');
  const rows = new Database(db, { readonly: true }).prepare("SELECT source, error FROM frames WHERE decision = 'error'").all() as { source: string; error: string }[];
  t.equal(rows.length, 1, 'one rejection');
  t.match(rows[0]!.source, /bad_data_000001\.h5$/);
  t.match(rows[0]!.error, /bad_master\.h5: not a readable HDF5 file/, 'the error names the file and the problem');
  t.equal(d.stats.totals.kept, 22);
});
