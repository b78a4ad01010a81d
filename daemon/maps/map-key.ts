// A map's identity: the content hash of everything it depends on (geometry,
// shape, binning, unit space, splitting, corrections, static mask and flat).
// Equal keys mean equal maps, so a key can name a map in memory, in another
// worker and on disk alike; the build threads are left out (they do not
// change the result).
import { createHash } from 'node:crypto';
import type { NativeMapSpec } from '../native';

/** Bumped when the map blob's layout or the build's results change: old cache files then never match. */
export const MAP_FORMAT = 1;

export function mapKey(spec: NativeMapSpec): string {
  const h = createHash('sha256');
  const { mask, flat, threads: _threads, ...scalars } = spec;
  const g = scalars.geometry;
  // Fixed field order: the key must not depend on how the object was assembled.
  h.update(
    JSON.stringify([
      MAP_FORMAT,
      [g.dist, g.poni1, g.poni2, g.rot1, g.rot2, g.rot3, g.pixel1, g.pixel2, g.wavelength],
      scalars.rows,
      scalars.cols,
      scalars.radial,
      scalars.split,
      scalars.twoD,
      scalars.solidAngle,
      scalars.polarization ?? null,
      scalars.bins0,
      scalars.bins1 ?? null,
      scalars.range0 ?? null,
      scalars.range1 ?? null,
      mask ? mask.length : null,
      flat ? flat.length : null,
    ]),
  );
  if (mask) h.update(mask);
  if (flat) h.update(new Uint8Array(flat.buffer, flat.byteOffset, flat.byteLength));
  return h.digest('hex').slice(0, 40);
}
