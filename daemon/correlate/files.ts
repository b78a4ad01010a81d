// The accumulated correlation written as .npy files (numpy loads them as
// they are): C2 and M [npt][npt][npt_azim], the radial and delta axes.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeNpy, sha256, type NpyWritable } from '../calibrate/npy';
import type { CorrelationState } from './accumulator';
import { deltaAxis, fullCorrelation } from './result';

export interface WrittenFile {
  name: string;
  path: string;
  sha256: string;
  bytes: number;
}

/**
 * Writes c2.npy, pairs.npy, radial.npy and delta_deg.npy into dir (each
 * through a temporary name, so a reader never sees half a file). M is
 * float64, or int32 when `pairsInt32` (what numpy's count arrays use).
 */
export function writeCorrelationFiles(dir: string, s: CorrelationState, opts: { pairsInt32?: boolean; meta?: Record<string, unknown> } = {}): WrittenFile[] {
  const { c2, m } = fullCorrelation(s);
  const shape = [s.npt, s.npt, s.nptAzim];
  let pairs: NpyWritable = m;
  if (opts.pairsInt32) {
    if (m.some((v) => v > 0x7fffffff)) throw new Error('valid-pair counts exceed int32');
    pairs = Int32Array.from(m);
  }
  mkdirSync(dir, { recursive: true });
  const out: WrittenFile[] = [];
  const files: [string, NpyWritable, number[]][] = [
    ['c2.npy', c2, shape],
    ['pairs.npy', pairs, shape],
    ['radial.npy', s.radial, [s.npt]],
    ['delta_deg.npy', deltaAxis(s.nptAzim), [s.nptAzim]],
  ];
  const encoded: [string, Buffer][] = files.map(([name, data, dims]) => [name, encodeNpy(data, dims)]);
  // What the arrays alone do not say (how many frames, which series): beside them, for a reader without the database.
  if (opts.meta) encoded.push(['meta.json', Buffer.from(JSON.stringify({ frames: s.frames, npt: s.npt, npt_azim: s.nptAzim, unit: s.unit, ...opts.meta }, null, 1) + '\n')]);
  for (const [name, buf] of encoded) {
    const file = path.join(dir, name);
    writeFileSync(`${file}.tmp`, buf);
    renameSync(`${file}.tmp`, file);
    out.push({ name, path: file, sha256: sha256(buf), bytes: buf.length });
  }
  return out;
}
