// Azimuthal integration set up once per geometry, mask and options; each
// frame is then one pass of the native pixel-to-bin map.
import type { Geometry } from '../geometry/geometry';
import { native, type FrameOptions, type JungfrauCalibrationArrays, type JungfrauCounts, type JungfrauIntegrateOptions, type NativeIntegration, type NativeIntegrator, type PixelFrame } from '../native';
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

function product(a: Float32Array | undefined, b: Float32Array | undefined): Float32Array | undefined {
  if (!a) return b;
  if (!b) return a;
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! * b[i]!;
  return out;
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
  private readonly engine: NativeIntegrator;

  constructor(readonly setup: IntegrationSetup) {
    const { geometry: g, shape, split = 'no' } = setup;
    const [rows, cols] = shape;
    this.npix = rows * cols;
    this.unit = radialUnit(setup.unit);
    if (this.unit.space === 'q' && !(g.wavelength! > 0)) throw new RangeError(`unit ${this.unit.name} needs the wavelength`);
    if (setup.mask && setup.mask.length !== this.npix) throw new RangeError(`mask has ${setup.mask.length} pixels, frame ${this.npix}`);
    if (setup.flat && setup.flat.length !== this.npix) throw new RangeError(`flat has ${setup.flat.length} pixels, frame ${this.npix}`);
    const twoD = setup.nptAzim !== undefined;
    const arrays = native.pixelArrays({ ...g, wavelength: g.wavelength ?? 0 }, rows, cols, {
      radial: this.unit.space,
      corners: split === 'bbox',
      chi: twoD || setup.polarization !== undefined,
      solidAngle: setup.solidAngle !== false,
      ...(setup.polarization !== undefined ? { polarization: setup.polarization } : {}),
    });
    const norm = product(product(arrays.solidAngle, arrays.polarization), setup.flat);
    const scale = this.unit.scale;
    this.engine = new native.Integrator({
      pos0: arrays.radial,
      ...(split === 'bbox' ? { dpos0: arrays.radialDelta! } : {}),
      ...(twoD ? { pos1: arrays.chi!, bins1: setup.nptAzim!, ...(split === 'bbox' ? { dpos1: arrays.chiDelta! } : {}) } : {}),
      ...(setup.mask ? { mask: setup.mask } : {}),
      ...(norm ? { norm } : {}),
      bins0: setup.npt,
      ...(setup.radialRange ? { range0: [setup.radialRange[0] / scale, setup.radialRange[1] / scale] as [number, number] } : {}),
      ...(twoD && setup.azimuthRange ? { range1: [setup.azimuthRange[0] / RAD, setup.azimuthRange[1] / RAD] as [number, number] } : {}),
    });
    const axes = this.engine.axes();
    this.radial = axes.radial.centres.map((x) => x * scale);
    this.azimuthal = twoD ? axes.azimuthal.centres.map((x) => x * RAD) : undefined;
  }

  /** Entries in the pixel-to-bin map (for diagnostics and memory accounting). */
  get mapEntries(): number {
    return this.engine.axes().entries;
  }

  /** Heap bytes of the pixel-to-bin map. */
  get memoryBytes(): number {
    return this.engine.memoryBytes();
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
