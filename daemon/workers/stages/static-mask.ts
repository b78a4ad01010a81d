// The static mask of a frame's map: the calibration's masks ORed, plus the
// markers (negative pixels) of the first frame seen with that map. Built once
// per map key and shared by the stages that need it (integration, spots).
import type { WorkFrame } from './frame';
import { RecentMap } from '../../system/recent-map';

const MAX_MASKS = 4;
const masks = new RecentMap<string, Uint8Array>(MAX_MASKS);

export function staticMask(f: WorkFrame): Uint8Array {
  const key = JSON.stringify([f.shape, f.mapKey, !!f.negativeValid]);
  let mask = masks.get(key);
  if (mask) return mask;
  const n = f.shape[0] * f.shape[1];
  mask = new Uint8Array(n);
  for (const m of f.masks) for (let i = 0; i < n; i++) if (m[i]) mask[i] = 1;
  // Markers of the first frame of a map (negative pixels: PILATUS gaps and dead pixels).
  if (!f.negativeValid) {
    const px = f.pixels ?? f.decode();
    for (let i = 0; i < n; i++) if (px[i]! < 0) mask[i] = 1;
  }
  masks.set(key, mask);
  return mask;
}
