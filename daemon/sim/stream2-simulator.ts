// A synthetic EIGER-like detector on DECTRIS stream v2 (or v1): start
// (geometry, pixel mask, saturation), bitshuffle-LZ4 images from a small pool, end.
import { DcuPusher } from './dcu-pusher';
import type { EncodedImage } from '../decode/stream2';
import { native } from '../native';
import { endParts, headerParts, imageParts } from './stream1-sender';
import { Pacer } from './sender';
import { compressedImage, endMessage, imageMessage, startMessage } from './stream2-sender';
import { SyntheticDetector } from './synthetic';

export interface Stream2SimOptions {
  bind: string;
  shape: [number, number];
  bits: 16 | 32;
  frames: number;
  rateHz: number;
  hitFraction: number;
  /** Wait this long for consumers to connect before the start message... */
  waitMs: number;
  /** ...or, when given, until this many have connected (at most 10 s). */
  consumers?: number;
  seriesId?: number;
}

async function awaitConsumers(pusher: DcuPusher, o: Stream2SimOptions): Promise<void> {
  if (o.consumers) await pusher.waitForConsumers(o.consumers, 10_000);
  else await new Promise((r) => setTimeout(r, o.waitMs));
}

/** Pre-compressed images: the pool, not the generator, sets the pace. */
export function stream2Pool(shape: [number, number], bits: 16 | 32, hitFraction: number, size = 8): { pool: ReturnType<typeof compressedImage>[]; images: EncodedImage[]; mask: Uint32Array } {
  const det = new SyntheticDetector({ shape });
  const flag = bits === 16 ? 0xffff : 0xffffffff;
  let mask = new Uint32Array(0);
  const images = Array.from({ length: size }, (_, i) => {
    const hit = Math.floor((i + 1) * hitFraction) > Math.floor(i * hitFraction);
    const px = det.pixels(hit);
    if (!mask.length) mask = Uint32Array.from(px, (v) => (v < 0 ? 1 : 0));
    const out = bits === 16 ? new Uint16Array(px.length) : new Uint32Array(px.length);
    for (let k = 0; k < px.length; k++) out[k] = px[k]! < 0 ? flag : px[k]!;
    return out;
  });
  return {
    pool: images.map((img) => compressedImage(img, shape)),
    images: images.map((img) => ({ shape, dtype: bits === 16 ? 'uint16' : 'uint32', encoding: 'bslz4', bytes: native.bslz4Encode(img, bits / 8) })),
    mask,
  };
}

export async function simulateStream2(o: Stream2SimOptions): Promise<{ frames: number; seconds: number; shape: [number, number] }> {
  const { pool, mask } = stream2Pool(o.shape, o.bits, o.hitFraction);
  const pusher = await DcuPusher.bind(o.bind);
  await awaitConsumers(pusher, o);
  const id = o.seriesId ?? 1;
  const uid = `sim-${id}-${Date.now()}`;
  const t0 = performance.now();
  await pusher.sendToAll(startMessage({
      series_id: id,
      series_unique_id: uid,
      shape: o.shape,
      dtype: o.bits === 16 ? 'uint16' : 'uint32',
      beam_center: [o.shape[1] * 0.49, o.shape[0] * 0.52],
      pixel_size: 75e-6,
      distance: 0.12,
      wavelength_A: 1,
      number_of_images: o.frames,
      channels: ['threshold_1'],
      saturation_value: o.bits === 16 ? 65000 : 1_000_000,
      pixel_mask: mask,
    }),
  );
  const pacer = new Pacer(o.rateHz);
  for (let i = 0; i < o.frames; i++) {
    await pusher.send(imageMessage(id, uid, i, { threshold_1: pool[i % pool.length]! }));
    await pacer.next();
  }
  await pusher.sendToAll(endMessage(id, uid));
  await pusher.close();
  return { frames: o.frames, seconds: (performance.now() - t0) / 1000, shape: o.shape };
}

export async function simulateStream1(o: Stream2SimOptions): Promise<{ frames: number; seconds: number; shape: [number, number] }> {
  const { images, mask } = stream2Pool(o.shape, o.bits, o.hitFraction);
  const pusher = await DcuPusher.bind(o.bind);
  await awaitConsumers(pusher, o);
  const series = o.seriesId ?? 1;
  const t0 = performance.now();
  await pusher.sendToAll(
    headerParts(series, { shape: o.shape, beam_center: [o.shape[1] * 0.49, o.shape[0] * 0.52], pixel_size: 75e-6, distance: 0.12, wavelength_A: 1, nimages: o.frames, count_cutoff: o.bits === 16 ? 65000 : 1_000_000 }, mask),
  );
  const pacer = new Pacer(o.rateHz);
  for (let i = 0; i < o.frames; i++) {
    await pusher.send(imageParts(series, i, images[i % images.length]!));
    await pacer.next();
  }
  await pusher.sendToAll(endParts(series));
  await pusher.close();
  return { frames: o.frames, seconds: (performance.now() - t0) / 1000, shape: o.shape };
}
