// beamedge integrate FILE...: azimuthal integration with pyFAI's semantics.
import os from 'node:os';
import path from 'node:path';
import { expectShape, readPixelImage } from '../calibrate/pixel-image';
import { readCbf, readCbfHeader } from '../decode/cbf';
import { FrameError } from '../decode/frame-error';
import type { Geometry } from '../geometry/geometry';
import { mapSpec, type Integration, type IntegrationSetup } from '../integrate/azimuthal';
import { loadMapSync, pruneMaps, saveMapSync, touchMapSync } from '../maps/map-cache';
import { mapKey } from '../maps/map-key';
import { native } from '../native';
import { UsageError } from './args';
import { FileIntegrator, INTEGRATION_OPTIONS } from './file-integrator';
import type { Command, Io } from './command';
import { readNamedFile } from '../system/read-file';

const COLUMNS = ['I', 'sigma', 'sum_signal', 'sum_variance', 'sum_normalization', 'count'] as const;

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(9) : String(x);
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
  const values = [r.intensity, r.sigma, r.signal, r.variance, r.normalization, r.count];
  const nr = r.radial.length;
  if (r.azimuthal) {
    lines.push(`# ${r.unit} chi_deg ${COLUMNS.join(' ')}`);
    for (let a = 0; a < r.azimuthal.length; a++)
      for (let i = 0; i < nr; i++) {
        const k = a * nr + i;
        lines.push([r.radial[i]!, r.azimuthal[a]!, ...values.map((v) => v[k]!)].map(fmt).join(' '));
      }
  } else {
    lines.push(`# ${r.unit} ${COLUMNS.join(' ')}`);
    for (let i = 0; i < nr; i++) lines.push([r.radial[i]!, ...values.map((v) => v[i]!)].map(fmt).join(' '));
  }
  return lines.join('\n') + '\n';
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

interface Calibration {
  mask?: Uint8Array;
  dark?: Float32Array;
  flat?: Float32Array;
}

function loadCalibration(opts: import('./args').Options, shape: [number, number]): Calibration {
  const cal: Calibration = {};
  const maskFile = opts.string('mask');
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
    'beamedge integrate FILE... (--poni P | --from-header) --npt N [--npt-azim M] --unit U [--split no|bbox] ' +
    '[--mask FILE] [--dark FILE] [--flat FILE] [--polarization F] [--no-solid-angle] [--range LO HI] [--json] [--map-cache DIR | --no-map-cache]',
  options: {
    ...INTEGRATION_OPTIONS,
    'npt-azim': { kind: 'number', arg: 'M', integer: true, min: 1, help: 'number of azimuthal bins: 2D integration' },
    split: { kind: 'string', arg: 'S', choices: ['no', 'bbox'], help: 'pixel splitting, default bbox as in pyFAI' },
    mask: { kind: 'string', arg: 'FILE', help: 'mask image (CBF or .npy, non-zero = masked); negative pixels are always masked' },
    dark: { kind: 'string', arg: 'FILE', help: 'dark image subtracted from each frame (CBF or .npy)' },
    flat: { kind: 'string', arg: 'FILE', help: 'flat-field image the normalisation is multiplied by (CBF or .npy)' },
    dummy: { kind: 'number', arg: 'V', help: 'pixel value to ignore' },
    'delta-dummy': { kind: 'number', arg: 'D', min: 0, help: 'tolerance around --dummy' },
    'azimuth-range': { kind: 'pair', arg: 'LO HI', help: 'azimuthal range in degrees (2D)' },
    json: { kind: 'flag', help: 'print one JSON object per file instead of tables' },
    'map-cache': { kind: 'string', arg: 'DIR', help: 'on-disk cache of pixel-to-bin maps (default $XDG_CACHE_HOME/beamedge/maps or ~/.cache/beamedge/maps)' },
    'no-map-cache': { kind: 'flag', help: 'build the map without reading or writing the cache' },
    'map-cache-mb': { kind: 'number', arg: 'MB', min: 1, help: 'size the cache is kept within, oldest maps removed first (default 4096)' },
  },
  async run(opts, io: Io) {
    const files = opts.positional;
    if (files.length === 0) throw new UsageError('integrate needs at least one FILE');
    if (opts.has('delta-dummy') && !opts.has('dummy')) throw new UsageError('--delta-dummy needs --dummy');
    const cacheDir = opts.flag('no-map-cache') ? null : (opts.string('map-cache') ?? defaultMapCache());
    let built = false;
    const integrators = new FileIntegrator(
      opts,
      {
        split: (opts.string('split') as 'no' | 'bbox' | undefined) ?? 'bbox',
        ...(opts.has('npt-azim') ? { nptAzim: opts.number('npt-azim')! } : {}),
        ...(opts.has('azimuth-range') ? { azimuthRange: opts.pair('azimuth-range')! } : {}),
      },
      (setup) => cachedMap(setup, cacheDir, io, () => (built = true)),
    );
    let calibration: Calibration | undefined;
    const frameOptions = (cal: Calibration | undefined) => ({
      ...(cal?.dark ? { dark: cal.dark } : {}),
      ...(opts.has('dummy') ? { dummy: opts.number('dummy')!, deltaDummy: opts.number('delta-dummy') ?? 0 } : {}),
    });
    let failures = 0;
    for (const file of files) {
      try {
        const buf = readNamedFile(file);
        let t0 = process.hrtime.bigint();
        // The header first: with the map of this geometry at hand, the frame is
        // decoded inside the integration pass (no full-frame buffer).
        const head = readCbfHeader(buf, file);
        let { integrator, geometry } = integrators.current(head, file);
        let setupMs = 0;
        let result: Integration;
        if (integrator) {
          try {
            result = integrator.integrateCbf(buf, frameOptions(calibration));
          } catch (e) {
            throw new FrameError((e as Error).message, file);
          }
        } else {
          const frame = readCbf(buf, { source: file });
          calibration ??= loadCalibration(opts, frame.shape);
          ({ integrator, geometry, setupMs } = integrators.forFrame(frame, file, calibration));
          t0 += BigInt(Math.round(setupMs * 1e6));
          result = integrator.integrate(frame.pixels, frameOptions(calibration));
        }
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        io.out(opts.flag('json') ? profileJson(result, file, ms, setupMs) + '\n' : formatProfile(result, geometry, file, ms, setupMs));
      } catch (err) {
        failures++;
        io.err(`beamedge integrate: ${(err as Error).message}\n`);
      }
    }
    if (cacheDir && built) await pruneMaps(cacheDir, (opts.number('map-cache-mb') ?? 4096) * 1048576).catch(() => []);
    return failures ? 1 : 0;
  },
};
