// Calibration sets: a directory holding calibration.json and .npy arrays. The
// set's id is the sha256 of its calibration.json, which names the sha256 of
// every array: one hash pins every constant a frame was converted with.
// Loaded and checked once on the main thread, into shared memory that every
// worker reads without a copy.
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeNpy, readNpy, sha256, type NpyData, type NpyDtype } from './npy';

export const CALIBRATION_FORMAT = 'beamedge-calibration/1';
export const DETECTOR_KINDS = ['jungfrau', 'generic'] as const;
export type DetectorKind = (typeof DETECTOR_KINDS)[number];

/** The arrays a set may hold: file, dtype, whether it is per gain stage ([3][rows][cols]). */
export const CALIBRATION_ARRAYS = {
  pedestal: { dtype: '<f4', perGain: true, jungfrau: true },
  pedestal_rms: { dtype: '<f4', perGain: true, jungfrau: true },
  gain: { dtype: '<f8', perGain: true, jungfrau: true },
  mask: { dtype: '<u4', perGain: false, jungfrau: true },
  flat: { dtype: '<f4', perGain: false, jungfrau: false },
  dark: { dtype: '<f4', perGain: false, jungfrau: false },
} as const satisfies Record<string, { dtype: NpyDtype; perGain: boolean; jungfrau: boolean }>;
export type ArrayName = keyof typeof CALIBRATION_ARRAYS;

export interface CalibrationArrays {
  pedestal?: Float32Array;
  pedestal_rms?: Float32Array;
  gain?: Float64Array;
  mask?: Uint32Array;
  flat?: Float32Array;
  dark?: Float32Array;
}

export interface CalibrationJson {
  format: typeof CALIBRATION_FORMAT;
  detector: DetectorKind;
  /** [rows, cols] of one frame. */
  shape: [number, number];
  /** Photon energy the gains convert at (null: not known; conversion then needs one from the configuration). */
  energy_kev: number | null;
  created: string;
  /** What made the set: tool name, version and the command line. */
  tool: { name: string; version: string; command: string[] };
  /** The files it was made from, with their sha256 where they were read whole. */
  inputs: { role: string; path: string; sha256?: string }[];
  /** The set this one was derived from (pedestal tracking snapshots), or null. */
  parent: string | null;
  arrays: Partial<Record<ArrayName, { file: string; dtype: NpyDtype; shape: number[]; sha256: string }>>;
  /** Free-form figures the tool recorded (frames per gain, masked pixels per reason...). */
  summary?: Record<string, unknown>;
}

export interface CalibrationSet {
  id: string;
  dir: string;
  json: CalibrationJson;
  arrays: CalibrationArrays;
}

export class CalibrationError extends Error {
  override name = 'CalibrationError';
}

function expectedShape(name: ArrayName, shape: [number, number]): number[] {
  return CALIBRATION_ARRAYS[name].perGain ? [3, ...shape] : [...shape];
}

/** Reads a set, checking every file exists, matches its recorded sha256 and has the set's shape. */
export function loadCalibrationSet(dirIn: string, shared = true): CalibrationSet {
  const dir = path.resolve(dirIn);
  const jsonPath = path.join(dir, 'calibration.json');
  let text: Buffer;
  try {
    text = readFileSync(jsonPath);
  } catch (e) {
    throw new CalibrationError(`${jsonPath}: cannot read the calibration set: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let json: CalibrationJson;
  try {
    json = JSON.parse(text.toString('utf8')) as CalibrationJson;
  } catch (e) {
    throw new CalibrationError(`${jsonPath}: not valid JSON (${(e as Error).message})`);
  }
  const bad = (what: string) => new CalibrationError(`${jsonPath}: ${what}`);
  if (json.format !== CALIBRATION_FORMAT) throw bad(`format is ${JSON.stringify(json.format)}, expected ${CALIBRATION_FORMAT}`);
  if (!DETECTOR_KINDS.includes(json.detector)) throw bad(`detector ${JSON.stringify(json.detector)} is not one of ${DETECTOR_KINDS.join(', ')}`);
  const shape = json.shape;
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d > 0)) throw bad(`shape ${JSON.stringify(shape)} is not [rows, cols]`);
  if (json.energy_kev !== null && !(typeof json.energy_kev === 'number' && json.energy_kev > 0)) throw bad(`energy_kev ${JSON.stringify(json.energy_kev)} must be a positive number or null`);
  if (typeof json.arrays !== 'object' || json.arrays === null) throw bad('no arrays listed');
  const arrays: CalibrationArrays = {};
  for (const [name, entry] of Object.entries(json.arrays)) {
    if (!(name in CALIBRATION_ARRAYS)) throw bad(`unknown array ${name} (known: ${Object.keys(CALIBRATION_ARRAYS).join(', ')})`);
    const spec = CALIBRATION_ARRAYS[name as ArrayName];
    if (!entry || typeof entry.file !== 'string' || path.basename(entry.file) !== entry.file) throw bad(`array ${name}: file must be a plain file name in the set's directory`);
    const file = path.join(dir, entry.file);
    let buf: Buffer;
    try {
      buf = readFileSync(file);
    } catch (e) {
      throw new CalibrationError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}), listed in ${jsonPath}`);
    }
    const hash = sha256(buf);
    if (hash !== entry.sha256) throw new CalibrationError(`${file}: sha256 ${hash.slice(0, 12)}... does not match ${String(entry.sha256).slice(0, 12)}... in ${jsonPath} (the file changed after the set was made)`);
    let a: { shape: number[]; data: NpyData };
    try {
      a = readNpy(buf, spec.dtype, file, shared);
    } catch (e) {
      throw new CalibrationError((e as Error).message);
    }
    const want = expectedShape(name as ArrayName, shape);
    if (a.shape.join(',') !== want.join(',')) throw new CalibrationError(`${file}: shape (${a.shape.join(', ')}), but the set's shape needs (${want.join(', ')})`);
    (arrays as Record<string, NpyData>)[name] = a.data;
  }
  if (json.detector === 'jungfrau')
    for (const [name, spec] of Object.entries(CALIBRATION_ARRAYS))
      if (spec.jungfrau && !(name in arrays)) throw bad(`a jungfrau set needs ${name}.npy`);
  return { id: sha256(text), dir, json, arrays };
}

