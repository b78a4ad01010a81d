// Bitshuffle-LZ4 (EIGER and EIGER2 streams and HDF5 files: the default).
import type { Decoder } from './decoder';
import { openStreamImage } from './stream-image';

export const bslz4Decoder: Decoder = {
  encodings: ['bslz4'],
  open: (meta, payload, context) => openStreamImage(meta, payload, context, 'bslz4'),
};
