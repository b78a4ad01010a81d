// What a DECTRIS stream message (v2 CBOR or v1 JSON) may claim, checked on the
// main thread before a slot, a buffer or a worker's time is given to it. The
// decoders take fields as the detector sent them; everything copied into frame
// metadata, events or allocations passes through here first.
import { elemSize, type Dtype, type EncodedImage } from './stream2';

/**
 * Longest string taken from a message (series_unique_id, channel names). Real
 * DCUs send UUID-like ids and names such as "threshold_1"; 256 keeps a frame's
 * metadata far below the slot's 4096-byte metadata area, and matches the TCP
 * framing's limit on series names.
 */
export const MAX_STRING = 256;

/** A field is unusable: the message is refused, and the text says which field and why. */
export class StreamFieldError extends Error {}

/** A value shown in a message: quoted, and never longer than `max` characters. */
// Describes containers rather than serialising them: a hostile value may be huge.
export function shown(v: unknown, max = 64): string {
  if (typeof v === 'string') return v.length <= max ? JSON.stringify(v) : `${JSON.stringify(v.slice(0, max))}... (${v.length} characters)`;
  if (ArrayBuffer.isView(v)) return `${v.byteLength} bytes`;
  if (Array.isArray(v)) return v.length <= 4 && v.every((x) => typeof x === 'number') ? `[${v.join(', ')}]` : `an array of ${v.length}`;
  if (v && typeof v === 'object') return 'a map';
  return String(v).slice(0, max);
}

export function optionalString(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new StreamFieldError(`${what} is not a string: ${shown(v)}`);
  if (v.length > MAX_STRING) throw new StreamFieldError(`${what} of ${v.length} characters exceeds ${MAX_STRING}`);
  return v;
}

/** Series and image ids: integers from 0 to 2^53 - 1. */
export function idField(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new StreamFieldError(`${what} ${v === undefined ? 'is missing' : `is not an integer >= 0: ${shown(v)}`}`);
  return v;
}

const DTYPES = new Set<Dtype>(['uint8', 'uint16', 'uint32', 'float32', 'int32']);
const ENCODINGS = new Set<EncodedImage['encoding']>(['raw', 'bslz4', 'lz4', 'lz4block']);

function size(bytes: number): string {
  return bytes < 1048576 ? `${bytes} bytes` : `${(bytes / 1048576).toFixed(1)} MiB (${bytes} bytes)`;
}

/**
 * An image (a frame, a pixel mask or a flatfield) whose decoded pixels fit in
 * `maxBytes`: the configured slot payload (rings.slot_mb), the bound on an
 * image's bytes as sent. Decoded, an image, mask or flatfield may be up to
 * DECODED_SLOTS times that: slots are sized for compressed frames (an EIGER2
 * 4M frame is about 2 MB compressed, 8.9 MB decoded, and its uint32 mask 17.9
 * MB), and each worker's decode buffer and a series' calibration are then
 * bounded by that figure. Checked before anything of that size is allocated.
 */
export const DECODED_SLOTS = 4;

export function imageField(v: unknown, what: string, maxBytes: number): EncodedImage {
  if (!v || typeof v !== 'object') throw new StreamFieldError(`${what} is not an image (tag 40 [[rows, cols], typed array]): ${shown(v)}`);
  const img = v as Partial<EncodedImage>;
  const shape = img.shape;
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n > 0))
    throw new StreamFieldError(`${what} has no usable shape [rows, cols]: ${shown(shape)}`);
  if (!DTYPES.has(img.dtype!)) throw new StreamFieldError(`${what} has an unsupported element type ${shown(img.dtype)}`);
  if (!ENCODINGS.has(img.encoding!)) throw new StreamFieldError(`${what} has an unsupported encoding ${shown(img.encoding)}`);
  if (!(img.bytes instanceof Uint8Array)) throw new StreamFieldError(`${what} has no byte string`);
  const [rows, cols] = shape as [number, number];
  const decoded = rows * cols * elemSize(img.dtype!);
  const where = `${what} (${rows} x ${cols} ${img.dtype})`;
  const limit = DECODED_SLOTS * maxBytes;
  if (decoded > limit) throw new StreamFieldError(`${where} needs ${size(decoded)} decoded; the limit is ${size(limit)} (${DECODED_SLOTS} x rings.slot_mb)`);
  if (img.bytes.length > maxBytes) throw new StreamFieldError(`${where} has ${size(img.bytes.length)} of data; a slot holds ${size(maxBytes)} (rings.slot_mb)`);
  if (img.encoding === 'raw' && img.bytes.length !== decoded) throw new StreamFieldError(`${where} has ${img.bytes.length} bytes of raw pixels, its shape needs ${decoded}`);
  return img as EncodedImage;
}
