// pyFAI PONI files: the old key/value form (PixelSize1/2) and the poni_version 2
// form with a JSON Detector_config.
import { GeometryError, type Geometry } from './geometry';

// Detectors named without a Detector_config, with pixel sizes (m) and shapes
// [rows, cols] as pyFAI's detector classes give them.
const KNOWN_DETECTORS: Record<string, { pixel: number; shape: [number, number] }> = {
  pilatus100k: { pixel: 172e-6, shape: [195, 487] },
  pilatus200k: { pixel: 172e-6, shape: [407, 487] },
  pilatus300k: { pixel: 172e-6, shape: [619, 487] },
  pilatus300kw: { pixel: 172e-6, shape: [195, 1475] },
  pilatus1m: { pixel: 172e-6, shape: [1043, 981] },
  pilatus2m: { pixel: 172e-6, shape: [1679, 1475] },
  pilatus6m: { pixel: 172e-6, shape: [2527, 2463] },
  pilatuscdte300k: { pixel: 172e-6, shape: [619, 487] },
  pilatuscdte1m: { pixel: 172e-6, shape: [1043, 981] },
  pilatuscdte2m: { pixel: 172e-6, shape: [1679, 1475] },
  eiger500k: { pixel: 75e-6, shape: [514, 1030] },
  eiger1m: { pixel: 75e-6, shape: [1065, 1030] },
  eiger4m: { pixel: 75e-6, shape: [2167, 2070] },
  eiger9m: { pixel: 75e-6, shape: [3269, 3110] },
  eiger16m: { pixel: 75e-6, shape: [4371, 4150] },
};

function parseNumber(key: string, value: string, source: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v)) throw new GeometryError(`${source}: ${key} is '${value}', not a number`);
  return v;
}

export function parsePoni(text: string, source = 'PONI'): Geometry {
  const kv = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    kv.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const get = (k: string): number | undefined => {
    const v = kv.get(k.toLowerCase());
    return v === undefined ? undefined : parseNumber(k, v, source);
  };
  const need = (k: string): number => {
    const v = get(k);
    if (v === undefined) throw new GeometryError(`${source}: missing ${k}`);
    return v;
  };

  let pixel1 = get('PixelSize1');
  let pixel2 = get('PixelSize2');
  let shape: [number, number] | undefined;
  const detector = kv.get('detector');
  const config = kv.get('detector_config');
  if (config !== undefined) {
    let cfg: Record<string, unknown>;
    try {
      cfg = JSON.parse(config) as Record<string, unknown>;
    } catch (e) {
      throw new GeometryError(`${source}: Detector_config is not valid JSON (${(e as Error).message})`);
    }
    if (typeof cfg.pixel1 === 'number') pixel1 = cfg.pixel1;
    if (typeof cfg.pixel2 === 'number') pixel2 = cfg.pixel2;
    if (Array.isArray(cfg.max_shape) && cfg.max_shape.length === 2) shape = [Number(cfg.max_shape[0]), Number(cfg.max_shape[1])];
    // poni_version 2.1 records the detector orientation; pyFAI's default (3) is
    // the only one whose pixel axes match the formulas used here.
    if (cfg.orientation !== undefined && cfg.orientation !== 3)
      throw new GeometryError(`${source}: detector orientation ${String(cfg.orientation)} is not supported (only 3)`);
    if (typeof cfg.splineFile === 'string' && cfg.splineFile)
      throw new GeometryError(`${source}: spline distortion correction is not supported`);
  }
  const known = detector ? KNOWN_DETECTORS[detector.toLowerCase().replace(/[^a-z0-9]/g, '')] : undefined;
  if (known) {
    pixel1 ??= known.pixel;
    pixel2 ??= known.pixel;
    shape ??= known.shape;
  }
  if (pixel1 === undefined || pixel2 === undefined)
    throw new GeometryError(`${source}: no pixel size (PixelSize1/2 or Detector_config) and detector '${detector ?? '?'}' is not known`);

  const wavelength = get('Wavelength');
  const g: Geometry = {
    dist: need('Distance'),
    poni1: need('Poni1'),
    poni2: need('Poni2'),
    rot1: get('Rot1') ?? 0,
    rot2: get('Rot2') ?? 0,
    rot3: get('Rot3') ?? 0,
    pixel1,
    pixel2,
    ...(wavelength !== undefined ? { wavelength } : {}),
    ...(shape ? { shape } : {}),
    ...(detector ? { detector } : {}),
  };
  if (!(g.dist > 0)) throw new GeometryError(`${source}: Distance must be positive, got ${g.dist}`);
  if (!(pixel1 > 0 && pixel2 > 0)) throw new GeometryError(`${source}: pixel sizes must be positive`);
  return g;
}

export function formatPoni(g: Geometry): string {
  const cfg: Record<string, unknown> = { pixel1: g.pixel1, pixel2: g.pixel2, max_shape: g.shape ?? null };
  return [
    '# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis',
    'poni_version: 2',
    `Detector: ${g.detector ?? 'Detector'}`,
    `Detector_config: ${JSON.stringify(cfg)}`,
    `Distance: ${g.dist}`,
    `Poni1: ${g.poni1}`,
    `Poni2: ${g.poni2}`,
    `Rot1: ${g.rot1}`,
    `Rot2: ${g.rot2}`,
    `Rot3: ${g.rot3}`,
    ...(g.wavelength !== undefined ? [`Wavelength: ${g.wavelength}`] : []),
    '',
  ].join('\n');
}
