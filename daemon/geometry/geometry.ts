// Detector geometry in pyFAI's terms (PONI convention), from a PONI file or a CBF header.
import type { PilatusHeader } from '../decode/pilatus-header';
import type { NativeGeometry } from '../native';

// dist: sample to point of normal incidence (m); poni1 / poni2: PONI along the
// slow (rows) / fast (columns) axis (m); rot1..3 (rad); pixel1 / pixel2: pixel
// size along the slow / fast axis (m); wavelength (m) is needed for q only.
export interface Geometry extends Omit<NativeGeometry, 'wavelength'> {
  wavelength?: number;
  /** [rows, cols] when the PONI's detector says it. */
  shape?: [number, number];
  detector?: string;
}

export class GeometryError extends Error {
  override name = 'GeometryError';
}

/** poni1 = Beam_y * pixel, poni2 = Beam_x * pixel, no rotations, as pyFAI's CBF import does. */
export function geometryFromCbfHeader(h: PilatusHeader, source = 'CBF header'): Geometry {
  const missing = (
    [
      ['Pixel_size', h.pixelSize],
      ['Detector_distance', h.detectorDistance],
      ['Beam_xy', h.beamXY],
    ] as const
  )
    .filter(([, v]) => v === undefined)
    .map(([k]) => k);
  if (missing.length) throw new GeometryError(`${source} lacks ${missing.join(', ')}: geometry needs a PONI file`);
  const [px, py] = h.pixelSize!;
  const [bx, by] = h.beamXY!;
  return {
    dist: h.detectorDistance!,
    poni1: by * py,
    poni2: bx * px,
    rot1: 0,
    rot2: 0,
    rot3: 0,
    pixel1: py,
    pixel2: px,
    ...(h.wavelength !== undefined ? { wavelength: h.wavelength } : {}),
    ...(h.detector !== undefined ? { detector: h.detector } : {}),
  };
}
