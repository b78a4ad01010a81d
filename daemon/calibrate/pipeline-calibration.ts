// Everything a pipeline calibrates frames with (PONI, mask, dark, flat, a
// calibration set), loaded and checked once on the main thread when the
// configuration is loaded: a file that cannot be used fails check-config and
// rejects a reload, instead of failing every later frame. The pixel arrays sit
// in SharedArrayBuffers, so posting them to the workers copies nothing.
import { readFileSync, statSync } from 'node:fs';
import type { PipelineConfig } from '../config/config';
import { parsePoni } from '../geometry/poni';
import type { Geometry } from '../geometry/geometry';
import { loadCalibrationSet, type CalibrationArrays, type CalibrationJson, type DetectorKind } from './calibration-set';
import { JungfrauConverter, type JungfrauUnit } from './jungfrau';
import { sha256 } from './npy';
import { readPixelImage } from './pixel-image';
import { RecentMap } from '../system/recent-map';

export interface PixelMap<T> {
  file: string;
  sha256: string;
  shape: [number, number];
  data: T;
}

export interface LoadedSet {
  id: string;
  dir: string;
  detector: DetectorKind;
  shape: [number, number];
  energyKeV: number | null;
  arrays: CalibrationArrays;
  json: CalibrationJson;
  /** JUNGFRAU sets: 1 / (gain x E) (or 1 / gain for keV) per gain, NaN where the mask excludes the pixel in that gain. */
  jungfrau?: { factor: Float32Array; energyKeV: number; unit: JungfrauUnit };
}

export interface PipelineCalibration {
  poni?: { file: string; sha256: string; geometry: Geometry };
  mask?: PixelMap<Uint8Array>;
  dark?: PixelMap<Float32Array>;
  flat?: PixelMap<Float32Array>;
  set?: LoadedSet;
  /** JUNGFRAU G0 pedestal tracking: one shared buffer per worker (see pedestal-tracker.ts). */
  tracking?: TrackingState;
}

export interface TrackingState {
  /** Tracked G0 pedestal per worker index, [n] each. */
  buffers: Float32Array[];
  /** Frames each worker tracked since the last snapshot (Int32, one per worker). */
  frames: Int32Array;
  window: number;
  k: number;
}

/** What identifies the loaded constants: a reload that changes none of them (and no key) changes nothing. */
export function calibrationFingerprint(c: PipelineCalibration): Record<string, string> {
  const out: Record<string, string> = {};
  if (c.poni) out.poni = c.poni.sha256;
  if (c.mask) out.mask = c.mask.sha256;
  if (c.dark) out.dark = c.dark.sha256;
  if (c.flat) out.flat = c.flat.sha256;
  if (c.set) out.set = c.set.id;
  return out;
}

// Reloads usually leave the calibration files alone: a file whose path, size,
// inode and mtime are unchanged is not read and hashed again.
const MAX_CACHED = 16;
const cache = new RecentMap<string, { stamp: string; value: unknown }>(MAX_CACHED);

