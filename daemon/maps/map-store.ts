// The geometry map store, owned by the main thread: each pixel-to-bin map is
// built once (on a libuv thread, so the event loop and the frames of other
// geometries go on), placed in a SharedArrayBuffer and handed to every worker
// that asks for its key, which all read it in place. Bounded in count and
// bytes (least recently used evicted); builds, disk loads and evictions are
// counted, timed and reported through `event`.
import { stat, unlink } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { native, type NativeMapSpec } from '../native';
import { mapFile, pruneMaps, saveMap, touchMap } from './map-cache';
import { RecentMap } from '../system/recent-map';

export interface MapStoreOptions {
  maxCount: number;
  maxBytes: number;
  buildThreads: number;
  /** On-disk cache directory; null: none. */
  directory: string | null;
  diskBytes: number;
  event: (level: 'info' | 'warn' | 'error', kind: string, message: string, details?: Record<string, unknown>) => void;
  /** Called after an eviction (the workers let go of their views). */
  onEvict?: (key: string) => void;
}

export interface MapStoreStats {
  maps: number;
  bytes: number;
  /** Requests answered from memory, from disk, and by a build. */
  hits: number;
  /** Requests that joined a load or build already under way (a second worker asking for the same new map). */
  joined: number;
  disk_loads: number;
  builds: number;
  build_ms_total: number;
  build_ms_last: number | null;
  evictions: number;
  disk_rejected: number;
  failures: number;
}

interface Entry {
  key: string;
  blob: Uint8Array;
}

export class MapStore {
  private readonly maps = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<Uint8Array>>();
  /** Keys whose build failed (every pixel masked, an empty range...): answered at once, not rebuilt per frame. */
  private readonly failed = new RecentMap<string, Error>(16);
  /** Cache files being written: close() waits for them. */
  private readonly writes = new Set<Promise<void>>();
  readonly counters: MapStoreStats = { maps: 0, bytes: 0, hits: 0, joined: 0, disk_loads: 0, builds: 0, build_ms_total: 0, build_ms_last: null, evictions: 0, disk_rejected: 0, failures: 0 };

  constructor(private readonly opts: MapStoreOptions) {}

  stats(): MapStoreStats {
    return { ...this.counters, maps: this.maps.size, bytes: this.bytes, build_ms_total: Math.round(this.counters.build_ms_total * 10) / 10 };
  }

  get bytes(): number {
    let n = 0;
    for (const e of this.maps.values()) n += e.blob.byteLength;
    return n;
  }

  has(key: string): boolean {
    return this.maps.has(key);
  }

