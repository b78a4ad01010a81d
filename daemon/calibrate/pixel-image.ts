// Per-pixel images that calibrate a frame (mask, dark, flat), read from CBF
// or numpy .npy files, the formats pyFAI users already have them in.
import { readCbf } from '../decode/cbf';
import { parseNpyHeader } from './npy';
import { readNamedFile } from '../system/read-file';

export interface PixelImage {
  shape: [number, number];
  data: Float64Array;
}

const NPY_TYPES: Record<string, (v: DataView, o: number) => number> = {
  '|b1': (v, o) => v.getUint8(o),
  '|u1': (v, o) => v.getUint8(o),
  '|i1': (v, o) => v.getInt8(o),
  '<u2': (v, o) => v.getUint16(o, true),
  '<i2': (v, o) => v.getInt16(o, true),
  '<u4': (v, o) => v.getUint32(o, true),
  '<i4': (v, o) => v.getInt32(o, true),
  '<i8': (v, o) => Number(v.getBigInt64(o, true)),
  '<f4': (v, o) => v.getFloat32(o, true),
  '<f8': (v, o) => v.getFloat64(o, true),
};

export interface NpyArray {
  shape: number[];
  data: Float64Array;
}

export function parseNpy(buf: Uint8Array, source = 'npy'): NpyArray {
  const { descr, fortran, shape: dims, start } = parseNpyHeader(buf, source);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const read = NPY_TYPES[descr];
  if (!read) throw new Error(`${source}: .npy dtype ${descr} is not supported`);
  const n = dims.reduce((a, b) => a * b, 1);
  const size = Number(/\d+$/.exec(descr)![0]);
  if (start + n * size > buf.length) throw new Error(`${source}: truncated .npy data`);
  if (fortran && dims.length > 2) throw new Error(`${source}: Fortran-ordered arrays of more than 2 dimensions are not supported`);
  const data = new Float64Array(n);
  if (fortran && dims.length === 2) {
    // Column-major on disk (e.g. a transposed array): return it row-major.
    const [rows, cols] = [dims[0]!, dims[1]!];
    for (let c = 0, k = 0; c < cols; c++) for (let r = 0; r < rows; r++, k++) data[r * cols + c] = read(view, start + k * size);
  } else {
    for (let i = 0; i < n; i++) data[i] = read(view, start + i * size);
  }
  return { shape: dims, data };
}

export function readPixelImage(file: string): PixelImage {
  const buf = readNamedFile(file);
  if (/\.npy$/i.test(file)) {
    const a = parseNpy(buf, file);
    if (a.shape.length !== 2) throw new Error(`${file}: expected a 2D array, got shape (${a.shape.join(', ')})`);
    return { shape: [a.shape[0]!, a.shape[1]!], data: a.data };
  }
  const frame = readCbf(buf, { source: file });
  return { shape: frame.shape, data: Float64Array.from(frame.pixels) };
}

export function expectShape(img: Pick<PixelImage, 'shape'>, shape: [number, number], what: string): void {
  if (img.shape[0] !== shape[0] || img.shape[1] !== shape[1])
    throw new Error(`${what} is ${img.shape.join(' x ')}, the frames are ${shape.join(' x ')}`);
}
