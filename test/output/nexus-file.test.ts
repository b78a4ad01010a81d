// The NeXus writer on its own: 2D profiles and spot tables read back with h5py
// (an independent reader) equal what was written; write failures are counted
// and reported, never thrown at the caller; memory stays bounded.
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { ReducedMessage } from '../../daemon/publish/messages';
import { ReducedOutput } from '../../daemon/output/reduced-output';
import { needH5py, runPython } from '../helpers/python';

function message(frame: number, o: { azim?: number; spots?: number; series?: string } = {}): ReducedMessage {
  const nr = 7;
  const na = o.azim ?? 0;
  const n = na ? na * nr : nr;
  const spots = o.spots ?? 0;
  return {
    instance: 'unit',
    series: o.series ?? 's1',
    frame,
    received: new Date(1_700_000_000_000 + frame * 1000).toISOString(),
    processed: new Date().toISOString(),
    latency_ms: 1,
    epoch: 3,
    decision: 'kept',
    reason: '',
    score: 1,
    excluded: 0,
    unit: '2th_deg',
    shape: [10, 10],
    source: 'test',
    calibration: 'cal-id-1',
    radial: Float64Array.from({ length: nr }, (_, i) => 0.5 + i),
    ...(na ? { azimuthal: Float64Array.from({ length: na }, (_, i) => -180 + 360 * (i + 0.5) / na) } : {}),
    intensity: Float32Array.from({ length: n }, (_, i) => frame * 1000 + i + 0.25),
    sigma: Float32Array.from({ length: n }, (_, i) => Math.sqrt(frame + i + 1)),
    ...(o.spots !== undefined
      ? { spots: { count: spots + 5, fs: Float32Array.from({ length: spots }, (_, i) => i + 0.5), ss: Float32Array.from({ length: spots }, (_, i) => 2 * i), intensity: Float32Array.from({ length: spots }, (_, i) => 100 * frame + i), pixels: Float32Array.from({ length: spots }, () => 4) } }
      : {}),
  };
}

const READ = `
import json, sys, h5py
with h5py.File(json.load(sys.stdin), 'r') as f:
    e = f['entry']; d = e['data']
    out = {'definition': e['definition'][()].decode(), 'axes': [a.decode() if isinstance(a, bytes) else a for a in d.attrs['axes']],
           'I': d['I'][:].astype('float64').tolist(), 'err': d['I_errors'][:].astype('float64').tolist(), 'azim': d['azimuthal_axis'][:].tolist() if 'azimuthal_axis' in d else None,
           'units': d['radial_axis'].attrs['units'].decode() if isinstance(d['radial_axis'].attrs['units'], bytes) else d['radial_axis'].attrs['units'],
           'spot_count': d['spot_count'][:].tolist(), 'calibration': e['reduction/calibration_id'][()].decode(), 'epoch': d['epoch'][:].tolist(),
           'spots': {k: e['spots'][k][:].astype('float64').tolist() for k in ('row', 'fs', 'ss', 'intensity')} if 'spots' in e else None}
    print(json.dumps(out))
`;

async function output(t: Test, dir: string, events: { kind: string; details?: Record<string, unknown> }[]) {
  const out = await ReducedOutput.create({
    directory: dir,
    formats: ['nexus'],
    instance: 'unit',
    version: 'test',
    context: () => ({ configText: 'pipeline: {}\n', calibration: null, epoch: 3, dat: { geometry: null, mask: null, dark: null, flat: null, polarization: null, solidAngle: true, split: 'no' } }),
    event: (_l, kind, _m, details) => events.push({ kind, ...(details ? { details } : {}) }),
    flushMs: 10_000,
    batchFrames: 4,
  });
  t.teardown(() => out.close());
  return out;
}

t.test('2D profiles and spots round-trip through h5py', async (t) => {
  if (!needH5py(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-nxfile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const events: { kind: string; details?: Record<string, unknown> }[] = [];
  const out = await output(t, dir, events);
  const msgs = [message(0, { azim: 3, spots: 2 }), message(1, { azim: 3 }), message(2, { azim: 3, spots: 0 }), message(3, { azim: 3, spots: 3 })];
  out.judged('s1', 0, 'kept', 1, msgs[0]);
  out.judged('s1', 9, 'rejected', 0.5);
  out.judged('s1', 1, 'kept', 1, msgs[1]);
  out.judged('s1', 2, 'kept', 1, msgs[2]); // the fourth frame: a full batch is written at once
  out.judged('s1', 3, 'kept', 1, msgs[3]);
  out.flush();
  const file = events.find((e) => e.kind === 'output_open')!.details!.path as string;
  const r = runPython<{ definition: string; axes: string[]; I: number[][][]; err: number[][][]; azim: number[]; units: string; spot_count: number[]; calibration: string; epoch: number[]; spots: Record<string, number[]> }>(READ, file);
  t.equal(r.definition, 'NXazint2d');
  t.same(r.axes, ['.', 'azimuthal_axis', 'radial_axis']);
  t.equal(r.units, 'deg');
  t.same(r.azim, Array.from(msgs[0]!.azimuthal!));
  t.same(r.I.map((f) => f.flat()), msgs.map((m) => Array.from(m.intensity!)), 'I [frames, azimuthal, radial] equals what was written');
  t.same(r.err.map((f) => f.flat()), msgs.map((m) => Array.from(m.sigma!)));
  t.same(r.spot_count, [7, -1, 5, 8], 'the true spot counts; -1 without spots');
  t.same(r.spots.row, [0, 0, 3, 3, 3], 'each spot points at its frame row');
  t.same(r.spots.fs, [0.5, 1.5, 0.5, 1.5, 2.5]);
  t.same(r.spots.intensity, [0, 1, 300, 301, 302]);
  t.equal(r.calibration, 'cal-id-1', "the first frame's calibration set");
  t.same(r.epoch, [3, 3, 3, 3]);
});

t.test('a directory that cannot be written: counted and reported, never thrown', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'beamedge-nxfail-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'out');
  mkdirSync(dir);
  const events: { kind: string; details?: Record<string, unknown> }[] = [];
  const out = await output(t, dir, events);
  // The directory goes away under the daemon (an unmounted disk, a clean-up script).
  rmSync(dir, { recursive: true });
  for (let i = 0; i < 3; i++) out.judged('s2', i, 'kept', 1, message(i, { series: 's2' }));
  t.doesNotThrow(() => out.flush(), 'flush does not throw');
  const err = events.find((e) => e.kind === 'output_error');
  t.ok(err, 'an output_error event');
  t.equal(err!.details!.frames, 3, 'counting the frames not written');
  t.match(String(err!.details!.error), /unit_s2\.h5/, 'naming the file');
  t.equal(out.counters.errors, 3);
  t.equal(events.filter((e) => e.kind === 'output_error').length, 1, 'one event for the batch');
});

t.test('buffered frames are bounded', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-nxbound-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const events: { kind: string; details?: Record<string, unknown> }[] = [];
  const out = await output(t, dir, events);
  // Rejected frames of a series with nothing kept wait for a kept frame, up to a cap (64 batches): never more.
  for (let i = 0; i < 4 * 64 + 100; i++) out.judged('none-kept', i, 'rejected', 0);
  out.flush();
  t.equal(out.waiting, 4 * 64, 'held rows stop at the cap');
  t.equal(out.counters.errors, 0, 'a series that keeps nothing is not an error');
  out.seriesEnded('none-kept');
  t.equal(out.waiting, 0, 'the end of the series lets them go');
  t.equal(events.filter((e) => e.kind === 'output_open').length, 0, 'no file for a series with nothing kept');
});
