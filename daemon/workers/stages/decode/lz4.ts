// LZ4, framed (stream v1's "lz4") or one raw block (stream v2's lz4 without bitshuffle).
import type { Decoder } from './decoder';
import { openStreamImage } from './stream-image';

export const lz4Decoder: Decoder = {
  encodings: ['lz4', 'lz4block'],
  open: (meta, payload, context) => openStreamImage(meta, payload, context, meta.encoding as 'lz4' | 'lz4block'),
};
