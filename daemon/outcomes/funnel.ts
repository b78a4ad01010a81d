// The one place a frame's fate is recorded. Every outcome (received, result,
// refused at ingest, dropped, lost with a worker) goes through here, in the
// order crash consistency needs:
//   1. a 'received' row is queued the moment a frame is in a slot;
//   2. its outcome replaces that row in a later batch;
//   3. a kept frame's `reduced` message is handed to MQTT only once its
//      outcome row is committed, so every message on the broker has a row;
//   4. the `published` mark follows the broker's acknowledgement (1), or a
//      message dropped from a full spool marks it undeliverable (-1); either
//      may come in a later run, for a message that waited in the spool.
// A daemon killed between 1 and 2 leaves 'received' rows, which the next
// start turns into 'lost' (see provenance/writer-thread.ts).
import type { FrameRef, IncomingMeta } from '../ingest/sink';
import { encodeReduced, reducedMessage, type ReducedMessage } from '../publish/messages';
import type { FrameRef as DeliveryRef, MqttPublisher } from '../publish/mqtt-publisher';
import type { FrameRow } from '../provenance/schema';
import type { Recorder } from '../provenance/recorder';
import { HitRates } from '../stats/hit-rates';
import type { Stats } from '../stats/stats';
import type { Logger } from '../system/logger';
import type { FrameMeta, ResultArrays, ResultHeader } from '../workers/protocol';

export type EventSink = (level: 'info' | 'warn' | 'error', kind: string, message: string, details?: Record<string, unknown>) => void;

export interface FunnelDeps {
  recorder: Recorder;
  publisher: MqttPublisher;
  stats: Stats;
  log: Logger;
  instance: string;
  format: () => 'cbor' | 'json';
  epoch: () => number;
  event: EventSink;
  /** Reduced data on disk (output.formats): every judged frame, with its message when kept. */
  output?: (h: ResultHeader, kept?: ReducedMessage) => void;
}

export class OutcomeFunnel {
  private seq = 0;
  private dropsSinceTick = 0;
  /** Who waits for a frame's outcome to be committed (acknowledging senders); at most one per slot. */
  private readonly onRecorded = new Map<number, () => void>();
  private readonly undeliverableSinceTick = new Map<string, number>();
  private undeliverableReason = '';
  readonly hits = new HitRates();

  constructor(private readonly d: FunnelDeps) {}

  /** A complete frame's identity: its sequence number and the moment it arrived. */
  stamp(meta: IncomingMeta): FrameMeta {
    return { ...meta, seq: ++this.seq, epoch: this.d.epoch(), receivedAt: performance.now(), receivedWall: Date.now() };
  }

  /** A stamped frame is in its slot, on its way to a worker: its 'received' row. */
  received(full: FrameMeta, onRecorded?: () => void): void {
    if (onRecorded) this.onRecorded.set(full.seq, onRecorded);
    this.d.stats.count('frames_in');
    this.d.recorder.received(full.seq, full.series, full.frame, full.source, new Date(full.receivedWall).toISOString());
  }

  /** The worker's verdict on a frame that had a 'received' row. */
  result(h: ResultHeader, arrays: ResultArrays): void {
    const { stats, recorder } = this.d;
    const latency = performance.now() - h.receivedAt;
    stats.count('processed');
    stats.latency(latency);
    if (h.calibrationExcluded) stats.excludedPixels(h.calibrationExcluded);
    if (h.hit !== undefined) this.hits.judged(h.series, h.hit, h.spots);
    stats.decided(h.decision, h.reason);
    recorder.frame({
      seq: h.seq,
      series: h.series,
      frame: h.frame,
      source: h.source,
      received: new Date(h.receivedWall).toISOString(),
      processed: new Date(h.processedWall).toISOString(),
      decision: h.decision,
      reason: h.reason,
      score: h.score,
      epoch: h.epoch,
      worker: h.worker,
      latency_ms: Math.round(latency * 1000) / 1000,
      error: h.error ?? null,
      calibration: h.calibration ?? null,
      spots: h.spots ?? null,
    });
    this.settled(h.seq);
    if (h.decision !== 'kept') this.d.output?.(h);
    if (h.decision === 'error') {
      this.d.event('warn', 'frame_error', `frame failed: series ${h.series} frame ${h.frame} from ${h.source}: ${h.reason}`, { series: h.series, frame: h.frame, source: h.source, epoch: h.epoch });
      return;
    }
    if (h.decision === 'rejected') {
      this.d.log.debug('frame rejected by the veto', { series: h.series, frame: h.frame, reason: h.reason });
      return;
    }
    const format = this.d.format();
    const msg = reducedMessage(this.d.instance, h, arrays, latency);
    this.d.output?.(h, msg);
    const payload = encodeReduced(msg, format);
    const ref: DeliveryRef = { run: recorder.runId, seq: h.seq, series: h.series, frame: h.frame };
    recorder.whenDurable(() => this.d.publisher.reduced(payload, format, ref));
  }

