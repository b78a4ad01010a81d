// The live page's picture of a kept frame: binned down so that its long side
// is at most PREVIEW_MAX_SIDE, each block showing its brightest valid pixel
// (a Bragg spot survives the binning), on a log scale. Made only when the main
// thread asks (a page is open, at most about once a second), so a daemon
// nobody watches never pays for it.
import { native, type PixelFrame } from '../native';
import type { PreviewInfo } from './protocol';

export const PREVIEW_MAX_SIDE = 512;

export interface PreviewInput {
  pixels: PixelFrame;
  /** [rows, columns]. */
  shape: [number, number];
  /** 1: masked (the static mask of the frame's map). */
  mask?: Uint8Array;
  /** Pixels above this are saturated or flagged. */
  maxValid?: number;
  /** Negative values are signal (calibrated frames); otherwise they are markers. */
  negativeValid?: boolean;
}

/** 0: a block with no valid pixel; 1..255: log10(1 + max(value, 0)) over [log10Min, log10Max]. */
export function makePreview(p: PreviewInput): { info: Omit<PreviewInfo, 'ms'>; image: Uint8Array } {
  const [rows, cols] = p.shape;
  const binning = Math.max(1, Math.ceil(Math.max(rows, cols) / PREVIEW_MAX_SIDE));
  const width = Math.ceil(cols / binning);
  const height = Math.ceil(rows / binning);
  const best = new Float32Array(width * height);
  native.previewBlockMax(p.pixels, rows, cols, binning, p.mask ?? null, p.negativeValid ? -Infinity : 0, p.maxValid ?? Infinity, best);
  let lo = Infinity;
  let hi = -Infinity;
  const logs = new Float64Array(best.length);
  for (let i = 0; i < best.length; i++) {
    if (best[i] === -Infinity) continue;
    const l = Math.log10(1 + Math.max(0, best[i]!));
    logs[i] = l;
    if (l < lo) lo = l;
    if (l > hi) hi = l;
  }
  const image = new Uint8Array(best.length);
  const span = hi > lo ? hi - lo : 1;
  for (let i = 0; i < best.length; i++) if (best[i] !== -Infinity) image[i] = 1 + Math.round((254 * (logs[i]! - lo)) / span);
  return { info: { width, height, binning, log10Min: Number.isFinite(lo) ? lo : 0, log10Max: Number.isFinite(hi) ? hi : 0 }, image };
}
