// A series' pixel mask and flatfield, decoded on a worker from the bytes the
// start message carried. Decoding a detector-sized mask takes tens of
// milliseconds to seconds; done here, it costs the main thread nothing. Each is
// decoded once per series context, when a frame first needs it, and the result
// lives exactly as long as the worker keeps that context.
import { expectShape } from '../calibrate/pixel-image';
import { decodeImage, type EncodedImage } from '../decode/stream2';
import type { SeriesContext } from './protocol';

export interface SeriesCalibration {
  /** 1: masked. */
  mask?: Uint8Array;
  flat?: Float32Array;
}

const decoded = new WeakMap<SeriesContext, SeriesCalibration | Error>();

function decodeMask(img: EncodedImage): Uint8Array {
  const px = decodeImage(img);
  const mask = new Uint8Array(px.length);
  for (let i = 0; i < px.length; i++) if (px[i] !== 0) mask[i] = 1;
  return mask;
}

function decode(context: SeriesContext): SeriesCalibration {
  const c: SeriesCalibration = {};
  const part = <T>(what: string, img: EncodedImage, fn: (img: EncodedImage) => T): T => {
    try {
      return fn(img);
    } catch (e) {
      throw new Error(`the start message's ${what} (${img.shape.join(' x ')} ${img.dtype}, ${img.encoding}) does not decode: ${(e as Error).message}`);
    }
  };
  if (context.mask) c.mask = part('pixel mask', context.mask, decodeMask);
  if (context.flat) c.flat = part('flatfield', context.flat, (img) => new Float32Array(decodeImage(img)));
  return c;
}

/** The decoded mask and flatfield of a series, checked against the frames' shape; throws (every time) when they are unusable. */
export function seriesCalibration(context: SeriesContext, shape: [number, number]): SeriesCalibration {
  let c = decoded.get(context);
  if (!c) {
    try {
      c = decode(context);
    } catch (e) {
      c = e as Error;
    }
    decoded.set(context, c);
  }
  if (c instanceof Error) throw c;
  if (context.mask) expectShape(context.mask, shape, "the start message's pixel mask");
  if (context.flat) expectShape(context.flat, shape, "the start message's flatfield");
  return c;
}
