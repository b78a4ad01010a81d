// Typed view of the C++ addon (native/src/addon.cc). Everything else imports from here.
import path from 'node:path';

export interface CbfBinaryInfo {
  sectionOffset: number;
  dataOffset: number;
  binarySize: number;
  elementType: string;
  dtype: 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32';
  conversions: string;
  md5: string | null;
  elements: number;
  fastest: number | null;
  second: number | null;
  third: number | null;
  padding: number | null;
}

/** Detector geometry as the kernels take it (pyFAI's PONI convention; see geometry/geometry.ts). */
export interface NativeGeometry {
  dist: number;
  poni1: number;
  poni2: number;
  rot1: number;
  rot2: number;
  rot3: number;
  pixel1: number;
  pixel2: number;
  wavelength: number;
}

export interface PixelArrayRequest {
  radial: 'q' | '2th' | 'r';
  corners?: boolean;
  chi?: boolean;
  solidAngle?: boolean;
  polarization?: number;
}

export interface PixelArrays {
  radial: Float64Array;
  radialDelta?: Float64Array;
  chi?: Float64Array;
  chiDelta?: Float64Array;
  solidAngle?: Float32Array;
  polarization?: Float32Array;
}

export interface IntegratorOptions {
  pos0: Float64Array;
  dpos0?: Float64Array;
  pos1?: Float64Array;
  dpos1?: Float64Array;
  mask?: Uint8Array;
  norm?: Float32Array;
  bins0: number;
  bins1?: number;
  range0?: [number, number];
  range1?: [number, number];
  allowNegative?: boolean;
}

export interface FrameOptions {
  dark?: Float32Array;
  /** Count mapped, valid pixels whose (dark-subtracted) value exceeds this: the lit-pixel veto. */
  litThreshold?: number;
  /** Pixels above this are excluded and counted (saturated, or the detector's flag value). */
  maxValid?: number;
  /** Float frames only: negative values are signal (calibrated photons or keV), only NaN excludes a pixel. */
  negativeValid?: boolean;
  dummy?: number;
  deltaDummy?: number;
  empty?: number;
}

export interface NativeIntegration {
  intensity: Float64Array;
  sigma: Float64Array;
  signal: Float64Array;
  variance: Float64Array;
  normalization: Float64Array;
  count: Float64Array;
  /** Pixels above FrameOptions.litThreshold (0 when not asked). */
  lit: number;
  /** Mapped pixels excluded by their value in this frame (markers, dummy, above maxValid). */
  excluded: number;
}

export interface NativeAxis {
  centres: Float64Array;
  min: number;
  max: number;
  delta: number;
}

export type PixelFrame = Int32Array | Uint32Array | Uint16Array | Uint8Array | Float32Array;

/** What a pixel-to-bin map depends on: the native map builder's input (daemon/integrate/map-spec.ts makes it). */
export interface NativeMapSpec {
  geometry: NativeGeometry;
  rows: number;
  cols: number;
  radial: 'q' | '2th' | 'r';
  /** bbox splitting */
  split: boolean;
  twoD: boolean;
  solidAngle: boolean;
  polarization?: number;
  mask?: Uint8Array;
  flat?: Float32Array;
  bins0: number;
  bins1?: number;
  /** In pyFAI's internal units (radial unscaled, azimuth in rad). */
  range0?: [number, number];
  range1?: [number, number];
  /** Threads for the per-pixel geometry (the result does not depend on it). */
  threads?: number;
  /** Every pixel through libm (the fast path must give the same blob, byte for byte). */
  reference?: boolean;
}

