// What `calibrate pedestal` and `calibrate import` share: their common options,
// the output check, and the lines of the summary they print.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { UsageError, type OptionSpec } from './args';
import { excludeBitsPerGain } from '../calibrate/mask-bits';
import type { Shape } from '../calibrate/raw-frames';
import { VERSION } from '../version';

export const MODULE_SHAPE: Shape = [512, 1024];

/** Options both commands take, spelled and explained once. */
export const SET_OPTIONS = {
  out: { kind: 'string', arg: 'DIR', help: 'directory of the new calibration set (must not hold one)' },
  'energy-kev': { kind: 'number', min: 0.1, arg: 'E', help: 'photon energy the set converts at' },
} as const satisfies Record<string, OptionSpec>;
export const GAIN_FILE_HELP = 'JUNGFRAU gain file: float64 [3][rows][cols] little-endian, ADU/keV (or .npy)';

export function parseShape(text: string): Shape {
  const m = /^(\d+)x(\d+)$/.exec(text);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new UsageError(`--shape: '${text}' is not ROWSxCOLS (e.g. 512x1024)`);
  return [Number(m[1]), Number(m[2])];
}

/** Fails before any work when the output would not be writable as a new set. */
export function checkOut(out: string | undefined): string {
  if (!out) throw new UsageError('--out DIR is required');
  if (existsSync(path.join(out, 'calibration.json'))) throw new UsageError(`--out: ${out} already holds a calibration set (sets are never overwritten)`);
  return out;
}

export function tool(name: string, argv: string[]): { name: string; version: string; command: string[] } {
  return { name, version: VERSION, command: argv };
}

/** Mean pedestal and rms per gain over the pixels usable in that gain; null where none is. */
export function meansPerGain(pedestal: Float32Array, rms: Float32Array, mask: Uint32Array): { pedestal: number | null; rms: number | null; pixels: number }[] {
  const n = mask.length;
  const exclude = excludeBitsPerGain();
  return [0, 1, 2].map((g) => {
    let sp = 0;
    let sr = 0;
    let c = 0;
    for (let i = 0; i < n; i++)
      if ((mask[i]! & exclude[g]!) === 0) {
        sp += pedestal[g * n + i]!;
        sr += rms[g * n + i]!;
        c++;
      }
    return { pedestal: c ? sp / c : null, rms: c ? sr / c : null, pixels: c };
  });
}

export function formatMeans(means: ReturnType<typeof meansPerGain>, rmsKnown: boolean[]): string[] {
  return means.map(
    (m, g) =>
      `  G${g}: ${m.pixels} usable pixels, mean pedestal ${m.pedestal === null ? '-' : m.pedestal.toFixed(1)} ADU, mean rms ${!rmsKnown[g] ? 'unknown' : m.rms === null ? '-' : m.rms.toFixed(2) + ' ADU'}`,
  );
}

export function formatMask(counts: Record<string, number>, pixels: number): string[] {
  const rows = Object.entries(counts);
  if (rows.length === 0) return ['  (none)'];
  return rows.map(([name, c]) => `  ${name.padEnd(18)} ${String(c).padStart(8)}  (${((100 * c) / pixels).toFixed(3)} %)`);
}
