// Uncompressed pixels: TCP raw frames, DECTRIS images sent without
// compression, JUNGFRAU gain words. Viewed in place in the slot, never copied.
import type { PixelFrame } from '../../../native';
import type { Decoder } from './decoder';
import { streamMaxValid } from './stream-image';

const CTORS = { int32: Int32Array, uint32: Uint32Array, uint16: Uint16Array, uint8: Uint8Array, float32: Float32Array } as const;

export const rawDecoder: Decoder = {
  encodings: ['raw'],
  open(meta, payload, context) {
    if (!meta.shape || !meta.dtype) throw new Error('raw frames need shape and dtype in the header');
    const [rows, cols] = meta.shape;
    const n = rows * cols;
    const ctor = CTORS[meta.dtype];
    if (payload.length !== n * ctor.BYTES_PER_ELEMENT)
      throw new Error(`raw frame: ${payload.length} bytes, but ${rows} x ${cols} ${meta.dtype} needs ${n * ctor.BYTES_PER_ELEMENT}`);
    if (payload.byteOffset % ctor.BYTES_PER_ELEMENT) throw new Error('raw frame payload is misaligned');
    const pixels = new ctor(payload.buffer as ArrayBuffer, payload.byteOffset, n) as PixelFrame;
    // A DECTRIS image sent uncompressed flags pixels like a compressed one.
    return { shape: meta.shape, pixels, ...(context ? { maxValid: streamMaxValid(meta, context) } : {}) };
  },
};
