// EIGER / NXmx HDF5 files: a master file (`*_master.h5`) whose /entry/data
// links data files (`data_000001.h5`, ...) holding /entry/data/data, frames
// along the first axis, usually one bitshuffle-LZ4 chunk per frame. h5wasm
// reads the metadata (geometry, pixel mask, links, dataset shapes and
// filters); the chunks are read as stored (hdf5-chunks.ts) and handed on
// compressed, so the workers decode them with the native decoder exactly like
// a DECTRIS stream v2 image. A data file given alone is read too.
import { closeSync, existsSync, openSync } from 'node:fs';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import type { Dataset, Entity, File as H5File, Group } from 'h5wasm' with { 'resolution-mode': 'import' };
import type { Geometry } from '../geometry/geometry';
import { h5Message, loadH5, type H5Wasm } from '../output/h5';
import { native } from '../native';
import { datasetChunks, Hdf5FormatError, readChunk, type ChunkInfo } from './hdf5-chunks';
import type { Dtype, EncodedImage } from './stream2';

const BSHUF = 32008;
const DEFLATE = 1;

export interface NxmxFrame {
  /** 0-based image number, as DECTRIS streams number images (the file's image_nr_low is 1-based). */
  id: number;
  file: string;
  chunk: ChunkInfo;
  /** Frame within its chunk (chunks may hold several frames). */
  within: number;
}

export interface NxmxDataFile {
  file: string;
  frames: number;
  firstId: number;
  /** Frames the file's chunk index holds now (fewer while it is being written). */
  stored: number;
}

export interface NxmxSeries {
  /** The file opened (master or data file). */
  path: string;
  shape: [number, number];
  dtype: Dtype;
  geometry?: Geometry;
  /** NXmx pixel_mask (non-zero: excluded), as uint32. */
  mask?: Uint32Array;
  /** Pixels above this are saturated or flagged (saturation_value / countrate_correction_count_cutoff). */
  maxValid?: number;
  /** Frames declared by the master (nimages x ntrigger), when it says. */
  declared?: number;
  dataFiles: NxmxDataFile[];
  frames: NxmxFrame[];
  /** How chunks are stored: bslz4 chunks go on compressed. */
  filter: 'bslz4' | 'deflate' | 'none';
  /** Frames per chunk. */
  chunkFrames: number;
}

export class NxmxError extends Error {
  override name = 'NxmxError';
}

const DTYPES: Record<string, Dtype> = { 'u1': 'uint8', 'u2': 'uint16', 'u4': 'uint32', 'i4': 'int32', 'f4': 'float32' };

function dtypeOf(ds: Dataset, where: string): Dtype {
  const m = ds.metadata;
  const key = `${m.type === 1 ? 'f' : m.signed ? 'i' : 'u'}${m.size}`;
  const dt = DTYPES[key];
  if (!dt || (m.type !== 0 && m.type !== 1) || !m.littleEndian) throw new NxmxError(`${where}: pixel type ${key}${m.littleEndian ? '' : ' big-endian'} is not supported (uint8/16/32, int32, float32)`);
  return dt;
}

function isDataset(e: Entity | null): e is Dataset {
  return !!e && (e as { type?: string }).type === 'Dataset';
}

function isGroup(e: Entity | null): e is Group {
  return !!e && (e as { type?: string }).type === 'Group';
}

function get(f: H5File, p: string): Entity | null {
  try {
    return f.get(p);
  } catch {
    return null;
  }
}

