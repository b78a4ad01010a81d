// The beamedge TCP framing, one message per frame:
//   4 bytes  magic "BEF1"
//   4 bytes  header length N, unsigned little-endian
//   N bytes  header, UTF-8 JSON: {"series": "s1", "frame": 7, "encoding": "cbf" | "raw",
//            "size": <payload bytes>, "dtype": "uint16", "shape": [rows, cols], "meta": {...}}
//            (dtype and shape are required for raw payloads only)
//   size bytes payload: a whole CBF file, or raw little-endian pixels, row-major
// A header with "ack": true asks for one JSON line back per frame (see Ack).
export const MAGIC = Buffer.from('BEF1', 'latin1');
export const MAX_HEADER = 64 * 1024;
// Both travel with the frame in its slot's 4 KiB metadata area.
export const MAX_SERIES = 256;
export const MAX_META_BYTES = 2048;

/** The line sent back for a frame whose header asked for it. */
export interface Ack {
  series: string;
  frame: number | null;
  /** received: in a slot (ack: slot), or processed with its outcome row committed (ack: durable); the others: not processed. */
  status: 'received' | 'rejected' | 'dropped';
  reason?: string;
}

export interface FrameHeader {
  series: string;
  frame: number;
  encoding: 'cbf' | 'raw';
  size: number;
  dtype?: 'int32' | 'uint32' | 'uint16' | 'uint8' | 'float32';
  shape?: [number, number];
  /** "jungfrau": raw uint16 gain-switching words, converted with pipeline.calibration.set. */
  detector?: 'jungfrau';
  meta?: Record<string, unknown>;
  ack?: boolean;
}

const DTYPES = ['int32', 'uint32', 'uint16', 'uint8', 'float32'];

export class FramingError extends Error {
  override name = 'FramingError';
}

/** Throws FramingError when the stream cannot be trusted any more (no usable size). */
export function parseSize(h: Record<string, unknown>): number {
  const size = h.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new FramingError(`header size must be a non-negative integer, got ${JSON.stringify(size)}`);
  return size;
}

/** Problems that make this frame unusable while the stream stays in sync; null when fine. */
export function checkHeader(h: Record<string, unknown>): string | null {
  if (typeof h.frame !== 'number' || !Number.isSafeInteger(h.frame) || h.frame < 0) return `header frame must be a non-negative integer, got ${JSON.stringify(h.frame)}`;
  if (h.series !== undefined && (typeof h.series !== 'string' || !h.series)) return 'header series must be a non-empty string';
  if (typeof h.series === 'string' && h.series.length > MAX_SERIES) return `header series of ${h.series.length} characters exceeds ${MAX_SERIES}`;
  if (h.encoding !== 'cbf' && h.encoding !== 'raw') return `unsupported encoding ${JSON.stringify(h.encoding)} (cbf or raw)`;
  if (h.encoding === 'raw') {
    if (typeof h.dtype !== 'string' || !DTYPES.includes(h.dtype)) return `raw frames need dtype, one of ${DTYPES.join(', ')}`;
    const s = h.shape;
    if (!Array.isArray(s) || s.length !== 2 || !s.every((x) => Number.isSafeInteger(x) && x > 0)) return 'raw frames need shape [rows, cols]';
  }
  if (h.detector !== undefined && h.detector !== 'jungfrau') return `header detector must be "jungfrau" when given, got ${JSON.stringify(h.detector)}`;
  if (h.detector === 'jungfrau' && (h.encoding !== 'raw' || h.dtype !== 'uint16')) return 'jungfrau frames must be raw uint16';
  if (h.meta !== undefined && (typeof h.meta !== 'object' || h.meta === null || Array.isArray(h.meta))) return 'header meta must be an object';
  if (h.meta !== undefined) {
    const n = Buffer.byteLength(JSON.stringify(h.meta));
    if (n > MAX_META_BYTES) return `header meta of ${n} bytes exceeds ${MAX_META_BYTES}`;
  }
  if (h.ack !== undefined && typeof h.ack !== 'boolean') return 'header ack must be true or false';
  return null;
}

export function encodeFrame(header: Omit<FrameHeader, 'size'>, payload: Uint8Array): Buffer[] {
  const json = Buffer.from(JSON.stringify({ ...header, size: payload.length }), 'utf8');
  const prefix = Buffer.alloc(8);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(json.length, 4);
  return [prefix, json, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)];
}
