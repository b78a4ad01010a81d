// Calibration constants as other tools write them: headerless little-endian
// .bin (PSI's JUNGFRAU files: float32 pedestal maps, float64 gain
// [3][rows][cols]) or .npy. Multi-module detectors: modules concatenated
// along rows, as beamedge's frames are.
import { readFileSync } from 'node:fs';
import { parseNpyHeader, readNpy, sha256, type NpyDtype } from './npy';
import type { Shape } from './raw-frames';
import { usableGain } from './jungfrau';
import { GAIN_UNUSABLE, MASK_BITS, USER_MASKED } from './mask-bits';

/** JUNGFRAU nominal gains, ADU/keV (G1 and G2 negative): used when no gain file is given. */
export const DEFAULT_GAIN: [number, number, number] = [41, -1.439, -0.1145];

export interface Loaded<T> {
  data: T;
  sha256: string;
}

function readWhole(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

function readArray(path: string, dtype: NpyDtype, planes: number, shape: Shape, what: string): Loaded<ArrayBufferView & ArrayLike<number>> {
  const buf = readWhole(path);
  const n = planes * shape[0] * shape[1];
  if (/\.npy$/i.test(path)) {
    const a = readNpy(buf, dtype, path);
    const want = planes === 1 ? [shape[0], shape[1]] : [planes, shape[0], shape[1]];
    if (a.shape.join(',') !== want.join(',')) throw new Error(`${path}: ${what} has shape (${a.shape.join(', ')}), expected (${want.join(', ')})`);
    return { data: a.data, sha256: sha256(buf) };
  }
  const size = { '<f4': 4, '<f8': 8, '<u4': 4, '<i4': 4, '<u2': 2, '|u1': 1 }[dtype];
  if (buf.length !== n * size)
    throw new Error(`${path}: ${buf.length} bytes, but ${what} for ${shape.join('x')} needs ${n * size} (${planes > 1 ? `${planes} x ` : ''}${shape.join(' x ')} ${dtype})`);
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  const ctor = { '<f4': Float32Array, '<f8': Float64Array, '<u4': Uint32Array, '<i4': Int32Array, '<u2': Uint16Array, '|u1': Uint8Array }[dtype];
  return { data: new ctor(copy.buffer), sha256: sha256(buf) };
}

/** A float32 [rows][cols] map (pedestal or rms of one gain stage). */
export function readFloatMap(path: string, shape: Shape, what: string): Loaded<Float32Array> {
  return readArray(path, '<f4', 1, shape, what) as Loaded<Float32Array>;
}

/** A JUNGFRAU gain file: float64 [3][rows][cols], ADU/keV. */
export function readGainFile(path: string, shape: Shape): Loaded<Float64Array> {
  return readArray(path, '<f8', 3, shape, 'a gain file (float64 [3][rows][cols])') as Loaded<Float64Array>;
}

export function defaultGain(pixels: number): Float64Array {
  const g = new Float64Array(3 * pixels);
  for (let s = 0; s < 3; s++) g.fill(DEFAULT_GAIN[s]!, s * pixels, (s + 1) * pixels);
  return g;
}

/**
 * A mask: uint32 (.npy <u4, or a .bin of 4 bytes per pixel) is taken as
 * beamedge mask bits; any other integer .npy, or a .bin of 1 byte per pixel,
 * marks its non-zero pixels with the user bit.
 */
export function readMaskFile(path: string, shape: Shape): Loaded<Uint32Array> {
  const n = shape[0] * shape[1];
  let dtype: NpyDtype;
  if (/\.npy$/i.test(path)) {
    const descr = parseNpyHeader(readWhole(path), path).descr;
    if (descr !== '<u4' && descr !== '<i4' && descr !== '<u2' && descr !== '|u1') throw new Error(`${path}: mask dtype ${descr} is not uint32, int32, uint16 or uint8`);
    dtype = descr;
  } else {
    const size = readWhole(path).length;
    if (size === 4 * n) dtype = '<u4';
    else if (size === n) dtype = '|u1';
    else throw new Error(`${path}: ${size} bytes is neither uint32 nor uint8 for ${shape.join('x')} (${4 * n} or ${n} bytes)`);
  }
  const a = readArray(path, dtype, 1, shape, 'a mask');
  return dtype === '<u4' ? (a as Loaded<Uint32Array>) : userBits(a);
}

function userBits(a: Loaded<ArrayLike<number>>): Loaded<Uint32Array> {
  const m = new Uint32Array(a.data.length);
  for (let i = 0; i < m.length; i++) if (a.data[i] !== 0) m[i] = USER_MASKED;
  return { data: m, sha256: a.sha256 };
}

/** Sets bad_gain_gX where a gain is zero, not finite or of the wrong sign (G0 positive, G1/G2 negative). */
export function flagBadGains(gain: Float64Array, mask: Uint32Array): [number, number, number] {
  const n = mask.length;
  const bad: [number, number, number] = [0, 0, 0];
  for (let g = 0; g < 3; g++)
    for (let i = 0; i < n; i++) {
      if (!usableGain(gain[g * n + i]!, g)) {
        mask[i] = (mask[i]! | GAIN_UNUSABLE[g]!) >>> 0;
        bad[g]++;
      }
    }
  return bad;
}

/** Pixels carrying each mask bit, by bit name (bits no pixel carries are left out). */
export function maskCounts(mask: Uint32Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { bit, name } of MASK_BITS) {
    let c = 0;
    const b = (1 << bit) >>> 0;
    for (let i = 0; i < mask.length; i++) if ((mask[i]! & b) !== 0) c++;
    if (c > 0) out[name] = c;
  }
  return out;
}
