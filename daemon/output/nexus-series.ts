// One NeXus/HDF5 file per series, in the shape of NXazint1d / NXazint2d:
//   /entry (NXentry, definition NXazint1d|NXazint2d, title = series id)
//     reduction (NXprocess): program, version, configuration text, calibration id, epoch
//     data (NXdata, signal I): radial_axis (units), [azimuthal_axis (deg)],
//       I [frames, (azim,) radial] and I_errors, frame ids, time (s since 1970),
//       epoch, spot_count (-1: no spot finding) per kept frame
//     frames (NXcollection): frame, decision (0 kept, 1 rejected, 2 error), score
//       for every frame the pipeline judged
//     spots (NXcollection, when spots were found): one row per published spot,
//       row = index into data/I, fs, ss, intensity, pixels
// Datasets are chunked and extendable; each append grows them and the caller
// flushes per batch. HDF5's default (earliest) file format is kept on purpose:
// its superblock has no "open for writing" flag, so h5py opens the file while
// the daemon writes it, and after a kill the file is as of the last flush.
import type { Dataset, File, Group } from 'h5wasm' with { 'resolution-mode': 'import' };
import type { ReducedMessage } from '../publish/messages';
import type { H5Wasm } from './h5';

type Typed = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

/**
 * A dataset that grows along its first axis. Rows are written with h5wasm's
 * module-level set_dataset_data: Dataset.write_slice first re-reads the
 * dataset's metadata from the file after every resize (about 2.6 ms), ten
 * times the cost of the write itself; the shape is known here.
 */
class Growing<T extends Typed> {
  private readonly ds: Dataset;
  rows = 0;
  constructor(
    private readonly h5: H5Wasm,
    group: Group,
    private readonly name: string,
    make: (n: number) => T,
    private readonly rowShape: number[],
    chunkRows: number,
    attrs: Record<string, string> = {},
  ) {
    const rowSize = rowShape.reduce((a, b) => a * b, 1);
    this.ds = group.create_dataset({ name, data: make(0), shape: [0, ...rowShape], maxshape: [null, ...rowShape], chunks: [Math.max(1, Math.min(chunkRows, Math.floor(65536 / Math.max(1, rowSize)) || 1)), ...rowShape] });
    for (const [k, v] of Object.entries(attrs)) this.ds.create_attribute(k, v);
  }

  append(values: T, n: number): void {
    if (n === 0) return;
    this.ds.resize([this.rows + n, ...this.rowShape]);
    const M = this.h5.Module;
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const ptr = M._malloc(bytes.length);
    if (!ptr) throw new Error(`${this.name}: out of WebAssembly memory for ${bytes.length} bytes`);
    try {
      M.HEAPU8.set(bytes, ptr);
      const status = M.set_dataset_data(this.ds.file_id, this.ds.path, [BigInt(n), ...this.rowShape.map(BigInt)], [BigInt(this.rows), ...this.rowShape.map(() => 0n)], [1n, ...this.rowShape.map(() => 1n)], BigInt(ptr));
      if (status < 0) throw new Error(`${this.name}: HDF5 write failed`);
    } finally {
      M._free(ptr);
    }
    this.rows += n;
  }
}

export interface SeriesFileInfo {
  series: string;
  instance: string;
  version: string;
  configText: string;
  calibration: string | null;
  epoch: number;
  unit: string;
  radial: Float64Array;
  azimuthal: Float64Array | undefined;
}

/** Axis name and units for the NeXus `units` attribute, from the radial unit name. */
function axisUnits(unit: string): string {
  const m = /^(?:q|2th|r)_(.+)$/.exec(unit);
  const u = m ? m[1]! : unit;
  return u === 'A^-1' ? '1/angstrom' : u === 'nm^-1' ? '1/nm' : u;
}

export interface JudgedRow {
  frame: number;
  decision: 0 | 1 | 2;
  score: number;
}

export class NexusSeriesFile {
  private readonly file: File;
  private readonly I: Growing<Float32Array>;
  private readonly errors: Growing<Float32Array>;
  private readonly frame: Growing<BigInt64Array>;
  private readonly time: Growing<Float64Array>;
  private readonly epoch: Growing<Int32Array>;
  private readonly spotCount: Growing<Int32Array>;
  private readonly judgedFrame: Growing<BigInt64Array>;
  private readonly judgedDecision: Growing<Uint8Array>;
  private readonly judgedScore: Growing<Float64Array>;
  private spots: { row: Growing<BigInt64Array>; fs: Growing<Float32Array>; ss: Growing<Float32Array>; intensity: Growing<Float32Array>; pixels: Growing<Float32Array> } | undefined;
  private readonly entry: Group;
  readonly bins: number;
  readonly unit: string;
  private readonly radial: Float64Array;
  private readonly azimuthal: Float64Array | undefined;
  closed = false;

