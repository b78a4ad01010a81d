// beamedge integrate FILE...: azimuthal integration with pyFAI's semantics.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as Dat from '../output/dat';
import type * as PixelImage from '../calibrate/pixel-image';
import type * as Stream2 from '../decode/stream2';
import { Progress } from './progress';
import { readCbf, readCbfHeader } from '../decode/cbf';
import { FrameError } from '../decode/frame-error';
import { GeometryError, geometryFromCbfHeader, type Geometry } from '../geometry/geometry';
import { isHdf5Name, openNxmx, readNxmxFrame } from '../decode/nxmx';
import type { PixelFrame } from '../native';
import { AzimuthalIntegrator, mapSpec, type IntegrateOptions, type Integration, type IntegrationSetup } from '../integrate/azimuthal';
import { loadMapSync, pruneMaps, saveMapSync, touchMapSync } from '../maps/map-cache';
import { mapKey } from '../maps/map-key';
import { native } from '../native';
import { ReadAhead } from '../system/read-ahead';
import { INTEGRATION_OPTIONS, integrationOptions, poniOption } from './file-integrator';
import { UsageError } from './args';
import type { Command, Io } from './command';

// Loaded only when a run needs them (HDF5 frames, calibration images, -o): a
// CBF run does not pay at start-up for the CBOR decoder (cbor-x and its
// native extractor, a third of the command's load time) and the rest.
/* eslint-disable @typescript-eslint/no-require-imports */
const stream2 = () => require('../decode/stream2') as typeof Stream2;
const pixelImage = () => require('../calibrate/pixel-image') as typeof PixelImage;
const dat = () => require('../output/dat') as typeof Dat;
/* eslint-enable @typescript-eslint/no-require-imports */

const COLUMNS = ['I', 'sigma', 'sum_signal', 'sum_variance', 'sum_normalization', 'count'] as const;

// Zeros that pad an integer's digits to the 10 significant digits printed.
const PAD = Array.from({ length: 10 }, (_, n) => '0'.repeat(9 - n));

/**
 * x.toExponential(9), or String(x) when not finite. Integers below 1e10 are
 * exact in 10 digits and are written directly: sum_signal, sum_variance and
 * count are integer sums, and V8 takes its slow big-number path for them
 * (0.5 us each, a third of a 1000-bin profile's formatting).
 */
export function fmt(x: number): string {
  if (Number.isInteger(x) && x < 1e10 && x > -1e10) {
    const d = String(x < 0 ? -x : x);
    return `${x < 0 ? '-' : ''}${d[0]}.${d.slice(1)}${PAD[d.length - 1]}e+${d.length - 1}`;
  }
  return Number.isFinite(x) ? x.toExponential(9) : String(x);
}

// The radial column is the integrator's own array, the same for all its
// frames: written once, not once per frame.
const AXIS_TEXT = new WeakMap<Float64Array, string[]>();
function axisText(axis: Float64Array): string[] {
  let text = AXIS_TEXT.get(axis);
  if (!text) AXIS_TEXT.set(axis, (text = Array.from(axis, fmt)));
  return text;
}

export function formatProfile(r: Integration, geometry: Geometry, file: string, ms: number, setupMs: number): string {
  const lines = [
    `# == beamedge ${r.azimuthal ? '2D' : '1D'} azimuthal integration ==`,
    `# file: ${file}`,
    `# Distance Sample to Detector: ${geometry.dist} m`,
    `# PONI: ${geometry.poni1} m, ${geometry.poni2} m`,
    `# Rotations: ${geometry.rot1} ${geometry.rot2} ${geometry.rot3} rad`,
    `# Pixel size: ${geometry.pixel1} m x ${geometry.pixel2} m`,
    ...(geometry.wavelength ? [`# Wavelength: ${geometry.wavelength} m`] : []),
    `# Time: ${ms.toFixed(2)} ms decode + integrate${setupMs > 0 ? `, ${setupMs.toFixed(0)} ms pixel-to-bin map set-up (once per geometry)` : ''}`,
  ];
  const { intensity: I, sigma, signal, variance, normalization, count } = r;
  const nr = r.radial.length;
  // One string built by appending (no per-line arrays): a 1000-bin profile per frame.
  const radial = axisText(r.radial);
  const row = (k: number) => `${fmt(I[k]!)} ${fmt(sigma[k]!)} ${fmt(signal[k]!)} ${fmt(variance[k]!)} ${fmt(normalization[k]!)} ${fmt(count[k]!)}\n`;
  let text: string;
  if (r.azimuthal) {
    text = lines.join('\n') + `\n# ${r.unit} chi_deg ${COLUMNS.join(' ')}\n`;
    for (let a = 0; a < r.azimuthal.length; a++) {
      const chi = fmt(r.azimuthal[a]!);
      for (let i = 0; i < nr; i++) text += `${radial[i]!} ${chi} ${row(a * nr + i)}`;
    }
  } else {
    text = lines.join('\n') + `\n# ${r.unit} ${COLUMNS.join(' ')}\n`;
    for (let i = 0; i < nr; i++) text += `${radial[i]!} ${row(i)}`;
  }
  return text;
}

