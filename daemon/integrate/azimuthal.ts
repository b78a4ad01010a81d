// Azimuthal integration set up once per geometry, mask and options; each
// frame is then one pass of the native pixel-to-bin map.
import type { Geometry } from '../geometry/geometry';
import { native, type FrameOptions, type JungfrauCalibrationArrays, type JungfrauCounts, type JungfrauIntegrateOptions, type NativeIntegration, type NativeIntegrator, type NativeMapSpec, type PixelFrame } from '../native';
import { radialUnit, type RadialUnit } from './units';

export type Splitting = 'no' | 'bbox';

export interface IntegrationSetup {
  geometry: Geometry;
  /** [rows, cols] */
  shape: [number, number];
  /** Radial bins. */
  npt: number;
  /** Azimuthal bins: set for 2D integration. */
  nptAzim?: number;
  unit: string;
  split?: Splitting;
  /** Non-zero = excluded. Negative pixel values are excluded per frame anyway. */
  mask?: Uint8Array;
  /** Solid-angle correction, on by default as in pyFAI. */
  solidAngle?: boolean;
  /** Polarization factor in [-1, 1]; no correction when absent, as in pyFAI. */
  polarization?: number;
  flat?: Float32Array;
  /** Radial range in the output unit; default: all unmasked pixels. */
  radialRange?: [number, number];
  /** Azimuthal range in degrees (2D only). */
  azimuthRange?: [number, number];
}

export interface Integration extends NativeIntegration {
  unit: string;
  /** Radial bin centres, in `unit`. */
  radial: Float64Array;
  /** Azimuthal bin centres in degrees (2D only). Intensity is [azimuthal][radial]. */
  azimuthal?: Float64Array;
}

export type IntegrateOptions = Pick<FrameOptions, 'dark' | 'dummy' | 'deltaDummy' | 'empty' | 'litThreshold' | 'maxValid' | 'negativeValid'>;

const RAD = 180 / Math.PI;

/**
 * What the pixel-to-bin map of `setup` depends on, checked, as the native
 * builder takes it. The same spec gives the same map: the map store keys maps
 * by its content hash (integrate/map-key.ts).
 */
export function mapSpec(setup: IntegrationSetup, threads = 1): NativeMapSpec {
  const { geometry: g, shape, split = 'no' } = setup;
  const [rows, cols] = shape;
  const npix = rows * cols;
  const unit = radialUnit(setup.unit);
  if (unit.space === 'q' && !(g.wavelength! > 0)) throw new RangeError(`unit ${unit.name} needs the wavelength`);
  if (setup.mask && setup.mask.length !== npix) throw new RangeError(`mask has ${setup.mask.length} pixels, frame ${npix}`);
  if (setup.flat && setup.flat.length !== npix) throw new RangeError(`flat has ${setup.flat.length} pixels, frame ${npix}`);
  const twoD = setup.nptAzim !== undefined;
  const { dist, poni1, poni2, rot1, rot2, rot3, pixel1, pixel2 } = g;
  return {
    geometry: { dist, poni1, poni2, rot1, rot2, rot3, pixel1, pixel2, wavelength: g.wavelength ?? 0 },
    rows,
    cols,
    radial: unit.space,
    split: split === 'bbox',
    twoD,
    solidAngle: setup.solidAngle !== false,
    ...(setup.polarization !== undefined ? { polarization: setup.polarization } : {}),
    ...(setup.mask ? { mask: setup.mask } : {}),
    ...(setup.flat ? { flat: setup.flat } : {}),
    bins0: setup.npt,
    ...(twoD ? { bins1: setup.nptAzim! } : {}),
    ...(setup.radialRange ? { range0: [setup.radialRange[0] / unit.scale, setup.radialRange[1] / unit.scale] as [number, number] } : {}),
    ...(twoD && setup.azimuthRange ? { range1: [setup.azimuthRange[0] / RAD, setup.azimuthRange[1] / RAD] as [number, number] } : {}),
    threads,
  };
}

// Empty bins read as the dummy value when one is given, else 0, as in pyFAI.
function withEmpty(options: IntegrateOptions): IntegrateOptions {
  return options.empty === undefined && options.dummy !== undefined ? { ...options, empty: options.dummy } : options;
}

export class AzimuthalIntegrator {
  readonly unit: RadialUnit;
  readonly radial: Float64Array;
  readonly azimuthal: Float64Array | undefined;
  readonly npix: number;
  /** The map blob this integrator reads (a SharedArrayBuffer view when it came from the map store). */
  readonly map: Uint8Array;
  private readonly engine: NativeIntegrator;

  /** Builds the map on this thread, unless `map` (built from mapSpec(setup)) is given: then it is read in place. */
  constructor(
    readonly setup: IntegrationSetup,
    map?: Uint8Array,
  ) {
    this.npix = setup.shape[0] * setup.shape[1];
    this.unit = radialUnit(setup.unit);
    this.map = map ?? native.buildMap(mapSpec(setup));
    this.engine = new native.Integrator({ map: this.map });
    const axes = this.engine.axes();
    if (axes.radial.centres.length !== setup.npt || (setup.nptAzim ?? 1) !== axes.azimuthal.centres.length) throw new RangeError('the map does not match the integration setup');
    const scale = this.unit.scale;
    this.radial = axes.radial.centres.map((x) => x * scale);
    this.azimuthal = setup.nptAzim !== undefined ? axes.azimuthal.centres.map((x) => x * RAD) : undefined;
  }

  /** Entries in the pixel-to-bin map (for diagnostics and memory accounting). */
  get mapEntries(): number {
    return this.engine.axes().entries;
  }

  /** Bytes of the pixel-to-bin map (shared with other workers when it came from the map store). */
  get memoryBytes(): number {
    return this.map.byteLength;
  }

  /** Frees the map at once (an evicted integrator must not wait for the GC to notice it). */
  dispose(): void {
    this.engine.dispose();
  }

  integrate(frame: PixelFrame, options: IntegrateOptions = {}): Integration {
    return this.wrap(this.engine.integrate(frame, withEmpty(options)));
  }

  /** Decode a byte-offset CBF and integrate it in one pass (no full-frame buffer). */
  integrateCbf(cbf: Uint8Array, options: IntegrateOptions = {}): Integration {
    return this.wrap(this.engine.integrateCbf(cbf, withEmpty(options)));
  }

  /**
   * Convert a raw JUNGFRAU frame with `cal` (a JungfrauConverter has exactly these
   * fields) and integrate it in one pass, tile by tile: the full float frame is
   * written only when `options.out` is given. Same as converting and then calling
   * integrate(out, { negativeValid: true, litThreshold }), bit for bit.
   */
  integrateJungfrau(raw: Uint16Array, cal: JungfrauCalibrationArrays, options: JungfrauIntegrateOptions = {}): Integration & { jungfrau: JungfrauCounts } {
    const { jungfrau, ...r } = this.engine.integrateJungfrau(raw, cal, options);
    return { ...this.wrap(r), jungfrau };
  }

  private wrap(r: NativeIntegration): Integration {
    return { ...r, unit: this.unit.name, radial: this.radial, ...(this.azimuthal ? { azimuthal: this.azimuthal } : {}) };
  }
}