  constructor(
    private readonly h5: H5Wasm,
    readonly path: string,
    info: SeriesFileInfo,
  ) {
    this.unit = info.unit;
    this.radial = info.radial;
    this.azimuthal = info.azimuthal;
    const nr = info.radial.length;
    const na = info.azimuthal?.length ?? 0;
    this.bins = na ? na * nr : nr;
    // 'x': never overwrite a file an earlier run or series wrote.
    this.file = new h5.File(path, 'x');
    try {
      const entry = (this.entry = this.file.create_group('entry'));
      entry.create_attribute('NX_class', 'NXentry');
      entry.create_attribute('default', 'data');
      entry.create_dataset({ name: 'definition', data: na ? 'NXazint2d' : 'NXazint1d' });
      entry.create_dataset({ name: 'title', data: info.series });
      entry.create_dataset({ name: 'start_time', data: new Date().toISOString() });
      const red = entry.create_group('reduction');
      red.create_attribute('NX_class', 'NXprocess');
      red.create_dataset({ name: 'program', data: 'beamedge' });
      red.create_dataset({ name: 'version', data: info.version });
      red.create_dataset({ name: 'instance', data: info.instance });
      red.create_dataset({ name: 'configuration', data: info.configText });
      red.create_dataset({ name: 'calibration_id', data: info.calibration ?? '' });
      red.create_dataset({ name: 'epoch', data: new Int32Array([info.epoch]), shape: [] });
      const data = entry.create_group('data');
      data.create_attribute('NX_class', 'NXdata');
      data.create_attribute('signal', 'I');
      data.create_attribute('axes', na ? ['.', 'azimuthal_axis', 'radial_axis'] : ['.', 'radial_axis']);
      data.create_attribute('radial_axis_indices', new Int32Array([na ? 2 : 1]), []);
      if (na) data.create_attribute('azimuthal_axis_indices', new Int32Array([1]), []);
      const radial = data.create_dataset({ name: 'radial_axis', data: info.radial });
      radial.create_attribute('units', axisUnits(info.unit));
      radial.create_attribute('long_name', info.unit);
      if (info.azimuthal) data.create_dataset({ name: 'azimuthal_axis', data: info.azimuthal }).create_attribute('units', 'deg');
      const row = na ? [na, nr] : [nr];
      this.I = new Growing(h5, data, 'I', (n) => new Float32Array(n), row, 16, { long_name: 'mean intensity per bin' });
      this.errors = new Growing(h5, data, 'I_errors', (n) => new Float32Array(n), row, 16, { long_name: 'standard error of I' });
      this.frame = new Growing(h5, data, 'frame', (n) => new BigInt64Array(n), [], 1024, { long_name: 'frame id within the series' });
      this.time = new Growing(h5, data, 'time', (n) => new Float64Array(n), [], 1024, { units: 's', long_name: 'arrival time, seconds since 1970-01-01T00:00:00Z' });
      this.epoch = new Growing(h5, data, 'epoch', (n) => new Int32Array(n), [], 1024, { long_name: 'configuration epoch the frame was processed with' });
      this.spotCount = new Growing(h5, data, 'spot_count', (n) => new Int32Array(n), [], 1024, { long_name: 'spots found (-1: spot finding off)' });
      const frames = entry.create_group('frames');
      frames.create_attribute('NX_class', 'NXcollection');
      this.judgedFrame = new Growing(h5, frames, 'frame', (n) => new BigInt64Array(n), [], 1024);
      this.judgedDecision = new Growing(h5, frames, 'decision', (n) => new Uint8Array(n), [], 1024, { meaning: '0 kept, 1 rejected by the veto, 2 error' });
      this.judgedScore = new Growing(h5, frames, 'score', (n) => new Float64Array(n), [], 1024, { long_name: 'veto score (NaN: none)' });
      this.file.flush();
    } catch (e) {
      this.closeQuietly();
      throw e;
    }
  }

