// DIALS 3.12 dispersion spot finder (spotfinder.threshold.dispersion and
// dispersion_extended): parameters named as DIALS names them, the work in
// native/src/dispersion.{h,cc}. The strong-pixel masks are identical to
// DIALS's DispersionThreshold / DispersionExtendedThreshold.
//
// Coordinates: DIALS reports centroids with the pixel edge as origin (the
// centre of the first pixel is 0.5); fs/ss here are pixel-index coordinates
// (column, row of the pixel centre), as OM reports them: fs = x_dials - 0.5.
import { native, type NativeDispersionSpot, type NativeDispersionSpotFinder } from '../native';

export type DispersionAlgorithm = 'dispersion' | 'dispersion_extended';

export interface DispersionParameters {
  algorithm: DispersionAlgorithm;
  /** Half sizes [ny, nx]: the window is (2 ny + 1) x (2 nx + 1). DIALS default [3, 3]. */
  kernel_size: [number, number];
  sigma_background: number;
  sigma_strong: number;
  global_threshold: number;
  /** <= 0: the whole kernel; otherwise 2..kernel pixels. */
  min_local: number;
  /**
   * DIALS's gain = None (its default) is gain 1 through the gain-free formulas; that is
   * what 1 means here. Any other value uses DIALS's gain-map formulas with a flat gain.
   */
  gain: number;
  /** dials.find_spots: Auto = 3 for pixel-array detectors, 6 otherwise. */
  min_spot_size: number;
  max_spot_size: number;
  /** Peak-to-centroid distance filter of dials.find_spots (default 2); null = off. */
  max_separation: number | null;
}

export const DISPERSION_DEFAULTS: DispersionParameters = {
  algorithm: 'dispersion',
  kernel_size: [3, 3],
  sigma_background: 6,
  sigma_strong: 3,
  global_threshold: 0,
  min_local: 2,
  gain: 1,
  min_spot_size: 3,
  max_spot_size: 1000,
  max_separation: 2,
};

/** One spot: intensity-weighted centroid (pixel-index coordinates), summed pixel values, size and peak pixel. */
export type Spot = NativeDispersionSpot;

export class DispersionSpotFinder {
  readonly params: DispersionParameters;
  readonly strong: Uint8Array;
  private readonly finder: NativeDispersionSpotFinder;
  private strongCount = 0;

  constructor(
    readonly width: number,
    readonly height: number,
    params: Partial<DispersionParameters> = {},
  ) {
    const p = { ...DISPERSION_DEFAULTS, ...params };
    if (p.algorithm !== 'dispersion' && p.algorithm !== 'dispersion_extended')
      throw new TypeError(`algorithm must be 'dispersion' or 'dispersion_extended', not ${String(p.algorithm)}`);
    if (!Array.isArray(p.kernel_size) || p.kernel_size.length !== 2) throw new TypeError('kernel_size must be [ny, nx]');
    this.params = p;
    this.finder = new native.DispersionSpotFinder(width, height, {
      kernelY: p.kernel_size[0],
      kernelX: p.kernel_size[1],
      sigmaBackground: p.sigma_background,
      sigmaStrong: p.sigma_strong,
      globalThreshold: p.global_threshold,
      minLocal: p.min_local,
      gain: p.gain === 1 ? null : p.gain,
      extended: p.algorithm === 'dispersion_extended',
    });
    this.strong = new Uint8Array(width * height);
  }

  /** Strong-pixel mask (this.strong, reused); mask non-zero = invalid. Returns the count. */
  threshold(image: Int32Array | Float32Array, mask: Uint8Array | null): Uint8Array {
    this.strongCount = this.finder.threshold(image, mask, this.strong);
    return this.strong;
  }

  get strongPixels(): number {
    return this.strongCount;
  }

  /** Threshold, then 4-connected spots filtered by size (and peak-centroid separation). */
  find(image: Int32Array | Float32Array, mask: Uint8Array | null): Spot[] {
    this.threshold(image, mask);
    return this.finder.spots(image, this.strong, {
      minSpotSize: this.params.min_spot_size,
      maxSpotSize: this.params.max_spot_size,
      maxSeparation: this.params.max_separation ?? -1,
    });
  }

  /** DIALS's own summed-area-table order (slow): for tests. */
  thresholdReference(image: Int32Array | Float32Array, mask: Uint8Array | null, out: Uint8Array): number {
    return this.finder.thresholdReference(image, mask, out);
  }

  get path(): string {
    return this.finder.path();
  }
}
