// A series replayed through the daemon lands in one NeXus file that h5py
// (libhdf5, an independent reader) opens while the daemon runs, after it stops
// and after it is killed; its intensities are the MQTT profiles, bit for bit.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { ReducedMessage } from '../../daemon/publish/messages';
import { FrameSender } from '../../daemon/sim/sender';
import { needData, readData } from '../helpers/data';
import { DaemonProcess, writeYaml } from '../helpers/daemon-process';
import { Collector } from '../helpers/mqtt-collector';
import { needH5py, runPython } from '../helpers/python';
import { until } from '../helpers/wait';

interface NexusDump {
  definition: string;
  title: string;
  units: string;
  long_name: string;
  radial: number[];
  I: number[][];
  errors: number[][];
  frame: number[];
  time: number[];
  spot_count: number[];
  judged_frame: number[];
  decision: number[];
  configuration: string;
  end_time: string | null;
}

// Read with h5py, not with the library that wrote it. Float32 values go out as
// float64 (exact), so equality below is exact.
const DUMP = `
import json, sys, h5py
p = json.load(sys.stdin)
with h5py.File(p, 'r') as f:
    e = f['entry']; d = e['data']
    s = lambda x: x.decode() if isinstance(x, bytes) else str(x)
    print(json.dumps({
      'definition': s(e['definition'][()]), 'title': s(e['title'][()]),
      'units': s(d['radial_axis'].attrs['units']), 'long_name': s(d['radial_axis'].attrs['long_name']),
      'radial': d['radial_axis'][:].tolist(), 'I': d['I'][:].astype('float64').tolist(), 'errors': d['I_errors'][:].astype('float64').tolist(),
      'frame': d['frame'][:].tolist(), 'time': d['time'][:].tolist(), 'spot_count': d['spot_count'][:].tolist(),
      'judged_frame': e['frames/frame'][:].tolist(), 'decision': e['frames/decision'][:].tolist(),
      'configuration': s(e['reduction/configuration'][()]), 'end_time': s(e['end_time'][()]) if 'end_time' in e else None,
    }))
`;

function dump(file: string): NexusDump {
  return runPython<NexusDump>(DUMP, file);
}

function config(dir: string, formats = '[nexus]'): string {
  return `instance: nx
log: { level: info }
ingest: { tcp: { host: 127.0.0.1, port: 0 } }
mqtt: { embedded_port: 0 }
http: { port: 0 }
rings: { slots: 8, slot_mb: 8 }
workers: { threads: 1 }
pipeline:
  veto: { enabled: true, threshold: 20, min_pixels: 30 }
  integrate: { npt: 500, unit: q_nm^-1, split: "no" }
provenance: { path: ${JSON.stringify(path.join(dir, 'prov.sqlite'))}, batch_ms: 50 }
output: { directory: ${JSON.stringify(path.join(dir, 'reduced'))}, formats: ${formats}, flush_ms: 50 }
stats: { interval_ms: 200 }
`;
}

async function startDaemon(t: Test, dir: string, formats?: string) {
  const d = DaemonProcess.start(writeYaml(path.join(dir, 'beamedge.yaml'), config(dir, formats)));
  t.teardown(() => void d.stop('SIGKILL'));
  const { tcpPort, mqtt } = await d.ready();
  const sub = await Collector.connect(mqtt, 'beamedge/nx/#');
  t.teardown(() => sub.close());
  const sender = await FrameSender.connect('127.0.0.1', tcpPort);
  t.teardown(() => sender.close());
  return { d, sub, sender };
}

function sameProfiles(t: Test, nx: NexusDump, reduced: ReducedMessage[]): void {
  const byFrame = new Map(reduced.map((m) => [m.frame, m]));
  t.same(nx.frame, [...byFrame.keys()].sort((a, b) => a - b), 'one row per kept frame, with its id');
  let worst = 0;
  nx.frame.forEach((f, i) => {
    const m = byFrame.get(f)!;
    const I = Array.from(m.intensity!);
    const s = Array.from(m.sigma!);
    for (let k = 0; k < I.length; k++) worst = Math.max(worst, Math.abs(nx.I[i]![k]! - I[k]!), Math.abs(nx.errors[i]![k]! - s[k]!));
    t.equal(nx.time[i], Date.parse(m.received) / 1000, `frame ${f}: time is the arrival time`);
  });
  t.equal(worst, 0, 'intensities and errors equal the MQTT profiles exactly');
  t.same(nx.radial, Array.from(reduced[0]!.radial!), 'radial axis equals the MQTT one');
}

