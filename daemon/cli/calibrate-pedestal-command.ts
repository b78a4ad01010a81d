// beamedge calibrate pedestal: a calibration set from JUNGFRAU dark runs.
// PSI takes three: G0 in dynamic gain, then forced G1 and forced G2. They
// are given together (--g0, --g1, --g2: each run's files) and make one set;
// a lone run (FILES, or --listen) takes the gains it lacks from an earlier
// set (--pedestal-from).
import { loadCalibrationSet, writeCalibrationSet, type CalibrationSet } from '../calibrate/calibration-set';
import { defaultGain, flagBadGains, maskCounts, readGainFile } from '../calibrate/constants-files';
import { NO_PEDESTAL, PEDESTAL_RMS } from '../calibrate/mask-bits';
import { DarkResult, DarkRun, DEFAULT_MAX_RMS, DEFAULT_MAX_WRONG_GAIN, DEFAULT_MIN_FRAMES, type DarkLimits } from '../calibrate/dark-run';
import { receiveFrames } from '../calibrate/listen-frames';
import { inspectFrameFile, readFrames, type FrameFile, type Shape } from '../calibrate/raw-frames';
import { UsageError, type Options } from './args';
import { checkOut, formatMask, formatMeans, GAIN_FILE_HELP, meansPerGain, MODULE_SHAPE, parseShape, SET_OPTIONS, tool } from './calibrate-common';
import type { Command, Io } from './command';
import { Progress } from './progress';

const TOOL = 'beamedge calibrate pedestal';
/** Bits a dark run decides; --pedestal-from carries the others over (user mask, gains the runs lack). */
const PER_GAIN_BITS = (g: number) => NO_PEDESTAL[g]! | PEDESTAL_RMS[g]!;

interface Run {
  label: string;
  /** The gain stage the run must be in (--gN), or null (FILES: whatever the data say). */
  gain: number | null;
  files: FrameFile[];
}

function limitsOf(opts: Options): DarkLimits {
  const text = opts.string('max-rms');
  let maxRms = DEFAULT_MAX_RMS;
  if (text !== undefined) {
    const v = text.split(',').map(Number);
    if (!(v.length === 1 || v.length === 3) || !v.every((x) => x > 0)) throw new UsageError(`--max-rms: '${text}' is not X or X,Y,Z (ADU, positive)`);
    maxRms = (v.length === 1 ? [v[0]!, v[0]!, v[0]!] : v) as [number, number, number];
  }
  return { minFrames: opts.number('min-frames'), maxRms, maxWrongGain: opts.number('max-wrong-gain') ?? DEFAULT_MAX_WRONG_GAIN };
}

function runsOf(opts: Options, shape: Shape): Run[] {
  const runs: Run[] = [];
  const add = (label: string, gain: number | null, paths: string[] | undefined) => {
    if (paths?.length) runs.push({ label, gain, files: paths.map((p) => inspectFrameFile(p, shape)) });
  };
  add('dark run', null, opts.positional);
  for (const g of [0, 1, 2]) add(`G${g} dark run`, g, opts.list(`g${g}`));
  return runs;
}

function listenOf(opts: Options): { host: string; port: number; frames: number } | undefined {
  const listen = opts.string('listen');
  if (listen === undefined) {
    if (opts.has('frames')) throw new UsageError('--frames goes with --listen');
    return undefined;
  }
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`--listen: '${listen}' is not HOST:PORT`);
  const frames = opts.number('frames');
  if (frames === undefined) throw new UsageError('--listen needs --frames N');
  return { host: m[1] || '127.0.0.1', port: Number(m[2]), frames };
}