export interface NativeIntegrator {
  integrate(frame: PixelFrame, options?: FrameOptions): NativeIntegration;
  integrateCbf(cbf: Uint8Array, options?: FrameOptions): NativeIntegration;
  /**
   * JUNGFRAU raw frame -> conversion -> integration in one pass, a tile at a time
   * (native/src/jungfrau_integrate.h): same result, counts and tracked pedestal as
   * jungfrauConvert followed by integrate(out, { negativeValid: true }), bit for bit.
   */
  integrateJungfrau(raw: Uint16Array, cal: JungfrauCalibrationArrays, options?: JungfrauIntegrateOptions): JungfrauIntegration;
  axes(): { radial: NativeAxis; azimuthal: NativeAxis; entries: number; mapBytes: number };
  /** Frees the map now; the integrator cannot be used afterwards. */
  dispose(): void;
  memoryBytes(): number;
  /** A copy of the map blob (tests read its layout). */
  mapBlob(): Buffer;
}

/** Per-frame counts of a JUNGFRAU conversion: every pixel is in exactly one of the first seven. */
export interface JungfrauCounts {
  /** Converted pixels per gain stage. */
  g0: number;
  g1: number;
  g2: number;
  /** 0xC000: G2 at ADC 0. */
  saturated: number;
  /** Gain code 10. */
  invalidCode: number;
  /** The word 0xFFFF. */
  errorWord: number;
  /** Excluded by mask & excludeBits[gain], or by a NaN pedestal / factor in that gain. */
  masked: number;
  /** Converted pixels above litThreshold (0 when not asked). */
  lit: number;
}

/** G0 pedestal tracking in the conversion pass (defaults: Jungfraujoch's, see native/src/jungfrau.h). */
export interface JungfrauTrack {
  /** Tracked G0 pedestal, updated in place; not the pedestal applied in this pass. */
  pedestal: Float32Array;
  /** G0 pedestal rms. */
  rms: Float32Array;
  /** A G0 pixel moves the pedestal only when |ADC - tracked| < k * rms (default 1). */
  k?: number;
  /** tracked += (ADC - tracked) / window (default 128 frames). */
  window?: number;
}

export interface JungfrauConvertOptions {
  litThreshold?: number;
  track?: JungfrauTrack;
  /** Force the portable kernel (tests compare it with the AVX2 one). */
  kernel?: 'scalar';
}

/** The calibration arguments of jungfrauConvert, as one object. */
export interface JungfrauCalibrationArrays {
  /** [3][n] pedestal per gain stage, ADU. */
  pedestal: Float32Array;
  /** [3][n] conversion factors (JungfrauConverter.factorsFromGain). */
  factor: Float32Array;
  mask: Uint32Array | null;
  /** [3] mask bits that exclude a pixel in each gain. */
  excludeBits: Uint32Array;
}

export interface JungfrauIntegrateOptions extends JungfrauConvertOptions {
  /**
   * Lit-pixel veto: NativeIntegration.lit counts mapped, converted pixels above
   * it (as integrate() does); jungfrau.lit counts every converted pixel above it.
   */
  litThreshold?: number;
  /** Also write the converted frame here (n floats, excluded pixels NaN). */
  out?: Float32Array;
  /** Converted pixels above this are excluded from the integration (default: none). */
  maxValid?: number;
  /** Value of empty bins (default 0). */
  empty?: number;
  /** Pixels per tile (default 131072, see native/src/jungfrau_integrate.h); for tests and tuning. */
  tilePixels?: number;
}

export interface JungfrauIntegration extends NativeIntegration {
  jungfrau: JungfrauCounts;
}

/** Dark-run accumulator for JUNGFRAU raw frames (native/src/pedestal.h). */
export interface NativePedestalAccumulator {
  /** Adds one frame of raw uint16 words (exactly `pixels` of them). */
  add(frame: Uint16Array): void;
  frames(): number;
  /** [3][pixels] frames per gain stage (a copy). */
  counts(): Uint32Array;
  /** Fills [3][pixels] mean ADC and rms; NaN where a pixel never was in that gain. */
  stats(mean: Float32Array, rms: Float32Array): void;
  reset(): void;
}

