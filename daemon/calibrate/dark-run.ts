// Pedestals from JUNGFRAU dark runs. Each run is accumulated natively (per
// pixel and gain stage: frames, sum, sum of squares of the ADC value), then
// folded into one result: the pedestal and rms of every gain stage the run
// exercised, and the mask bits the run earns its pixels.
//
// Limits follow Jungfraujoch (graeme-winter/jungfraujoch-fork): its receiver
// masks a pixel whose pedestal rms exceeds 100 ADU in any gain
// (RMS_THRESHOLD_FOR_MASK, fpga/receiver/JFJochReceiver.h), that was in the
// wrong gain in more than 2 frames of its 128-frame window
// (ALLOWED_WRONG_PEDESTAL_FOR_MASK, PEDESTAL_WINDOW_SIZE: about 1.6 %), or
// that has fewer than 128 frames (common/PedestalCalc.cpp); its broker takes
// 2000 G0 frames, then 300 in forced G1 and 300 in forced G2.
import { native, type NativePedestalAccumulator } from '../native';
import { NO_PEDESTAL, PEDESTAL_RMS, WRONG_GAIN } from './mask-bits';

export const DEFAULT_MAX_RMS: [number, number, number] = [100, 100, 100];
export const DEFAULT_MAX_WRONG_GAIN = 0.02;
/** Jungfraujoch's window; a shorter run needs half its frames in the gain. */
export const DEFAULT_MIN_FRAMES = 128;


export interface DarkLimits {
  /** Frames a pixel needs in an exercised gain; default min(128, half the run's frames). */
  minFrames?: number;
  maxRms: [number, number, number];
  /** Largest share of a run's frames in which a pixel may be out of the run's dominant gain. */
  maxWrongGain: number;
}

export interface RunSummary {
  label: string;
  frames: number;
  /** Pixel-frames in G0, G1, G2, and error words (0xFFFF, 0xC000, code 10). */
  pixelFrames: [number, number, number];
  errorPixelFrames: number;
  dominantGain: number;
  exercisedGains: number[];
  minFrames: number;
  flagged: { no_pedestal: number; high_rms: number; wrong_gain: number };
}

/** Pedestal, rms and mask of a detector, filled run by run. */
export class DarkResult {
  readonly pedestal: Float32Array;
  readonly rms: Float32Array;
  readonly mask: Uint32Array;
  /** Which run gave each gain stage its pedestal (null: none yet). */
  readonly source: (string | null)[] = [null, null, null];
  readonly runs: RunSummary[] = [];
  constructor(readonly pixels: number) {
    this.pedestal = new Float32Array(3 * pixels);
    this.rms = new Float32Array(3 * pixels);
    this.mask = new Uint32Array(pixels);
  }
}

/** One dark run: add its frames, then fold it into a DarkResult. */
export class DarkRun {
  private readonly acc: NativePedestalAccumulator;
  constructor(readonly pixels: number) {
    this.acc = new native.PedestalAccumulator(pixels);
  }

  add(frame: Uint16Array): void {
    this.acc.add(frame);
  }

  frames(): number {
    return this.acc.frames();
  }

  /** Takes the run's exercised gains into `into`; throws when another run already gave one of them. */
  finish(label: string, limits: DarkLimits, into: DarkResult): RunSummary {
    const n = this.pixels;
    const frames = this.acc.frames();
    if (frames === 0) throw new Error(`${label}: no frames`);
    const counts = this.acc.counts();
    const pixelFrames: [number, number, number] = [0, 0, 0];
    const seen = [0, 0, 0];
    for (let g = 0; g < 3; g++)
      for (let i = 0, k = g * n; i < n; i++, k++) {
        pixelFrames[g] += counts[k]!;
        if (counts[k]! > 0) seen[g]!++;
      }
    const dominantGain = pixelFrames.indexOf(Math.max(...pixelFrames));
    // A gain is exercised when most pixels saw it: a G0 dark run in dynamic
    // gain has a few pixels switching, which must not make it a G1 run.
    const exercisedGains = [0, 1, 2].filter((g) => seen[g]! > n / 2);
    for (const g of exercisedGains)
      if (into.source[g] !== null) throw new Error(`${label}: G${g} was already taken from ${into.source[g]}: give each gain stage in one run only`);
    const minFrames = limits.minFrames ?? Math.min(DEFAULT_MIN_FRAMES, Math.ceil(frames / 2));
    const mean = new Float32Array(3 * n);
    const rms = new Float32Array(3 * n);
    this.acc.stats(mean, rms);
    const flagged = { no_pedestal: 0, high_rms: 0, wrong_gain: 0 };
    const { pedestal, mask } = into;
    for (const g of exercisedGains) {
      const noPed = NO_PEDESTAL[g]!;
      const highRms = PEDESTAL_RMS[g]!;
      for (let i = 0, k = g * n; i < n; i++, k++) {
        const c = counts[k]!;
        pedestal[k] = c > 0 ? mean[k]! : 0;
        into.rms[k] = c > 0 ? rms[k]! : 0;
        if (c < minFrames) {
          mask[i] = (mask[i]! | noPed) >>> 0;
          flagged.no_pedestal++;
        } else if (rms[k]! > limits.maxRms[g]!) {
          mask[i] = (mask[i]! | highRms) >>> 0;
          flagged.high_rms++;
        }
      }
      into.source[g] = label;
    }
    // Wrong gain: frames in which the pixel gave no valid value in the run's
    // dominant gain (another gain, or an error word), as a share of the run.
    const limit = limits.maxWrongGain * frames;
    for (let i = 0, k = dominantGain * n; i < n; i++, k++)
      if (frames - counts[k]! > limit) {
        mask[i] = (mask[i]! | WRONG_GAIN) >>> 0;
        flagged.wrong_gain++;
      }
    const errorPixelFrames = frames * n - pixelFrames[0] - pixelFrames[1] - pixelFrames[2];
    const summary: RunSummary = { label, frames, pixelFrames, errorPixelFrames, dominantGain, exercisedGains, minFrames, flagged };
    into.runs.push(summary);
    this.acc.reset();
    return summary;
  }
}
