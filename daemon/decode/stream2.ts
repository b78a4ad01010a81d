// DECTRIS SIMPLON stream v2 messages (CBOR, one ZeroMQ part each). Typed-array
// tags are decoded by our own handlers: in `69(56500(["bslz4", 2, bytes]))`
// the typed-array tag wraps a compressed payload, which a generic decoder
// would misread as pixel data.
import type { Decoder as CborDecoder } from 'cbor-x' with { 'resolution-mode': 'import' };
import { native } from '../native';
import { cborProblem } from './cbor-scan';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const cborx = require('cbor-x') as typeof import('cbor-x', { with: { 'resolution-mode': 'import' } });

export type Dtype = 'uint8' | 'uint16' | 'uint32' | 'float32' | 'int32';

export interface Compressed {
  algorithm: 'bslz4' | 'lz4';
  elemSize: number;
  bytes: Uint8Array;
}

/** An image as it arrives: shape, element type, and the (possibly compressed) bytes. */
export interface EncodedImage {
  shape: [number, number];
  dtype: Dtype;
  /** lz4: framed (stream v2, 12-byte header); lz4block: one bare block (stream v1 "lz4<"). */
  encoding: 'raw' | 'bslz4' | 'lz4' | 'lz4block';
  bytes: Uint8Array;
}

/** What tag 56500 decodes to; a class, so that a plain map cannot pass for one. */
class CompressedPayload implements Compressed {
  constructor(
    readonly algorithm: 'bslz4' | 'lz4',
    readonly elemSize: number,
    readonly bytes: Uint8Array,
  ) {}
}

/** A typed-array tag around a compressed payload: 69(56500([...])). */
interface CompressedTyped {
  dtype: Dtype;
  compressed: Compressed;
}

const CTOR_DTYPE = new Map<unknown, Dtype>([
  [Uint8Array, 'uint8'],
  [Uint16Array, 'uint16'],
  [Uint32Array, 'uint32'],
  [Float32Array, 'float32'],
  [Int32Array, 'int32'],
]);

const TYPED_TAGS: Record<number, Dtype> = { 64: 'uint8', 69: 'uint16', 70: 'uint32', 85: 'float32', 78: 'int32' };

class TaggedArray {
  constructor(
    readonly tag: number,
    readonly value: unknown,
  ) {}
}

let decoder: CborDecoder | undefined;
// Decode-only extensions: cbor-x's typing wants an encoder and a Class result.
const addDecodeTag = (tag: number, decode: (value: unknown) => unknown) =>
  (cborx.addExtension as (ext: { Class: unknown; tag: number; encode: () => never; decode: (v: unknown) => unknown }) => void)({
    Class: TaggedArray,
    tag,
    encode: () => {
      throw new Error('stream v2 tags are decode-only');
    },
    decode,
  });

