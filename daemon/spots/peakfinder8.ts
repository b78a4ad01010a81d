// peakfinder8 (Cheetah / OM / CrystFEL) on one frame, through the native kernel
// (native/src/peakfinder8.cc), which reproduces OM's src/cython/peakfinder8.cpp.
import { native, type NativePeakfinder8, type NativePeakfinder8Out, type NativePeakfinder8Params } from '../native';

export type Peakfinder8Params = NativePeakfinder8Params;

/**
 * Peaks of one frame (centroids in pixel-index coordinates; intensities with
 * the local background subtracted): views into buffers the finder reuses,
 * valid until its next find(). `found` may exceed the stored count
 * (maxNumPeaks), as OM counts them.
 */
export type Peakfinder8Peaks = NativePeakfinder8Out & { found: number };

export interface BeamCentre {
  /** Beam centre in pixel-index coordinates: fs = column, ss = row (pixel i spans i - 0.5 .. i + 0.5). */
  fs: number;
  ss: number;
}

/**
 * Distance of every pixel from the beam centre, in pixels, in pixel-index
 * coordinates (OM's radius map for one panel): r = hypot(col - fs, row - ss).
 */
export function radiusMap(width: number, height: number, centre: BeamCentre): Float32Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new RangeError('width and height must be positive integers');
  if (!Number.isFinite(centre.fs) || !Number.isFinite(centre.ss)) throw new RangeError('centre must be finite');
  const r = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const dy = y - centre.ss;
    for (let x = 0; x < width; x++) {
      const dx = x - centre.fs;
      r[y * width + x] = Math.sqrt(dx * dx + dy * dy);
    }
  }
  return r;
}

/** The parts of a pyFAI PONI geometry radiusMapFromPoni needs (metres and radians). */
export interface PoniLike {
  poni1: number;
  poni2: number;
  pixel1: number;
  pixel2: number;
  rot1?: number;
  rot2?: number;
  rot3?: number;
}

/**
 * Beam centre of an untilted detector from a pyFAI geometry: the PONI is the
 * foot of the normal from the sample, so with rot1 = rot2 = 0 it is where the
 * direct beam lands. pyFAI puts pixel i's centre at (i + 0.5) * pixel.
 */
export function beamCentreFromPoni(g: PoniLike): BeamCentre {
  if ((g.rot1 ?? 0) !== 0 || (g.rot2 ?? 0) !== 0)
    throw new RangeError('beamCentreFromPoni: tilted detector (rot1 or rot2 non-zero); build the radius map from the geometry');
  if (!(g.pixel1 > 0) || !(g.pixel2 > 0)) throw new RangeError('pixel sizes must be positive');
  return { fs: g.poni2 / g.pixel2 - 0.5, ss: g.poni1 / g.pixel1 - 0.5 };
}

/** radiusMap around the PONI-projected beam centre of an untilted detector (rot3 only turns the frame about the beam). */
export function radiusMapFromPoni(width: number, height: number, g: PoniLike): Float32Array {
  return radiusMap(width, height, beamCentreFromPoni(g));
}

/** Output arrays for up to `m` peaks, filled by the native find(). */
export function peakBuffers(m: number): NativePeakfinder8Out {
  return {
    fs: new Float32Array(m),
    ss: new Float32Array(m),
    intensity: new Float32Array(m),
    maxIntensity: new Float32Array(m),
    sigma: new Float32Array(m),
    snr: new Float32Array(m),
    pixels: new Int32Array(m),
  };
}

export class Peakfinder8 {
  readonly width: number;
  readonly height: number;
  readonly params: Readonly<Peakfinder8Params>;
  private readonly impl: NativePeakfinder8;
  private readonly out: NativePeakfinder8Out;

  /** mask: non-zero = masked (null: none). Pixels outside minRes..maxRes are masked as well. */
  constructor(width: number, height: number, radius: Float32Array, mask: Uint8Array | null, params: Peakfinder8Params) {
    this.impl = new native.Peakfinder8(width, height, radius, mask, params);
    this.width = width;
    this.height = height;
    this.params = { ...params };
    this.out = peakBuffers(params.maxNumPeaks);
  }

  find(frame: Float32Array | Int32Array): Peakfinder8Peaks {
    const found = this.impl.find(frame, this.out);
    const n = Math.min(found, this.params.maxNumPeaks);
    const o = this.out;
    return {
      found,
      fs: o.fs.subarray(0, n),
      ss: o.ss.subarray(0, n),
      intensity: o.intensity.subarray(0, n),
      maxIntensity: o.maxIntensity.subarray(0, n),
      sigma: o.sigma.subarray(0, n),
      snr: o.snr.subarray(0, n),
      pixels: o.pixels.subarray(0, n),
    };
  }

  memoryBytes(): number {
    return this.impl.memoryBytes();
  }
}