function fromEarlierSet(base: CalibrationSet, result: DarkResult, io: Io): void {
  const n = result.pixels;
  const { pedestal, pedestal_rms: rms, mask } = base.arrays;
  for (let g = 0; g < 3; g++) {
    if (result.source[g] !== null) continue;
    result.pedestal.set(pedestal!.subarray(g * n, (g + 1) * n), g * n);
    result.rms.set(rms!.subarray(g * n, (g + 1) * n), g * n);
    for (let i = 0; i < n; i++) result.mask[i] = (result.mask[i]! | (mask![i]! & PER_GAIN_BITS(g))) >>> 0;
    result.source[g] = `set ${base.id.slice(0, 12)}`;
  }
  // The earlier set's own pixel mask (gaps, user...) still holds; its
  // wrong_gain and bad_gain bits are decided afresh here.
  const keep = 0x1ff;
  for (let i = 0; i < n; i++) result.mask[i] = (result.mask[i]! | (mask![i]! & keep)) >>> 0;
  io.out(`pedestal-from: ${base.dir} (set ${base.id.slice(0, 12)})\n`);
}

export const calibratePedestalCommand: Command = {
  name: 'pedestal',
  summary: 'pedestals, rms and a mask from JUNGFRAU dark runs',
  usage:
    'beamedge calibrate pedestal (FILES... | --g0 FILES... [--g1 FILES...] [--g2 FILES...] | --listen HOST:PORT --frames N) --out DIR [options]',
  options: {
    ...SET_OPTIONS,
    g0: { kind: 'list', arg: 'FILES...', help: 'the G0 dark run (dynamic gain)' },
    g1: { kind: 'list', arg: 'FILES...', help: 'the forced-G1 dark run' },
    g2: { kind: 'list', arg: 'FILES...', help: 'the forced-G2 dark run' },
    listen: { kind: 'string', arg: 'HOST:PORT', help: 'receive one dark run over beamedge TCP framing (port 0: any free port)' },
    frames: { kind: 'number', integer: true, min: 1, arg: 'N', help: 'frames to receive with --listen' },
    shape: { kind: 'string', arg: 'RxC', help: 'frame shape of .bin files (default 512x1024, one module)' },
    'pedestal-from': { kind: 'string', arg: 'DIR', help: 'take the gains the runs lack (and the pixel mask) from this set' },
    'gain-file': { kind: 'string', arg: 'F', help: GAIN_FILE_HELP },
    'min-frames': { kind: 'number', integer: true, min: 1, arg: 'K', help: `frames a pixel needs in a gain its run exercised (default ${DEFAULT_MIN_FRAMES}, or half a shorter run)` },
    'max-rms': { kind: 'string', arg: 'X[,Y,Z]', help: `largest pedestal rms, ADU, for all gains or G0,G1,G2 (default ${DEFAULT_MAX_RMS.join(',')})` },
    'max-wrong-gain': { kind: 'number', min: 0, max: 1, arg: 'F', help: `largest share of a run's frames out of its gain (default ${DEFAULT_MAX_WRONG_GAIN})` },
  },
  async run(opts, io) {
    const out = checkOut(opts.string('out'));
    const limits = limitsOf(opts);
    const listen = listenOf(opts);
    const firstNpy = [...opts.positional, ...['g0', 'g1', 'g2'].flatMap((g) => opts.list(g) ?? [])].find((p) => /\.npy$/i.test(p));
    const shapeText = opts.string('shape');
    const shape: Shape = shapeText ? parseShape(shapeText) : firstNpy ? inspectFrameFile(firstNpy, undefined).shape : MODULE_SHAPE;
    const runs = runsOf(opts, shape);
    if (listen && runs.length) throw new UsageError('--listen takes one run over the network: give no files with it');
    if (!listen && !runs.length) throw new UsageError('no dark run: give FILES, --g0/--g1/--g2 FILES, or --listen');
    if (opts.positional.length && runs.length > 1) throw new UsageError('give the runs as --g0/--g1/--g2, or one run as FILES, not both');
    const pixels = shape[0] * shape[1];
    // Everything that can be refused is read before the first frame.
    const fromDir = opts.string('pedestal-from');
    const base = fromDir ? loadCalibrationSet(fromDir, false) : undefined;
    if (base && base.json.shape.join('x') !== shape.join('x')) throw new Error(`--pedestal-from: ${fromDir} is ${base.json.shape.join('x')}, the dark runs ${shape.join('x')}`);
    const gainFile = opts.string('gain-file');
    const gainRead = gainFile ? readGainFile(gainFile, shape) : undefined;

    const result = new DarkResult(pixels);
    const dark = new DarkRun(pixels);
    const inputs: { role: string; path: string; sha256?: string }[] = [];
    const frame = new Uint16Array(pixels);
    const total = listen ? listen.frames : runs.reduce((a, r) => a + r.files.reduce((b, f) => b + f.frames, 0), 0);
    const progress = new Progress('dark run', total);
    const t0 = process.hrtime.bigint();
    const add = (f: Uint16Array) => {
      dark.add(f);
      progress.advance();
    };
    for (const run of runs) {
      for (const f of run.files) inputs.push({ role: run.gain === null ? 'dark' : `dark_g${run.gain}`, path: f.path, sha256: readFrames(f, frame, add) });
      const s = dark.finish(run.label, limits, result);
      if (run.gain !== null && s.dominantGain !== run.gain)
        throw new Error(`${run.label}: most pixel-frames are in G${s.dominantGain}, not G${run.gain}: check the detector's gain mode for this run`);
    }
    if (listen) {
      const address = await receiveFrames({ ...listen, shape, each: add, onListening: (port) => io.out(`listening on ${listen.host}:${port} for ${listen.frames} frames\n`) });
      dark.finish(`dark run from ${address}`, limits, result);
      inputs.push({ role: 'dark', path: `tcp://${address}` });
    }
    progress.finish();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

    if (base) fromEarlierSet(base, result, io);
    const missing = [0, 1, 2].filter((g) => result.source[g] === null);
    for (const g of missing) for (let i = 0; i < pixels; i++) result.mask[i] = (result.mask[i]! | NO_PEDESTAL[g]!) >>> 0;
    const gain = gainRead?.data ?? (base ? new Float64Array(base.arrays.gain!) : defaultGain(pixels));
    const gainSource = gainFile ? `gain file ${gainFile}` : base ? `set ${base.id.slice(0, 12)}` : 'defaults 41, -1.439, -0.1145 ADU/keV (no --gain-file)';
    flagBadGains(gain, result.mask);
    if (gainFile) inputs.push({ role: 'gain', path: gainFile, sha256: gainRead!.sha256 });
    if (base) inputs.push({ role: 'pedestal-from', path: base.dir, sha256: base.id });

    const masked = maskCounts(result.mask);
    const summary = {
      runs: result.runs,
      frames: result.runs.reduce((a, r) => a + r.frames, 0),
      pedestal_source: result.source.map((s) => s ?? 'none: masked no_pedestal'),
      gain_source: gainSource,
      masked_pixels: masked,
      limits: { min_frames: result.runs.map((r) => r.minFrames), max_rms: limits.maxRms, max_wrong_gain: limits.maxWrongGain },
    };
    const set = writeCalibrationSet(
      out,
      { detector: 'jungfrau', shape, energy_kev: opts.number('energy-kev') ?? null, tool: tool(TOOL, process.argv.slice(1)), inputs, parent: base?.id ?? null, summary },
      { pedestal: result.pedestal, pedestal_rms: result.rms, gain, mask: result.mask },
    );

    const lines = [`calibration set ${set.id}`, `  in ${set.dir}`, `frames ${summary.frames} in ${seconds.toFixed(1)} s (${((summary.frames * pixels) / seconds / 1e6).toFixed(0)} Mpixel/s)`];
    for (const r of result.runs) {
      const per = r.pixelFrames.map((p, g) => `G${g} ${(p / pixels).toFixed(1)}`).join(', ');
      lines.push(`  ${r.label}: ${r.frames} frames, in G${r.dominantGain}; frames per pixel ${per}, errors ${(r.errorPixelFrames / pixels).toFixed(2)}`);
    }
    lines.push('pedestals:', ...result.source.map((s, g) => `  G${g} from ${s ?? 'nowhere: masked no_pedestal_g' + g + ' (give --g' + g + ' or --pedestal-from)'}`));
    lines.push(`gain: ${gainSource}`, ...formatMeans(meansPerGain(result.pedestal, result.rms, result.mask), [true, true, true]));
    lines.push(`masked pixels (of ${pixels}):`, ...formatMask(masked, pixels));
    io.out(lines.join('\n') + '\n');
    return 0;
  },
};