/** A scalar number from a dataset, converted to SI with its `units` attribute (default: `unit`). */
function scalar(f: H5File, p: string, unit: 'm' | 'angstrom' | ''): number | undefined {
  const e = get(f, p);
  if (!isDataset(e)) return undefined;
  let v = e.value as unknown;
  if (ArrayBuffer.isView(v)) v = (v as unknown as ArrayLike<number>)[0];
  if (Array.isArray(v)) v = v[0];
  if (typeof v === 'bigint') v = Number(v);
  if (typeof v !== 'number' || !Number.isFinite(v)) return undefined;
  let units = unit as string;
  try {
    const a = e.attrs.units?.value;
    if (typeof a === 'string' && a.trim()) units = a.trim();
  } catch {
    // no units attribute: the NXmx default
  }
  const scale: Record<string, number> = { m: 1, mm: 1e-3, um: 1e-6, 'µm': 1e-6, micron: 1e-6, cm: 1e-2, nm: 1e-9, angstrom: 1e-10, A: 1e-10, 'Å': 1e-10, Angstrom: 1e-10, pixel: 1, pixels: 1, '': 1 };
  const s = scale[units];
  if (s === undefined) throw new NxmxError(`${p}: unknown units "${units}"`);
  return v * s;
}

function geometryOf(f: H5File): Geometry | undefined {
  const det = '/entry/instrument/detector';
  const bx = scalar(f, `${det}/beam_center_x`, '');
  const by = scalar(f, `${det}/beam_center_y`, '');
  const dist = scalar(f, `${det}/detector_distance`, 'm');
  const px = scalar(f, `${det}/x_pixel_size`, 'm');
  const py = scalar(f, `${det}/y_pixel_size`, 'm');
  const wl = scalar(f, '/entry/instrument/beam/incident_wavelength', 'angstrom');
  if (bx === undefined || by === undefined || dist === undefined || px === undefined || py === undefined) return undefined;
  // As pyFAI reads a DECTRIS master: PONI = beam centre x pixel size, no rotations.
  return { dist, poni1: by * py, poni2: bx * px, rot1: 0, rot2: 0, rot3: 0, pixel1: py, pixel2: px, ...(wl !== undefined ? { wavelength: wl } : {}) };
}

function maskOf(f: H5File, shape: [number, number]): Uint32Array | undefined {
  for (const p of ['/entry/instrument/detector/pixel_mask', '/entry/instrument/detector/detectorSpecific/pixel_mask']) {
    const e = get(f, p);
    if (!isDataset(e)) continue;
    const s = e.shape ?? [];
    if (s.length !== 2 || s[0] !== shape[0] || s[1] !== shape[1]) throw new NxmxError(`${p}: shape ${s.join(' x ')} differs from the images' ${shape.join(' x ')}`);
    const v = e.value as ArrayLike<number | bigint>;
    return Uint32Array.from(v as ArrayLike<number>, (x) => Number(x));
  }
  return undefined;
}

