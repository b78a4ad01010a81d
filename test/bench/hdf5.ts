// HDF5 on both sides: the NeXus writer's cost per kept frame on the main
// thread, and reading + decoding an EIGER/NXmx frame, each against Debian's
// h5py (libhdf5, with hdf5plugin's bitshuffle filter) doing the same in the
// same run.
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openNxmx, readNxmxFrame } from '../../daemon/decode/nxmx';
import { decodeImage } from '../../daemon/decode/stream2';
import { ReducedOutput } from '../../daemon/output/reduced-output';
import type { ReducedMessage } from '../../daemon/publish/messages';
import { capturePixels, hasHdf5Plugin, makeNxmx } from '../helpers/nxmx';
import { measure, type Row } from './measure';

const FRAMES = 2048;
const BINS = 1000;
const BATCH = 256;

const H5PY_BENCH = String.raw`
import json, sys, time, statistics, numpy, h5py, hdf5plugin
p = json.load(sys.stdin)
out = {}
# The writer's work: append batches of profiles + errors + ids + times to extendable datasets, flush per batch.
runs = []
for r in range(5):
    path = p['dir'] + '/ref%d.h5' % r
    I = numpy.random.rand(p['frames'], p['bins']).astype('f4')
    t0 = time.perf_counter()
    with h5py.File(path, 'w') as f:
        d = f.create_group('entry/data')
        dsI = d.create_dataset('I', shape=(0, p['bins']), maxshape=(None, p['bins']), chunks=(16, p['bins']), dtype='f4')
        dsE = d.create_dataset('I_errors', shape=(0, p['bins']), maxshape=(None, p['bins']), chunks=(16, p['bins']), dtype='f4')
        dsF = d.create_dataset('frame', shape=(0,), maxshape=(None,), chunks=(1024,), dtype='i8')
        dsT = d.create_dataset('time', shape=(0,), maxshape=(None,), chunks=(1024,), dtype='f8')
        n = 0
        for s in range(0, p['frames'], p['batch']):
            b = I[s:s + p['batch']]; k = len(b)
            for ds in (dsI, dsE): ds.resize(n + k, axis=0); ds[n:n + k] = b
            for ds in (dsF, dsT): ds.resize(n + k, axis=0); ds[n:n + k] = numpy.arange(s, s + k)
            n += k
            f.flush()
    runs.append((time.perf_counter() - t0) * 1e6 / p['frames'])
out['nexus_us'] = statistics.median(runs)
with h5py.File(p['master'], 'r') as f:
    d = f['entry/data/data_000001']
    ts = []
    for rep in range(p['reps']):
        i = rep % d.shape[0]
        t0 = time.perf_counter(); d[i]; ts.append((time.perf_counter() - t0) * 1e3)
    out['nxmx_ms'] = statistics.median(ts)
out['h5py'] = h5py.version.version
print(json.dumps(out))
`;

function message(frame: number, radial: Float64Array): ReducedMessage {
  return {
    instance: 'bench', series: 's', frame, received: new Date().toISOString(), processed: '', latency_ms: 0, epoch: 1, decision: 'kept', reason: '', score: 1, excluded: 0,
    unit: 'q_nm^-1', shape: [1, 1], source: 'bench', calibration: null, radial,
    intensity: Float32Array.from({ length: BINS }, Math.random), sigma: Float32Array.from({ length: BINS }, Math.random),
  };
}

export async function hdf5Rows(reps: number): Promise<{ rows: Row[]; reference: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-bench-h5-'));
  try {
    const radial = Float64Array.from({ length: BINS }, (_, i) => i);
    const msgs = Array.from({ length: FRAMES }, (_, i) => message(i, radial));
    const runs: number[] = [];
    for (let r = 0; r < 5; r++) {
      const out = await ReducedOutput.create({ directory: path.join(dir, `ours${r}`), formats: ['nexus'], instance: 'bench', version: 'bench', context: () => ({ configText: '', calibration: null, epoch: 1, dat: { geometry: null, mask: null, dark: null, flat: null, polarization: null, solidAngle: true, split: 'no' } }), event: () => {}, flushMs: 1e6, batchFrames: BATCH });
      const t0 = process.hrtime.bigint();
      for (const m of msgs) out.judged('s', m.frame, 'kept', 1, m);
      out.flush();
      runs.push(Number(process.hrtime.bigint() - t0) / 1e3 / FRAMES);
      await out.close();
    }
    runs.sort((a, b) => a - b);
    const oursUs = runs[2]!;
    const rows: Row[] = [];
    let ref: Record<string, number | string> | undefined;
    let master: string | undefined;
    if (hasHdf5Plugin) {
      master = makeNxmx(dir, capturePixels(), { perFile: 10 }).master;
      const r = spawnSync('/usr/bin/python3', ['-c', H5PY_BENCH], { input: JSON.stringify({ dir, frames: FRAMES, bins: BINS, batch: BATCH, master, reps }), encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
      if (r.status === 0) ref = JSON.parse(r.stdout) as Record<string, number | string>;
    }
    const refUs = typeof ref?.nexus_us === 'number' ? ref.nexus_us : undefined;
    rows.push({ metric: `NeXus append, ${BINS}-bin profile + errors per kept frame, batches of ${BATCH} + flush (us/frame)`, ours: oursUs.toFixed(1), reference: refUs === undefined ? 'n/a' : refUs.toFixed(1), ratio: refUs === undefined ? 'n/a' : `${(refUs / oursUs).toFixed(2)}x` });
    if (master) {
      const s = await openNxmx(master);
      let i = 0;
      const t = measure(() => decodeImage(readNxmxFrame(s, s.frames[i++ % s.frames.length]!)), reps);
      const refMs = typeof ref?.nxmx_ms === 'number' ? ref.nxmx_ms : undefined;
      rows.push({ metric: 'EIGER NXmx frame read + bitshuffle-LZ4 decode, 514 x 1030 16-bit (ms/frame)', ours: t.medianMs.toFixed(3), reference: refMs === undefined ? 'n/a' : refMs.toFixed(3), ratio: refMs === undefined ? 'n/a' : `${(refMs / t.medianMs).toFixed(2)}x` });
    }
    return { rows, reference: ref ? `h5py ${String(ref.h5py)} (libhdf5, hdf5plugin bitshuffle)` : 'h5py not available' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
