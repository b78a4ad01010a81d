// DIALS 3.12 dispersion spot finder (spotfinder.threshold.dispersion and
// dispersion_extended): parameters named as DIALS names them, the work in
// native/src/dispersion.{h,cc}. The strong-pixel masks are identical to
// DIALS's DispersionThreshold / DispersionExtendedThreshold.
//
// Coordinates: DIALS reports centroids with the pixel edge as origin (the
// centre of the first pixel is 0.5); fs/ss here are pixel-index coordinates
// (column, row of the pixel centre), as OM reports them: fs = x_dials - 0.5.
import type { Config, SpotsConfig } from '../config/config';
import { validate } from '../config/schema';
import { native, type NativeDispersionSpot, type NativeDispersionSpotFinder } from '../native';

export type DispersionAlgorithm = 'dispersion' | 'dispersion_extended';

/**
 * pipeline.spots' keys (config/schema.ts: DIALS's names and defaults), except
 * the window, which DIALS sizes per axis. gain 1 means DIALS's gain = None
 * (its default, the gain-free formulas); any other value uses its gain-map
 * formulas with a flat gain. max_separation null: no peak-centroid filter.
 */
export type DispersionParameters = Pick<SpotsConfig, 'sigma_background' | 'sigma_strong' | 'global_threshold' | 'min_local' | 'gain' | 'min_spot_size' | 'max_spot_size' | 'max_separation'> & {
  algorithm: DispersionAlgorithm;
  /** Half sizes [ny, nx]: the window is (2 ny + 1) x (2 nx + 1). */
  kernel_size: [number, number];
};

const SCHEMA_DEFAULTS = (validate({}) as Config).pipeline.spots;

export const DISPERSION_DEFAULTS: DispersionParameters = {
  ...SCHEMA_DEFAULTS,
  algorithm: 'dispersion',
  kernel_size: [SCHEMA_DEFAULTS.kernel_size, SCHEMA_DEFAULTS.kernel_size],
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
