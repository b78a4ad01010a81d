// Synthetic PILATUS-like frames for the demo and `beamedge simulate`: module
// gaps (-1), powder rings on a Poisson background, and for hits a few dozen
// Bragg-like spots. Written as byte-offset CBF with a PILATUS header so the
// geometry comes from the frame, as with real detectors.
import { encodeCbf } from '../decode/cbf-writer';

export interface SyntheticOptions {
  /** [rows, cols]; default PILATUS 1M (1043 x 981). */
  shape?: [number, number];
  seed?: number;
}

const PIXEL = 172e-6;

// PILATUS modules are 195 x 487 pixels with 17-row and 7-column gaps.
function isGap(row: number, col: number): boolean {
  return row % (195 + 17) >= 195 || col % (487 + 7) >= 487;
}

export class SyntheticDetector {
  readonly shape: [number, number];
  readonly beam: [number, number];
  private seed: number;
  private readonly background: Float64Array;

  constructor(opts: SyntheticOptions = {}) {
    this.shape = opts.shape ?? [1043, 981];
    this.seed = opts.seed ?? 1;
    const [rows, cols] = this.shape;
    this.beam = [cols * 0.49, rows * 0.52];
    this.background = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const rad = Math.hypot(c + 0.5 - this.beam[0], r + 0.5 - this.beam[1]);
        let mean = 0.4 + 2.5 * Math.exp(-rad / 180);
        for (const [r0, amp] of [[0.15, 4], [0.26, 3], [0.38, 2]] as const) mean += amp * Math.exp(-(((rad - r0 * rows) / 3) ** 2));
        this.background[r * cols + c] = mean;
      }
  }

  private random(): number {
    // mulberry32: small, fast, reproducible.
    let t = (this.seed = (this.seed + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  private poisson(mean: number): number {
    const limit = Math.exp(-mean);
    let k = 0;
    for (let p = this.random(); p > limit; p *= this.random()) k++;
    return k;
  }

  /** One frame's pixels; `hit` adds 20-60 Bragg spots. */
  pixels(hit: boolean): Int32Array {
    const [rows, cols] = this.shape;
    const out = new Int32Array(rows * cols);
    for (let i = 0; i < out.length; i++) out[i] = this.poisson(this.background[i]!);
    if (hit) {
      const spots = 20 + Math.floor(this.random() * 40);
      for (let s = 0; s < spots; s++) {
        const r0 = 3 + Math.floor(this.random() * (rows - 6));
        const c0 = 3 + Math.floor(this.random() * (cols - 6));
        const peak = 200 + this.random() * 1800;
        for (let dr = -2; dr <= 2; dr++)
          for (let dc = -2; dc <= 2; dc++) out[(r0 + dr) * cols + c0 + dc]! += Math.round(peak * Math.exp(-(dr * dr + dc * dc) / 1.2));
      }
    }
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (isGap(r, c)) out[r * cols + c] = -1;
    return out;
  }

  /** The frame as a PILATUS-style CBF file. */
  cbf(hit: boolean, name = 'synthetic'): Buffer {
    const [rows, cols] = this.shape;
    return encodeCbf(this.pixels(hit), rows, cols, {
      name,
      headerLines: [
        'Detector: beamedge synthetic PILATUS-like detector',
        `Pixel_size ${PIXEL} m x ${PIXEL} m`,
        'Exposure_time 0.01 s',
        'Wavelength 1.0 A',
        'Detector_distance 0.2 m',
        `Beam_xy (${this.beam[0].toFixed(2)}, ${this.beam[1].toFixed(2)}) pixels`,
        `Comment: ${hit ? 'hit' : 'blank'}`,
      ],
    });
  }
}

/** A small pool of pre-made frames (generating Poisson noise per frame would be the bottleneck). */
export function framePool(det: SyntheticDetector, size: number, hitFraction: number): { cbf: Buffer; hit: boolean }[] {
  return Array.from({ length: size }, (_, i) => {
    // Spread the hits evenly through the pool.
    const hit = Math.floor((i + 1) * hitFraction) > Math.floor(i * hitFraction);
    return { cbf: det.cbf(hit, `frame_${i}`), hit };
  });
}
