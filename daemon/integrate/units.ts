// Radial units, named as in pyFAI. Positions are computed in the unit's
// internal (SI-like) form and scaled only for output and user ranges.

export type RadialSpace = 'q' | '2th' | 'r';

export interface RadialUnit {
  name: string;
  space: RadialSpace;
  /** Multiply an internal value by this to get the unit. */
  scale: number;
}

const UNITS: RadialUnit[] = [
  { name: 'q_nm^-1', space: 'q', scale: 1 },
  { name: 'q_A^-1', space: 'q', scale: 0.1 },
  { name: '2th_deg', space: '2th', scale: 180 / Math.PI },
  { name: '2th_rad', space: '2th', scale: 1 },
  { name: 'r_mm', space: 'r', scale: 1000 },
  { name: 'r_m', space: 'r', scale: 1 },
];

export const UNIT_NAMES = UNITS.map((u) => u.name);

export function radialUnit(name: string): RadialUnit {
  const canonical = name.replace(/-1$/, '^-1').replace(/\^\^/, '^');
  const u = UNITS.find((x) => x.name === canonical || x.name.toLowerCase() === canonical.toLowerCase());
  if (!u) throw new RangeError(`unknown unit '${name}' (one of ${UNIT_NAMES.join(', ')})`);
  return u;
}
