// JUNGFRAU 4M rows for npm run bench: the real module's frames, pedestals and
// gains tiled into 8 modules (2 x 4, 2048 x 2048, no gaps), converted on one
// thread; then conversion + lit count + 1D integration of the float output,
// as two passes and fused (integrateJungfrau), with and without tracking.
// Reference: the same conversion in numpy, run here through /usr/bin/python3.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { JungfrauConverter } from '../../daemon/calibrate/jungfrau';
import { excludeBitsPerGain } from '../../daemon/calibrate/mask-bits';
import { AzimuthalIntegrator } from '../../daemon/integrate/azimuthal';
import { native } from '../../daemon/native';
import { dataFile } from '../helpers/data';
import { measure, type Row } from './measure';

const MOD_ROWS = 512;
const MOD_COLS = 1024;
const MOD = MOD_ROWS * MOD_COLS;
const SHAPE: [number, number] = [2048, 2048];
const NPIX = SHAPE[0] * SHAPE[1];
const E = 12.398;

function read<T>(name: string, Ctor: { new (b: ArrayBuffer): T }): T {
  const b = readFileSync(dataFile('jungfrau', name));
  return new Ctor(b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer);
}

// Module m at row block m >> 1, column block m & 1.
function tile<T extends Float32Array | Float64Array | Uint16Array>(src: (m: number) => T, out: T): T {
  for (let m = 0; m < 8; m++) {
    const s = src(m);
    const r0 = (m >> 1) * MOD_ROWS;
    const c0 = (m & 1) * MOD_COLS;
    for (let r = 0; r < MOD_ROWS; r++) out.set(s.subarray(r * MOD_COLS, (r + 1) * MOD_COLS), (r0 + r) * SHAPE[1] + c0);
  }
  return out;
}

const NUMPY_BENCH = String.raw`
import sys, json, time, statistics
import numpy as np
req = json.load(sys.stdin)
d, reps, n = req["dir"], req["reps"], req["npix"]
mod = 512 * 1024
def rd(f, t): return np.fromfile(d + "/" + f, t)
# Same tiling as the TS side does not matter for the timing: 8 copies, one module after the other.
raw = np.concatenate([rd("mod5_raw%d.bin" % (m % 5), np.uint16) for m in range(8)])
ped = np.concatenate([np.tile(rd("mod5_pedeG%d.bin" % g, np.float32), 8) for g in range(3)])
gain = rd("mod5_gain_f64.bin", np.float64).reshape(3, mod)
fac = np.concatenate([np.tile((1.0 / (gain[g] * req["energy"])).astype(np.float32), 8) for g in range(3)])
pix = np.arange(n, dtype=np.int64)
def convert():
    code = raw >> 14
    g = np.where(code == 3, 2, code).astype(np.int64)
    special = (code == 2) | (raw == 0xFFFF) | (raw == 0xC000)
    idx = np.minimum(g, 2) * n + pix
    out = ((raw & 0x3FFF).astype(np.float32) - ped[idx]) * fac[idx]
    out[special] = np.nan
    return out
def med(fn):
    for _ in range(2): fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)
print(json.dumps({"numpy_convert_ms": med(convert), "numpy_version": np.__version__}))
`;

function numpyReference(reps: number): { ms: number; version: string } | undefined {
  const r = spawnSync('/usr/bin/python3', ['-c', NUMPY_BENCH], {
    input: JSON.stringify({ dir: dataFile('jungfrau'), reps, npix: NPIX, energy: E }),
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
  });
  if (r.error || r.status !== 0) {
    process.stderr.write(`numpy reference unavailable: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}\n`);
    return undefined;
  }
  const o = JSON.parse(r.stdout) as { numpy_convert_ms: number; numpy_version: string };
  return { ms: o.numpy_convert_ms, version: o.numpy_version };
}

export interface JungfrauBench {
  rows: Row[];
  convertMs: number;
  pipelineMs: number;
  /** The same work fused (integrateJungfrau), median ms. */
  fusedMs: number;
  numpy?: string;
}