/** Parameters of native DispersionSpotFinder (DIALS 3.12 names in daemon/spots/dispersion.ts). */
export interface NativeDispersionParams {
  kernelX?: number;
  kernelY?: number;
  sigmaBackground?: number;
  sigmaStrong?: number;
  globalThreshold?: number;
  minLocal?: number;
  /** null/absent: DIALS's gain = None formulas. */
  gain?: number | null;
  extended?: boolean;
}

export interface NativeDispersionSpot {
  /** Intensity-weighted centroid, pixel-index coordinates (column, row of the pixel centre). */
  fs: number;
  ss: number;
  intensity: number;
  pixels: number;
  peakFs: number;
  peakSs: number;
}

export interface NativeDispersionSpotFinder {
  /** Strong-pixel mask into out (1 = strong); mask non-zero = invalid; returns the strong count. */
  threshold(image: Int32Array | Float32Array, mask: Uint8Array | null, out: Uint8Array): number;
  /** The same through DIALS's summed-area-table order (slow; tests). */
  thresholdReference(image: Int32Array | Float32Array, mask: Uint8Array | null, out: Uint8Array): number;
  /** 'integer' or 'reference': the path the last threshold call took. */
  path(): string;
  spots(
    image: Int32Array | Float32Array,
    strong: Uint8Array,
    filter?: { minSpotSize?: number; maxSpotSize?: number; maxSeparation?: number },
  ): NativeDispersionSpot[];
}
// --- spots: peakfinder8 ---
/** Parameters of the native peakfinder8 (OM's names in camelCase; radii in pixels). */
export interface NativePeakfinder8Params {
  adcThresh: number;
  minSnr: number;
  minPixCount: number;
  maxPixCount: number;
  localBgRadius: number;
  minRes: number;
  maxRes: number;
  maxNumPeaks: number;
  /** ASIC size along fs / ss (0 or absent: the whole frame is one ASIC). */
  asicNx?: number;
  asicNy?: number;
}

/** Output columns, each at least maxNumPeaks long; find() fills the first min(found, maxNumPeaks). */
export interface NativePeakfinder8Out {
  fs: Float32Array;
  ss: Float32Array;
  intensity: Float32Array;
  maxIntensity: Float32Array;
  sigma: Float32Array;
  snr: Float32Array;
  pixels: Int32Array;
}

export interface NativePeakfinder8 {
  /** Returns the number of peaks found (OM's count, which may exceed maxNumPeaks). */
  find(frame: Float32Array | Int32Array, out: NativePeakfinder8Out): number;
  bins(): number;
  memoryBytes(): number;
}
// --- end spots: peakfinder8 ---

// --- correlate: angular cross-correlations ---
/** Half spectra [pairs][npt_azim/2 + 1], real and imaginary parts. */
export interface NativeSpectra {
  re: Float64Array;
  im: Float64Array;
}

export interface NativeCorrelator {
  /** One polar image: intensity and count [npt_azim][npt], as the 2D integration gives them. */
  add(intensity: Float64Array, count: Float64Array): void;
  frames(): number;
  /** S_n[i][j] of each pair (i, j) (flat [2P]); mre/mim when masks went through the batched product. */
  spectra(pairs: Int32Array): NativeSpectra & { mre?: Float64Array; mim?: Float64Array };
  /** The distinct masks ([npt][npt_azim], 1 = valid) and how many frames had each. */
  masks(): { mask: Uint8Array; count: number }[];
  memoryBytes(): number;
}
// --- end correlate ---

