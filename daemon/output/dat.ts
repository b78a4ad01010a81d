// pyFAI-style .dat text: the header pyFAI's DefaultAiWriter writes (PONI
// geometry, its Fit2d equivalent, detector, wavelength, corrections) followed
// by columns of "%14.6e", so numpy.loadtxt and pyFAI users read it as they read
// pyFAI-integrate's output. A few lines pyFAI leaves implicit (solid angle,
// split method, unit, radial range) are spelled out.
import type { Geometry } from '../geometry/geometry';

export interface DatProfile {
  unit: string;
  radial: ArrayLike<number>;
  /** 2D: azimuthal bin centres in degrees; intensity and sigma are then [azimuthal][radial]. */
  azimuthal?: ArrayLike<number> | undefined;
  intensity: ArrayLike<number>;
  sigma?: ArrayLike<number> | undefined;
}

export interface DatHeader {
  /** null: taken from each frame's header (CBF) and not known here. */
  geometry: Geometry | null;
  detector?: string | undefined;
  mask: string | null;
  dark: string | null;
  flat: string | null;
  polarization: number | null;
  solidAngle: boolean;
  split: string;
  radialRange?: [number, number] | null | undefined;
  /** Where the frame came from, and what it is (file, or series and frame id). */
  source: string;
  extra?: string[];
}

/** C's %.Ne (two-digit exponent at least), as Python and pyFAI print. */
export function expC(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toExponential(digits).replace(/e([+-])(\d)$/, 'e$10$2') : String(x);
}

const e = (x: number) => expC(x, 3);

function geometryLines(g: Geometry | null, detector: string | undefined): string[] {
  if (!g) return ['# == pyFAI calibration ==', "# Geometry: from each frame's header", '# '];
  const lines = [
    '# == pyFAI calibration ==',
    `# Distance Sample to Detector: ${g.dist} m`,
    `# PONI: ${e(g.poni1)}, ${e(g.poni2)} m`,
    `# Rotations: ${g.rot1.toFixed(6)} ${g.rot2.toFixed(6)} ${g.rot3.toFixed(6)} rad`,
    '# ',
  ];
  // Fit2d's beam centre is the PONI in pixels only without tilt; with rotations
  // pyFAI's conversion needs the full tilt algebra, which the PONI lines carry anyway.
  if (g.rot1 === 0 && g.rot2 === 0 && g.rot3 === 0)
    lines.push(
      '# == Fit2d calibration ==',
      `# Distance Sample-beamCenter: ${(g.dist * 1000).toFixed(3)} mm`,
      `# Center: x=${(g.poni2 / g.pixel2).toFixed(3)}, y=${(g.poni1 / g.pixel1).toFixed(3)} pix`,
      '# Tilt: 0.000 deg  TiltPlanRot: 0.000 deg',
      '# ',
    );
  lines.push(`# Detector ${detector ?? g.detector ?? 'Detector'}\t PixelSize= ${e(g.pixel1)}, ${e(g.pixel2)} m`, '# ');
  if (g.wavelength !== undefined) lines.push(`# Wavelength: ${g.wavelength} m`);
  return lines;
}

export function formatDat(p: DatProfile, h: DatHeader): string {
  const lines = [
    ...geometryLines(h.geometry, h.detector),
    `# Mask applied: ${h.mask ?? 'False'}`,
    `# Dark current applied: ${h.dark ?? 'False'}`,
    `# Flat field applied: ${h.flat ?? 'False'}`,
    `# Polarization factor: ${h.polarization ?? 'None'}`,
    '# Normalization factor: 1.0',
    `# Solid angle correction: ${h.solidAngle ? 'True' : 'False'}`,
    `# Integration method: split=${h.split}, algo=histogram (beamedge)`,
    `# Unit: ${p.unit}`,
    ...(h.radialRange ? [`# Radial range: ${h.radialRange[0]} ${h.radialRange[1]} ${p.unit}`] : []),
    ...(h.extra ?? []).map((x) => `# ${x}`),
    `# --> ${h.source}`,
  ];
  const col = (x: number) => expC(x, 6).padStart(14);
  const nr = p.radial.length;
  const sigma = p.sigma;
  if (p.azimuthal) {
    lines.push(`#${p.unit.padStart(14)} ${'chi_deg'.padStart(14)} ${'I'.padStart(14)}${sigma ? ' ' + 'sigma'.padStart(14) : ''}`);
    for (let a = 0; a < p.azimuthal.length; a++)
      for (let i = 0; i < nr; i++) {
        const k = a * nr + i;
        lines.push(`${col(p.radial[i]!)} ${col(p.azimuthal[a]!)} ${col(p.intensity[k]!)}${sigma ? ' ' + col(sigma[k]!) : ''}`);
      }
  } else {
    lines.push(`#${p.unit.padStart(14)} ${'I'.padStart(14)}${sigma ? ' ' + 'sigma'.padStart(14) : ''}`);
    for (let i = 0; i < nr; i++) lines.push(`${col(p.radial[i]!)} ${col(p.intensity[i]!)}${sigma ? ' ' + col(sigma[i]!) : ''}`);
  }
  return lines.join('\n') + '\n';
}