function profileJson(r: Integration, file: string, ms: number, setupMs: number): string {
  const arr = (a: Float64Array) => Array.from(a);
  return JSON.stringify({
    file,
    unit: r.unit,
    timeMs: ms,
    setupMs,
    radial: arr(r.radial),
    ...(r.azimuthal ? { azimuthal: arr(r.azimuthal), shape: [r.azimuthal.length, r.radial.length] } : {}),
    intensity: arr(r.intensity),
    sigma: arr(r.sigma),
    sum_signal: arr(r.signal),
    sum_variance: arr(r.variance),
    sum_normalization: arr(r.normalization),
    count: arr(r.count),
  });
}

/** DIR/NAME.dat per input, as pyFAI-integrate names them; two inputs that would share a name are refused before any work. */
function datNames(files: string[], dir: string): string[] {
  const names = files.map((f) => path.join(dir, path.basename(f).replace(/\.(cbf|h5|nxs|img|edf|tiff?)$/i, '') + '.dat'));
  const seen = new Map<string, string>();
  names.forEach((n, i) => {
    const other = seen.get(n);
    if (other !== undefined && other !== files[i]) throw new UsageError(`${other} and ${files[i]} would both be written to ${n}`);
    seen.set(n, files[i]!);
  });
  return names;
}

interface Input {
  /** What the output names as its source: the file, or FILE#frame. */
  label: string;
  /** HDF5: the frame's image id (the .dat name gets it). */
  frame?: number;
  /** The decoded frame (decoded when first asked: a CBF after its geometry's first frame need not be). */
  pixels(): PixelFrame;
  /** A CBF's bytes, for the fused decode+integrate pass; valid until the next input is read. */
  cbf?: Uint8Array;
  shape: [number, number];
  headerGeometry: () => Geometry;
  detectorMask?: Uint32Array;
  detectorMaskName?: string;
  /** Identifies the detector mask for the integrator cache. */
  maskKey: string;
  maxValid?: number;
}

/** The frames of one input: a CBF is one; an EIGER/NXmx master or data file gives each of its frames in order. */
async function* inputsOf(file: string, progress: Progress | undefined, read: () => Promise<Uint8Array>): AsyncGenerator<Input> {
  if (!isHdf5Name(file)) {
    const buf = await read();
    // The header only: the pixels are decoded when the frame makes a new
    // map's static mask, else decoded and integrated in one pass.
    const { shape, header } = readCbfHeader(buf, file);
    let pixels: PixelFrame | undefined;
    yield {
      label: path.resolve(file),
      pixels: () => (pixels ??= readCbf(buf, { source: file }).pixels),
      cbf: buf,
      shape,
      headerGeometry: () => geometryFromCbfHeader(header, file),
      maskKey: '',
    };
    return;
  }
  const { decodeImage } = stream2();
  const s = await openNxmx(file);
  // The bar counts frames from here on: this input is worth its frames, not one.
  progress?.grow(s.frames.length - 1);
  const headerGeometry = () => {
    if (!s.geometry) throw new GeometryError(`${file}: the master has no beam centre, distance and pixel size: geometry needs a PONI file`);
    return s.geometry;
  };
  for (const fr of s.frames) {
    const pixels = decodeImage(readNxmxFrame(s, fr));
    yield {
      label: `${path.resolve(file)}#${fr.id}`,
      frame: fr.id,
      pixels: () => pixels,
      shape: s.shape,
      headerGeometry,
      ...(s.mask ? { detectorMask: s.mask, detectorMaskName: 'NXmx pixel_mask' } : {}),
      maskKey: s.path,
      ...(s.maxValid !== undefined ? { maxValid: s.maxValid } : {}),
    };
  }
}

