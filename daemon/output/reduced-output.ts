// Reduced data on disk: kept profiles go to one NeXus file per series and/or
// one pyFAI-style .dat per frame. Runs on the main thread, off the data path:
// the funnel hands over messages it already built for MQTT; they wait in a
// bounded buffer and are written once per batch (flush_ms, or a full batch),
// each batch followed by an HDF5 flush. A write that fails (full disk,
// directory gone) is counted and reported once per batch as an event; its rows
// are dropped so memory stays bounded, and the daemon carries on.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ReducedMessage } from '../publish/messages';
import type { EventSink } from '../outcomes/funnel';
import { formatDat, type DatHeader } from './dat';
import { safeName } from './directory';
import { h5Message, loadH5, type H5Wasm } from './h5';
import { NexusSeriesFile, type JudgedRow, type SeriesFileInfo } from './nexus-series';

export type OutputFormat = 'nexus' | 'dat';

export interface ReducedOutputOptions {
  directory: string;
  formats: readonly OutputFormat[];
  instance: string;
  version: string;
  /** What the current configuration says, read at each new file. */
  context: () => { configText: string; calibration: string | null; epoch: number; dat: Omit<DatHeader, 'source'> };
  event: EventSink;
  flushMs?: number;
  /** Frames held before a batch is written at once. */
  batchFrames?: number;
  /** A series with no frame for this long is closed. */
  idleMs?: number;
  /** Open NeXus files at most; the least recently used is closed beyond. */
  maxOpen?: number;
  /** .dat writes in flight at most; beyond, frames are counted as not written. */
  maxDatPending?: number;
}

interface Pending {
  kept: ReducedMessage[];
  judged: JudgedRow[];
}

interface OpenSeries {
  file: NexusSeriesFile;
  lastFrame: number;
  ended: boolean;
}

export interface OutputCounters {
  nexus_frames: number;
  dat_files: number;
  errors: number;
  files_closed: number;
}

export class ReducedOutput {
  private h5: H5Wasm | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly open = new Map<string, OpenSeries>();
  private buffered = 0;
  private readonly backlog = new Map<string, JudgedRow[]>();
  private backlogRows = 0;
  private timer: NodeJS.Timeout | undefined;
  private datPending = 0;
  private readonly datWaiters: (() => void)[] = [];
  private lastError = '';
  private errorsSinceEvent = 0;
  readonly counters: OutputCounters = { nexus_frames: 0, dat_files: 0, errors: 0, files_closed: 0 };
  private readonly flushMs: number;
  private readonly batchFrames: number;
  private readonly idleMs: number;
  private readonly maxOpen: number;
  private readonly maxDatPending: number;

  private constructor(private readonly o: ReducedOutputOptions) {
    this.flushMs = o.flushMs ?? 500;
    this.batchFrames = o.batchFrames ?? 256;
    this.idleMs = o.idleMs ?? 60_000;
    this.maxOpen = o.maxOpen ?? 16;
    this.maxDatPending = o.maxDatPending ?? 256;
  }

  /** Loads HDF5 only when NeXus is asked for; makes the directory. */
  static async create(o: ReducedOutputOptions): Promise<ReducedOutput> {
    const out = new ReducedOutput(o);
    mkdirSync(o.directory, { recursive: true });
    if (o.formats.includes('nexus')) {
      out.h5 = await loadH5();
      warmUp(out.h5, o.directory);
    }
    return out;
  }

  /** Judged rows held in memory: buffered for the next batch, or waiting for a series' first kept frame. */
  get waiting(): number {
    return this.buffered + this.backlogRows;
  }

  get nexus(): boolean {
    return this.h5 !== undefined;
  }

