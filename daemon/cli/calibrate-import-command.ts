// beamedge calibrate import: a calibration set from existing JUNGFRAU
// constants (PSI's pedestal and gain files, or .npy), so a detector can run
// on the constants it came with before its first dark run here.
import { writeCalibrationSet } from '../calibrate/calibration-set';
import { flagBadGains, maskCounts, readFloatMap, readGainFile, readMaskFile } from '../calibrate/constants-files';
import { NO_PEDESTAL } from '../calibrate/mask-bits';
import { UsageError } from './args';
import { checkOut, formatMask, formatMeans, GAIN_FILE_HELP, meansPerGain, parseShape, SET_OPTIONS, tool } from './calibrate-common';
import type { Command } from './command';

export const calibrateImportCommand: Command = {
  name: 'import',
  summary: 'a calibration set from existing pedestal, rms, gain and mask files',
  usage: 'beamedge calibrate import --pedestal G0 G1 G2 --gain FILE [--rms G0 [G1 G2]] [--mask FILE] --shape RxC [--energy-kev E] --out DIR',
  options: {
    ...SET_OPTIONS,
    pedestal: { kind: 'list', arg: 'G0 G1 G2', help: 'pedestal per gain stage: float32 [rows][cols] .bin or .npy, ADU' },
    rms: { kind: 'list', arg: 'G0 [G1 G2]', help: 'pedestal rms, float32, ADU (gains without one: rms unknown, stored as 0)' },
    gain: { kind: 'string', arg: 'FILE', help: GAIN_FILE_HELP },
    mask: { kind: 'string', arg: 'FILE', help: 'uint32 mask bits (.npy or .bin); other integer masks: non-zero = user-masked' },
    shape: { kind: 'string', arg: 'RxC', help: 'frame shape (multi-module: modules stacked along rows)' },
  },
  async run(opts, io) {
    const out = checkOut(opts.string('out'));
    const shapeText = opts.string('shape');
    if (!shapeText) throw new UsageError('--shape RxC is required');
    const shape = parseShape(shapeText);
    const peds = opts.list('pedestal');
    if (peds?.length !== 3) throw new UsageError('--pedestal needs three files: G0 G1 G2');
    const rmsFiles = opts.list('rms') ?? [];
    if (rmsFiles.length > 3) throw new UsageError('--rms takes at most three files: G0 G1 G2');
    const gainFile = opts.string('gain');
    if (!gainFile) throw new UsageError('--gain FILE is required');
    if (opts.positional.length) throw new UsageError(`unexpected argument '${opts.positional[0]}'`);
    const n = shape[0] * shape[1];

    const inputs: { role: string; path: string; sha256: string }[] = [];
    const pedestal = new Float32Array(3 * n);
    const rms = new Float32Array(3 * n);
    const mask = new Uint32Array(n);
    peds.forEach((file, g) => {
      const m = readFloatMap(file, shape, `the G${g} pedestal (float32 [rows][cols])`);
      pedestal.set(m.data, g * n);
      inputs.push({ role: `pedestal_g${g}`, path: file, sha256: m.sha256 });
    });
    rmsFiles.forEach((file, g) => {
      const m = readFloatMap(file, shape, `the G${g} rms (float32 [rows][cols])`);
      rms.set(m.data, g * n);
      inputs.push({ role: `rms_g${g}`, path: file, sha256: m.sha256 });
    });
    const gain = readGainFile(gainFile, shape);
    inputs.push({ role: 'gain', path: gainFile, sha256: gain.sha256 });
    const maskFile = opts.string('mask');
    if (maskFile) {
      const m = readMaskFile(maskFile, shape);
      mask.set(m.data);
      inputs.push({ role: 'mask', path: maskFile, sha256: m.sha256 });
    }
    // A pedestal that is not a number is no pedestal.
    for (let g = 0; g < 3; g++)
      for (let i = 0; i < n; i++) if (!Number.isFinite(pedestal[g * n + i]!)) mask[i] = (mask[i]! | NO_PEDESTAL[g]!) >>> 0;
    flagBadGains(gain.data, mask);

    const rmsKnown = [0, 1, 2].map((g) => g < rmsFiles.length);
    const masked = maskCounts(mask);
    const summary = { imported: true, rms_known: rmsKnown, masked_pixels: masked };
    const set = writeCalibrationSet(
      out,
      { detector: 'jungfrau', shape, energy_kev: opts.number('energy-kev') ?? null, tool: tool('beamedge calibrate import', process.argv.slice(1)), inputs, parent: null, summary },
      { pedestal, pedestal_rms: rms, gain: gain.data, mask },
    );
    const lines = [`calibration set ${set.id}`, `  in ${set.dir}`, `imported ${shape.join('x')}: pedestals G0-G2${rmsFiles.length < 3 ? `, rms ${rmsKnown.map((k, g) => `G${g} ${k ? 'given' : 'unknown (0)'}`).join(', ')}` : ', rms G0-G2'}`];
    lines.push(...formatMeans(meansPerGain(pedestal, rms, mask), rmsKnown), `masked pixels (of ${n}):`, ...formatMask(masked, n));
    io.out(lines.join('\n') + '\n');
    return 0;
  },
};
