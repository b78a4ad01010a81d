// DECTRIS stream v1 ("legacy", port 9999): multipart ZeroMQ messages whose
// first part is JSON with an htype. dheader-1.0 (+ config, flatfield, pixel
// mask and count-rate parts with header_detail all), dimage-1.0 + dimage_d-1.0
// + blob + dconfig-1.0 per image, dseries_end-1.0 at the end.
import type { Dtype, EncodedImage } from './stream2';

export type Stream1Message =
  | { kind: 'header'; series: number; detail: string; config?: Record<string, unknown>; flatfield?: EncodedImage; pixelMask?: EncodedImage }
  | { kind: 'image'; series: number; frame: number; image: EncodedImage; timing?: Record<string, unknown> }
  | { kind: 'end'; series: number }
  | { kind: 'other'; htype: string };

// JSON parts are headers: a detector configuration is a few kB. Parsing time
// grows with the size, so a part that could hold the main thread is refused unread.
export const MAX_JSON_PART = 1 << 20;

function json(part: Buffer | undefined, what: string): Record<string, unknown> {
  if (!part) throw new Error(`stream v1: missing ${what} part`);
  if (part.length > MAX_JSON_PART) throw new Error(`stream v1: ${what} part of ${part.length} bytes exceeds ${MAX_JSON_PART} (JSON parts are headers)`);
  try {
    return JSON.parse(part.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new Error(`stream v1: ${what} part is not JSON`);
  }
}

const DTYPES: Record<string, Dtype> = { uint8: 'uint8', uint16: 'uint16', uint32: 'uint32', float32: 'float32', int32: 'int32' };

/** v1 encodings: "<" raw little-endian, "lz4<" one LZ4 block, "bsNN-lz4<" bitshuffle-LZ4. */
function image(desc: Record<string, unknown>, blob: Buffer | undefined, what: string): EncodedImage {
  if (!blob) throw new Error(`stream v1: missing ${what} data part`);
  const shape = desc.shape;
  if (!Array.isArray(shape) || shape.length !== 2) throw new Error(`stream v1: ${what} has no shape [x, y]`);
  const dtype = DTYPES[String(desc.type)];
  if (!dtype) throw new Error(`stream v1: ${what} has unsupported type ${JSON.stringify(desc.type)}`);
  const enc = String(desc.encoding ?? '<');
  const encoding = enc === '<' ? 'raw' : enc === 'lz4<' ? 'lz4block' : /^bs(8|16|32)-lz4<$/.test(enc) ? 'bslz4' : undefined;
  if (!encoding) throw new Error(`stream v1: ${what} has unsupported encoding ${JSON.stringify(enc)}`);
  // v1 shapes are [x, y] = [columns, rows].
  return { shape: [Number(shape[1]), Number(shape[0])], dtype, encoding, bytes: blob };
}

export function decodeStream1(parts: Buffer[]): Stream1Message {
  const head = json(parts[0], 'first');
  const htype = String(head.htype ?? '');
  const series = Number(head.series ?? -1);
  if (htype.startsWith('dheader-1.0')) {
    const detail = String(head.header_detail ?? 'none');
    const m: Stream1Message = { kind: 'header', series, detail };
    if (detail !== 'none' && parts[1]) m.config = json(parts[1], 'detector configuration');
    // With header_detail "all": flatfield, pixel mask and count-rate table, each a JSON header and a blob.
    for (let i = 2; i + 1 < parts.length; i += 2) {
      const h = json(parts[i], 'appendix header');
      const t = String(h.htype ?? '');
      if (t.startsWith('dflatfield')) m.flatfield = image({ ...h, encoding: '<' }, parts[i + 1], 'flatfield');
      else if (t.startsWith('dpixelmask')) m.pixelMask = image({ ...h, encoding: '<' }, parts[i + 1], 'pixel mask');
    }
    return m;
  }
  if (htype.startsWith('dimage-1.0')) {
    const desc = json(parts[1], 'dimage_d');
    const m: Stream1Message = { kind: 'image', series, frame: Number(head.frame), image: image(desc, parts[2], `image ${head.frame}`) };
    if (parts[3]) m.timing = json(parts[3], 'dconfig');
    if (!Number.isSafeInteger(m.frame)) throw new Error('stream v1: image without a frame number');
    return m;
  }
  if (htype.startsWith('dseries_end-1.0')) return { kind: 'end', series };
  return { kind: 'other', htype };
}
