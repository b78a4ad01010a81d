// What every spot finder returns: one entry per spot, in pixel-index
// coordinates (fs = column, ss = row of pixel centres, as OM prints them).
import type { PixelFrame } from '../native';

export interface SpotList {
  /** Spots found (the arrays may be capped shorter). */
  count: number;
  fs: Float32Array;
  ss: Float32Array;
  /** Summed (background-subtracted for peakfinder8) intensity. */
  intensity: Float32Array;
  pixels: Float32Array;
  /** Signal-to-noise ratio, where the algorithm defines one (peakfinder8). */
  snr?: Float32Array;
}

export interface SpotFinder {
  /** `mask`: non-zero pixels are never part of a spot nor of any local statistics. */
  find(image: PixelFrame, mask: Uint8Array): SpotList;
  /** The strong-pixel mask of the last find (dispersion algorithms). */
  readonly strong?: Uint8Array;
}
