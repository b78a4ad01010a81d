// One decoder per encoding: it reads the frame's shape and geometry and makes
// its pixels available (at once, or lazily for the fused CBF pass).
import type { Geometry } from '../../../geometry/geometry';
import type { PixelFrame } from '../../../native';
import type { FrameMeta, SeriesContext } from '../../protocol';

export interface Decoded {
  shape: [number, number];
  /** From the frame itself (a CBF header); otherwise the PONI or the series' start message supplies it. */
  geometry?: Geometry;
  pixels?: PixelFrame;
  /** Decodes on demand, for encodings whose pixels stay compressed until needed. */
  decode?: () => PixelFrame;
  maxValid?: number;
}

export interface Decoder {
  readonly encodings: readonly FrameMeta['encoding'][];
  open(meta: FrameMeta, payload: Uint8Array, context: SeriesContext | undefined, where: string, usePoni: boolean): Decoded;
}
