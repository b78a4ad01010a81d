// beamedge simulate --to HOST:PORT: synthetic PILATUS-like frames over TCP.
import { loadCalibrationSet } from '../calibrate/calibration-set';
import { encodeJungfrau } from '../sim/jungfrau-encoder';
import { FrameSender, Pacer } from '../sim/sender';
import { framePool, SyntheticDetector } from '../sim/synthetic';
import { targetOf, TO_OPTION, UsageError } from './args';
import type { Options } from './args';
import type { Command, Io } from './command';
import { simulateStream1, simulateStream2 } from '../sim/stream2-simulator';

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'send synthetic frames (rings, Bragg spots, Poisson noise) to a beamedge TCP ingest',
  usage: 'beamedge simulate (--to HOST:PORT [--jungfrau DIR [--energy-kev E]] | --zmq-v2 BIND | --zmq-v1 BIND) [--rate HZ] [--frames N] [--hit-fraction F] [--shape ROWSxCOLS] [--bits 16|32] [--series ID]',
  options: {
    to: TO_OPTION,
    'zmq-v2': { kind: 'string', arg: 'BIND', help: 'act as a DECTRIS DCU: PUSH stream v2 (bitshuffle-LZ4) on this endpoint, e.g. tcp://*:31001' },
    'zmq-v1': { kind: 'string', arg: 'BIND', help: 'act as a DECTRIS DCU on stream v1 (JSON multipart, bs16/32-lz4<), e.g. tcp://*:9999' },
    bits: { kind: 'number', arg: '16|32', integer: true, min: 16, max: 32, help: 'with --zmq-v2/v1: pixel depth (default 16)' },
    'wait-ms': { kind: 'number', arg: 'MS', min: 0, help: 'with --zmq-v2/v1: wait this long for consumers to connect (default 500)' },
    consumers: { kind: 'number', arg: 'N', integer: true, min: 1, help: 'with --zmq-v2/v1: wait (up to 10 s) for N consumers before the start message' },
    rate: { kind: 'number', arg: 'HZ', min: 0, help: 'frames per second (default 10; 0: as fast as accepted)' },
    frames: { kind: 'number', arg: 'N', integer: true, min: 1, help: 'frames to send (default 100)' },
    'hit-fraction': { kind: 'number', arg: 'F', min: 0, help: 'fraction of frames with Bragg spots (default 0.3)' },
    shape: { kind: 'string', arg: 'ROWSxCOLS', help: 'detector shape (default 1043x981, PILATUS 1M)' },
    series: { kind: 'string', arg: 'ID', help: 'series id (default "sim")' },
    jungfrau: { kind: 'string', arg: 'DIR', help: "with --to: send raw JUNGFRAU gain-switching words made from the synthetic photon images with this calibration set's pedestals and gains (shape: the set's)" },
    'energy-kev': { kind: 'number', arg: 'E', min: 0.1, help: "with --jungfrau: photon energy (default: the set's)" },
  },
  async run(opts, io) {
    const hitFraction = opts.number('hit-fraction') ?? 0.3;
    if (hitFraction > 1) throw new UsageError('--hit-fraction must be within [0, 1]');
    const shapeText = opts.string('shape');
    const m = shapeText ? /^(\d+)x(\d+)$/.exec(shapeText) : null;
    if (shapeText && !m) throw new UsageError(`--shape: '${shapeText}' is not ROWSxCOLS`);
    if ([opts.has('to'), opts.has('zmq-v2'), opts.has('zmq-v1')].filter(Boolean).length > 1) throw new UsageError('give one of --to, --zmq-v2 and --zmq-v1');
    if (opts.has('zmq-v2') || opts.has('zmq-v1')) {
      const v1 = opts.has('zmq-v1');
      const bits = opts.number('bits') ?? 16;
      if (bits !== 16 && bits !== 32) throw new UsageError('--bits must be 16 or 32');
      const r = await (v1 ? simulateStream1 : simulateStream2)({
        bind: opts.string(v1 ? 'zmq-v1' : 'zmq-v2')!,
        shape: m ? [Number(m[1]), Number(m[2])] : [2162, 2068],
        bits,
        frames: opts.number('frames') ?? 100,
        rateHz: opts.number('rate') ?? 10,
        hitFraction,
        waitMs: opts.number('wait-ms') ?? 500,
        ...(opts.has('consumers') ? { consumers: opts.number('consumers')! } : {}),
      });
      io.out(`pushed ${r.frames} synthetic ${r.shape.join(' x ')} ${bits}-bit frames (bitshuffle-LZ4, stream ${v1 ? 'v1' : 'v2'}) in ${r.seconds.toFixed(2)} s\n`);
      return 0;
    }
    const target = targetOf(opts);
    if (opts.has('jungfrau')) return simulateJungfrau(opts.string('jungfrau')!, opts.number('energy-kev'), target, opts, hitFraction, io);
    const det = new SyntheticDetector(m ? { shape: [Number(m[1]), Number(m[2])] } : {});
    const pool = framePool(det, 20, hitFraction);
    const sender = await FrameSender.connect(target.host, target.port);
    const pacer = new Pacer(opts.number('rate') ?? 10);
    const n = opts.number('frames') ?? 100;
    const series = opts.string('series') ?? 'sim';
    for (let i = 0; i < n; i++) {
      const f = pool[i % pool.length]!;
      await sender.send({ series, frame: i, encoding: 'cbf', meta: { synthetic: true, hit: f.hit } }, f.cbf);
      await pacer.next();
    }
    await sender.close();
    io.out(`sent ${n} synthetic frames (${det.shape.join(' x ')}, ${Math.round(hitFraction * 100)}% hits) to ${target.host}:${target.port}\n`);
    return 0;
  },
};

async function simulateJungfrau(dir: string, energyOpt: number | undefined, target: { host: string; port: number }, opts: Options, hitFraction: number, io: Io): Promise<number> {
  const set = loadCalibrationSet(dir, false);
  if (set.json.detector !== 'jungfrau') throw new UsageError(`--jungfrau: ${dir} is a ${set.json.detector} set, not a jungfrau one`);
  const energy = energyOpt ?? set.json.energy_kev;
  if (!energy) throw new UsageError(`--jungfrau: ${dir} records no photon energy; give --energy-kev`);
  const shape = set.json.shape;
  const det = new SyntheticDetector({ shape });
  const frames = Array.from({ length: 10 }, (_, i) => {
    const hit = i < Math.round(10 * hitFraction);
    return { hit, words: encodeJungfrau(det.pixels(hit), { pedestal: set.arrays.pedestal!, gain: set.arrays.gain! }, energy) };
  });
  const sender = await FrameSender.connect(target.host, target.port);
  const pacer = new Pacer(opts.number('rate') ?? 10);
  const n = opts.number('frames') ?? 100;
  const series = opts.string('series') ?? 'sim';
  for (let i = 0; i < n; i++) {
    const f = frames[i % frames.length]!;
    const bytes = new Uint8Array(f.words.buffer, f.words.byteOffset, f.words.byteLength);
    await sender.send({ series, frame: i, encoding: 'raw', dtype: 'uint16', shape, detector: 'jungfrau', meta: { synthetic: true, hit: f.hit, energy_kev: energy } }, bytes);
    await pacer.next();
  }
  await sender.close();
  io.out(`sent ${n} synthetic JUNGFRAU frames (${shape.join(' x ')}, ${energy} keV, calibration ${set.id.slice(0, 12)}) to ${target.host}:${target.port}\n`);
  return 0;
}
