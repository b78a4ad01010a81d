// The calibrate stage: every constant a frame is corrected with, checked
// against the frame's shape (a clear error naming both), from the
// configuration (mask, dark, flat files; a calibration set) and from the
// series' start message (the detector's pixel mask and flatfield).
import type { PipelineCalibration } from '../../calibrate/pipeline-calibration';
import { expectShape } from '../../calibrate/pixel-image';
import { seriesCalibration } from '../series-calibration';
import type { Stage, WorkFrame } from './frame';

export class CalibrateStage implements Stage {
  readonly name = 'calibrate';

  constructor(private readonly cal: PipelineCalibration) {}

  run(f: WorkFrame): void {
    const { mask, dark, flat, set } = this.cal;
    if (set) {
      expectShape(set, f.shape, `calibration set ${set.dir}`);
      f.header.calibration = set.id;
      if (set.detector === 'jungfrau' || f.meta.detector === 'jungfrau') throw new Error('JUNGFRAU conversion is not available in this build');
      if (set.arrays.mask) {
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
