// Main-thread side of the worker threads: hands slots to the least-loaded
// worker, drains each worker's result ring, and swaps pipeline configuration.
import path from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { FrameSlots } from '../rings/frame-slots';
import { IndexQueue } from '../rings/index-queue';
import { RecordRing } from '../rings/record-ring';
import type { Logger } from '../system/logger';
import type { CorrelationState } from '../correlate/accumulator';
import type { NativeMapSpec } from '../native';
import { CONTROL, type CorrelationReply, type MapRequest, type PipelineUpdate, type ResultArrays, type ResultHeader, type SeriesContext, type WorkerInit, type WorkerMessage } from './protocol';
import { decodeResult } from './result-codec';
import { RecentMap } from '../system/recent-map';

export type ResultHandler = (header: ResultHeader, arrays: ResultArrays) => void;

interface Handle {
  index: number;
  worker: Worker;
  queue: IndexQueue;
  ring: RecordRing;
  control: Int32Array;
  port: import('node:worker_threads').MessagePort;
  inFlight: Set<number>;
  exited: Promise<void>;
  stopping: boolean;
  born: number;
  restartDelay: number;
  dead: boolean;
}

export interface PoolOptions {
  threads: number;
  slots: FrameSlots;
  resultBytes: number;
  initial: PipelineUpdate;
  log: Logger;
  onResult: ResultHandler;
  /** A worker died with these slots in flight; they are given back as errors. */
  onLost: (slots: number[], reason: string) => void;
  /** A worker needs a map: the map store's answer (a view on a SharedArrayBuffer). */
  map: (key: string, spec: NativeMapSpec) => Promise<Uint8Array>;
  /** Integrator views each worker keeps. */
  maxMaps: number;
}

interface PendingCorrelation {
  waiting: Set<Handle>;
  states: CorrelationState[];
  evicted: string[];
  errors: string[];
  resolve: (r: { states: CorrelationState[]; evicted: string[]; errors: string[] }) => void;
}

export class WorkerPool {
  private readonly handles: Handle[] = [];
  private correlationId = 0;
  private readonly correlations = new Map<number, PendingCorrelation>();
  /** Who waits for frames in flight at some moment to finish: the slots still owed to each. */
  private readonly settleWaiters: { slots: Set<number>; resolve: () => void }[] = [];
  private current: PipelineUpdate;
  private closed = false;
  /** Series contexts (geometry, mask...) seen recently, for workers that are restarted. */
  private readonly contexts = new RecentMap<string, SeriesContext>(8);

  constructor(private readonly opts: PoolOptions) {
    this.current = opts.initial;
    for (let i = 0; i < opts.threads; i++) this.handles.push(this.spawn(i));
  }

  get size(): number {
    return this.handles.length;
  }

  /** Workers put back after exiting unexpectedly, since start. */
  restarts = 0;

  /** The live page wants a picture: the next kept frame, whichever worker has it, carries one (result header `preview`). */
  requestPreview(): void {
    for (const h of this.handles) Atomics.store(h.control, CONTROL.preview, 1);
  }

  /** A picture arrived: the other workers need not make one. */
  previewDelivered(): void {
    for (const h of this.handles) Atomics.store(h.control, CONTROL.preview, 0);
  }

  get inFlight(): number {
    return this.handles.reduce((n, h) => n + h.inFlight.size, 0);
  }

  queueDepths(): Record<string, number> {
    return Object.fromEntries(this.handles.map((h) => [`worker${h.index}`, h.inFlight.size]));
  }

  private spawn(index: number, restartDelay = 0): Handle {
    const { slots } = this.opts;
    const queue = IndexQueue.create(slots.slots);
    const ring = RecordRing.create(this.opts.resultBytes);
    const control = new Int32Array(new SharedArrayBuffer(CONTROL.words * 4));
    const { port1, port2 } = new MessageChannel();
    const init: WorkerInit = {
      index,
      slotInfo: slots.infoBuffer,
      slotData: slots.dataBuffer,
      layout: slots.layout,
      queue: queue.buffer,
      results: ring.buffer,
      control: control.buffer as SharedArrayBuffer,
      port: port2,
      initial: this.current,
      maxMaps: this.opts.maxMaps,
    };
    const worker = new Worker(path.join(__dirname, 'worker.js'), { workerData: init, transferList: [port2] });
    const h: Handle = { index, worker, queue, ring, control, port: port1, inFlight: new Set(), exited: Promise.resolve(), stopping: false, born: Date.now(), restartDelay, dead: false };
    h.exited = new Promise((resolve) => {
      worker.once('exit', (code) => {
        h.dead = true;
        resolve();
        if (h.stopping || this.closed) return;
        // Whatever it held is lost: report it, and put a fresh worker in its place.
        this.drain(h);
        const lost = [...h.inFlight];
        h.inFlight.clear();
        this.forget(h, lost);
        // Back off when a worker keeps dying young (a bug or a broken install, not a bad frame).
        const delay = Date.now() - h.born < 5000 ? Math.min(30_000, (h.restartDelay || 250) * 2) : 0;
        this.opts.log.error('worker exited unexpectedly; restarting it', { worker: index, code, lost: lost.length, restart_in_ms: delay });
        if (lost.length) this.opts.onLost(lost, `worker ${index} exited with code ${code}`);
        setTimeout(() => {
          if (this.closed) return;
          this.restarts++;
          const fresh = this.spawn(index, delay);
          this.handles[this.handles.indexOf(h)] = fresh;
        }, delay).unref();
      });
    });
    port1.on('message', (m: CorrelationReply) => m?.kind === 'correlation' && this.onReply(h, m));
    worker.on('error', (err) => this.opts.log.error('worker error', { worker: index, error: err.stack ?? String(err) }));
    port1.on('message', (m: MapRequest) => {
      if (m?.kind !== 'map-request') return;
      this.opts.map(m.key, m.spec).then(
        (blob) => !h.dead && this.post(h, { kind: 'map', key: m.key, blob }),
        (e: Error) => !h.dead && this.post(h, { kind: 'map-error', key: m.key, message: `pixel-to-bin map: ${e.message}` }),
      );
    });
    // Listening must not keep the process alive: the worker does that.
    port1.unref();
    for (const context of this.contexts.values()) this.post(h, { kind: 'series', context });
    void this.collect(h);
    return h;
  }