interface Addon {
  cbfLocate(buf: Uint8Array): CbfBinaryInfo;
  cbfDecode(buf: Uint8Array, out?: Int32Array): { binary: CbfBinaryInfo; pixels: Int32Array };
  byteOffsetDecode(bytes: Uint8Array, count: number, out?: Int32Array): Int32Array;
  byteOffsetEncode(values: Int32Array): Buffer;
  pixelArrays(g: NativeGeometry, rows: number, cols: number, req: PixelArrayRequest): PixelArrays;
  Integrator: new (options: IntegratorOptions | { map: Uint8Array }) => NativeIntegrator;
  /** The map blob (header, sums, per-pixel bins or split entries), built on the calling thread. */
  buildMap(spec: NativeMapSpec): Buffer;
  /** A cached map file read whole, on huge pages (throws with the system's reason). */
  readMapFile(path: string): Buffer;
  /** Bytes of the map when it can be built in place (no splitting), else 0. */
  mapBytes(spec: NativeMapSpec): number;
  /**
   * Same, on a libuv thread; ms: the build's own time. With a target
   * (zero-filled, mapBytes(spec) long, on a SharedArrayBuffer) the map is
   * built straight into it and blob is null.
   */
  buildMapAsync(spec: NativeMapSpec, target: Uint8Array | null, cb: (err: Error | null, blob: Buffer | null, ms: number) => void): void;
  /** '' when the blob is a well-formed map (and its checksum matches, when asked), else what is wrong. */
  checkMap(blob: Uint8Array, checksum?: boolean): string;
  /** The per-pixel normalisation a map stores, decoded (empty when it has none); throws on a damaged map. */
  mapNorm(blob: Uint8Array): Float32Array;
  /** Reads a cache file into target (exactly its size) and verifies it, off the main thread; '' when usable. */
  loadMapAsync(path: string, target: Uint8Array, cb: (problem: string) => void): void;
  kernels: { byteOffset: string; jungfrau: string; peakfinder8: string; correlate: string };
  Correlator: new (nq: number, nphi: number, batch: number) => NativeCorrelator;
  /** First n/2 + 1 harmonics of each real row ([rows][n]). */
  fxsRfft(rows: Float64Array, n: number): NativeSpectra;
  /** numpy's irfft of each half spectrum, to rows of n. */
  fxsIrfft(re: Float64Array, im: Float64Array, n: number): Float64Array;
  /** sum over masks of count x conj(W_i) W_j per pair; masks [S][nq][nphi]. */
  fxsMaskSpectra(masks: Uint8Array, counts: Float64Array, nq: number, nphi: number, pairs: Int32Array): NativeSpectra;
  /** pedestal and factor are [3][n] (one image per gain); excluded pixels are written as NaN. */
  jungfrauConvert(
    raw: Uint16Array,
    pedestal: Float32Array,
    factor: Float32Array,
    mask: Uint32Array | null,
    excludeBits: Uint32Array,
    out: Float32Array,
    options?: JungfrauConvertOptions,
  ): JungfrauCounts;
  sdNotify(state: string): boolean;
  /** The live page's preview: per binning x binning block, the largest pixel in [minValid, maxValid] and not masked (-Infinity: none), into out (ceil(rows/binning) x ceil(cols/binning)). */
  previewBlockMax(frame: PixelFrame, rows: number, cols: number, binning: number, mask: Uint8Array | null, minValid: number, maxValid: number, out: Float32Array): void;
  bslz4Decode<T extends ArrayBufferView>(src: Uint8Array, out: T, elemSize: number): T;
  lz4Decode<T extends ArrayBufferView>(src: Uint8Array, out: T, framed: boolean): T;
  bslz4Encode(src: ArrayBufferView, elemSize: number): Buffer;
  lz4BlockEncode(src: ArrayBufferView): Buffer;
  PedestalAccumulator: new (pixels: number) => NativePedestalAccumulator;
  DispersionSpotFinder: new (width: number, height: number, params: NativeDispersionParams) => NativeDispersionSpotFinder;
  Peakfinder8: new (
    width: number,
    height: number,
    radius: Float32Array,
    mask: Uint8Array | null,
    params: NativePeakfinder8Params,
  ) => NativePeakfinder8;
}

// dist/daemon/native.js -> <root>/build/Release/beamedge.node
const root = path.resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native: Addon = require(path.join(root, 'build', 'Release', 'beamedge.node'));
