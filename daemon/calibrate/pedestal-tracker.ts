// JUNGFRAU pedestal tracking, main-thread side. Workers convert every frame
// with a fixed calibration set and, in the same pass, move their own copy of
// the G0 pedestal towards the dark level of pixels that saw no photon. Every
// snapshot_s the copies are merged (weighted by the frames each worker
// tracked) into a new calibration set derived from the one in use; the frames
// after it are converted with that set. So every frame is converted with
// constants that exist on disk under the id its provenance row names, while
// the pedestal still follows the detector's drift.
import path from 'node:path';
import type { CalibrationConfig } from '../config/config';
import { VERSION } from '../version';
import { deriveCalibrationSet } from './calibration-set';
import type { LoadedSet, PipelineCalibration, TrackingState } from './pipeline-calibration';

export interface Snapshot {
  set: LoadedSet;
  parent: string;
  frames: number;
  /** Mean |change| of the G0 pedestal over pixels, ADU. */
  meanShift: number;
}

function shared(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(n * 4) as unknown as ArrayBuffer);
}

export class PedestalTracker {
  private base: LoadedSet | undefined;
  private current: LoadedSet | undefined;
  private state: TrackingState | undefined;
  private sequence = 0;

  constructor(
    private readonly workers: number,
    /** Where derived sets are written (the daemon's state directory). */
    private readonly directory: string,
  ) {}

  get active(): boolean {
    return this.state !== undefined;
  }

  /** The calibration to hand the workers: the tracked set in place of its base (while the base is unchanged), with the tracking buffers. */
  apply(cal: PipelineCalibration, cfg: CalibrationConfig): PipelineCalibration {
    const set = cal.set;
    if (!set || set.detector !== 'jungfrau' || !cfg.tracking) {
      this.base = this.current = this.state = undefined;
      return cal;
    }
    if (this.base?.id !== set.id) {
      const n = set.shape[0] * set.shape[1];
      const g0 = set.arrays.pedestal!.subarray(0, n);
      const buffers = Array.from({ length: this.workers }, () => {
        const b = shared(n);
        b.set(g0);
        return b;
      });
      this.base = this.current = set;
      this.state = { buffers, frames: new Int32Array(new SharedArrayBuffer(this.workers * 4)), window: 0, k: 0 };
    }
    // Each worker tracks only the frames it converts (1 in W): a window of N/W
    // worker frames keeps the pedestal moving at 1/N per detector frame.
    this.state = { ...this.state!, window: Math.max(1, cfg.tracking_window / this.workers), k: cfg.tracking_k };
    // The factors follow the configuration (energy, unit); the pedestals follow the tracking.
    return { ...cal, set: { ...this.current!, jungfrau: set.jungfrau! }, tracking: this.state };
  }

  /** Merges the workers' tracked pedestals into a new derived set; undefined when no frame was tracked since the last one. */
  snapshot(): Snapshot | undefined {
    const state = this.state;
    const parent = this.current;
    if (!state || !parent) return undefined;
    const counts = Array.from(state.frames, (_, w) => Atomics.exchange(state.frames, w, 0));
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === 0) return undefined;
    const n = parent.shape[0] * parent.shape[1];
    const pedestal = shared(3 * n);
    pedestal.set(parent.arrays.pedestal!);
    let shift = 0;
    for (let i = 0; i < n; i++) {
      let v = 0;
      for (let w = 0; w < state.buffers.length; w++) if (counts[w]) v += (counts[w]! / total) * state.buffers[w]![i]!;
      shift += Math.abs(v - pedestal[i]!);
      pedestal[i] = v;
    }
    // Workers go on from the merged pedestal, so their copies do not drift apart.
    for (const b of state.buffers) b.set(pedestal.subarray(0, n));
    const dir = path.join(this.directory, `${new Date().toISOString().replace(/[:.]/g, '')}-${++this.sequence}-${parent.id.slice(0, 12)}`);
    const derived = deriveCalibrationSet(parent, dir, { pedestal }, {
      tool: { name: 'beamedge pedestal tracking', version: VERSION, command: [] },
      summary: { tracked_frames: total, frames_per_worker: counts, window: state.window, k: state.k, mean_g0_shift_adu: shift / n },
    });
    this.current = { ...parent, id: derived.id, dir: derived.dir, json: derived.json, arrays: { ...parent.arrays, pedestal } };
    return { set: this.current, parent: parent.id, frames: total, meanShift: shift / n };
  }
}
