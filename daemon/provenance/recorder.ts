// Main-thread side of provenance: queues rows and hands them to the writer
// thread in batches, so recording never waits on the disk.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../system/logger';
import type { FrameRow, ProvenanceOp } from './schema';

export class Recorder {
  private queue: ProvenanceOp[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly retention: NodeJS.Timeout;
  private flushId = 0;
  private readonly waiters = new Map<number, () => void>();
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    readonly runId: number,
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
        for (const [id, done] of this.waiters) if (id <= m.flushed) (this.waiters.delete(id), done());
      }
    });
    worker.on('error', (e) => this.log.error('provenance writer crashed', { error: e.stack ?? String(e) }));
    this.push({ t: 'retention', days: retentionDays });
  }

  static async open(opts: { path: string; instance: string; version: string; batchMs: number; retentionDays: number; log: Logger }): Promise<Recorder> {
    const worker = new Worker(path.join(__dirname, 'writer-thread.js'), { workerData: { path: opts.path, instance: opts.instance, version: opts.version } });
    const runId = await new Promise<number>((resolve, reject) => {
      worker.once('message', (m: { ready?: boolean; runId?: number; error?: string }) => (m.ready ? resolve(m.runId!) : reject(new Error(m.error))));
      worker.once('error', (e) => reject(new Error(`provenance database ${opts.path}: ${e.message}`)));
    });
    return new Recorder(worker, runId, opts.batchMs, opts.retentionDays, opts.log);
  }

  setRetentionDays(days: number): void {
    this.retentionDays = days;
  }

  private push(op: ProvenanceOp): void {
    if (!this.closed) this.queue.push(op);
  }

  frame(row: FrameRow): void {
    this.push({ t: 'frame', ...row });
  }

  /** run: the run that processed the frame, when it is an earlier one (a message replayed from the MQTT spool). */
  published(series: string, frame: number, run?: number): void {
    this.push({ t: 'published', series, frame, ...(run !== undefined ? { run } : {}) });
  }

  /** The frame's reduced message was dropped from a full MQTT spool: frames.published = -1. */
  undelivered(series: string, frame: number, run?: number): void {
    this.push({ t: 'undelivered', series, frame, ...(run !== undefined ? { run } : {}) });
  }

  epoch(epoch: number, source: string, sha256: string, text: string): void {
    this.push({ t: 'epoch', epoch, time: new Date().toISOString(), source, sha256, text });
  }

  event(level: string, kind: string, message: string, details?: Record<string, unknown>): void {
    this.push({ t: 'event', time: new Date().toISOString(), level, kind, message, details: details ? JSON.stringify(details) : null });
  }

  flush(): void {
    if (!this.queue.length) return;
    const ops = this.queue;
    this.queue = [];
    this.worker.postMessage({ ops });
  }

  /** Resolves once everything queued so far is committed. */
  async sync(): Promise<void> {
    const id = ++this.flushId;
    const ops = this.queue;
    this.queue = [];
    await new Promise<void>((resolve) => {
      this.waiters.set(id, resolve);
      this.worker.postMessage({ ops, id });
    });
  }

  async close(reason: string): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.retention);
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