  /** Appends kept frames (same bins as the file: the caller checks) and judged rows. */
  append(kept: ReducedMessage[], judged: JudgedRow[]): void {
    const n = kept.length;
    if (n) {
      const I = new Float32Array(n * this.bins);
      const err = new Float32Array(n * this.bins).fill(NaN);
      const frame = new BigInt64Array(n);
      const time = new Float64Array(n);
      const epoch = new Int32Array(n);
      const spotCount = new Int32Array(n).fill(-1);
      const spotRows: ReducedMessage[] = [];
      kept.forEach((m, i) => {
        I.set(m.intensity!, i * this.bins);
        if (m.sigma) err.set(m.sigma, i * this.bins);
        frame[i] = BigInt(m.frame);
        time[i] = Date.parse(m.received) / 1000;
        epoch[i] = m.epoch;
        if (m.spots) {
          spotCount[i] = m.spots.count;
          spotRows.push(m);
        }
      });
      const first = this.I.rows;
      this.I.append(I, n);
      this.errors.append(err, n);
      this.frame.append(frame, n);
      this.time.append(time, n);
      this.epoch.append(epoch, n);
      this.spotCount.append(spotCount, n);
      if (spotRows.length) this.appendSpots(kept, first);
    }
    if (judged.length) {
      this.judgedFrame.append(BigInt64Array.from(judged, (j) => BigInt(j.frame)), judged.length);
      this.judgedDecision.append(Uint8Array.from(judged, (j) => j.decision), judged.length);
      this.judgedScore.append(Float64Array.from(judged, (j) => j.score), judged.length);
    }
  }

  private appendSpots(kept: ReducedMessage[], first: number): void {
    if (!this.spots) {
      const g = this.entry.create_group('spots');
      g.create_attribute('NX_class', 'NXcollection');
      const f32 = (n: number) => new Float32Array(n);
      this.spots = {
        row: new Growing(this.h5, g, 'row', (n) => new BigInt64Array(n), [], 4096, { long_name: 'index into data/I of the frame the spot is on' }),
        fs: new Growing(this.h5, g, 'fs', f32, [], 4096, { units: 'pixel', long_name: 'fast-scan coordinate (column)' }),
        ss: new Growing(this.h5, g, 'ss', f32, [], 4096, { units: 'pixel', long_name: 'slow-scan coordinate (row)' }),
        intensity: new Growing(this.h5, g, 'intensity', f32, [], 4096),
        pixels: new Growing(this.h5, g, 'pixels', f32, [], 4096),
      };
    }
    const s = this.spots;
    const total = kept.reduce((a, m) => a + (m.spots?.fs.length ?? 0), 0);
    if (!total) return;
    const row = new BigInt64Array(total);
    const cat = (pick: (m: NonNullable<ReducedMessage['spots']>) => Float32Array) => {
      const out = new Float32Array(total);
      let o = 0;
      for (const m of kept) if (m.spots) (out.set(pick(m.spots), o), (o += m.spots.fs.length));
      return out;
    };
    let o = 0;
    kept.forEach((m, i) => {
      for (let k = 0; k < (m.spots?.fs.length ?? 0); k++) row[o++] = BigInt(first + i);
    });
    s.row.append(row, total);
    s.fs.append(cat((x) => x.fs), total);
    s.ss.append(cat((x) => x.ss), total);
    s.intensity.append(cat((x) => x.intensity), total);
    s.pixels.append(cat((x) => x.pixels), total);
  }

  /** Whether a profile has this file's axes (a reload, or geometry from each frame's header, can change them). */
  fits(m: ReducedMessage): boolean {
    const same = (a: Float64Array | undefined, b: Float64Array | undefined) => (!a && !b) || (!!a && !!b && a.length === b.length && a.every((v, i) => v === b[i]));
    return m.unit === this.unit && m.intensity!.length === this.bins && same(m.radial, this.radial) && same(m.azimuthal, this.azimuthal);
  }

  get keptFrames(): number {
    return this.I.rows;
  }

  flush(): void {
    this.file.flush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.entry.create_dataset({ name: 'end_time', data: new Date().toISOString() });
    } finally {
      this.file.close();
    }
  }

  private closeQuietly(): void {
    this.closed = true;
    try {
      this.file.close();
    } catch {
      // Already failing: the first error is the one reported.
    }
  }
}