function attrNumber(ds: Dataset, name: string): number | undefined {
  try {
    const v = ds.attrs[name]?.value as unknown;
    const n = typeof v === 'bigint' ? Number(v) : ArrayBuffer.isView(v) ? Number((v as unknown as ArrayLike<number>)[0]) : typeof v === 'number' ? v : undefined;
    return n !== undefined && Number.isSafeInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

interface DataLink {
  file: string;
  dataset: string;
}

/** The data datasets a master names, in order: /entry/data/data_NNNNNN (external links), or a dataset in the file itself. */
function dataLinks(f: H5File, file: string): DataLink[] {
  const g = get(f, '/entry/data');
  if (!isGroup(g)) throw new NxmxError(`${file}: no /entry/data group: not an NXmx/EIGER file`);
  const keys = g.keys().filter((k) => /^data(_\d+)?$/.test(k)).sort();
  if (!keys.length) throw new NxmxError(`${file}: /entry/data holds no data or data_NNNNNN entry`);
  const dir = path.dirname(file);
  return keys.map((k) => {
    // h5wasm follows external links itself; the link is read here instead, so that its file is opened (and its path checked) by us.
    let link: { filename: string; obj_path: string } | undefined;
    try {
      link = g.get_external_link(`/entry/data/${k}`);
    } catch {
      link = undefined; // not an external link: a dataset in this file
    }
    if (link && link.filename) {
      const target = path.resolve(dir, link.filename);
      // A link may only name a file beside the master: a hostile master must not make us read anywhere.
      if (path.dirname(target) !== dir) throw new NxmxError(`${file}: /entry/data/${k} links ${link.filename}, outside the master's directory`);
      return { file: target, dataset: link.obj_path };
    }
    return { file, dataset: `/entry/data/${k}` };
  });
}

/** Opens a master (or a data file) and indexes its frames; the files are closed again. Missing data files are listed with 0 frames. */
export async function openNxmx(file: string, opts: { allowMissing?: boolean; only?: string } = {}): Promise<NxmxSeries> {
  const h5 = await loadH5();
  const master = openH5(h5, file);
  try {
    const links = dataLinks(master, file);
    const geometry = geometryOf(master);
    const satV = scalar(master, '/entry/instrument/detector/saturation_value', '') ?? scalar(master, '/entry/instrument/detector/detectorSpecific/countrate_correction_count_cutoff', '');
    const nimages = scalar(master, '/entry/instrument/detector/detectorSpecific/nimages', '');
    const ntrigger = scalar(master, '/entry/instrument/detector/detectorSpecific/ntrigger', '');
    const series: Partial<NxmxSeries> & { dataFiles: NxmxDataFile[]; frames: NxmxFrame[] } = { path: file, dataFiles: [], frames: [] };
    if (geometry) series.geometry = geometry;
    if (satV !== undefined) series.maxValid = satV;
    if (nimages !== undefined) series.declared = nimages * (ntrigger ?? 1);
    let nextId = 0;
    for (const link of links) {
      // One data file only (the watcher's, as it completes): the others may still be being written.
      if (opts.only !== undefined && link.file !== opts.only) continue;
      if (!existsSync(link.file)) {
        if (opts.allowMissing) continue;
        throw new NxmxError(`${file}: data file ${link.file} does not exist`);
      }
      const df = readDataFile(h5, link, nextId, series);
      series.dataFiles.push(df.info);
      series.frames.push(...df.frames);
      nextId = df.info.firstId + df.info.frames;
    }
    if (!series.shape) throw new NxmxError(`${file}: none of its data files is there yet`);
    series.mask = maskOf(master, series.shape);
    if (!series.mask) delete series.mask;
    return series as NxmxSeries;
  } finally {
    master.close();
  }
}

function openH5(h5: H5Wasm, file: string): H5File {
  try {
    return new h5.File(file, 'r');
  } catch (e) {
    throw new NxmxError(`${file}: not a readable HDF5 file: ${h5Message(e)}`);
  }
}

function readDataFile(h5: H5Wasm, link: DataLink, nextId: number, series: Partial<NxmxSeries>): { info: NxmxDataFile; frames: NxmxFrame[] } {
  const owner = openH5(h5, link.file);
  try {
    const ds = get(owner, link.dataset);
    if (!isDataset(ds)) throw new NxmxError(`${link.file}: no dataset ${link.dataset}`);
    const where = `${link.file}:${link.dataset}`;
    const shape = ds.shape ?? [];
    if (shape.length !== 3 || shape.some((n) => !Number.isSafeInteger(n) || n < 0)) throw new NxmxError(`${where}: shape ${shape.join(' x ')} is not frames x rows x columns`);
    const [n, rows, cols] = shape as [number, number, number];
    const dtype = dtypeOf(ds, where);
    if (series.shape && (series.shape[0] !== rows || series.shape[1] !== cols || series.dtype !== dtype)) throw new NxmxError(`${where}: ${rows} x ${cols} ${dtype} differs from the earlier data files`);
    series.shape = [rows, cols];
    series.dtype = dtype;
    const filters = ds.filters;
    let filter: NxmxSeries['filter'];
    if (filters.length === 0) filter = 'none';
    else if (filters.length === 1 && filters[0]!.id === BSHUF && (filters[0]!.cd_values[4] ?? 0) === 2) filter = 'bslz4';
    else if (filters.length === 1 && filters[0]!.id === DEFLATE) filter = 'deflate';
    else throw new NxmxError(`${where}: filters ${filters.map((x) => `${x.id}${x.id === BSHUF ? ` (bitshuffle, compression ${x.cd_values[4] ?? 0})` : ''}`).join(', ')} are not supported (bitshuffle-LZ4, deflate or none)`);
    const chunks = ds.metadata.chunks;
    if (!chunks || chunks.length !== 3 || chunks[1] !== rows || chunks[2] !== cols || !(chunks[0]! >= 1)) throw new NxmxError(`${where}: chunks ${chunks ? chunks.join(' x ') : '(contiguous)'} do not hold whole frames`);
    if (series.chunkFrames !== undefined && (series.chunkFrames !== chunks[0] || series.filter !== filter)) throw new NxmxError(`${where}: stored unlike the earlier data files`);
    series.chunkFrames = chunks[0]!;
    series.filter = filter;
    const address = Number(Buffer.from(ds.create_reference().ref_data).readBigUInt64LE(0));
    const low = attrNumber(ds, 'image_nr_low');
    const firstId = low !== undefined && low >= 1 ? low - 1 : nextId;
    const fd = openSync(link.file, 'r');
    let layout;
    try {
      layout = datasetChunks(fd, link.file, address, 3);
    } finally {
      closeSync(fd);
    }
    const frames: NxmxFrame[] = [];
    for (const c of layout.chunks) {
      if (c.offset[1] !== 0 || c.offset[2] !== 0 || c.offset[0]! % chunks[0]! !== 0) throw new Hdf5FormatError(`${where}: chunk at ${c.offset.join(',')} is not at a frame boundary`);
      for (let k = 0; k < chunks[0]! && c.offset[0]! + k < n; k++) frames.push({ id: firstId + c.offset[0]! + k, file: link.file, chunk: c, within: k });
    }
    return { info: { file: link.file, frames: n, firstId, stored: frames.length }, frames };
  } finally {
    owner.close();
  }
}

/** One frame as the workers take a DECTRIS image: a bslz4 chunk as stored, anything else decoded to raw pixels. */
export function readNxmxFrame(s: NxmxSeries, fr: NxmxFrame): EncodedImage {
  const fd = openSync(fr.file, 'r');
  let stored: Buffer;
  try {
    stored = readChunk(fd, fr.file, fr.chunk);
  } finally {
    closeSync(fd);
  }
  const elem = elemBytes(s.dtype);
  const frameBytes = s.shape[0] * s.shape[1] * elem;
  const filtered = fr.chunk.filterMask === 0 && s.filter !== 'none';
  if (filtered && s.filter === 'bslz4' && s.chunkFrames === 1) return { shape: s.shape, dtype: s.dtype, encoding: 'bslz4', bytes: stored };
  let raw: Uint8Array;
  if (!filtered) raw = stored;
  else if (s.filter === 'deflate') raw = inflateSync(stored, { maxOutputLength: frameBytes * s.chunkFrames });
  else {
    raw = new Uint8Array(frameBytes * s.chunkFrames);
    native.bslz4Decode(stored, raw, elem);
  }
  if (raw.length < frameBytes * (fr.within + 1)) throw new NxmxError(`${fr.file}: chunk of frame ${fr.id} holds ${raw.length} bytes, fewer than its frames need`);
  return { shape: s.shape, dtype: s.dtype, encoding: 'raw', bytes: raw.subarray(frameBytes * fr.within, frameBytes * (fr.within + 1)) };
}

function elemBytes(d: Dtype): number {
  return d === 'uint8' ? 1 : d === 'uint16' ? 2 : 4;
}

/** The master's pixel mask as a DECTRIS start message carries it (uint32 raw), for a series context. */
export function maskImage(s: NxmxSeries): EncodedImage | undefined {
  if (!s.mask) return undefined;
  return { shape: s.shape, dtype: 'uint32', encoding: 'raw', bytes: new Uint8Array(s.mask.buffer, s.mask.byteOffset, s.mask.byteLength) };
}

/** Whether a path looks like an HDF5 file this module reads. */
export function isHdf5Name(file: string): boolean {
  return /\.(h5|hdf5|nxs)$/i.test(file);
}