  /** The broker acknowledged a frame's message (the frame may be from an earlier run: it waited in the spool). */
  delivered(ref: DeliveryRef): void {
    this.d.stats.count('published');
    this.d.recorder.published(ref.seq, ref.run);
  }

  /** A message that will never be delivered (spool full, or no spool and the memory queue full). */
  undeliverable(topic: string, reason: string, ref: DeliveryRef | undefined): void {
    this.d.stats.undeliverable(topic);
    if (ref) this.d.recorder.undelivered(ref.seq, ref.run);
    this.d.log.debug('MQTT message undeliverable', { topic, reason, ...ref });
    this.undeliverableSinceTick.set(topic, (this.undeliverableSinceTick.get(topic) ?? 0) + 1);
    this.undeliverableReason = reason;
  }

  /** A frame refused before it reached a worker (bad header, too large, metadata that does not fit...). */
  refused(ref: FrameRef, message: string, meta?: FrameMeta): void {
    this.d.stats.count('frames_in');
    this.d.stats.decided('error', message);
    this.row(ref, 'error', message, meta);
    this.d.event('warn', 'frame_error', `frame rejected: series ${ref.series} frame ${ref.frame ?? '?'} from ${ref.source}: ${message}`, { series: ref.series, frame: ref.frame, source: ref.source });
  }

  /** A frame that never got a slot (policy drop, or a queue refused it). */
  dropped(ref: FrameRef, reason: string, countIn = true): void {
    if (countIn) this.d.stats.count('frames_in');
    this.d.stats.decided('dropped', reason);
    this.dropsSinceTick++;
    this.d.log.debug('frame dropped', { series: ref.series, frame: ref.frame, reason });
    this.row(ref, 'dropped', reason);
  }

  /** Frames a dead worker held: their 'received' rows become errors. */
  lost(metas: FrameMeta[], reason: string): void {
    for (const m of metas) {
      this.d.stats.decided('error', reason);
      this.row({ series: m.series, frame: m.frame, source: m.source }, 'error', reason, m);
      this.settled(m.seq);
    }
    this.d.event('error', 'worker_lost', reason, { frames: metas.length });
  }

  /** Once per stats interval: one event for the drops and one for the undeliverable messages since the last, not one per frame (a full spool can drop hundreds a second). */
  /** A series ended (its end message, or idle): one summary event with its hit rate. */
  seriesEnded(series: string, why: string): void {
    const s = this.hits.end(series);
    if (!s) return;
    const median = s.median_spots_per_hit === null ? '' : `, median ${s.median_spots_per_hit} spots per hit`;
    this.d.event('info', 'series_summary', `series ${series} (${why}): ${s.frames} frames, ${s.hits} hits, hit rate ${(100 * s.hit_rate).toFixed(1)}%${median}`, { ...s, why });
  }

  tick(intervalS: number): void {
    for (const series of this.hits.idle()) this.seriesEnded(series, 'no frame for 60 s');
    if (this.dropsSinceTick) {
      this.d.event('warn', 'drop', `${this.dropsSinceTick} frame(s) dropped in the last ${intervalS.toFixed(1)} s: workers behind (policy drop)`, { dropped: this.dropsSinceTick, total: this.d.stats.totals.dropped });
      this.dropsSinceTick = 0;
    }
    if (this.undeliverableSinceTick.size) {
      const byTopic = Object.fromEntries(this.undeliverableSinceTick);
      const n = [...this.undeliverableSinceTick.values()].reduce((a, b) => a + b, 0);
      this.undeliverableSinceTick.clear();
      this.d.event('warn', 'undeliverable', `${n} MQTT message(s) will never be delivered (last ${intervalS.toFixed(1)} s): ${this.undeliverableReason}`, { undeliverable: n, by_topic: byTopic, total: this.d.stats.totals.undeliverable });
    }
  }

  private settled(seq: number): void {
    const cb = this.onRecorded.get(seq);
    if (!cb) return;
    this.onRecorded.delete(seq);
    this.d.recorder.whenDurable(cb);
  }

  private row(ref: FrameRef, decision: FrameRow['decision'], reason: string, meta?: FrameMeta): void {
    this.d.recorder.frame({
      seq: meta?.seq ?? ++this.seq,
      series: ref.series,
      frame: ref.frame,
      source: ref.source,
      received: new Date(meta?.receivedWall ?? Date.now()).toISOString(),
      processed: null,
      decision,
      reason,
      score: null,
      epoch: this.d.epoch(),
      worker: null,
      latency_ms: null,
      error: decision === 'error' ? reason : null,
      calibration: null,
      spots: null,
    });
  }
}
