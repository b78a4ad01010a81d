// npm run bench: beamedge against fabio and pyFAI on the same frame, same
// machine, same run, one thread each. Medians over at least 50 repetitions.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { readCbf } from '../../daemon/decode/cbf';
import type { Geometry } from '../../daemon/geometry/geometry';
import { AzimuthalIntegrator, type Splitting } from '../../daemon/integrate/azimuthal';
import { decodeStream2 } from '../../daemon/decode/stream2';
import { native } from '../../daemon/native';
import { SyntheticDetector } from '../../daemon/sim/synthetic';
import { dataDir, dataFile } from '../helpers/data';
import { P2M_PONI, replayBenchmark, stream2Benchmark } from './e2e';
import { livePageBenchmark } from './live';
import { mapsBenchmark } from './maps';
import { hdf5Rows } from './hdf5';
import { peakfinder8Benchmark } from './peakfinder8';
import { dispersionBenchmark } from './spots';
import { correlateBenchmark, correlateKernel } from './correlate';
import { jungfrauRows } from './jungfrau';
import { measure, printTable, type Row, type Timing } from './measure';

const REPS = Math.max(50, Number(process.env.BENCH_REPS ?? 50));
const FILE = 'thau_3_2_0001.cbf';
const geometry: Geometry = { dist: 0.351, poni1: 0.22479712, poni2: 0.21699692, rot1: 0, rot2: 0, rot3: 0, pixel1: 172e-6, pixel2: 172e-6, wavelength: 0.96859e-10 };

// The reference side: Debian's fabio and pyFAI, pinned to one thread (pyFAI's
// Cython CSR kernels use OpenMP otherwise).
const PYTHON_BENCH = String.raw`
import sys, json, time, statistics, io
req = json.load(sys.stdin)
out = {}
try:
    import fabio, numpy
    from fabio.compression import decByteOffset
except Exception as e:
    print(json.dumps({"error": "fabio: %s" % e})); sys.exit(0)
def med(fn, reps):
    for _ in range(3): fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)
path, reps = req["file"], req["reps"]
raw = open(path, "rb").read()
start = raw.index(b"\x0c\x1a\x04\xd5") + 4
img = fabio.open(path)
size = req["binarySize"]
out["fabio_open_ms"] = med(lambda: fabio.open(path).data, reps)
out["fabio_decoder_ms"] = med(lambda: decByteOffset(raw[start:start + size], img.data.size, numpy.int32), reps)
out["fabio_version"] = fabio.version
try:
    import pyFAI
    from pyFAI.azimuthalIntegrator import AzimuthalIntegrator
    from pyFAI.detectors import Detector
    g = req["geometry"]
    data = img.data
    mask = data < 0
    for split in ("no", "bbox"):
        ai = AzimuthalIntegrator(dist=g["dist"], poni1=g["poni1"], poni2=g["poni2"], detector=Detector(g["pixel1"], g["pixel2"], max_shape=data.shape), wavelength=g["wavelength"])
        kw = dict(unit="q_nm^-1", method=(split, "csr", "cython"), mask=mask, polarization_factor=0.99, error_model="poisson")
        t0 = time.perf_counter(); ai.integrate1d_ng(data, 1000, **kw); out["pyfai_setup_%s_ms" % split] = (time.perf_counter() - t0) * 1e3
        out["pyfai_integrate_%s_ms" % split] = med(lambda: ai.integrate1d_ng(data, 1000, **kw), reps)
        out["pyfai_decode_integrate_%s_ms" % split] = med(lambda: ai.integrate1d_ng(fabio.open(path).data, 1000, **kw), reps)
    out["pyfai_version"] = pyFAI.version
except Exception as e:
    out["pyfai_error"] = str(e)
try:
    import bitshuffle, struct
    import cbor2
    msg = cbor2.loads(open(req["stream2"], "rb").read(), tag_hook=lambda d, t: (t.tag, t.value))
    algo, es, data = msg[1]["data"]["threshold_1"][1][1][1][1] if isinstance(msg, tuple) else msg["data"]["threshold_1"][1][1][1][1]
    arr = numpy.frombuffer(data[12:], numpy.uint8)
    block = struct.unpack(">I", data[8:12])[0] // es
    out["bitshuffle_ms"] = med(lambda: bitshuffle.decompress_lz4(arr, (514 * 1030,), numpy.dtype("<u2"), block), reps)
except Exception as e:
    out["bitshuffle_error"] = str(e)
print(json.dumps(out))
`;

