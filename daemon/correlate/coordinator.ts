// Main-thread side of the correlations: counts each series' accumulated
// frames from the results, asks the workers for their accumulators when a
// result is wanted (every publish_every frames: the autocorrelation and the
// configured pairs; at the series end: everything), merges them, publishes
// the `correlation` message, and at the end writes the .npy files with an
// event and a provenance row. A series ends with its DECTRIS end message,
// after SERIES_IDLE_MS without a frame, when more than MAX_OPEN series are
// open (the oldest), or when the daemon stops.
import path from 'node:path';
import type { CorrelateConfig } from '../config/config';
import type { EventSink } from '../outcomes/funnel';
import { encodePayload, type CorrelationMessage } from '../publish/messages';
import type { Recorder } from '../provenance/recorder';
import { SERIES_IDLE_MS } from '../stats/hit-rates';
import type { Logger } from '../system/logger';
import type { CorrelationState } from './accumulator';
import { allPairs } from './accumulator';
import { writeCorrelationFiles, type WrittenFile } from './files';
import { deltaAxis, finishPairs, mergeStates } from './result';
import type { ResultHeader } from '../workers/protocol';

/** Fewer than the workers keep (workers/correlations.ts), so the workers' bound never drops a series. */
export const MAX_OPEN = 4;

export interface CorrelationSource {
  correlation(series: string, pairs: Int32Array | null, end: boolean): Promise<{ states: CorrelationState[]; evicted: string[]; errors: string[] }>;
  /** Resolves once the frames in flight now are done. */
  settled(): Promise<void>;
}

export interface CoordinatorDeps {
  source: CorrelationSource;
  publish: (payload: Buffer, format: 'cbor' | 'json') => void;
  recorder: Pick<Recorder, 'resultFiles'>;
  event: EventSink;
  log: Logger;
  instance: string;
  format: () => 'cbor' | 'json';
  config: () => CorrelateConfig;
  outputDir: string;
}

interface OpenSeries {
  frames: number;
  nextPublish: number;
  publishEvery: number;
  pairs: [number, number][];
  /** Radial bins when the series started (a series keeps its settings). */
  npt: number;
  last: number;
  epochs: Set<number>;
  calibrations: Set<string>;
  ending: boolean;
  /** Requests for one series run one after the other. */
  chain: Promise<void>;
  /** Set when the series ends: resolves once its files are written. */
  done?: Promise<void>;
}