  /** A frame the pipeline judged; kept ones carry their reduced message. */
  judged(series: string, frame: number, decision: 'kept' | 'rejected' | 'error', score: number | null, kept?: ReducedMessage): void {
    if (kept && kept.intensity && this.o.formats.includes('dat')) this.writeDat(kept);
    if (!this.h5) return;
    // Bounded: a disk that cannot keep up loses rows (counted), not memory.
    if (this.buffered >= this.batchFrames * 8) {
      this.failed(1, `output buffer full (${this.buffered} frames waiting): disk too slow`);
      return;
    }
    let p = this.pending.get(series);
    if (!p) this.pending.set(series, (p = { kept: [], judged: [] }));
    p.judged.push({ frame, decision: decision === 'kept' ? 0 : decision === 'rejected' ? 1 : 2, score: score ?? NaN });
    if (kept && kept.intensity) p.kept.push(kept);
    this.buffered++;
    if (this.buffered >= this.batchFrames) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  /** The series' end message came: its file closes once no frame of it has come for a short while (frames still in the workers land first). */
  seriesEnded(series: string): void {
    const b = this.backlog.get(series);
    if (b) {
      this.backlog.delete(series);
      this.backlogRows -= b.length;
    }
    const s = this.open.get(series);
    if (s) s.ended = true;
  }

  /** Writes every buffered batch and flushes the files. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const [series, p] of this.pending) {
      this.pending.delete(series);
      this.buffered -= p.judged.length;
      this.writeBatch(series, p);
    }
    this.reportErrors();
  }

  /** Called once per stats interval: closes ended or idle series. */
  tick(): void {
    const now = Date.now();
    for (const [series, s] of this.open) {
      const quiet = now - s.lastFrame;
      if ((s.ended && quiet >= Math.min(2000, this.idleMs) && !this.pending.has(series)) || quiet >= this.idleMs) this.closeSeries(series, s.ended ? 'end of series' : `no frame for ${Math.round(this.idleMs / 1000)} s`);
    }
  }

  async close(): Promise<void> {
    this.flush();
    for (const series of [...this.open.keys()]) this.closeSeries(series, 'daemon stopping');
    while (this.datPending) await new Promise<void>((r) => this.datWaiters.push(r));
    this.reportErrors();
  }

  private writeBatch(series: string, p: Pending): void {
    let s = this.open.get(series);
    try {
      // A reload that changes the bins mid-series starts a new file: one file, one axis.
      const first = p.kept[0];
      if (s && first && !s.file.fits(first)) {
        this.closeSeries(series, 'radial axis changed');
        s = undefined;
      }
      if (!s) {
        if (!first) {
          // No file for a series with nothing kept: its judged rows wait (bounded) for a kept frame.
          // Past the cap the newest wait no more: a series that keeps nothing for hours is normal, not an error.
          const b = this.backlog.get(series) ?? [];
          const room = Math.max(0, this.batchFrames * 64 - this.backlogRows);
          const taken = p.judged.slice(0, room);
          if (taken.length) {
            b.push(...taken);
            this.backlogRows += taken.length;
            this.backlog.set(series, b);
          }
          return;
        }
        s = this.openSeries(series, first);
        const b = this.backlog.get(series);
        if (b) {
          this.backlog.delete(series);
          this.backlogRows -= b.length;
          p = { kept: p.kept, judged: [...b, ...p.judged] };
        }
      }
      // Frames whose axes differ from the file's (a reload inside the batch) go to a new file, in order.
      const same: ReducedMessage[] = [];
      const rest: ReducedMessage[] = [];
      for (const m of p.kept) (s.file.fits(m) ? same : rest).push(m);
      s.file.append(same, p.judged);
      s.file.flush();
      s.lastFrame = Date.now();
      this.counters.nexus_frames += same.length;
      if (rest.length) this.writeBatch(series, { kept: rest, judged: [] });
    } catch (e) {
      this.failed(p.kept.length || p.judged.length, `${s?.file.path ?? series}: ${h5Message(e)}`);
      if (s) this.closeSeries(series, 'write failed');
    }
  }

  private openSeries(series: string, first: ReducedMessage): OpenSeries {
    if (this.open.size >= this.maxOpen) {
      const oldest = [...this.open.entries()].sort((a, b) => a[1].lastFrame - b[1].lastFrame)[0]!;
      this.closeSeries(oldest[0], 'too many open series');
    }
    const ctx = this.o.context();
    const info: SeriesFileInfo = {
      series,
      instance: this.o.instance,
      version: this.o.version,
      configText: ctx.configText,
      calibration: first.calibration ?? ctx.calibration,
      epoch: first.epoch,
      unit: first.unit ?? '',
      radial: first.radial ?? new Float64Array(0),
      azimuthal: first.azimuthal,
    };
    const base = path.join(this.o.directory, `${safeName(this.o.instance)}_${safeName(series)}`);
    let file = `${base}.h5`;
    for (let i = 2; existsSync(file); i++) file = `${base}-${i}.h5`;
    const s: OpenSeries = { file: new NexusSeriesFile(this.h5!, file, info), lastFrame: Date.now(), ended: false };
    this.open.set(series, s);
    this.o.event('info', 'output_open', `series ${series}: writing NeXus file ${file}`, { series, path: file });
    return s;
  }

  private closeSeries(series: string, why: string): void {
    const s = this.open.get(series);
    if (!s) return;
    this.open.delete(series);
    try {
      s.file.close();
      this.counters.files_closed++;
      this.o.event('info', 'output_closed', `series ${series} (${why}): NeXus file ${s.file.path} closed, ${s.file.keptFrames} kept frame(s)`, { series, path: s.file.path, frames: s.file.keptFrames, why });
    } catch (e) {
      this.failed(0, `${s.file.path}: close failed: ${h5Message(e)}`);
    }
  }

  private writeDat(m: ReducedMessage): void {
    if (this.datPending >= this.maxDatPending) {
      this.failed(1, `.dat writes backed up (${this.datPending} in flight): disk too slow`);
      return;
    }
    const dir = path.join(this.o.directory, `${safeName(this.o.instance)}_${safeName(m.series)}`);
    const file = path.join(dir, `${String(m.frame).padStart(6, '0')}.dat`);
    const ctx = this.o.context();
    const text = formatDat(
      { unit: m.unit ?? '', radial: m.radial ?? [], azimuthal: m.azimuthal, intensity: m.intensity!, sigma: m.sigma },
      { ...ctx.dat, source: `series ${m.series} frame ${m.frame} (${m.source})`, extra: [`Received: ${m.received}`, `Configuration epoch: ${m.epoch}`, `Calibration set: ${m.calibration ?? 'none'}`] },
    );
    this.datPending++;
    const done = () => {
      this.datPending--;
      for (const w of this.datWaiters.splice(0)) w();
    };
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      done();
      this.failed(1, `${dir}: ${(e as Error).message}`);
      return;
    }
    writeFile(file, text).then(
      () => {
        this.counters.dat_files++;
        done();
      },
      (e: Error) => {
        done();
        this.failed(1, `${file}: ${e.message}`);
        this.reportErrors();
      },
    );
  }