interface Calibration {
  mask?: Uint8Array;
  dark?: Float32Array;
  flat?: Float32Array;
}

function loadCalibration(opts: import('./args').Options, shape: [number, number]): Calibration {
  const cal: Calibration = {};
  const maskFile = opts.string('mask');
  if (!maskFile && !opts.string('dark') && !opts.string('flat')) return cal;
  const { expectShape, readPixelImage } = pixelImage();
  if (maskFile) {
    const img = readPixelImage(maskFile);
    expectShape(img, shape, `mask ${maskFile}`);
    cal.mask = Uint8Array.from(img.data, (v) => (v !== 0 ? 1 : 0));
  }
  for (const key of ['dark', 'flat'] as const) {
    const file = opts.string(key);
    if (!file) continue;
    const img = readPixelImage(file);
    expectShape(img, shape, `${key} ${file}`);
    cal[key] = Float32Array.from(img.data);
  }
  return cal;
}

/**
 * The mask file plus the detector's mask plus the frame's negative pixels.
 * A function of its own: a loop over 6M pixels inside run() (a long async
 * function) ran unoptimised, 30 ms.
 */
function staticMask(pixels: PixelFrame, file: Uint8Array | undefined, detector: Uint32Array | undefined): Uint8Array {
  const n = pixels.length;
  const mask = file ? file.slice() : new Uint8Array(n);
  if (detector) for (let i = 0; i < n; i++) if (detector[i]) mask[i] = 1;
  for (let i = 0; i < n; i++) if (pixels[i]! < 0) mask[i] = 1;
  return mask;
}

/** integrator.integrateCbf, its errors naming the file as readCbf's do. */
function integrateCbf(integrator: AzimuthalIntegrator, cbf: Uint8Array, options: IntegrateOptions, source: string): Integration {
  try {
    return integrator.integrateCbf(cbf, options);
  } catch (err) {
    throw new FrameError((err as Error).message, source);
  }
}

function defaultMapCache(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'beamedge', 'maps');
}

/**
 * The map of `setup` from the on-disk cache (checked), else built on all
 * cores and written there, so the next run starts at full speed. A damaged
 * file is said, removed and replaced; a cache that cannot be written only
 * costs the next run the build.
 */
function cachedMap(setup: IntegrationSetup, dir: string | null, io: Io, onBuild: () => void): Uint8Array {
  const spec = mapSpec(setup, os.availableParallelism());
  if (!dir) return native.buildMap(spec);
  const key = mapKey(spec);
  const hit = loadMapSync(dir, key);
  if (hit && 'blob' in hit) {
    touchMapSync(dir, key);
    return hit.blob;
  }
  if (hit) io.err(`beamedge integrate: cached map ${key.slice(0, 12)} in ${dir} failed its check (${hit.problem}); building it again\n`);
  const blob = native.buildMap(spec);
  onBuild();
  try {
    saveMapSync(dir, key, blob);
  } catch (e) {
    io.err(`beamedge integrate: map not cached in ${dir}: ${(e as Error).message}\n`);
  }
  return blob;
}

