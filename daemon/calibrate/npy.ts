// numpy .npy arrays, read straight into typed arrays (optionally shared
// memory, so a calibration loaded once on the main thread is handed to every
// worker without a copy) and written for calibration sets and `convert`.
import { createHash } from 'node:crypto';

export const NPY_DTYPES = {
  '<f4': Float32Array,
  '<f8': Float64Array,
  '<u4': Uint32Array,
  '<i4': Int32Array,
  '<u2': Uint16Array,
  '|u1': Uint8Array,
} as const;
export type NpyDtype = keyof typeof NPY_DTYPES;
export type NpyData = InstanceType<(typeof NPY_DTYPES)[NpyDtype]>;
/** What can be written: the same element types over any buffer (shared, or a view the addon made). */
export type NpyWritable = Float32Array<ArrayBufferLike> | Float64Array<ArrayBufferLike> | Uint32Array<ArrayBufferLike> | Int32Array<ArrayBufferLike> | Uint16Array<ArrayBufferLike> | Uint8Array<ArrayBufferLike>;

export interface NpyHeader {
  descr: string;
  fortran: boolean;
  shape: number[];
  /** Byte offset of the data. */
  start: number;
}

export function parseNpyHeader(buf: Uint8Array, source: string): NpyHeader {
  if (buf.length < 10 || Buffer.from(buf.subarray(0, 6)).toString('latin1') !== '\x93NUMPY') throw new Error(`${source}: not a .npy file`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const major = buf[6]!;
  if (major < 1 || major > 3) throw new Error(`${source}: .npy version ${major} is not supported`);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = (major === 1 ? 10 : 12) + headerLen;
  if (start > buf.length) throw new Error(`${source}: truncated .npy header`);
  const header = Buffer.from(buf.subarray(major === 1 ? 10 : 12, start)).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw new Error(`${source}: unreadable .npy header`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${source}: bad .npy shape (${shapeText})`);
  return { descr: descr.replace(/^=/, '<'), fortran: /'fortran_order':\s*True/.test(header), shape, start };
}

/**
 * Reads a C-ordered little-endian array of exactly `dtype` (no conversion:
 * calibration constants are taken as written or refused), into shared memory
 * when asked.
 */
export function readNpy(buf: Uint8Array, dtype: NpyDtype, source: string, shared = false): { shape: number[]; data: NpyData } {
  const h = parseNpyHeader(buf, source);
  if (h.descr !== dtype) throw new Error(`${source}: dtype ${h.descr}, expected ${dtype}`);
  if (h.fortran && h.shape.length > 1) throw new Error(`${source}: Fortran-ordered array, expected C order`);
  const ctor = NPY_DTYPES[dtype];
  const n = h.shape.reduce((a, b) => a * b, 1);
  const bytes = n * ctor.BYTES_PER_ELEMENT;
  if (h.start + bytes > buf.length) throw new Error(`${source}: truncated .npy data (${buf.length - h.start} of ${bytes} bytes)`);
  const store = (shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes)) as ArrayBuffer;
  new Uint8Array(store).set(buf.subarray(h.start, h.start + bytes));
  return { shape: h.shape, data: new ctor(store) as NpyData };
}

function descrOf(data: NpyWritable): NpyDtype {
  for (const [descr, ctor] of Object.entries(NPY_DTYPES)) if (data instanceof ctor) return descr as NpyDtype;
  throw new Error('unsupported typed array');
}

/** The header of a C-ordered .npy (version 1.0) file; the data, 64-byte aligned, follows it. */
export function npyHeader(descr: NpyDtype, shape: number[]): Buffer {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  // numpy pads the header with spaces so the data starts 64-byte aligned.
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1')]);
}

/** Encodes a C-ordered .npy (version 1.0) file. */
export function encodeNpy(data: NpyWritable, shape: number[]): Buffer {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new Error(`encodeNpy: ${data.length} values do not fill shape (${shape.join(', ')})`);
  return Buffer.concat([npyHeader(descrOf(data), shape), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

export function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}