export function jungfrauRows(reps: number): JungfrauBench {
  const raws = [0, 1, 2, 3, 4].map((k) => read(`mod5_raw${k}.bin`, Uint16Array));
  const peds = [0, 1, 2].map((g) => read(`mod5_pedeG${g}.bin`, Float32Array));
  const gain1 = read('mod5_gain_f64.bin', Float64Array);
  const raw = tile((m) => raws[m % 5]!, new Uint16Array(NPIX));
  const pedestal = new Float32Array(3 * NPIX);
  const gain = new Float64Array(3 * NPIX);
  for (let g = 0; g < 3; g++) {
    tile(() => peds[g]!, pedestal.subarray(g * NPIX, (g + 1) * NPIX));
    tile(() => gain1.subarray(g * MOD, (g + 1) * MOD), gain.subarray(g * NPIX, (g + 1) * NPIX));
  }
  const factor = JungfrauConverter.factorsFromGain(gain, E);
  // A realistic mask: a few scattered bad pixels, per-gain bits included.
  const mask = new Uint32Array(NPIX);
  for (let i = 0; i < NPIX; i += 1009) mask[i] = 1 << (i % 2 ? 1 : 9);
  const noMask = new JungfrauConverter({ pedestal, factor });
  const withMask = new JungfrauConverter({ pedestal, factor, mask });
  const folded = new JungfrauConverter({ pedestal, factor: JungfrauConverter.foldMask(factor.slice(), mask, excludeBitsPerGain()) });
  const out = new Float32Array(NPIX);
  const mpix = (ms: number) => NPIX / ms / 1e3;
  const t = {
    plain: measure(() => noMask.convert(raw, out), reps),
    scalar: measure(() => noMask.convert(raw, out, { kernel: 'scalar' }), reps),
    mask: measure(() => withMask.convert(raw, out), reps),
    folded: measure(() => folded.convert(raw, out), reps),
    lit: measure(() => folded.convert(raw, out, { litThreshold: 0.5 }), reps),
  };
  const geometry = { dist: 0.1, poni1: (SHAPE[0] / 2) * 75e-6, poni2: (SHAPE[1] / 2) * 75e-6, rot1: 0, rot2: 0, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10 };
  const ai = new AzimuthalIntegrator({ geometry, shape: SHAPE, npt: 1000, unit: 'q_nm^-1' });
  folded.convert(raw, out);
  const integrate = measure(() => ai.integrate(out, { negativeValid: true }), reps);
  const pipeline = measure(() => {
    const c = folded.convert(raw, out, { litThreshold: 0.5 });
    ai.integrate(out, { negativeValid: true });
    return c.lit;
  }, reps);
  // The same work fused: each tile of 128 Ki pixels converted into a buffer in
  // L2 and integrated from there (Integrator.integrateJungfrau); the veto
  // counts both lits (mapped pixels for the veto, every pixel for the counts).
  const fused = measure(() => ai.integrateJungfrau(raw, folded, { litThreshold: 0.5 }).lit, reps);
  const fusedOut = measure(() => ai.integrateJungfrau(raw, folded, { litThreshold: 0.5, out }).lit, reps);
  // G0 pedestal tracking in the conversion pass (as the daemon runs it with tracking on).
  const rms = tile(() => read('mod5_pedeG0_RMS.bin', Float32Array), new Float32Array(NPIX));
  const track = { pedestal: pedestal.slice(0, NPIX), rms };
  const trackedSeparate = measure(() => {
    const c = folded.convert(raw, out, { litThreshold: 0.5, track });
    ai.integrate(out, { negativeValid: true });
    return c.lit;
  }, reps);
  const trackedFused = measure(() => ai.integrateJungfrau(raw, folded, { litThreshold: 0.5, track }).lit, reps);
  const trackedFusedOut = measure(() => ai.integrateJungfrau(raw, folded, { litThreshold: 0.5, track, out }).lit, reps);
  const ref = numpyReference(Math.max(10, Math.floor(reps / 5)));
  const fmt = (x: number, d = 2) => x.toFixed(d);
  const refCell = () => (ref ? fmt(mpix(ref.ms), 0) : 'n/a');
  const ratio = (ms: number) => (ref ? `${fmt(ref.ms / ms, 1)}x` : 'n/a');
  const tag = `JUNGFRAU 4M (8 x 512 x 1024, real module tiled)`;
  const rows: Row[] = [
    { metric: `${tag}: conversion, ${native.kernels.jungfrau}, no mask (Mpixel/s)`, ours: fmt(mpix(t.plain.medianMs), 0), reference: refCell(), ratio: ratio(t.plain.medianMs) },
    { metric: `${tag}: conversion, no mask (ms/frame)`, ours: fmt(t.plain.medianMs), reference: ref ? fmt(ref.ms, 1) : 'n/a', ratio: ratio(t.plain.medianMs) },
    { metric: `${tag}: conversion, scalar kernel (Mpixel/s)`, ours: fmt(mpix(t.scalar.medianMs), 0), reference: refCell(), ratio: ratio(t.scalar.medianMs) },
    { metric: `${tag}: conversion, uint32 mask read per frame (Mpixel/s)`, ours: fmt(mpix(t.mask.medianMs), 0), reference: '', ratio: '' },
    { metric: `${tag}: conversion, mask folded into factors (Mpixel/s)`, ours: fmt(mpix(t.folded.medianMs), 0), reference: '', ratio: '' },
    { metric: `${tag}: conversion + lit count (ms/frame)`, ours: fmt(t.lit.medianMs), reference: '', ratio: '' },
    { metric: `${tag}: 1D integration of the float output, npt 1000 (ms/frame)`, ours: fmt(integrate.medianMs), reference: '', ratio: '' },
    { metric: `${tag}: conversion + lit count + 1D integration (ms/frame)`, ours: fmt(pipeline.medianMs), reference: '', ratio: '' },
    { metric: `${tag}: fused convert+veto+integrate, npt 1000 (ms/frame)`, ours: fmt(fused.medianMs), reference: '', ratio: '' },
    { metric: `${tag}: fused convert+veto+integrate, npt 1000 (Mpixel/s)`, ours: fmt(mpix(fused.medianMs), 0), reference: '', ratio: '' },
    { metric: `${tag}: fused convert+veto+integrate, converted frame also written out (ms/frame)`, ours: fmt(fusedOut.medianMs), reference: '', ratio: '' },
    { metric: `${tag}: conversion + lit count + 1D integration, G0 pedestal tracking (ms/frame)`, ours: fmt(trackedSeparate.medianMs), reference: '', ratio: '' },
    { metric: `${tag}: fused convert+veto+integrate, G0 pedestal tracking (ms/frame)`, ours: fmt(trackedFused.medianMs), reference: '', ratio: '' },
    { metric: `${tag}: fused, G0 pedestal tracking, frame written out (ms/frame)`, ours: fmt(trackedFusedOut.medianMs), reference: '', ratio: '' },
    { metric: `${tag}: cores for 2 kHz (conversion + veto + 1D)`, ours: fmt((2000 * Math.min(pipeline.medianMs, fused.medianMs)) / 1000, 1), reference: '', ratio: '' },
  ];
  return { rows, convertMs: t.plain.medianMs, pipelineMs: pipeline.medianMs, fusedMs: fused.medianMs, ...(ref ? { numpy: `numpy ${ref.version}` } : {}) };
}