function getDecoder(): CborDecoder {
  if (decoder) return decoder;
  // cbor-x's extensions are process-wide: byte strings still become ordinary
  // typed arrays (RFC 8746), so other CBOR users in the process are unaffected;
  // only a compressed payload turns into a CompressedTyped.
  for (const tag of Object.keys(TYPED_TAGS).map(Number))
    addDecodeTag(tag, (value) => {
      const dtype = TYPED_TAGS[tag]!;
      if (value instanceof Uint8Array) {
        const Ctor = CTORS[dtype];
        // A copy when misaligned (Buffer.slice would only make another view).
        const bytes = value.byteOffset % Ctor.BYTES_PER_ELEMENT ? new Uint8Array(value) : value;
        return new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, Math.floor(bytes.length / Ctor.BYTES_PER_ELEMENT));
      }
      if (!(value instanceof CompressedPayload)) throw new Error(`stream v2: typed-array tag ${tag} holds neither bytes nor a tag 56500 compressed payload`);
      // Bitshuffle works on elements of this size; plain LZ4 has none (DCUs send 0).
      if (value.algorithm === 'bslz4' && value.elemSize !== CTORS[dtype].BYTES_PER_ELEMENT) throw new Error(`stream v2: compressed ${dtype} data declares ${value.elemSize}-byte elements`);
      return { dtype, compressed: value } as CompressedTyped;
    });
  addDecodeTag(56500, (value) => {
    const [algorithm, elemSize, bytes] = Array.isArray(value) ? (value as unknown[]) : [];
    if (algorithm !== 'bslz4' && algorithm !== 'lz4') throw new Error(`stream v2: unsupported compression ${typeof algorithm === 'string' ? JSON.stringify(algorithm.slice(0, 32)) : typeof algorithm}`);
    if (typeof elemSize !== 'number' || !(bytes instanceof Uint8Array)) throw new Error('stream v2: tag 56500 is not [algorithm, element size, bytes]');
    return new CompressedPayload(algorithm, elemSize, bytes);
  });
  addDecodeTag(40, (value) => {
      const [dims, typed] = (Array.isArray(value) ? value : []) as [number[], ArrayBufferView | CompressedTyped];
      if (!Array.isArray(dims) || dims.length !== 2 || !typed) throw new Error('stream v2: tag 40 is not [[rows, cols], typed array]');
      const shape: [number, number] = [dims[0]!, dims[1]!];
      if (ArrayBuffer.isView(typed)) {
        const dtype = CTOR_DTYPE.get(typed.constructor);
        if (!dtype) throw new Error('stream v2: unsupported typed array in tag 40');
        return { shape, dtype, encoding: 'raw', bytes: new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength) } as EncodedImage;
      }
      if (typeof typed !== 'object' || !('compressed' in typed)) throw new Error('stream v2: tag 40 is not [[rows, cols], typed array]');
      return { shape, dtype: typed.dtype, encoding: typed.compressed.algorithm, bytes: typed.compressed.bytes } as EncodedImage;
  });
  decoder = new cborx.Decoder({ useRecords: false, mapsAsObjects: true });
  return decoder;
}

export interface Stream2Message {
  type: 'start' | 'image' | 'end' | string;
  series_id?: number;
  series_unique_id?: string;
  image_id?: number;
  data?: Record<string, EncodedImage>;
  [key: string]: unknown;
}

const SELF_DESCRIBE = [0xd9, 0xd9, 0xf7];

export function decodeStream2(message: Uint8Array): Stream2Message {
  if (message.length < 3 || message[0] !== SELF_DESCRIBE[0] || message[1] !== SELF_DESCRIBE[1] || message[2] !== SELF_DESCRIBE[2])
    throw new Error('stream v2: message does not start with the CBOR self-describe tag 55799');
  const problem = cborProblem(message);
  if (problem) throw new Error(`stream v2: ${problem}`);
  const m = getDecoder().decode(message) as Stream2Message;
  if (typeof m !== 'object' || m === null || typeof m.type !== 'string') throw new Error('stream v2: message is not a map with a type');
  return m;
}

export function elemSize(dtype: Dtype): number {
  return CTORS[dtype].BYTES_PER_ELEMENT;
}

const CTORS = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, float32: Float32Array, int32: Int32Array } as const;

/** Decodes (decompresses) an image into `out` when given, else into a new typed array. */
export function decodeImage(img: EncodedImage, out?: ArrayBufferView): Uint8Array | Uint16Array | Uint32Array | Float32Array | Int32Array {
  const n = img.shape[0] * img.shape[1];
  const Ctor = CTORS[img.dtype];
  const target = out ? new Ctor(out.buffer as ArrayBuffer, out.byteOffset, n) : new Ctor(n);
  const bytes = new Uint8Array(target.buffer, target.byteOffset, n * Ctor.BYTES_PER_ELEMENT);
  if (img.encoding === 'bslz4') native.bslz4Decode(img.bytes, bytes, Ctor.BYTES_PER_ELEMENT);
  else if (img.encoding === 'lz4') native.lz4Decode(img.bytes, bytes, true);
  else if (img.encoding === 'lz4block') native.lz4Decode(img.bytes, bytes, false);
  else {
    if (img.bytes.length !== bytes.length) throw new Error(`raw image has ${img.bytes.length} bytes, ${img.shape.join(' x ')} ${img.dtype} needs ${bytes.length}`);
    bytes.set(img.bytes);
  }
  return target;
}