  private failed(frames: number, message: string): void {
    this.counters.errors += Math.max(1, frames);
    this.errorsSinceEvent += Math.max(1, frames);
    this.lastError = message;
  }

  /** One event per batch, not one per frame: a full disk fails every write. */
  private reportErrors(): void {
    if (!this.errorsSinceEvent) return;
    this.o.event('error', 'output_error', `reduced data: ${this.errorsSinceEvent} frame(s) not written: ${this.lastError}`, { frames: this.errorsSinceEvent, total: this.counters.errors, error: this.lastError });
    this.errorsSinceEvent = 0;
  }
}

/**
 * Writes and deletes one small file at start: the first HDF5 file a process
 * creates costs about half a second (WebAssembly code compiled on first use),
 * which must not fall on the main thread in the middle of a series; later
 * files take a few ms. It also proves the directory writable before any frame.
 */
function warmUp(h5: H5Wasm, directory: string): void {
  const file = path.join(directory, `.beamedge-warm-up-${process.pid}.h5`);
  try {
    const f = new NexusSeriesFile(h5, file, { series: 'warm-up', instance: 'warm-up', version: '', configText: '', calibration: null, epoch: 0, unit: 'q_nm^-1', radial: new Float64Array(4), azimuthal: undefined });
    f.append([{ frame: 0, received: new Date().toISOString(), epoch: 0, intensity: new Float32Array(4), sigma: new Float32Array(4) } as ReducedMessage], [{ frame: 0, decision: 0, score: 0 }]);
    f.flush();
    f.close();
  } catch (e) {
    throw new Error(`output.directory ${directory}: cannot write a NeXus file there: ${h5Message(e)}`);
  } finally {
    rmSync(file, { force: true });
  }
}
