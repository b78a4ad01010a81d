// Directory watcher for CBF files written by the detector software. The
// directory is listed (inotify misses files on network filesystems); each
// regular file is taken once, in natural name order, and only when its binary
// section is complete. A file still incomplete after incomplete_timeout_ms is
// passed on anyway so the worker records it as truncated and later files are
// not held up. Anything else in the directory is skipped once, with one event,
// and never holds up later files (watch-entry.ts decides what an entry is).
//
// Bounds: the watcher remembers only names still in the directory; a listing
// uses at most about a tenth of the main thread (a slow listing stretches the
// period); each pass examines at most PASS_ENTRIES entries before yielding;
// all file I/O is asynchronous, so no entry can stall the event loop.
import { promises as fsp, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { globToRegExp } from '../config/glob';
import { native } from '../native';
import type { WatchedFile, WatchHistory } from '../provenance/watched-files';
import { inspectEntry, isTransient, openRegular, TransientError, type Inspected, type Opened } from './watch-entry';
import { mergeSorted, nameOfKey, naturalKey } from './natural-order';
import type { FrameSource, IngestSink } from './sink';
import type { SeriesContext } from '../workers/protocol';
import { EigerWatch } from './watch-eiger';

export interface WatchOptions {
  directory: string;
  pattern: string;
  pollMs: number;
  incompleteTimeoutMs: number;
  series: string;
  /** Take symlinks to regular files outside the directory too. */
  followSymlinks: boolean;
  /** Process again what earlier runs processed (the history is not consulted). */
  reprocess: boolean;
  /** Largest payload a frame slot holds: a larger file is rejected without taking a slot. */
  slotBytes: number;
  /** What earlier runs processed, and where to record what this run takes. */
  history?: WatchHistory;
  /** Hands an EIGER series' context (geometry, mask, saturation) to the workers before its frames. */
  publishContext?: (c: SeriesContext) => void;
}

/** Entries examined in one pass before the watcher yields the event loop. */
const PASS_ENTRIES = 256;
/** A listing may take at most 1/LISTING_SHARE of the main thread's time. */
const LISTING_SHARE = 10;

/** taken/settled: done with this name while it stays; forget: look again at the next listing; wait: stop here, retry later. */
type Outcome = 'settled' | 'forget' | 'wait';

/** Frame number from the last run of digits in the name (image_00042.cbf -> 42). */
export function frameNumber(name: string): number | null {
  const m = /(\d+)(?!.*\d)/.exec(name);
  return m ? Number(m[1]) : null;
}

function complete(bytes: Uint8Array): boolean {
  try {
    native.cbfLocate(bytes);
    return true;
  } catch {
    return false;
  }
}

export class WatchSource implements FrameSource {
  readonly name = 'watch';
  private readonly re: RegExp;
  /** The watched directory's realpath: the containment test for symlinks and the history's key. */
  private dir = '';
  /** Each matching name at the last listing, with the listing's generation; settled once taken or skipped. */
  private readonly entries = new Map<string, { gen: number; settled: boolean }>();
  /** Natural-order keys of listed names not settled yet. */
  private pending: string[] = [];
  private gen = 0;
  /** Files earlier runs processed, pruned to the names still listed, emptied as each is looked at. */
  private previous = new Map<string, WatchedFile>();
  private resume: { known: number; skipped: number; changed: number } | undefined;
  private sink: IngestSink | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private nextListAt = 0;
  /** The last problem reported for the directory or the process (one event per distinct problem, not per scan). */
  private listingProblem: string | undefined;
  private transientProblem: string | undefined;
  private sequence = 0;
  /** A pass stopped for want of a slot, and the sink will call back when one is released. */
  private slotWaiting = false;
  private readonly counts = { taken: 0, skipped: 0, rejected: 0, already_processed: 0 };
  private eiger: EigerWatch | undefined;

  constructor(private readonly opts: WatchOptions) {
    this.re = globToRegExp(opts.pattern);
  }

  async start(sink: IngestSink): Promise<void> {
    // Fail early, naming the directory, rather than report it every poll.
    if (!statSync(this.opts.directory).isDirectory()) throw new Error(`ingest.watch.directory ${this.opts.directory}: not a directory`);
    this.dir = realpathSync(this.opts.directory);
    this.sink = sink;
    this.eiger = new EigerWatch({ dir: this.dir, slotBytes: this.opts.slotBytes, incompleteTimeoutMs: this.opts.incompleteTimeoutMs, ...(this.opts.publishContext ? { publishContext: this.opts.publishContext } : {}) });
    if (this.opts.reprocess) {
      sink.event('info', 'watch_resume', `watch ${this.dir}: ingest.watch.reprocess is true, files processed by earlier runs are processed again`, { directory: this.dir });
    } else if (this.opts.history) {
      this.previous = this.opts.history.load(this.dir);
      if (this.previous.size) this.resume = { known: this.previous.size, skipped: 0, changed: 0 };
    }
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    this.sink = undefined;
  }

  describe(): Record<string, unknown> {
    return { kind: 'watch', directory: this.opts.directory, pattern: this.opts.pattern, follow_symlinks: this.opts.followSymlinks, reprocess: this.opts.reprocess, ...this.counts };
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => (this.running = undefined));
    }, ms);
  }

  private async tick(): Promise<void> {
    let more = false;
    try {
      if (performance.now() >= this.nextListAt) await this.list();
      more = await this.pass();
      this.reportResume();
    } catch (e) {
      // A bug, not bad input: report it once and keep watching.
      this.problem('listingProblem', `watch ${this.dir}: ${(e as Error).stack ?? String(e)}`);
    }
    this.schedule(more ? 0 : Math.max(0, this.nextListAt - performance.now()));
  }

  /** Back-pressure: go on as soon as the workers give a slot back, not at the next listing. */
  private waitForSlot(sink: IngestSink): void {
    if (this.slotWaiting) return;
    this.slotWaiting = true;
    sink.whenSlotFree(() => {
      this.slotWaiting = false;
      if (this.stopped || this.running) return; // a running tick schedules its own successor
      clearTimeout(this.timer);
      this.schedule(0);
    });
  }

  private problem(which: 'listingProblem' | 'transientProblem', message: string): void {
    if (this[which] === message) return;
    this[which] = message;
    this.sink?.event('error', 'watch_error', message, { directory: this.dir });
  }

  /** Adds new names in order, forgets names that left the directory. */
  private async list(): Promise<void> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (e) {
      this.problem('listingProblem', `watch ${this.dir}: cannot list the directory: ${(e as Error).message}; retrying every ${this.opts.pollMs} ms`);
      this.nextListAt = performance.now() + this.opts.pollMs;
      return;
    }
    if (this.listingProblem !== undefined) {
      this.listingProblem = undefined;
      this.sink?.event('info', 'watch_error', `watch ${this.dir}: the directory can be listed again`, { directory: this.dir });
    }
    const t0 = performance.now();
    const gen = ++this.gen;
    const fresh: string[] = [];
    for (const n of names) {
      if (!this.re.test(n)) continue;
      const e = this.entries.get(n);
      if (e) e.gen = gen;
      else {
        this.entries.set(n, { gen, settled: false });
        fresh.push(naturalKey(n));
      }
    }
    for (const [n, e] of this.entries)
      if (e.gen !== gen) {
        this.entries.delete(n);
        this.eiger?.forget(n); // a data file that left while it was awaited: its progress goes too
      }
    if (this.previous.size) for (const n of this.previous.keys()) if (!this.entries.has(n)) this.previous.delete(n);
    this.pending = mergeSorted(
      this.pending.filter((k) => this.entries.get(nameOfKey(k))?.settled === false),
      fresh.sort(),
    );
    this.nextListAt = performance.now() + Math.max(this.opts.pollMs, LISTING_SHARE * (performance.now() - t0));
  }

  /** Examines pending names in order; true when it stopped only for its budget. */
  private async pass(): Promise<boolean> {
    let i = 0;
    try {
      for (; i < this.pending.length && i < PASS_ENTRIES && !this.stopped; i++) {
        const name = nameOfKey(this.pending[i]!);
        let outcome: Outcome;
        try {
          outcome = await this.examine(name);
        } catch (e) {
          // Not an input problem we know of: still one rejection, and later files go on.
          outcome = this.reject(name, `unexpected error: ${(e as Error).message}`);
        }
        if (outcome === 'wait') break;
        this.eiger?.forget(name);
        if (outcome === 'forget') this.entries.delete(name);
        else {
          const e = this.entries.get(name);
          if (e) e.settled = true;
          this.previous.delete(name);
        }
      }
    } finally {
      this.pending = this.pending.slice(i);
    }
    return i >= PASS_ENTRIES && this.pending.length > 0;
  }

  private async examine(name: string): Promise<Outcome> {
    let found: Inspected;
    try {
      found = await inspectEntry(this.dir, name, this.opts.followSymlinks);
    } catch (e) {
      if (e instanceof TransientError) return this.transient(e.message);
      throw e;
    }
    if (found.kind !== 'file') return this.notAFrame(name, found);
    const before = this.previous.get(name);
    if (before && before.size === found.size && before.mtimeMs === found.mtimeMs) {
      this.counts.already_processed++;
      if (this.resume) this.resume.skipped++;
      return 'settled';
    }
    if (before && this.resume) this.resume.changed++;
    if (EigerWatch.handles(name)) return this.takeEiger(name, found);
    if (found.size > this.opts.slotBytes) return this.tooLarge(name, found.size, found.mtimeMs);
    let opened: Opened;
    try {
      opened = await openRegular(found.path);
    } catch (e) {
      if (e instanceof TransientError) return this.transient(e.message);
      throw e;
    }
    if (opened.kind !== 'open') return this.notAFrame(name, opened);
    try {
      return await this.read(name, opened);
    } finally {
      await opened.fh.close().catch(() => {});
    }
  }

  /** Reads the file straight into a slot (its one copy) and submits it once complete. */
  private async read(name: string, { fh, size, mtimeMs }: Extract<Opened, { kind: 'open' }>): Promise<Outcome> {
    const sink = this.sink!;
    if (size > this.opts.slotBytes) return this.tooLarge(name, size, mtimeMs);
    const slot = sink.acquire();
    if (slot === undefined) {
      this.waitForSlot(sink);
      return 'wait';
    }
    let handedOff = false;
    try {
      const target = sink.payloadTarget(slot, size);
      let got = 0;
      try {
        while (got < size) {
          const { bytesRead } = await fh.read(target, got, size - got, got);
          if (bytesRead === 0) break; // truncated since fstat: judged below like any incomplete file
          got += bytesRead;
        }
      } catch (e) {
        if (isTransient(e)) return this.transient((e as Error).message);
        return this.reject(name, `cannot read: ${(e as Error).message}`);
      }
      if (!complete(target.subarray(0, got)) && Date.now() - mtimeMs < this.opts.incompleteTimeoutMs) return 'wait';
      try {
        sink.submit(slot, { series: this.opts.series, frame: frameNumber(name) ?? this.sequence, encoding: 'cbf', source: this.source(name) }, got);
        handedOff = true;
      } catch (e) {
        return this.reject(name, (e as Error).message);
      }
      this.sequence++;
      this.counts.taken++;
      this.transientProblem = undefined;
      this.opts.history?.record(this.dir, name, { size, mtimeMs });
      return 'settled';
    } finally {
      if (!handedOff) sink.release(slot);
    }
  }

  /** An HDF5 file: many frames, taken when complete (watch-eiger.ts); bad files are one rejection, never a crash. */
  private async takeEiger(name: string, found: Extract<Inspected, { kind: 'file' }>): Promise<Outcome> {
    const sink = this.sink!;
    const r = await this.eiger!.take(sink, name, found);
    if (r.kind === 'wait') return 'wait';
    if (r.kind === 'wait-slot') {
      this.waitForSlot(sink);
      return 'wait';
    }
    if (r.kind === 'reject') return this.reject(name, r.message);
    this.counts.taken++;
    this.transientProblem = undefined;
    this.opts.history?.record(this.dir, name, { size: found.size, mtimeMs: found.mtimeMs });
    return 'settled';
  }

  private source(name: string): string {
    return path.join(this.dir, name);
  }

  private notAFrame(name: string, found: Exclude<Inspected, { kind: 'file' }>): Outcome {
    if (found.kind === 'vanished') return 'forget';
    if (found.kind === 'unreadable') return this.reject(name, found.reason);
    this.counts.skipped++;
    this.sink!.event('warn', 'watch_skipped', `watch ${this.dir}: skipped ${JSON.stringify(name)}: ${found.reason}`, { directory: this.dir, name, reason: found.reason });
    return 'settled';
  }

  private tooLarge(name: string, size: number, mtimeMs: number): Outcome {
    // Remembered like a processed file: a restart would only reject it again.
    this.opts.history?.record(this.dir, name, { size, mtimeMs });
    return this.reject(name, `file of ${size} bytes is larger than a frame slot (${this.opts.slotBytes} bytes; raise rings.slot_mb)`);
  }

  private reject(name: string, message: string): Outcome {
    this.counts.rejected++;
    this.sink!.rejected({ series: this.opts.series, frame: frameNumber(name), source: this.source(name) }, message);
    return 'settled';
  }

  /** Out of descriptors or memory: hold here (order is kept) and try again at the next listing. */
  private transient(message: string): Outcome {
    this.problem('transientProblem', `watch ${this.dir}: ${message}; retrying`);
    return 'wait';
  }

  private reportResume(): void {
    if (!this.resume || this.gen === 0 || this.previous.size) return;
    const { known, skipped, changed } = this.resume;
    this.resume = undefined;
    this.sink?.event(
      'info',
      'watch_resume',
      `watch ${this.dir}: ${skipped} file(s) already processed by an earlier run skipped, ${changed} rewritten since then processed again (ingest.watch.reprocess: true processes all again)`,
      { directory: this.dir, known, skipped, changed },
    );
  }
}