  /** Gives a filled slot to the least-loaded worker; false when every queue is full. */
  dispatch(slot: number): boolean {
    let best: Handle | undefined;
    for (const h of this.handles) if (!best || h.inFlight.size < best.inFlight.size) best = h;
    if (!best || !best.queue.push(slot)) return false;
    best.inFlight.add(slot);
    return true;
  }

  private drain(h: Handle): number {
    let n = 0;
    for (let rec = h.ring.read(); rec; rec = h.ring.read()) {
      const { header, arrays } = decodeResult(rec);
      h.inFlight.delete(header.slot);
      if (this.settleWaiters.length) this.settledSlots([header.slot]);
      n++;
      try {
        this.opts.onResult(header, arrays);
      } catch (err) {
        this.opts.log.error('result handler failed', { error: (err as Error).stack ?? String(err) });
      }
    }
    return n;
  }

  private async collect(h: Handle): Promise<void> {
    while (!this.closed && !h.dead) {
      await h.ring.waitForRecord(200);
      this.drain(h);
    }
  }

  private post(h: Handle, message: WorkerMessage): void {
    h.port.postMessage(message);
    Atomics.add(h.control, CONTROL.generation, 1);
    // Wakes a worker waiting for a map answer as well as one waiting for frames.
    Atomics.notify(h.control, CONTROL.generation);
    h.queue.wake();
  }

  /** New configuration, taken by each worker at its next frame boundary. */
  update(next: PipelineUpdate): void {
    this.current = next;
    for (const h of this.handles) this.post(h, { kind: 'pipeline', update: next });
  }

  /** The map store let go of a map: workers drop their views on it. */
  mapEvicted(key: string): void {
    for (const h of this.handles) this.post(h, { kind: 'map-evicted', key });
  }

  /** Posted before any frame of the series is dispatched, so every worker has it when the first arrives. */
  seriesContext(context: SeriesContext): void {
    this.contexts.set(context.key, context);
    for (const h of this.handles) this.post(h, { kind: 'series', context });
  }

  /** Resolves once every frame dispatched before this call has produced its result (or was lost with its worker). */
  settled(): Promise<void> {
    const slots = new Set(this.handles.flatMap((h) => [...h.inFlight]));
    if (!slots.size) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push({ slots, resolve }));
  }

  private settledSlots(slots: number[]): void {
    for (let i = this.settleWaiters.length - 1; i >= 0; i--) {
      const w = this.settleWaiters[i]!;
      for (const s of slots) w.slots.delete(s);
      if (!w.slots.size) {
        this.settleWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /**
   * Every worker's accumulated correlation of a series (pairs: those; null:
   * all of them). `end` frees it in the workers. A worker that dies before
   * answering is left out (what it had summed died with it).
   */
  correlation(series: string, pairs: Int32Array | null, end: boolean): Promise<{ states: CorrelationState[]; evicted: string[]; errors: string[] }> {
    const live = this.handles.filter((h) => !h.dead && !h.stopping);
    if (!live.length) return Promise.resolve({ states: [], evicted: [], errors: [] });
    const id = ++this.correlationId;
    return new Promise((resolve) => {
      this.correlations.set(id, { waiting: new Set(live), states: [], evicted: [], errors: [], resolve });
      for (const h of live) this.post(h, { kind: 'correlation', id, series, pairs, end });
    });
  }

  private onReply(h: Handle, m: CorrelationReply): void {
    const p = this.correlations.get(m.id);
    if (!p) return;
    if (m.state) p.states.push(m.state);
    p.evicted.push(...m.evicted);
    if (m.error) p.errors.push(`worker ${m.worker}: ${m.error}`);
    p.waiting.delete(h);
    if (!p.waiting.size) {
      this.correlations.delete(m.id);
      p.resolve({ states: p.states, evicted: p.evicted, errors: p.errors });
    }
  }

  /** A dead worker owes no more answers, and its frames are settled (lost). */
  private forget(h: Handle, lost: number[]): void {
    if (lost.length) this.settledSlots(lost);
    for (const [id, p] of this.correlations) {
      if (!p.waiting.delete(h)) continue;
      p.errors.push(`worker ${h.index} exited before answering`);
      if (!p.waiting.size) {
        this.correlations.delete(id);
        p.resolve({ states: p.states, evicted: p.evicted, errors: p.errors });
      }
    }
  }

  /** Waits until every dispatched frame has produced its result. */
  async idle(timeoutMs = 30_000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < end) {
      for (const h of this.handles) this.drain(h);
      if (this.inFlight > 0) await new Promise((r) => setTimeout(r, 5));
    }
    return this.inFlight === 0;
  }

  async close(): Promise<void> {
    for (const h of this.handles) {
      h.stopping = true;
      Atomics.store(h.control, CONTROL.stop, 1);
      h.queue.wake();
    }
    await Promise.all(this.handles.map((h) => h.exited));
    for (const h of this.handles) this.drain(h);
    for (const h of this.handles) this.forget(h, []);
    this.closed = true;
    for (const h of this.handles) h.port.close();
  }
}