  /** The map for `key` (built from `spec` unless in memory or on disk), a view on a SharedArrayBuffer. */
  get(key: string, spec: NativeMapSpec): Promise<Uint8Array> {
    const hit = this.maps.get(key);
    if (hit) {
      this.maps.delete(key);
      this.maps.set(key, hit);
      this.counters.hits++;
      return Promise.resolve(hit.blob);
    }
    const failure = this.failed.get(key);
    if (failure) return Promise.reject(failure);
    let p = this.pending.get(key);
    if (p) this.counters.joined++;
    else {
      p = this.obtain(key, spec).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async obtain(key: string, spec: NativeMapSpec): Promise<Uint8Array> {
    const blob = (await this.load(key)) ?? (await this.build(key, spec));
    this.insert(key, blob);
    return blob;
  }

  private async load(key: string): Promise<Uint8Array | undefined> {
    const dir = this.opts.directory;
    if (!dir) return undefined;
    const file = mapFile(dir, key);
    const s = await stat(file).catch(() => undefined);
    if (!s) return undefined;
    const t0 = performance.now();
    const blob = new Uint8Array(new SharedArrayBuffer(s.size));
    const problem = await new Promise<string>((resolve) => native.loadMapAsync(file, blob, resolve));
    if (problem) {
      this.counters.disk_rejected++;
      await unlink(file).catch(() => {});
      this.opts.event('warn', 'map_cache_rejected', `cached map ${key.slice(0, 12)} failed its check (${problem}); removed, building it again`, { key, file, problem });
      return undefined;
    }
    const ms = performance.now() - t0;
    this.counters.disk_loads++;
    void touchMap(dir, key);
    this.opts.event('info', 'map_load', `map ${key.slice(0, 12)} loaded from the disk cache in ${ms.toFixed(0)} ms (${(s.size / 1048576).toFixed(1)} MiB)`, { key, ms: Math.round(ms * 10) / 10, bytes: s.size });
    return blob;
  }

  private async build(key: string, spec: NativeMapSpec): Promise<Uint8Array> {
    const t0 = performance.now();
    // Into shared memory once; every worker then reads this copy. A map
    // without splitting has a size known beforehand and is built straight
    // into it (no copy on the main thread); others are copied once.
    let blob: Uint8Array | undefined;
    let ms: number;
    try {
      const bytes = native.mapBytes(spec);
      if (bytes > 0) blob = new Uint8Array(new SharedArrayBuffer(bytes));
      let built: Buffer | null;
      [built, ms] = await new Promise<[Buffer | null, number]>((resolve, reject) =>
        native.buildMapAsync({ ...spec, threads: this.opts.buildThreads }, blob ?? null, (err, b, buildMs) => (err ? reject(err) : resolve([b, buildMs]))),
      );
      if (!blob) {
        blob = new Uint8Array(new SharedArrayBuffer(built!.byteLength));
        blob.set(built!);
      }
    } catch (e) {
      this.counters.failures++;
      this.failed.set(key, e as Error);
      this.opts.event('error', 'map_build_failed', `map ${key.slice(0, 12)} could not be built: ${(e as Error).message}`, { key, error: (e as Error).message });
      throw e;
    }
    const total = performance.now() - t0;
    this.counters.builds++;
    this.counters.build_ms_total += ms;
    this.counters.build_ms_last = Math.round(ms * 10) / 10;
    this.opts.event('info', 'map_build', `map ${key.slice(0, 12)} built in ${ms.toFixed(0)} ms (${spec.rows}x${spec.cols}, ${spec.bins0}${spec.twoD ? `x${spec.bins1}` : ''} bins, ${spec.split ? 'bbox' : 'no'} splitting, ${(blob.byteLength / 1048576).toFixed(1)} MiB)`, {
      key,
      build_ms: Math.round(ms * 10) / 10,
      total_ms: Math.round(total * 10) / 10,
      bytes: blob.byteLength,
    });
    const dir = this.opts.directory;
    if (dir) {
      const w = saveMap(dir, key, blob)
        .then(() => pruneMaps(dir, this.opts.diskBytes, key))
        .then(
          () => {},
          (e: Error) => this.opts.event('warn', 'map_cache_write_failed', `map ${key.slice(0, 12)} not written to the disk cache: ${e.message}`, { key, error: e.message }),
        )
        .finally(() => this.writes.delete(w));
      this.writes.add(w);
    }
    return blob;
  }

  /** Waits for the builds and loads under way and for the cache files being written. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.pending.values()]);
    await Promise.allSettled([...this.writes]);
  }

  private insert(key: string, blob: Uint8Array): void {
    this.maps.set(key, { key, blob });
    // The newest map stays even when alone it exceeds max_mb: the frame that asked for it needs it.
    for (const [k, e] of this.maps) {
      if (k === key) break;
      if (this.maps.size <= this.opts.maxCount && this.bytes <= this.opts.maxBytes) break;
      this.maps.delete(k);
      this.counters.evictions++;
      this.opts.onEvict?.(k);
      this.opts.event('info', 'map_evict', `map ${k.slice(0, 12)} evicted (${this.maps.size} kept, ${(this.bytes / 1048576).toFixed(1)} MiB)`, { key: k, bytes: e.blob.byteLength });
    }
  }
}