/** A series id as one safe directory name (ids come from the network). */
function dirName(series: string): string {
  const safe = series.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_').slice(0, 80) || '_';
  return `${safe}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
}

export class CorrelationCoordinator {
  private readonly open = new Map<string, OpenSeries>();

  constructor(private readonly d: CoordinatorDeps) {}

  /** A worker's result: counts the frames the correlate stage accumulated. */
  accumulated(h: ResultHeader, now = Date.now()): void {
    if (!h.correlated) return;
    let s = this.open.get(h.series);
    if (!s) {
      const cfg = this.d.config();
      s = { frames: 0, nextPublish: cfg.publish_every, publishEvery: cfg.publish_every, pairs: cfg.q_pairs, npt: cfg.npt, last: now, epochs: new Set(), calibrations: new Set(), ending: false, chain: Promise.resolve() };
      this.open.set(h.series, s);
      for (const [id, o] of this.open) {
        if ([...this.open.values()].filter((x) => !x.ending).length <= MAX_OPEN) break;
        if (!o.ending && id !== h.series) this.end(id, `more than ${MAX_OPEN} series open`);
      }
    }
    s.frames++;
    s.last = now;
    s.epochs.add(h.epoch);
    if (h.calibration) s.calibrations.add(h.calibration);
    if (s.frames >= s.nextPublish) {
      s.nextPublish += s.publishEvery;
      this.queue(h.series, s, () => this.publishPartial(h.series, s!));
    }
  }

  /** The series' end message (or another reason): the last message and the files. */
  seriesEnded(series: string, why: string): void {
    const s = this.open.get(series);
    if (s && !s.ending) this.end(series, why);
  }

  /** Once per stats interval: series without a frame for SERIES_IDLE_MS end. */
  tick(now = Date.now()): void {
    for (const [id, s] of this.open) if (!s.ending && now - s.last >= SERIES_IDLE_MS) this.end(id, `no frame for ${SERIES_IDLE_MS / 1000} s`);
  }

  /** Ends every open series (the daemon stops) and waits for their files. */
  async close(): Promise<void> {
    for (const [id, s] of this.open) if (!s.ending) this.end(id, 'daemon stopping');
    await Promise.all([...this.open.values()].map((s) => s.done ?? s.chain));
  }

  private queue(series: string, s: OpenSeries, job: () => Promise<void>): void {
    s.chain = s.chain.then(job).catch((e: Error) => this.d.event('error', 'correlation_failed', `correlation of series ${series} failed: ${e.message}`, { series }));
  }

  private end(series: string, why: string): void {
    const s = this.open.get(series)!;
    s.ending = true;
    // The end message can overtake frames still in the workers: once they are
    // counted (and any message they make due is queued), the last one goes out.
    s.done = this.d.source.settled().then(() => {
      this.queue(series, s, async () => {
        try {
          await this.publishFinal(series, s, why);
        } finally {
          this.open.delete(series);
        }
      });
      return s.chain;
    });
  }

  private async gather(series: string, pairs: Int32Array | null, end: boolean): Promise<CorrelationState | undefined> {
    const { states, evicted, errors } = await this.d.source.correlation(series, pairs, end);
    for (const e of errors) this.d.log.error('a worker could not give its correlation', { series, error: e });
    if (evicted.length) this.d.event('warn', 'correlation_evicted', `worker dropped correlation accumulators of series ${evicted.join(', ')} (too many series open)`, { series: evicted });
    return mergeStates(states);
  }

  private requested(s: OpenSeries, npt: number): Int32Array {
    const pairs = s.pairs.filter(([i, j]) => i < npt && j < npt);
    return Int32Array.from([...Array.from({ length: npt }, (_, i) => [i, i]).flat(), ...pairs.flat()]);
  }

  private message(series: string, s: OpenSeries, state: CorrelationState, c2: Float64Array, pairs: Int32Array, final: boolean): CorrelationMessage {
    const { npt, nptAzim: k } = state;
    const rows = (p: number) => c2.subarray(p * k, (p + 1) * k);
    return {
      instance: this.d.instance,
      series,
      frames: state.frames,
      final,
      time: new Date().toISOString(),
      epochs: [...s.epochs],
      calibrations: [...s.calibrations],
      unit: state.unit,
      radial: Float64Array.from(state.radial),
      delta_deg: deltaAxis(k),
      shape: [npt, k],
      autocorrelation: c2.slice(0, npt * k),
      pairs: Array.from({ length: pairs.length / 2 - npt }, (_, p) => ({ i: pairs[2 * (npt + p)]!, j: pairs[2 * (npt + p) + 1]!, c2: rows(npt + p).slice() })),
    };
  }

  private async publishPartial(series: string, s: OpenSeries): Promise<void> {
    const pairs = this.requested(s, s.npt);
    const state = await this.gather(series, pairs, false);
    if (!state) return;
    const { c2 } = finishPairs(state);
    this.d.publish(encodePayload(this.message(series, s, state, c2, pairs, false), this.d.format()), this.d.format());
  }

  private async publishFinal(series: string, s: OpenSeries, why: string): Promise<void> {
    const state = await this.gather(series, null, true);
    if (!state) return;
    const dir = path.join(this.d.outputDir, 'correlation', dirName(series));
    const files: WrittenFile[] = writeCorrelationFiles(dir, state, {
      meta: { instance: this.d.instance, series, why, epochs: [...s.epochs], calibrations: [...s.calibrations], written: new Date().toISOString() },
    });
    // The message's pairs come from the whole state: the same numbers as the files.
    const pairs = this.requested(s, state.npt);
    const sub: CorrelationState = { ...state, ...subset(state, pairs) };
    const { c2 } = finishPairs(sub);
    const msg = { ...this.message(series, s, state, c2, pairs, true), files };
    this.d.publish(encodePayload(msg, this.d.format()), this.d.format());
    const epochs = [...s.epochs];
    const calibrations = [...s.calibrations];
    this.d.recorder.resultFiles({
      kind: 'correlation',
      series,
      epoch: epochs.at(-1) ?? null,
      calibration: calibrations.at(-1) ?? null,
      frames: state.frames,
      files,
      details: { why, epochs, calibrations, npt: state.npt, npt_azim: state.nptAzim, unit: state.unit, directory: dir },
    });
    this.d.event('info', 'correlation_written', `series ${series} (${why}): C2 of ${state.frames} frame(s), ${state.npt} x ${state.npt} x ${state.nptAzim}, written to ${dir}`, {
      series,
      why,
      frames: state.frames,
      directory: dir,
      files: files.map((f) => ({ name: f.name, path: f.path, sha256: f.sha256 })),
      epochs,
      calibrations,
    });
  }
}

/** The spectra of some pairs out of a state of allPairs. */
function subset(state: CorrelationState, pairs: Int32Array): Pick<CorrelationState, 'pairs' | 're' | 'im' | 'mre' | 'mim'> {
  const h = Math.floor(state.nptAzim / 2) + 1;
  const n = state.npt;
  const all = allPairs(n);
  const index = (i: number, j: number) => i * n - (i * (i - 1)) / 2 + (j - i);
  const re = new Float64Array((pairs.length / 2) * h);
  const im = new Float64Array(re.length);
  const mre = state.mre ? new Float64Array(re.length) : undefined;
  const mim = state.mim ? new Float64Array(re.length) : undefined;
  for (let p = 0; p < pairs.length / 2; p++) {
    const a = pairs[2 * p]!;
    const b = pairs[2 * p + 1]!;
    const swap = a > b;
    const src = index(Math.min(a, b), Math.max(a, b));
    if (all[2 * src] !== Math.min(a, b) || all[2 * src + 1] !== Math.max(a, b)) throw new Error('pair index out of step');
    for (let k = 0; k < h; k++) {
      re[p * h + k] = state.re[src * h + k]!;
      im[p * h + k] = swap ? -state.im[src * h + k]! : state.im[src * h + k]!;
      if (mre) {
        mre[p * h + k] = state.mre![src * h + k]!;
        mim![p * h + k] = swap ? -state.mim![src * h + k]! : state.mim![src * h + k]!;
      }
    }
  }
  return { pairs, re, im, ...(mre ? { mre, mim: mim! } : {}) };
}
