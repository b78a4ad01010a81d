// The decode stage: picks the decoder for the frame's encoding and settles its
// geometry (the PONI when configured, else the frame's own or its series' start message).
import type { Geometry } from '../../../geometry/geometry';
import type { FrameMeta, SeriesContext } from '../../protocol';
import { bslz4Decoder } from './bslz4';
import { cbfDecoder } from './cbf';
import type { Decoded, Decoder } from './decoder';
import { lz4Decoder } from './lz4';
import { rawDecoder } from './raw';

const DECODERS = new Map<FrameMeta['encoding'], Decoder>([cbfDecoder, bslz4Decoder, lz4Decoder, rawDecoder].flatMap((d) => d.encodings.map((e) => [e, d] as const)));

export function decodeFrame(meta: FrameMeta, payload: Uint8Array, context: SeriesContext | undefined, where: string, poni: Geometry | undefined): Decoded & { geometry: Geometry } {
  const decoder = DECODERS.get(meta.encoding);
  if (!decoder) throw new Error(`no decoder for encoding ${JSON.stringify(meta.encoding)}`);
  const d = decoder.open(meta, payload, context, where, poni !== undefined);
  const geometry = poni ?? d.geometry ?? context?.geometry;
  if (!geometry) {
    if (context) throw new Error('the start message gave no usable geometry and pipeline.geometry.poni is not set');
    if (meta.context !== undefined || meta.encoding !== 'raw') throw new Error(`no start message for series ${meta.series} (started mid-series?) and pipeline.geometry.poni is not set`);
    throw new Error('raw frames need pipeline.geometry.poni');
  }
  // pyFAI refuses a PONI whose detector has another shape than the image; so do we.
  if (poni?.shape && (poni.shape[0] !== d.shape[0] || poni.shape[1] !== d.shape[1]))
    throw new Error(`pipeline.geometry.poni describes a ${poni.shape.join(' x ')} detector${poni.detector ? ` (${poni.detector})` : ''}, but the frames are ${d.shape.join(' x ')}`);
  return { ...d, geometry };
}