export type NewSet = Omit<CalibrationJson, 'format' | 'arrays' | 'created'> & { created?: string };

/**
 * Writes the arrays, then calibration.json last (by rename), so a directory
 * with a calibration.json is always a complete set. Returns the set's id.
 */
export function writeCalibrationSet(dirIn: string, spec: NewSet, arrays: CalibrationArrays): CalibrationSet {
  const dir = path.resolve(dirIn);
  const jsonPath = path.join(dir, 'calibration.json');
  if (existsSync(jsonPath)) throw new CalibrationError(`${jsonPath} exists: a calibration set is never overwritten (its id is in provenance); choose another directory`);
  mkdirSync(dir, { recursive: true });
  const listed: CalibrationJson['arrays'] = {};
  for (const [name, data] of Object.entries(arrays) as [ArrayName, NpyData | undefined][]) {
    if (!data) continue;
    const shape = expectedShape(name, spec.shape);
    const buf = encodeNpy(data, shape);
    const file = `${name}.npy`;
    writeFileSync(path.join(dir, file), buf);
    listed[name] = { file, dtype: CALIBRATION_ARRAYS[name].dtype, shape, sha256: sha256(buf) };
  }
  const json: CalibrationJson = { format: CALIBRATION_FORMAT, ...spec, created: spec.created ?? new Date().toISOString(), arrays: listed };
  const text = Buffer.from(JSON.stringify(json, null, 2) + '\n');
  writeFileSync(jsonPath + '.tmp', text);
  renameSync(jsonPath + '.tmp', jsonPath);
  return { id: sha256(text), dir, json, arrays };
}

/**
 * A set derived from `parent` with some arrays replaced (pedestal tracking):
 * the unchanged arrays are hard-linked from the parent (copied where links
 * are not possible), so a snapshot costs the changed arrays only. The new
 * set names its parent.
 */
export function deriveCalibrationSet(parent: { id: string; dir: string; json: CalibrationJson }, dirIn: string, changed: CalibrationArrays, spec: Pick<CalibrationJson, 'tool' | 'summary'>): CalibrationSet {
  const dir = path.resolve(dirIn);
  const jsonPath = path.join(dir, 'calibration.json');
  if (existsSync(jsonPath)) throw new CalibrationError(`${jsonPath} exists: a calibration set is never overwritten`);
  mkdirSync(dir, { recursive: true });
  const listed: CalibrationJson['arrays'] = {};
  for (const [name, entry] of Object.entries(parent.json.arrays) as [ArrayName, NonNullable<CalibrationJson['arrays'][ArrayName]>][]) {
    const data = changed[name] as NpyData | undefined;
    const file = `${name}.npy`;
    if (data) {
      const buf = encodeNpy(data, entry.shape);
      writeFileSync(path.join(dir, file), buf);
      listed[name] = { ...entry, file, sha256: sha256(buf) };
    } else {
      const from = path.join(parent.dir, entry.file);
      try {
        linkSync(from, path.join(dir, file));
      } catch {
        copyFileSync(from, path.join(dir, file));
      }
      listed[name] = { ...entry, file };
    }
  }
  const json: CalibrationJson = {
    ...parent.json,
    created: new Date().toISOString(),
    tool: spec.tool,
    inputs: [{ role: 'parent', path: parent.dir, sha256: parent.id }],
    parent: parent.id,
    arrays: listed,
    ...(spec.summary ? { summary: spec.summary } : {}),
  };
  const text = Buffer.from(JSON.stringify(json, null, 2) + '\n');
  writeFileSync(jsonPath + '.tmp', text);
  renameSync(jsonPath + '.tmp', jsonPath);
  return { id: sha256(text), dir, json, arrays: { ...changed } };
}
