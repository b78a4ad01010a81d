// What the compressed DECTRIS stream encodings share: the frame's shape and
// dtype come from its header, pixels are decompressed into a worker-owned
// buffer reused frame to frame, and all-ones pixels are the detector's flag.
import { decodeImage, elemSize, type Dtype } from '../../../decode/stream2';
import type { PixelFrame } from '../../../native';
import type { FrameMeta, SeriesContext } from '../../protocol';
import type { Decoded } from './decoder';

let scratch = new Uint8Array(0);

/** The value EIGER gives flagged pixels: all ones in the pixel's bits. */
function flagValue(dtype: Dtype): number {
  return 2 ** (8 * elemSize(dtype)) - 1;
}

/** Saturated or flagged pixels of a DECTRIS image: the start message's cutoff, else the flag value. */
export function streamMaxValid(meta: FrameMeta, context: SeriesContext | undefined): number {
  return context?.maxValid ?? flagValue(meta.dtype as Dtype) - 1;
}

export function openStreamImage(meta: FrameMeta, payload: Uint8Array, context: SeriesContext | undefined, encoding: 'bslz4' | 'lz4' | 'lz4block'): Decoded {
  if (!meta.shape || !meta.dtype) throw new Error('stream frames need shape and dtype');
  const bytes = meta.shape[0] * meta.shape[1] * elemSize(meta.dtype as Dtype);
  if (scratch.length < bytes) scratch = new Uint8Array(bytes);
  const pixels = decodeImage({ shape: meta.shape, dtype: meta.dtype as Dtype, encoding, bytes: payload }, scratch) as PixelFrame;
  return { shape: meta.shape, pixels, maxValid: streamMaxValid(meta, context) };
}