interface Reference {
  error?: string;
  pyfai_error?: string;
  fabio_version?: string;
  pyfai_version?: string;
  [k: string]: number | string | undefined;
}

function reference(binarySize: number): Reference | undefined {
  const r = spawnSync('/usr/bin/python3', ['-c', PYTHON_BENCH], {
    input: JSON.stringify({ file: dataFile('cbf', FILE), reps: REPS, binarySize, geometry, stream2: dataFile('stream2', 'r500k_bm_bslz4_16bit', '000001.cbor') }),
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', PYFAI_NO_OPENCL: '1' },
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.error || r.status !== 0) {
    process.stderr.write(`reference benchmark unavailable: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}\n`);
    return undefined;
  }
  return JSON.parse(r.stdout) as Reference;
}

const fmt = (x: number, digits = 2) => x.toFixed(digits);
const refCell = (v: number | undefined, f: (x: number) => string) => (v === undefined ? 'n/a' : f(v));
const num = (ref: Reference | undefined, key: string) => (typeof ref?.[key] === 'number' ? (ref[key] as number) : undefined);

// bitshuffle-LZ4 decoding, one thread: the real EIGER2 16-bit capture, and
// EIGER2 4M-sized synthetic 16- and 32-bit frames compressed by our encoder.
function bslz4Rows(ref: Reference | undefined): Row[] {
  const capture = decodeStream2(readFileSync(dataFile('stream2', 'r500k_bm_bslz4_16bit', '000001.cbor'))).data!.threshold_1!;
  const rows: Row[] = [];
  const cases: [string, Uint8Array, number, number][] = [['real EIGER2 500K capture, 16-bit', capture.bytes, 514 * 1030, 2]];
  const det = new SyntheticDetector({ shape: [2162, 2068] });
  const px = det.pixels(true);
  for (const bits of [16, 32] as const) {
    const arr = bits === 16 ? Uint16Array.from(px, (v) => (v < 0 ? 0xffff : v)) : Uint32Array.from(px, (v) => (v < 0 ? 0xffffffff : v));
    cases.push([`synthetic EIGER2 4M frame, ${bits}-bit`, native.bslz4Encode(arr, bits / 8), px.length, bits / 8]);
  }
  for (const [label, bytes, n, es] of cases) {
    const out = new Uint8Array(n * es);
    const t = measure(() => native.bslz4Decode(bytes, out, es), REPS);
    const refMs = label.startsWith('real') ? num(ref, 'bitshuffle_ms') : undefined;
    rows.push({ metric: `bitshuffle-LZ4 decode, ${label} (Mpixel/s)`, ours: fmt(n / t.medianMs / 1e3, 0), reference: refCell(refMs, (x) => fmt(n / x / 1e3, 0)), ratio: refMs === undefined ? 'n/a' : `${fmt(refMs / t.medianMs, 1)}x` });
  }
  return rows;
}

const E2E_SECONDS = Math.max(20, Number(process.env.BENCH_E2E_SECONDS ?? 20));

async function endToEnd(): Promise<void> {
  process.stdout.write(`\nend to end: beamedge run, replay over TCP on loopback at maximum rate, ${E2E_SECONDS} s per file, 1D integration + veto on...\n`);
  const runs = [
    { file: 'thau_3_2_0001.cbf', label: 'PILATUS3 6M', target: 100, poni: undefined },
    { file: 'example.cbf', label: 'PILATUS 2M', target: 250, poni: P2M_PONI },
  ];
  const rows: Row[] = [];
  for (const r of runs) {
    const res = await replayBenchmark(dataFile('cbf', r.file), { seconds: E2E_SECONDS, label: r.label.replace(/\s/g, ''), ...(r.poni ? { poni: r.poni } : {}) });
    const tag = `${r.label} (${r.file}, ${res.shape})`;
    rows.push(
      { metric: `${tag}: sustained frames/s`, ours: fmt(res.fps, 1), reference: `${r.target} (detector rate)`, ratio: `${fmt(res.fps / r.target, 2)}x` },
      { metric: `${tag}: frames sent / processed / lost`, ours: `${res.sent}/${res.processed}/${res.lost}`, reference: 'zero loss', ratio: res.lost === 0 && res.errors === 0 ? 'ok' : 'LOSS' },
      { metric: `${tag}: latency p50 / p99 (ms)`, ours: `${fmt(res.p50, 1)} / ${fmt(res.p99, 1)}`, reference: '', ratio: '' },
      { metric: `${tag}: daemon peak RSS (MiB)`, ours: fmt(res.peakRssMb, 0), reference: '', ratio: '' },
    );
    process.stdout.write(`  ${tag}: ${fmt(res.fps, 1)} frames/s with ${res.workers} worker thread(s), ${res.sent} sent, ${res.lost} lost\n`);
    // Latency at the detector's own rate, where it is processing time rather than queueing.
    const paced = await replayBenchmark(dataFile('cbf', r.file), { seconds: 10, label: r.label.replace(/\s/g, ''), rateHz: r.target, ...(r.poni ? { poni: r.poni } : {}) });
    rows.push({ metric: `${tag}: at ${r.target} Hz: latency p50 / p99 (ms), lost`, ours: `${fmt(paced.p50, 1)} / ${fmt(paced.p99, 1)}, ${paced.lost}`, reference: '', ratio: '' });
  }
  // Hit finding on: the dispersion spot finder feeds the veto, then 1D integration.
  for (const algorithm of ['dispersion', 'peakfinder8'] as const) {
    const stages = `spots: { algorithm: ${algorithm}, adc_threshold: 50 }\n  veto: { enabled: true, method: spots, min_spots: 10 }`;
    const res = await replayBenchmark(dataFile('cbf', 'thau_3_2_0001.cbf'), { seconds: E2E_SECONDS, label: 'PILATUS3-6M-spots', stages });
    const tag = `PILATUS3 6M, decode + ${algorithm} + spots veto + 1D integration`;
    rows.push(
      { metric: `${tag}: sustained frames/s`, ours: fmt(res.fps, 1), reference: '100 (target)', ratio: `${fmt(res.fps / 100, 2)}x` },
      { metric: `${tag}: frames sent / processed / lost`, ours: `${res.sent}/${res.processed}/${res.lost}`, reference: 'zero loss', ratio: res.lost === 0 && res.errors === 0 ? 'ok' : 'LOSS' },
    );
    process.stdout.write(`  ${tag}: ${fmt(res.fps, 1)} frames/s, ${res.sent} sent, ${res.lost} lost\n`);
  }
  const v2 = await stream2Benchmark({ seconds: E2E_SECONDS, shape: [2162, 2068], bits: 16 });
  const tag = `EIGER2 4M (${v2.shape}), stream v2 over ZeroMQ`;
  rows.push(
    { metric: `${tag}: sustained frames/s`, ours: fmt(v2.fps, 1), reference: '560 (EIGER2 X 4M full rate)', ratio: `${fmt(v2.fps / 560, 2)}x` },
    { metric: `${tag}: frames sent / processed / lost`, ours: `${v2.sent}/${v2.processed}/${v2.lost}`, reference: 'zero loss', ratio: v2.lost === 0 && v2.errors === 0 ? 'ok' : 'LOSS' },
    { metric: `${tag}: latency p50 / p99 (ms)`, ours: `${fmt(v2.p50, 1)} / ${fmt(v2.p99, 1)}`, reference: '', ratio: '' },
    { metric: `${tag}: daemon peak RSS (MiB)`, ours: fmt(v2.peakRssMb, 0), reference: '', ratio: '' },
  );
  process.stdout.write(`  ${tag}: ${fmt(v2.fps, 1)} frames/s, ${v2.sent} sent, ${v2.lost} lost\n`);
  printTable(
    'End to end on this machine (the sender shares its 2 cores). At maximum rate the slots stay full, so latency is mostly queueing: ring slots / rate.',
    rows,
  );
}

function main(): void {
  if (!dataDir) {
    process.stderr.write('npm run bench needs the real detector data: set BEAMEDGE_DATA or put shared/data beside the repository\n');
    process.exitCode = 1;
    return;
  }
  const path = dataFile('cbf', FILE);
  const buf = readFileSync(path);
  const frame = readCbf(buf);
  const npix = frame.pixels.length;
  const mask = Uint8Array.from(frame.pixels, (v) => (v < 0 ? 1 : 0));
  process.stdout.write(
    `beamedge benchmark: ${FILE} (${frame.shape.join(' x ')} = ${(npix / 1e6).toFixed(2)} Mpixel), one thread, median of ${REPS}\n` +
      `${os.cpus()[0]?.model ?? 'cpu'} | node ${process.version} | byte-offset kernel: ${native.kernels.byteOffset}\n`,
  );

  const out = new Int32Array(npix);
  const decode = measure(() => native.cbfDecode(buf, out), REPS);
  const readDecode = measure(() => readCbf(readFileSync(path), { out }), REPS);
  const ours: Record<string, { setupMs: number; integrate: Timing; fused: Timing }> = {};
  for (const split of ['no', 'bbox'] as Splitting[]) {
    const t0 = process.hrtime.bigint();
    const ai = new AzimuthalIntegrator({ geometry, shape: frame.shape, npt: 1000, unit: 'q_nm^-1', split, mask, polarization: 0.99 });
    const setupMs = Number(process.hrtime.bigint() - t0) / 1e6;
    ours[split] = { setupMs, integrate: measure(() => ai.integrate(frame.pixels), REPS), fused: measure(() => ai.integrateCbf(buf), REPS) };
  }

  process.stdout.write('running the fabio / pyFAI reference (one OpenMP thread)...\n');
  const ref = reference(frame.binary.binarySize);
  const mpix = (ms: number) => npix / ms / 1e3;
  const ratio = (refMs: number | undefined, ourMs: number) => (refMs === undefined ? 'n/a' : `${fmt(refMs / ourMs, 1)}x`);

  const rows: Row[] = [
    { metric: 'decode, byte-offset only (Mpixel/s)', ours: fmt(mpix(decode.medianMs), 0), reference: refCell(num(ref, 'fabio_decoder_ms'), (x) => fmt(mpix(x), 0)), ratio: ratio(num(ref, 'fabio_decoder_ms'), decode.medianMs) },
    { metric: 'read + parse + decode file (ms)', ours: fmt(readDecode.medianMs), reference: refCell(num(ref, 'fabio_open_ms'), (x) => fmt(x)), ratio: ratio(num(ref, 'fabio_open_ms'), readDecode.medianMs) },
  ];
  for (const split of ['no', 'bbox'] as const) {
    const o = ours[split]!;
    const refInt = num(ref, `pyfai_integrate_${split}_ms`);
    const refBoth = num(ref, `pyfai_decode_integrate_${split}_ms`);
    rows.push(
      { metric: `1D integration, split=${split} (ms/frame)`, ours: fmt(o.integrate.medianMs), reference: refCell(refInt, (x) => fmt(x, 1)), ratio: ratio(refInt, o.integrate.medianMs) },
      { metric: `decode+integrate, split=${split} (frames/s)`, ours: fmt(1000 / o.fused.medianMs, 1), reference: refCell(refBoth, (x) => fmt(1000 / x, 1)), ratio: ratio(refBoth, o.fused.medianMs) },
      { metric: `decode+integrate, split=${split} (ms/frame)`, ours: fmt(o.fused.medianMs), reference: refCell(refBoth, (x) => fmt(x, 1)), ratio: ratio(refBoth, o.fused.medianMs) },
      { metric: `map set-up, split=${split} (ms, once)`, ours: fmt(o.setupMs, 0), reference: refCell(num(ref, `pyfai_setup_${split}_ms`), (x) => fmt(x, 0)), ratio: ratio(num(ref, `pyfai_setup_${split}_ms`), o.setupMs) },
    );
  }
  rows.push(...bslz4Rows(ref));
  const refNames = ref ? `fabio ${ref.fabio_version ?? '?'}, pyFAI ${ref.pyfai_version ?? ref.pyfai_error ?? '?'}, Debian bitshuffle` : 'not available';
  printTable(`Reference: ${refNames}. Ratio = reference time / beamedge time (higher is better for beamedge).`, rows);
  const jf = jungfrauRows(REPS);
  printTable(`JUNGFRAU, one thread. Reference: the same conversion in ${jf.numpy ?? 'numpy (not available)'}; ratio = numpy time / beamedge time.`, jf.rows);
  const dispersion = dispersionBenchmark(REPS);
  const spotRows: Row[] = [
    ...dispersion.map((r) => ({
      metric: `${String(r.algorithm)}, thau_3_2_0001 (6.2 Mpixel), ms/frame, 1 thread`,
      ours: `${String(r['ms/frame'])} (${String(r.strong)} strong)`,
      reference: r['DIALS ms/frame'] === 'n/a' ? 'DIALS not installed' : `${String(r['DIALS ms/frame'])} (DIALS, ${String(r['DIALS strong'])} strong)`,
      ratio: r['DIALS ms/frame'] === 'n/a' ? '-' : `${(Number(r['DIALS ms/frame']) / Number(r['ms/frame'])).toFixed(2)}x`,
    })),
    ...peakfinder8Benchmark(REPS),
  ];
  printTable('Spot finding, one thread. References: DIALS 3.12 threshold classes (python3-dials), OM peakfinder8.cpp built from source (OM_PEAKFINDER8_SRC).', spotRows);
  const spotMs = [...dispersion.map((r) => Number(r['ms/frame'])), Number.parseFloat(spotRows.at(-1)!.ours)];
  process.stdout.write(`\nspot-finding target <= 10 ms per 6M frame: ${spotMs.map((x) => fmt(x)).join(' / ')} ms (dispersion / extended / peakfinder8): ${spotMs.every((x) => x <= 10) ? 'met' : 'NOT met'}\n`);
  const fxs = correlateBenchmark();
  printTable(`FXS angular cross-correlation, one thread (${correlateKernel()} kernel). Reference: numpy in the same run, OMP_NUM_THREADS=1 (rfft + batched per-harmonic products); ratio = numpy time / beamedge time.`, fxs.rows);
  process.stdout.write(
    `\nFXS target <= 2 ms per frame at 300 q x 256 phi, one thread: ${fmt(fxs.msAt300, 3)} ms wall ${fxs.msAt300 <= 2 ? 'met' : 'NOT met'}, ` +
      `${fmt(fxs.cpuMsAt300, 3)} ms CPU ${fxs.cpuMsAt300 <= 2 ? 'met' : 'NOT met'} (the seed: 10.6 ms per image on a 32-core node)\n`,
  );
  const jfMpix = (2048 * 2048) / jf.convertMs / 1e3;
  process.stdout.write(
    `\nJUNGFRAU targets: conversion >= 2000 Mpixel/s: ${fmt(jfMpix, 0)} ${jfMpix >= 2000 ? 'met' : 'NOT met'}; ` +
      `conversion + veto + 1D integration <= 5 ms: ${fmt(jf.pipelineMs)} ms in two passes, ${fmt(jf.fusedMs)} ms fused, ${Math.min(jf.pipelineMs, jf.fusedMs) <= 5 ? 'met' : 'NOT met'}\n`,
  );
  const d = mpix(decode.medianMs);
  const f = ours.no!.fused.medianMs;
  process.stdout.write(
    `\ntargets: decode >= 2000 Mpixel/s: ${fmt(d, 0)} ${d >= 2000 ? 'met' : 'NOT met'}; ` +
      `decode+integrate (no splitting) <= 10 ms: ${fmt(f)} ms ${f <= 10 ? 'met' : 'NOT met'}\n`,
  );
}

main();
if (dataDir)
  (async () => {
    try {
      const h5 = await hdf5Rows(REPS);
      printTable(`HDF5, one thread. Reference: ${h5.reference}, same work in the same run; ratio = reference time / beamedge time.`, h5.rows);
    } catch (e) {
      process.stderr.write(`HDF5 benchmark failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    }
    if (!process.env.BENCH_SKIP_MAPS) await mapsBenchmark();
    if (!process.env.BENCH_SKIP_E2E) {
      await endToEnd();
      await livePageBenchmark();
    }
  })().catch((e: unknown) => {
    process.stderr.write(`benchmark failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
