// The calibrate stage: every constant a frame is corrected with, checked
// against the frame's shape (a clear error naming both), from the
// configuration (mask, dark, flat files; a calibration set) and from the
// series' start message (the detector's pixel mask and flatfield).
import { JungfrauConverter } from '../../calibrate/jungfrau';
import type { LoadedSet, PipelineCalibration } from '../../calibrate/pipeline-calibration';
import { expectShape } from '../../calibrate/pixel-image';
import { seriesCalibration } from '../series-calibration';
import type { Stage, WorkFrame } from './frame';

// Converted frames land here, one buffer per worker reused frame to frame.
let converted = new Float32Array(0);

export class CalibrateStage implements Stage {
  readonly name = 'calibrate';
  private converter: JungfrauConverter | undefined;

  constructor(private readonly cal: PipelineCalibration) {}

  /** Raw gain-switching words to photons (or keV): the frame goes on as float32, excluded pixels NaN, converted when first needed. */
  private convertJungfrau(f: WorkFrame, set: LoadedSet): void {
    if (set.detector !== 'jungfrau' || !set.jungfrau) throw new Error(`JUNGFRAU frames need a jungfrau calibration set; ${set.dir} is ${set.detector}`);
    if (f.meta.encoding !== 'raw' || f.meta.dtype !== 'uint16') throw new Error(`calibration set ${set.dir} is for JUNGFRAU raw uint16 frames, but this frame is ${f.meta.encoding}${f.meta.dtype ? ` ${f.meta.dtype}` : ''}`);
    this.converter ??= new JungfrauConverter({ pedestal: set.arrays.pedestal!, factor: set.jungfrau.factor, mask: null });
    const n = f.shape[0] * f.shape[1];
    const tracking = this.cal.tracking;
    const raw = f.pixels as Uint16Array;
    f.jungfrau = {
      raw,
      converter: this.converter,
      ...(tracking ? { track: { pedestal: tracking.buffers[f.header.worker]!, rms: set.arrays.pedestal_rms!.subarray(0, n), k: tracking.k, window: tracking.window } } : {}),
      converted: (c) => {
        if (tracking) Atomics.add(tracking.frames, f.header.worker, 1);
        f.header.calibrationExcluded = { saturated: c.saturated, invalid_gain: c.invalidCode, error_word: c.errorWord, masked: c.masked };
        delete f.jungfrau;
      },
    };
    // Until a stage needs them, the pixels stay raw: the integration converts them tile by tile in its own pass.
    f.pixels = undefined;
    f.decode = () => {
      if (f.pixels) return f.pixels;
      const pending = f.jungfrau!;
      if (converted.length < n) converted = new Float32Array(n);
      const out = converted.subarray(0, n);
      pending.converted(this.converter!.convert(raw, out, pending.track ? { track: pending.track } : {}));
      return (f.pixels = out);
    };
    f.negativeValid = true;
    // The set's mask is folded into its factors (NaN pixels), so no map depends on it.
    delete f.maxValid;
  }

  run(f: WorkFrame): void {
    const { mask, dark, flat, set } = this.cal;
    if (set) {
      expectShape(set, f.shape, `calibration set ${set.dir}`);
      f.header.calibration = set.id;
      if (set.detector === 'jungfrau' || f.meta.detector === 'jungfrau') this.convertJungfrau(f, set);
      else if (set.arrays.mask) {
        f.masks.push(set.arrays.mask);
        f.mapKey.push(`set:${set.id}`);
      }
      if (set.arrays.dark) f.dark = set.arrays.dark;
      if (set.arrays.flat) f.flat = set.arrays.flat;
    } else if (f.meta.detector === 'jungfrau') {
      throw new Error('JUNGFRAU frames need pipeline.calibration.set (a jungfrau calibration set)');
    }
    if (mask) {
      expectShape(mask, f.shape, `mask ${mask.file}`);
      f.masks.push(mask.data);
      f.mapKey.push(`mask:${mask.sha256}`);
    }
    if (dark) {
      expectShape(dark, f.shape, `dark ${dark.file}`);
      f.dark = dark.data;
    }
    if (flat) {
      expectShape(flat, f.shape, `flat ${flat.file}`);
      f.flat = flat.data;
      f.mapKey.push(`flat:${flat.sha256}`);
    }
    if (f.context) {
      const series = seriesCalibration(f.context, f.shape);
      if (series.mask) f.masks.push(series.mask);
      if (series.flat && !f.flat) f.flat = series.flat;
      f.mapKey.push(`series:${f.context.key}`);
    }
  }
}
