// Directory watcher for CBF files written by the detector software. The
// directory is scanned (inotify misses files on network filesystems); each
// file is taken once, in natural name order, and only when its binary section
// is complete. A file still incomplete after incomplete_timeout_ms is passed on
// anyway so the worker records it as truncated and later files are not held up.
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { native } from '../native';
import { globToRegExp } from '../config/glob';
import type { FrameSource, IngestSink } from './sink';

export interface WatchOptions {
  directory: string;
  pattern: string;
  pollMs: number;
  incompleteTimeoutMs: number;
  series: string;
}

const collator = new Intl.Collator(undefined, { numeric: true });

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
  private readonly seen = new Set<string>();
  private readonly re: RegExp;
  private timer: NodeJS.Timeout | undefined;
  private sink: IngestSink | undefined;
  private sequence = 0;
  private scanning = false;

  constructor(private readonly opts: WatchOptions) {
    this.re = globToRegExp(opts.pattern);
  }

  async start(sink: IngestSink): Promise<void> {
    statSync(this.opts.directory); // fail early with ENOENT naming the directory
    this.sink = sink;
    this.timer = setInterval(() => this.scan(), this.opts.pollMs);
    this.scan();
  }

  private scan(): void {
    if (this.scanning || !this.sink) return;
    this.scanning = true;
    try {
      const names = readdirSync(this.opts.directory)
        .filter((n) => this.re.test(n) && !this.seen.has(n))
        .sort(collator.compare);
      for (const name of names) if (!this.take(name)) break;
    } catch (e) {
      this.sink.event('error', 'ingest', `watch ${this.opts.directory}: ${(e as Error).message}`);
    } finally {
      this.scanning = false;
    }
  }

  /** False when scanning must stop here (file incomplete, or no free slot). */
  private take(name: string): boolean {
    const sink = this.sink!;
    const file = path.join(this.opts.directory, name);
    const st = statSync(file);
    const slot = sink.acquire();
    if (slot === undefined) return false; // backpressure: retry at the next scan
    let target: Uint8Array;
    try {
      target = sink.payloadTarget(slot, st.size);
    } catch (e) {
      sink.release(slot);
      this.seen.add(name);
      sink.rejected({ series: this.opts.series, frame: frameNumber(name), source: file }, (e as Error).message);
      return true;
    }
    // Read straight into the slot: the file's one copy.
    const fd = openSync(file, 'r');
    let got = 0;
    try {
      while (got < st.size) {
        const n = readSync(fd, target, got, st.size - got, got);
        if (n === 0) break;
        got += n;
      }
    } finally {
      closeSync(fd);
    }
    const bytes = target.subarray(0, got);
    if (!complete(bytes) && Date.now() - st.mtimeMs < this.opts.incompleteTimeoutMs) {
      sink.release(slot);
      return false;
    }
    this.seen.add(name);
    sink.submit(slot, { series: this.opts.series, frame: frameNumber(name) ?? this.sequence, encoding: 'cbf', source: file }, got);
    this.sequence++;
    return true;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.sink = undefined;
  }

  describe(): Record<string, unknown> {
    return { kind: 'watch', directory: this.opts.directory, pattern: this.opts.pattern, files: this.seen.size };
  }
}