t.test('a replayed series writes a NeXus file h5py reads during and after the run', async (t) => {
  if (!needData(t) || !needH5py(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-nexus-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { d, sub, sender } = await startDaemon(t, dir, '[nexus, dat]');
  const cbf = readData('cbf', 'in16c_010001.cbf');
  for (let i = 0; i < 4; i++) await sender.send({ series: 'scan/1', frame: 10 + i, encoding: 'cbf' }, cbf);
  await sender.send({ series: 'scan/1', frame: 14, encoding: 'cbf' }, Buffer.from('not a CBF at all, an error row'));
  await sender.send({ series: 'scan/1', frame: 15, encoding: 'cbf' }, cbf);
  await sub.waitForCount('reduced', 5);
  const open = await d.waitFor((l) => l.kind === 'output_open');
  const file = open.path as string;
  t.equal(path.dirname(file), path.join(dir, 'reduced'), 'in output.directory');
  t.equal(path.basename(file), 'nx_scan_1.h5', 'named by instance and series (made safe for a file name)');

  // While the daemon runs: the rows appear as batches are flushed.
  const live = await until(() => {
    const n = dump(file);
    return n.frame.length === 5 && n.judged_frame.length === 6 ? n : undefined;
  }, 'five kept rows readable by h5py while the daemon runs');
  t.equal(live.definition, 'NXazint1d');
  t.equal(live.title, 'scan/1');
  t.equal(live.units, '1/nm');
  t.equal(live.long_name, 'q_nm^-1');
  t.equal(live.end_time, null, 'not closed yet');
  t.same(live.spot_count, [-1, -1, -1, -1, -1], 'no spot finding: -1');
  const judged = live.judged_frame.map((f, i) => [f, live.decision[i]]).sort((a, b) => a[0]! - b[0]!);
  t.same(judged, [[10, 0], [11, 0], [12, 0], [13, 0], [14, 2], [15, 0]], 'every judged frame with its decision (2: error)');
  t.match(live.configuration, /formats: \[nexus, dat\]/, 'the configuration text is in the file');
  sameProfiles(t, live, sub.reduced());

  t.equal(await d.stop('SIGTERM'), 0);
  const closed = d.logs.find((l) => l.kind === 'output_closed');
  t.ok(closed, 'closed at stop');
  const after = dump(file);
  t.ok(after.end_time, 'end_time written at close');
  sameProfiles(t, after, sub.reduced());

  // formats also has dat: one pyFAI-style file per kept frame, read back with numpy.
  const datDir = path.join(dir, 'reduced', 'nx_scan_1');
  t.same(readdirSync(datDir).sort(), ['000010.dat', '000011.dat', '000012.dat', '000013.dat', '000015.dat'], 'one .dat per kept frame');
  const cols = runPython<number[][]>('import json, sys, numpy\nprint(json.dumps(numpy.loadtxt(json.load(sys.stdin)).T.tolist()))', path.join(datDir, '000012.dat'));
  const m = sub.reduced().find((x) => x.frame === 12)!;
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
  const worst = Math.max(...Array.from(m.intensity!, (v, i) => rel(cols[1]![i]!, v)), ...Array.from(m.sigma!, (v, i) => rel(cols[2]![i]!, v)), ...Array.from(m.radial!, (v, i) => rel(cols[0]![i]!, v)));
  t.ok(worst < 1e-6, `the .dat columns are the MQTT profile to the 7 digits printed (worst ${worst.toExponential(2)})`);
});

t.test('a killed daemon leaves a file h5py opens with every flushed frame', async (t) => {
  if (!needData(t) || !needH5py(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-nexus-kill-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { d, sub, sender } = await startDaemon(t, dir);
  const cbf = readData('cbf', 'in16c_010001.cbf');
  for (let i = 0; i < 3; i++) await sender.send({ series: 'killed', frame: i, encoding: 'cbf' }, cbf);
  await sub.waitForCount('reduced', 3);
  const file = (await d.waitFor((l) => l.kind === 'output_open')).path as string;
  await until(() => dump(file).frame.length === 3, 'three rows flushed');
  await d.stop('SIGKILL');
  t.ok(existsSync(file), readdirSync(path.dirname(file)).join(','));
  const n = dump(file);
  t.equal(n.end_time, null, 'never closed');
  sameProfiles(t, n, sub.reduced());
});
