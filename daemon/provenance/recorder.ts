// Main-thread side of provenance: queues rows and hands them to the writer
// thread in batches, so recording never waits on the disk. Every batch is
// numbered; whenDurable() runs a callback once everything queued before it is
// committed, which is how a result is published only after its row exists.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../system/logger';
import type { FrameRow, ProvenanceOp } from './schema';

/** What the writer found of earlier runs at open: frames received but never finished. */
export interface Recovered {
  lost: number;
  runs: number[];
  series: { run_id: number; series: string; n: number }[];
}

// While someone waits for durability, batches go out this soon rather than at batch_ms.
const DURABLE_FLUSH_MS = 10;

export class Recorder {
  private queue: ProvenanceOp[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly retention: NodeJS.Timeout;
  private flushId = 0;
  private readonly waiters = new Map<number, (() => void)[]>();
  /** Callbacks for the batch being gathered now. */
  private pendingDurable: (() => void)[] = [];
  private soon: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    readonly runId: number,
    readonly recovered: Recovered,
    batchMs: number,
    private retentionDays: number,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => this.flush(), batchMs);
    this.retention = setInterval(() => this.push({ t: 'retention', days: this.retentionDays }), 3600e3);
    this.retention.unref();
    worker.on('message', (m: { flushed?: number; error?: string }) => {
      if (m.error) this.log.error('provenance write failed', { error: m.error });
      if (m.flushed !== undefined) {
        for (const [id, done] of this.waiters) {
          if (id > m.flushed) break;
          this.waiters.delete(id);
          for (const cb of done) cb();
        }
      }
    });
    worker.on('error', (e) => this.log.error('provenance writer crashed', { error: e.stack ?? String(e) }));
    this.push({ t: 'retention', days: retentionDays });
  }

  static async open(opts: { path: string; instance: string; version: string; batchMs: number; retentionDays: number; log: Logger }): Promise<Recorder> {
    const worker = new Worker(path.join(__dirname, 'writer-thread.js'), { workerData: { path: opts.path, instance: opts.instance, version: opts.version } });
    const ready = await new Promise<{ runId: number; recovered: Recovered }>((resolve, reject) => {
      worker.once('message', (m: { ready?: boolean; runId?: number; recovered?: Recovered; error?: string }) => (m.ready ? resolve({ runId: m.runId!, recovered: m.recovered! }) : reject(new Error(m.error))));
      worker.once('error', (e) => reject(new Error(`provenance database ${opts.path}: ${e.message}`)));
    });
    return new Recorder(worker, ready.runId, ready.recovered, opts.batchMs, opts.retentionDays, opts.log);
  }

  setRetentionDays(days: number): void {
    this.retentionDays = days;
  }

  private push(op: ProvenanceOp): void {
    if (!this.closed) this.queue.push(op);
  }

  received(seq: number, series: string, frame: number, source: string, received: string): void {
    this.push({ t: 'received', seq, series, frame, source, received });
  }

  frame(row: FrameRow): void {
    this.push({ t: 'frame', ...row });
  }

  /** run: the run that processed the frame, when it is an earlier one (a message replayed from the MQTT spool). */
  published(seq: number, run?: number): void {
    this.push({ t: 'published', seq, ...(run !== undefined ? { run } : {}) });
  }

  /** The frame's reduced message was dropped from a full MQTT spool: frames.published = -1. */
  undelivered(seq: number, run?: number): void {
    this.push({ t: 'undelivered', seq, ...(run !== undefined ? { run } : {}) });
  }

  /** Calls `cb` once every row queued so far is committed (at once when closed). */
  whenDurable(cb: () => void): void {
    if (this.closed) return cb();
    this.pendingDurable.push(cb);
    this.soon ??= setTimeout(() => this.flush(), DURABLE_FLUSH_MS);
  }

  /** `calibration`: the hash of each calibration file and the set's id, as loaded for this epoch. */
  epoch(epoch: number, source: string, sha256: string, text: string, calibration: Record<string, string> = {}): void {
    this.push({ t: 'epoch', epoch, time: new Date().toISOString(), source, sha256, text, calibration: Object.keys(calibration).length ? JSON.stringify(calibration) : null });
  }

  /** A calibration set frames were (or will be) converted with: the configured one, or a tracking snapshot derived from `parent`. */
  calibrationSet(id: string, parent: string | null, dir: string, detector: string, origin: 'configured' | 'tracking', details?: Record<string, unknown>): void {
    this.push({ t: 'calibration_set', id, parent, dir, detector, created: new Date().toISOString(), origin, details: details ? JSON.stringify(details) : null });
  }

  /** Files written for a series (e.g. its correlation): what they hold and their hashes. */
  resultFiles(row: { kind: string; series: string; epoch: number | null; calibration: string | null; frames: number; files: { name: string; path: string; sha256: string; bytes: number }[]; details?: Record<string, unknown> }): void {
    const { files, details, ...rest } = row;
    this.push({ t: 'result_files', time: new Date().toISOString(), ...rest, files: JSON.stringify(files), details: details ? JSON.stringify(details) : null });
  }

  event(level: string, kind: string, message: string, details?: Record<string, unknown>): void {
    this.push({ t: 'event', time: new Date().toISOString(), level, kind, message, details: details ? JSON.stringify(details) : null });
  }

  /** The directory watcher took `name` (size and mtime as it read them); a restart skips it unless it changes. */
  watchedFile(directory: string, name: string, size: number, mtimeMs: number): void {
    this.push({ t: 'watched', directory, name, size, mtime_ms: mtimeMs, time: new Date().toISOString() });
  }

  flush(): void {
    if (this.soon) clearTimeout(this.soon);
    this.soon = undefined;
    if (!this.queue.length && !this.pendingDurable.length) return;
    const id = ++this.flushId;
    const ops = this.queue;
    this.queue = [];
    if (this.pendingDurable.length) {
      this.waiters.set(id, this.pendingDurable);
      this.pendingDurable = [];
    }
    this.worker.postMessage({ ops, id });
  }

  /** Resolves once everything queued so far is committed. */
  sync(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.whenDurable(resolve);
      this.flush();
    });
  }

  async close(reason: string): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.retention);
    this.flush();
    const ops = this.queue;
    this.queue = [];
    this.closed = true;
    await new Promise<void>((resolve) => {
      this.worker.on('message', (m: { closed?: boolean }) => m.closed && resolve());
      this.worker.postMessage({ ops, close: reason });
    });
    await this.worker.terminate();
  }
}