export const integrateCommand: Command = {
  name: 'integrate',
  summary: 'azimuthal integration (1D or 2D) with pyFAI-compatible geometry and output',
  usage:
    'beamedge integrate FILE... (FILE: CBF, or an EIGER/NXmx master or data file .h5: each frame) (--poni P | --from-header) --npt N [--npt-azim M] --unit U [--split no|bbox] ' +
    '[--mask FILE] [--dark FILE] [--flat FILE] [--polarization F] [--no-solid-angle] [--range LO HI] [--json | -o DIR] [--map-cache DIR | --no-map-cache]',
  options: {
    ...INTEGRATION_OPTIONS,
    'from-header': { kind: 'flag', help: 'take the geometry from the file: the CBF header (Beam_xy, Detector_distance, Pixel_size) or the NXmx master (beam centre, distance, pixel size, wavelength)' },
    'npt-azim': { kind: 'number', arg: 'M', integer: true, min: 1, help: 'number of azimuthal bins: 2D integration' },
    split: { kind: 'string', arg: 'S', choices: ['no', 'bbox'], help: 'pixel splitting, default bbox as in pyFAI' },
    mask: { kind: 'string', arg: 'FILE', help: 'mask image (CBF or .npy, non-zero = masked); negative pixels are always masked' },
    dark: { kind: 'string', arg: 'FILE', help: 'dark image subtracted from each frame (CBF or .npy)' },
    flat: { kind: 'string', arg: 'FILE', help: 'flat-field image the normalisation is multiplied by (CBF or .npy)' },
    dummy: { kind: 'number', arg: 'V', help: 'pixel value to ignore' },
    'delta-dummy': { kind: 'number', arg: 'D', min: 0, help: 'tolerance around --dummy' },
    'azimuth-range': { kind: 'pair', arg: 'LO HI', help: 'azimuthal range in degrees (2D)' },
    json: { kind: 'flag', help: 'print one JSON object per file instead of tables' },
    output: { kind: 'string', short: 'o', arg: 'DIR', help: "write one pyFAI-style NAME.dat per input into DIR (as pyFAI-integrate does) instead of printing; a progress bar on a terminal" },
    'map-cache': { kind: 'string', arg: 'DIR', help: 'on-disk cache of pixel-to-bin maps (default $XDG_CACHE_HOME/beamedge/maps or ~/.cache/beamedge/maps)' },
    'no-map-cache': { kind: 'flag', help: 'build the map without reading or writing the cache' },
    'map-cache-mb': { kind: 'number', arg: 'MB', min: 1, help: 'size the cache is kept within, oldest maps removed first (default 4096)' },
  },
  async run(opts, io: Io) {
    const files = opts.positional;
    if (files.length === 0) throw new UsageError('integrate needs at least one FILE');
    const { npt, unit, polarization: pol } = integrationOptions(opts);
    if (opts.has('delta-dummy') && !opts.has('dummy')) throw new UsageError('--delta-dummy needs --dummy');
    const outDir = opts.string('output');
    if (outDir !== undefined && opts.flag('json')) throw new UsageError('give at most one of --json and -o/--output');
    const outNames = outDir !== undefined ? datNames(files, outDir) : undefined;
    if (outDir !== undefined) mkdirSync(outDir, { recursive: true });
    const progress = outDir !== undefined ? new Progress('integrate', files.length) : undefined;
    let written = 0;
    const poni = poniOption(opts);

    const cacheDir = opts.flag('no-map-cache') ? null : (opts.string('map-cache') ?? defaultMapCache());
    let built = false;
    let integrator: AzimuthalIntegrator | undefined;
    let integratorKey = '';
    let calibration: Calibration | undefined;
    let failures = 0;
    // CBF files are read ahead; NXmx masters and data files by h5wasm and the chunk reader.
    const reader = new ReadAhead(files, (i) => !isHdf5Name(files[i]!));
    for (const [index, file] of files.entries()) {
      try {
        for await (const input of inputsOf(file, progress, () => reader.get(index))) {
          let t0 = process.hrtime.bigint();
          let setupMs = 0;
          const geometry = poni ?? input.headerGeometry();
          calibration ??= loadCalibration(opts, input.shape);
          // One pixel-to-bin map serves every frame with the same geometry, shape and detector mask.
          const key = JSON.stringify([geometry, input.shape, input.maskKey]);
          let pixels: PixelFrame | undefined;
          if (!integrator || key !== integratorKey) {
            pixels = input.pixels();
            // The static mask is the mask file plus the detector's: an NXmx
            // pixel_mask, or a CBF's markers (negative pixels) in this frame,
            // as pyFAI users pass `data < 0`.
            const mask = staticMask(pixels, calibration.mask, input.detectorMask);
            const setup: IntegrationSetup = {
              geometry,
              shape: input.shape,
              npt,
              unit,
              split: (opts.string('split') as 'no' | 'bbox' | undefined) ?? 'bbox',
              mask,
              solidAngle: !opts.flag('no-solid-angle'),
              ...(opts.has('npt-azim') ? { nptAzim: opts.number('npt-azim')! } : {}),
              ...(pol !== undefined ? { polarization: pol } : {}),
              ...(calibration.flat ? { flat: calibration.flat } : {}),
              ...(opts.has('range') ? { radialRange: opts.pair('range')! } : {}),
              ...(opts.has('azimuth-range') ? { azimuthRange: opts.pair('azimuth-range')! } : {}),
            };
            const s0 = process.hrtime.bigint();
            integrator = new AzimuthalIntegrator(setup, cachedMap(setup, cacheDir, io, () => (built = true)));
            integratorKey = key;
            setupMs = Number(process.hrtime.bigint() - s0) / 1e6;
            t0 += process.hrtime.bigint() - s0;
          }
          const frameOptions = {
            ...(calibration.dark ? { dark: calibration.dark } : {}),
            ...(opts.has('dummy') ? { dummy: opts.number('dummy')!, deltaDummy: opts.number('delta-dummy') ?? 0 } : {}),
            ...(input.maxValid !== undefined ? { maxValid: input.maxValid } : {}),
          };
          // A CBF not decoded for a mask is decoded tile by tile into the
          // sums (the same result bit for bit): no 24 MB frame to allocate,
          // fault in and read back.
          const result = pixels === undefined && input.cbf ? integrateCbf(integrator, input.cbf, frameOptions, file) : integrator.integrate(pixels ?? input.pixels(), frameOptions);
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          if (outNames) {
            const setup = integrator.setup;
            const base = outNames[index]!;
            writeFileSync(
              input.frame === undefined ? base : base.replace(/\.dat$/, `_${String(input.frame).padStart(6, '0')}.dat`),
              dat().formatDat(
                { unit: result.unit, radial: result.radial, azimuthal: result.azimuthal, intensity: result.intensity, sigma: result.sigma },
                {
                  geometry,
                  detector: geometry.detector,
                  mask: [opts.string('mask'), input.detectorMaskName].filter((x) => x).join(' + ') || 'none',
                  dark: opts.string('dark') ?? null,
                  flat: opts.string('flat') ?? null,
                  polarization: pol ?? null,
                  solidAngle: setup.solidAngle !== false,
                  split: setup.split ?? 'no',
                  radialRange: setup.radialRange ?? null,
                  source: input.label,
                  extra: [
                    ...(opts.has('dummy') ? [`Dummy: ${opts.number('dummy')} +/- ${opts.number('delta-dummy') ?? 0}`] : []),
                    ...(input.maxValid !== undefined ? [`Saturation: pixels above ${input.maxValid} excluded`] : []),
                    ...(setup.azimuthRange ? [`Azimuthal range: ${setup.azimuthRange[0]} ${setup.azimuthRange[1]} deg`] : []),
                    `Bins: ${result.radial.length}${result.azimuthal ? ` x ${result.azimuthal.length} azimuthal` : ''}`,
                  ],
                },
              ),
            );
            written++;
          } else io.out(opts.flag('json') ? profileJson(result, input.label, ms, setupMs) + '\n' : formatProfile(result, geometry, input.label, ms, setupMs));
          progress?.advance();
        }
      } catch (err) {
        failures++;
        progress?.finish();
        io.err(`beamedge integrate: ${(err as Error).message}\n`);
        progress?.advance();
      }
    }
    progress?.finish();
    if (cacheDir && built) await pruneMaps(cacheDir, (opts.number('map-cache-mb') ?? 4096) * 1048576).catch(() => []);
    if (outDir !== undefined) io.err(`beamedge integrate: ${written} .dat file(s) written to ${outDir}${failures ? `, ${failures} input(s) failed` : ''}\n`);
    return failures ? 1 : 0;
  },
};