function cached<T>(kind: string, file: string, load: () => T): T {
  let stamp: string;
  try {
    const s = statSync(file);
    stamp = `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const key = `${kind}:${file}`;
  const hit = cache.get(key);
  if (hit?.stamp === stamp) return hit.value as T;
  const value = load();
  cache.set(key, { stamp, value });
  return value;
}

function shared<T extends Float32Array | Uint8Array>(ctor: { new (b: ArrayBuffer): T; BYTES_PER_ELEMENT: number }, n: number): T {
  return new ctor(new SharedArrayBuffer(n * ctor.BYTES_PER_ELEMENT) as unknown as ArrayBuffer);
}

function pixelMap<T extends Float32Array | Uint8Array>(file: string, ctor: { new (b: ArrayBuffer): T; BYTES_PER_ELEMENT: number }, convert: (v: number) => number): PixelMap<T> {
  const bytes = readFileSync(file);
  const img = readPixelImage(file);
  const data = shared(ctor, img.data.length);
  for (let i = 0; i < data.length; i++) data[i] = convert(img.data[i]!);
  return { file, sha256: sha256(bytes), shape: img.shape, data };
}

// Factors are derived from a set and two keys: kept per combination, so a
// reload that changes neither does not recompute 3 x pixels of them.
const factors = new Map<string, NonNullable<LoadedSet['jungfrau']>>();

function jungfrauFactors(set: LoadedSet, energyKeV: number, unit: JungfrauUnit): NonNullable<LoadedSet['jungfrau']> {
  const key = `${set.id}:${energyKeV}:${unit}`;
  let f = factors.get(key);
  if (!f) {
    const { gain, mask } = set.arrays;
    const factor = new Float32Array(new SharedArrayBuffer(gain!.length * 4) as unknown as ArrayBuffer);
    JungfrauConverter.factorsFromGain(gain!, energyKeV, unit, factor);
    // The mask folded into the factors: the kernel then reads no mask per frame.
    if (mask) JungfrauConverter.foldMask(factor, mask);
    f = { factor, energyKeV, unit };
    factors.clear();
    factors.set(key, f);
  }
  return f;
}

/** Throws an Error naming the key and the file when anything cannot be loaded or does not fit together. */
export function loadPipelineCalibration(p: PipelineConfig): PipelineCalibration {
  const cal: PipelineCalibration = {};
  const part = <T>(key: string, file: string, load: () => T): T => {
    try {
      return cached(key, file, load);
    } catch (e) {
      throw new Error(`pipeline.${key}: ${(e as Error).message}`);
    }
  };
  if (p.geometry.poni) {
    const file = p.geometry.poni;
    cal.poni = part('geometry.poni', file, () => {
      const text = readFileSync(file);
      return { file, sha256: sha256(text), geometry: parsePoni(text.toString('utf8'), file) };
    });
  }
  if (p.mask) cal.mask = part('mask', p.mask, () => pixelMap(p.mask!, Uint8Array, (v) => (v !== 0 ? 1 : 0)));
  if (p.dark) cal.dark = part('dark', p.dark, () => pixelMap(p.dark!, Float32Array, (v) => v));
  if (p.flat) cal.flat = part('flat', p.flat, () => pixelMap(p.flat!, Float32Array, (v) => v));
  if (p.calibration.set) {
    const dir = p.calibration.set;
    cal.set = part('calibration.set', `${dir}/calibration.json`, () => {
      const s = loadCalibrationSet(dir);
      return { id: s.id, dir: s.dir, detector: s.json.detector, shape: s.json.shape, energyKeV: s.json.energy_kev, arrays: s.arrays, json: s.json };
    });
    if (cal.set.detector === 'jungfrau') {
      const energy = p.calibration.energy_kev ?? cal.set.energyKeV;
      if (energy === null && p.calibration.unit === 'photons') throw new Error(`pipeline.calibration.energy_kev: ${dir} records no photon energy, so one must be configured`);
      cal.set = { ...cal.set, jungfrau: jungfrauFactors(cal.set, energy ?? 0, p.calibration.unit) };
    }
  }
  // The files must agree with each other; with the frames they are checked at each frame.
  const shapes = (['mask', 'dark', 'flat', 'set'] as const).flatMap((k) => (cal[k] ? [{ k, shape: cal[k]!.shape, file: k === 'set' ? cal.set!.dir : cal[k]!.file }] : []));
  const poniShape = cal.poni?.geometry.shape;
  if (poniShape) shapes.push({ k: 'geometry.poni' as never, shape: poniShape, file: cal.poni!.file });
  for (const s of shapes.slice(1))
    if (s.shape.join('x') !== shapes[0]!.shape.join('x'))
      throw new Error(`pipeline.${s.k} (${s.file}) is ${s.shape.join(' x ')}, but pipeline.${shapes[0]!.k} (${shapes[0]!.file}) is ${shapes[0]!.shape.join(' x ')}`);
  return cal;
}
