// EIGER/NXmx files in the watched directory. A DECTRIS file writer writes
// PREFIX_master.h5 (geometry, pixel mask) and PREFIX_data_NNNNNN.h5 files of
// frames; the master is read for each data file, and a data file is taken
// when complete: its size and modification time unchanged over one poll
// interval, and every frame its dataset declares present in its chunk index.
// One still incomplete after incomplete_timeout_ms is taken with the frames it
// has, the rest recorded as one rejection. Its frames go to the workers as the
// DECTRIS stream's do: the stored bitshuffle-LZ4 chunk read straight into a
// slot, with a series context (geometry, mask, saturation) sent ahead, and
// keep their image numbers as frame ids. A data file that completes the
// number of images the master declares ends the series (a `series_end` event).
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { maskImage, openNxmx, readNxmxFrame, type NxmxSeries } from '../decode/nxmx';
import type { SeriesContext } from '../workers/protocol';
import type { IngestSink } from './sink';

export type EigerOutcome = { kind: 'settled' } | { kind: 'wait' } | { kind: 'wait-slot' } | { kind: 'reject'; message: string };

interface Progress {
  size: number;
  mtimeMs: number;
  /** Whether size and mtime were already seen unchanged at an earlier look. */
  stable: boolean;
  series?: NxmxSeries;
  next: number;
  context?: string;
  /** The master's size and mtime when reading it last failed: a failure on an unchanged master is final. */
  masterSig?: string;
}

const DATA_NAME = /^(.*)_data_(\d+)\.(h5|hdf5|nxs)$/i;
const MASTER_NAME = /_master\.(h5|hdf5|nxs)$/i;

export class EigerWatch {
  private readonly progress = new Map<string, Progress>();
  private contexts = 0;

  constructor(
    private readonly o: { dir: string; slotBytes: number; incompleteTimeoutMs: number; publishContext?: (c: SeriesContext) => void },
  ) {}

  /** Names this module takes over from the CBF path. */
  static handles(name: string): boolean {
    return /\.(h5|hdf5|nxs)$/i.test(name);
  }

  forget(name: string): void {
    this.progress.delete(name);
  }

