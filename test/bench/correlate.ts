// FXS accumulation cost per frame, one thread: beamedge's native correlator
// (FFT along phi, batched Hermitian products, mask counted) against numpy
// doing the same in the same run (rfft, batched per-harmonic products for N
// and for M, OMP/OpenBLAS pinned to one thread), at the seed's 300 q x 256 phi
// and at 64 x 180. Also the accumulator's memory. Wall time and the thread's
// CPU time both: on a shared machine the first includes time spent waiting
// for a core, the second is what a frame costs.
import { spawnSync } from 'node:child_process';
import { CorrelationAccumulator, BATCH } from '../../daemon/correlate/accumulator';
import { native } from '../../daemon/native';
import type { Row } from './measure';

const NUMPY_BENCH = String.raw`
import sys, json, time, statistics
import numpy as np
nq, nphi, batch, reps = (int(x) for x in sys.argv[1:5])
rng = np.random.default_rng(1)
P = rng.random((batch, nq, nphi)) * 100 + 50
m = np.ones((batch, nq, nphi))
h = nphi // 2 + 1
S = np.zeros((h, nq, nq), np.complex128)
M = np.zeros((h, nq, nq), np.complex128)
def one_batch():
    global S, M
    mean = (P * m).sum(-1, keepdims=True) / np.maximum(m.sum(-1, keepdims=True), 1)
    d = (P - mean) * m
    # [h][B][q], contiguous: BLAS then does each harmonic's product (a strided view is 8x slower)
    A = np.ascontiguousarray(np.fft.rfft(d, axis=-1).transpose(2, 0, 1))
    W = np.ascontiguousarray(np.fft.rfft(m, axis=-1).transpose(2, 0, 1))
    S += np.conj(A).transpose(0, 2, 1) @ A
    M += np.conj(W).transpose(0, 2, 1) @ W
one_batch()
ts, cs = [], []
for _ in range(reps):
    t0, c0 = time.perf_counter(), time.thread_time()
    one_batch()
    ts.append((time.perf_counter() - t0) * 1e3 / batch); cs.append((time.thread_time() - c0) * 1e3 / batch)
print(json.dumps({"ms_per_frame": statistics.median(ts), "cpu_ms_per_frame": statistics.median(cs), "bytes": S.nbytes + M.nbytes, "numpy": np.__version__}))
`;

interface NumpyResult {
  ms_per_frame: number;
  /** CPU time of the thread: what the frame costs, whatever else the machine runs. */
  cpu_ms_per_frame: number;
  bytes: number;
  numpy: string;
}

function numpy(nq: number, nphi: number, reps: number): NumpyResult | string {
  const r = spawnSync('/usr/bin/python3', ['-c', NUMPY_BENCH, String(nq), String(nphi), String(BATCH), String(reps)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
    timeout: 600_000,
  });
  if (r.status !== 0) return /No module named .numpy/.test(r.stderr) ? 'numpy not installed' : `numpy failed: ${r.stderr.trim().split('\n').at(-1)}`;
  return JSON.parse(r.stdout) as NumpyResult;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Per-frame accumulation time: runs of `frames` frames (whole batches), median over runs. */
function ours(nq: number, nphi: number, runs: number, frames: number): { ms: number; cpuMs: number; bytes: number } {
  let seed = 7;
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
  const images = Array.from({ length: 4 }, () => Float64Array.from({ length: nq * nphi }, () => 50 + 100 * rand()));
  const count = new Float64Array(nq * nphi).fill(1);
  const acc = new CorrelationAccumulator(nq, nphi, 'q_nm^-1', new Float64Array(nq));
  for (let i = 0; i < BATCH; i++) acc.add(images[i % 4]!, count);
  const ts: number[] = [];
  const cs: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    for (let i = 0; i < frames; i++) acc.add(images[i % 4]!, count);
    const c = process.cpuUsage(c0);
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6 / frames);
    cs.push((c.user + c.system) / 1e3 / frames);
  }
  return { ms: median(ts), cpuMs: median(cs), bytes: acc.memoryBytes };
}

const fmt = (x: number, d = 2) => x.toFixed(d);

export function correlateBenchmark(): { rows: Row[]; msAt300: number; cpuMsAt300: number } {
  const rows: Row[] = [];
  let msAt300 = NaN;
  let cpuMsAt300 = NaN;
  for (const [nq, nphi, runs, npReps] of [
    [300, 256, 7, 3],
    [64, 180, 9, 9],
  ] as const) {
    const o = ours(nq, nphi, runs, 4 * BATCH);
    const ref = numpy(nq, nphi, npReps);
    const refOk = typeof ref !== 'string';
    if (nq === 300) [msAt300, cpuMsAt300] = [o.ms, o.cpuMs];
    rows.push(
      {
        metric: `FXS accumulate C2, ${nq} q x ${nphi} phi (ms/frame)`,
        ours: fmt(o.ms, 3),
        reference: refOk ? `${fmt(ref.ms_per_frame, 2)} (numpy ${ref.numpy}, batched N and M)` : ref,
        ratio: refOk ? `${fmt(ref.ms_per_frame / o.ms, 1)}x` : '-',
      },
      {
        metric: `FXS accumulate C2, ${nq} q x ${nphi} phi (CPU ms/frame)`,
        ours: fmt(o.cpuMs, 3),
        reference: refOk ? `${fmt(ref.cpu_ms_per_frame, 2)} (numpy)` : '-',
        ratio: refOk ? `${fmt(ref.cpu_ms_per_frame / o.cpuMs, 1)}x` : '-',
      },
      {
        metric: `FXS accumulator memory, ${nq} x ${nphi} (MiB, per series per worker)`,
        ours: fmt(o.bytes / 2 ** 20, 1),
        reference: refOk ? `${fmt(ref.bytes / 2 ** 20, 1)} (numpy S and M)` : '-',
        ratio: refOk ? `${fmt(ref.bytes / o.bytes, 1)}x` : '-',
      },
    );
  }
  return { rows, msAt300, cpuMsAt300 };
}

export const correlateKernel = (): string => native.kernels.correlate;
