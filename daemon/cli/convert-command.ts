// beamedge convert: raw JUNGFRAU frames through a calibration set into a
// float32 .npy [frames][rows][cols] (excluded pixels NaN), so a scientist can
// check a set by hand (numpy, a viewer) before the daemon runs on it. The same
// kernel and the same folded factors as the daemon's calibrate stage.
// Every input is checked before the first frame is converted; the output is
// written to a temporary file beside it and renamed into place at the end, so
// an error (or Ctrl-C) never leaves a partial .npy behind.
import { closeSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { loadCalibrationSet } from '../calibrate/calibration-set';
import { JungfrauConverter, type JungfrauUnit } from '../calibrate/jungfrau';
import { npyHeader } from '../calibrate/npy';
import { inspectFrameFile, type FrameFile, type Shape } from '../calibrate/raw-frames';
import type { JungfrauCounts } from '../native';
import { UsageError } from './args';
import { parseShape } from './calibrate-common';
import type { Command } from './command';
import { Progress } from './progress';

const UNITS = ['photons', 'keV'] as const;

/** Excluded pixel-frames per reason, in the order the summary prints them. */
const REASONS = [
  ['saturated', 'saturated'],
  ['invalidCode', 'invalid gain code'],
  ['errorWord', 'error word'],
  ['masked', 'masked'],
] as const;

type Tally = Record<(typeof REASONS)[number][0] | 'converted', number>;

const emptyTally = (): Tally => ({ saturated: 0, invalidCode: 0, errorWord: 0, masked: 0, converted: 0 });

function addCounts(t: Tally, c: JungfrauCounts): void {
  t.saturated += c.saturated;
  t.invalidCode += c.invalidCode;
  t.errorWord += c.errorWord;
  t.masked += c.masked;
  t.converted += c.g0 + c.g1 + c.g2;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
}

const formatTally = (t: Tally): string => REASONS.map(([k, label]) => `${label} ${t[k]}`).join(', ');

export const convertCommand: Command = {
  name: 'convert',
  summary: 'raw JUNGFRAU frames through a calibration set into a float32 .npy (photons or keV)',
  usage: 'beamedge convert FILE... --calibration DIR [--shape RxC] [--energy-kev E] [--unit photons|keV] --out OUT.npy',
  options: {
    calibration: { kind: 'string', arg: 'DIR', help: 'the calibration set (calibrate pedestal / calibrate import)' },
    out: { kind: 'string', arg: 'OUT.npy', help: 'float32 [frames][rows][cols], excluded pixels NaN (replaced atomically)' },
    shape: { kind: 'string', arg: 'RxC', help: "frame shape of .bin files (default: the set's; must match it)" },
    'energy-kev': { kind: 'number', min: 0.1, arg: 'E', help: "photon energy (default: the set's energy_kev)" },
    unit: { kind: 'string', arg: 'UNIT', choices: UNITS, help: 'output unit (default photons)' },
  },
  async run(opts, io) {
    const files = opts.positional;
    if (files.length === 0) throw new UsageError('no input: give raw frame files (.bin or .npy, uint16)');
    const out = opts.string('out');
    if (!out) throw new UsageError('--out OUT.npy is required');
    const calDir = opts.string('calibration');
    if (!calDir) throw new UsageError('--calibration DIR is required');
    const unit = (opts.string('unit') ?? 'photons') as JungfrauUnit;
    const shapeText = opts.string('shape');
    const given: Shape | undefined = shapeText ? parseShape(shapeText) : undefined;
    const outPath = path.resolve(out);
    for (const f of files) if (path.resolve(f) === outPath) throw new UsageError(`--out ${out} is also an input`);

    // Everything that can be refused is read before the first frame.
    const set = loadCalibrationSet(calDir, false);
    if (set.json.detector !== 'jungfrau') throw new Error(`${set.dir}: a ${set.json.detector} calibration set, convert needs a jungfrau one`);
    const shape = set.json.shape;
    if (given && given.join('x') !== shape.join('x')) throw new Error(`--shape ${given.join('x')}, but the calibration set ${set.dir} is ${shape.join('x')}`);
    const energy = opts.number('energy-kev') ?? set.json.energy_kev ?? undefined;
    if (unit === 'photons' && energy === undefined)
      throw new UsageError(`the calibration set ${set.dir} records no photon energy: give --energy-kev E (or --unit keV)`);
    const inputs: FrameFile[] = files.map((f) => {
      if (!/\.npy$/i.test(f)) return inspectFrameFile(f, shape);
      const ff = inspectFrameFile(f, undefined);
      if (ff.shape.join('x') !== shape.join('x')) throw new Error(`${f}: frames are ${ff.shape.join('x')}, the calibration set ${set.dir} is ${shape.join('x')}`);
      return ff;
    });
    const frames = inputs.reduce((a, f) => a + f.frames, 0);
    if (frames === 0) throw new Error('the input files hold no frames');

    // The daemon's preparation: factors once, the mask folded into them.
    const { pedestal, gain, mask } = set.arrays;
    const factor = JungfrauConverter.factorsFromGain(gain!, energy ?? 1, unit);
    JungfrauConverter.foldMask(factor, mask!);
    const conv = new JungfrauConverter({ pedestal: pedestal!, factor, mask: null });

    const pixels = shape[0] * shape[1];
    const raw = new Uint16Array(pixels);
    const image = new Float32Array(pixels);
    const imageBytes = new Uint8Array(image.buffer);
    const tmp = path.join(path.dirname(outPath), `.${path.basename(outPath)}.tmp-${process.pid}`);
    // Ctrl-C (or a stop) lands between frames: the loop below yields every
    // few frames, sees the flag, and removes the temporary file on its way out.
    let stopped: NodeJS.Signals | undefined;
    const onSignal = (sig: NodeJS.Signals) => (stopped = sig);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const total = emptyTally();
    const progress = new Progress('convert', frames);
    const lines: string[] = [];
    let outFd: number | undefined;
    let inFd: number | undefined;
    try {
      try {
        outFd = openSync(tmp, 'wx');
      } catch (e) {
        throw new Error(`${out}: cannot write beside it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      writeAll(outFd, npyHeader('<f4', [frames, ...shape]));
      const frameBytes = new Uint8Array(raw.buffer);
      for (const f of inputs) {
        const tally = emptyTally();
        inFd = openSync(f.path, 'r');
        for (let i = 0; i < f.frames; i++) {
          let got = 0;
          while (got < frameBytes.length) {
            const n = readSync(inFd, frameBytes, got, frameBytes.length - got, f.start + i * frameBytes.length + got);
            if (n === 0) throw new Error(`${f.path}: frame ${i}: the file ended ${frameBytes.length - got} bytes early (it shrank while being read)`);
            got += n;
          }
          addCounts(tally, conv.convert(raw, image));
          writeAll(outFd, imageBytes);
          progress.advance();
          if (i % 16 === 15) await new Promise(setImmediate);
          if (stopped) throw new Error(`stopped by ${stopped} at ${f.path} frame ${i}: nothing written`);
        }
        closeSync(inFd);
        inFd = undefined;
        for (const k of Object.keys(total) as (keyof Tally)[]) total[k] += tally[k];
        lines.push(`${f.path}: ${f.frames} frame${f.frames === 1 ? '' : 's'}, excluded pixels: ${formatTally(tally)}`);
      }
      closeSync(outFd);
      outFd = undefined;
      renameSync(tmp, outPath);
    } catch (e) {
      if (inFd !== undefined) closeSync(inFd);
      if (outFd !== undefined) closeSync(outFd);
      rmSync(tmp, { force: true });
      throw e;
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      progress.finish();
    }

    const pf = frames * pixels;
    const excluded = total.saturated + total.invalidCode + total.errorWord + total.masked;
    lines.push(
      `wrote ${out}: float32 (${frames}, ${shape[0]}, ${shape[1]}) ${unit === 'photons' ? `photons at ${energy} keV` : 'keV'}, NaN where excluded`,
      `calibration set ${set.id}`,
      `  in ${set.dir}`,
      `frames ${frames}, pixels excluded ${excluded} of ${pf} (${((100 * excluded) / pf).toFixed(4)} %):`,
      ...REASONS.map(([k, label]) => `  ${label.padEnd(18)} ${String(total[k]).padStart(10)}  (${((100 * total[k]) / pf).toFixed(4)} %)`),
    );
    io.out(lines.join('\n') + '\n');
    return 0;
  },
};