  async take(sink: IngestSink, name: string, found: { path: string; size: number; mtimeMs: number }): Promise<EigerOutcome> {
    // Masters hold no frames: they are read when their data files come.
    if (MASTER_NAME.test(name)) return { kind: 'settled' };
    let p = this.progress.get(name);
    if (!p || p.size !== found.size || p.mtimeMs !== found.mtimeMs) {
      // First look, or still growing: look again at the next listing.
      if (!p || p.next === 0) {
        this.progress.set(name, { size: found.size, mtimeMs: found.mtimeMs, stable: false, next: 0 });
        return { kind: 'wait' };
      }
      return { kind: 'reject', message: 'rewritten while its frames were being taken' };
    }
    const overdue = Date.now() - found.mtimeMs >= this.o.incompleteTimeoutMs;
    if (!p.series) {
      const m = DATA_NAME.exec(name);
      const master = m ? path.join(this.o.dir, `${m[1]}_master.${m[3]}`) : found.path;
      const st = await fsp.stat(master).catch(() => undefined);
      if (!st) return overdue ? { kind: 'reject', message: `no master file ${path.basename(master)} for this data file` } : { kind: 'wait' };
      let s: NxmxSeries;
      try {
        s = await openNxmx(master, { only: path.join(this.o.dir, name) });
      } catch (e) {
        // The master may be mid-write: a failure is final once it fails again on an unchanged master (or when overdue).
        const sig = `${st.size}:${st.mtimeMs}`;
        if (!overdue && p.masterSig !== sig) {
          p.masterSig = sig;
          return { kind: 'wait' };
        }
        return { kind: 'reject', message: (e as Error).message };
      }
      const df = s.dataFiles[0];
      if (!df) return { kind: 'reject', message: `the master ${path.basename(master)} does not link this file` };
      if (df.stored < df.frames && !overdue) return { kind: 'wait' };
      if (s.filter === 'bslz4' && s.chunkFrames === 1) {
        const big = s.frames.find((f) => f.chunk.size > this.o.slotBytes);
        if (big) return { kind: 'reject', message: `frame ${big.id}: chunk of ${big.chunk.size} bytes is larger than a frame slot (${this.o.slotBytes} bytes; raise rings.slot_mb)` };
      } else if (s.shape[0] * s.shape[1] * 4 > this.o.slotBytes) return { kind: 'reject', message: `frames of ${s.shape.join(' x ')} do not fit a frame slot (raise rings.slot_mb)` };
      p.series = s;
      p.context = this.publish(s);
      if (df.stored < df.frames) sink.rejected({ series: seriesName(master), frame: df.firstId + df.stored, source: found.path }, `${df.frames - df.stored} of ${df.frames} frame(s) never written (incomplete after ${this.o.incompleteTimeoutMs} ms)`);
    }
    const s = p.series;
    const series = seriesName(s.path);
    for (; p.next < s.frames.length; p.next++) {
      const fr = s.frames[p.next]!;
      const slot = sink.acquire();
      if (slot === undefined) return { kind: 'wait-slot' };
      let handedOff = false;
      try {
        let size: number;
        let encoding: 'bslz4' | 'raw';
        if (s.filter === 'bslz4' && s.chunkFrames === 1 && fr.chunk.filterMask === 0) {
          // The stored chunk, read straight into the slot: its one copy.
          const target = sink.payloadTarget(slot, fr.chunk.size);
          const fh = await fsp.open(fr.file, 'r');
          try {
            const { bytesRead } = await fh.read(target, 0, fr.chunk.size, fr.chunk.address);
            if (bytesRead !== fr.chunk.size) throw new Error(`frame ${fr.id}: chunk cut short (${bytesRead} of ${fr.chunk.size} bytes)`);
          } finally {
            await fh.close();
          }
          size = fr.chunk.size;
          encoding = 'bslz4';
        } else {
          const img = readNxmxFrame(s, fr);
          sink.payloadTarget(slot, img.bytes.length).set(img.bytes);
          size = img.bytes.length;
          encoding = img.encoding === 'bslz4' ? 'bslz4' : 'raw';
        }
        handedOff = true;
        sink.submit(slot, { series, frame: fr.id, encoding, dtype: s.dtype, shape: s.shape, ...(p.context ? { context: p.context } : {}), source: `${fr.file}#${fr.id}` }, size);
      } catch (e) {
        if (!handedOff) sink.release(slot);
        handedOff = true;
        sink.rejected({ series, frame: fr.id, source: `${fr.file}#${fr.id}` }, (e as Error).message);
      } finally {
        if (!handedOff) sink.release(slot);
      }
    }
    this.progress.delete(name);
    const last = s.frames[s.frames.length - 1];
    if (last && s.declared !== undefined && last.id + 1 === s.declared)
      sink.event('info', 'series_end', `series ${series} ended: its last data file ${name} taken (${s.declared} image(s) declared by the master)`, { series_id: series, images: s.declared });
    return { kind: 'settled' };
  }

  private publish(s: NxmxSeries): string | undefined {
    if (!this.o.publishContext) return undefined;
    const context: SeriesContext = { key: `nxmx-${++this.contexts}` };
    if (s.geometry) context.geometry = s.geometry;
    const mask = maskImage(s);
    if (mask) {
      // Shared memory: posted to every worker without a copy each.
      const bytes = new Uint8Array(new SharedArrayBuffer(mask.bytes.length));
      bytes.set(mask.bytes);
      context.mask = { ...mask, bytes };
    }
    if (s.maxValid !== undefined) context.maxValid = s.maxValid;
    this.o.publishContext(context);
    return context.key;
  }
}

/** PREFIX of PREFIX_master.h5: the series as the file writer named it. */
export function seriesName(master: string): string {
  return path.basename(master).replace(/(_master)?\.(h5|hdf5|nxs)$/i, '');
}
