// Counters and latency for the `stats` topic: totals since start, rates and
// latency percentiles over the last interval.

export interface Counters {
  frames_in: number;
  processed: number;
  kept: number;
  rejected: number;
  dropped: number;
  errored: number;
  published: number;
  undeliverable: number;
  reloads: number;
  /** Times ingest wanted a slot and every one was taken. */
  slots_full: number;
}

export interface StatsSnapshot {
  time: string;
  uptime_s: number;
  epoch: number;
  totals: Counters;
  /** totals.undeliverable by MQTT topic, since start. */
  undeliverable_by_topic: Record<string, number>;
  /** Pixels the calibration excluded since start, by reason (JUNGFRAU: saturated, invalid_gain, error_word, masked). */
  pixels_excluded: Record<string, number>;
  rates_hz: { frames_in: number; processed: number; kept: number; published: number };
  latency_ms: { p50: number | null; p99: number | null; max: number | null; samples: number };
  queues: Record<string, number>;
}

/** Upper bounds (ms) of the latency histogram's buckets, for /metrics: from a fast 1M frame to a stalled pipeline. */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] as const;

/** Distinct reasons kept per decision; more are counted under "other" (the reason texts come from the data). */
const MAX_REASONS = 32;

/**
 * A reason as a label: its words without the numbers and details, so that
 * "lit 3 < 30" and "lit 7 < 30" count together ("lit <"), and an error
 * message counts by what went wrong, not by the frame it names.
 */
export function reasonClass(reason: string): string {
  const head = reason.split(/[:(]/, 1)[0]!;
  const words = head
    .replace(/\S*\d\S*/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return words.slice(0, 48) || (reason ? 'other' : 'none');
}

export type FrameDecision = 'kept' | 'rejected' | 'error' | 'dropped';

function percentile(sorted: number[], q: number): number | null {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export class Stats {
  readonly totals: Counters = { frames_in: 0, processed: 0, kept: 0, rejected: 0, dropped: 0, errored: 0, published: 0, undeliverable: 0, reloads: 0, slots_full: 0 };
  private readonly undeliverableByTopic: Record<string, number> = {};
  private readonly pixelsExcluded: Record<string, number> = {};
  /** Frames by decision and reason class (reasonClass), since start: the same events as totals, finer. */
  readonly byReason: Record<FrameDecision, Map<string, number>> = { kept: new Map(), rejected: new Map(), error: new Map(), dropped: new Map() };
  /** Cumulative latency histogram since start: counts per LATENCY_BUCKETS_MS bucket (the last one: above all), with sum and count. */
  readonly latencyHistogram = { buckets: new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0), sum: 0, count: 0 };
  private last: Counters = { ...this.totals };
  private lastTime = process.hrtime.bigint();
  private latencies: number[] = [];
  private readonly started = Date.now();

  count(key: keyof Counters, n = 1): void {
    this.totals[key] += n;
  }

  /** A frame's fate: counted in totals (kept, rejected, errored or dropped) and by its reason. */
  decided(decision: FrameDecision, reason: string): void {
    this.count(decision === 'error' ? 'errored' : decision);
    const byReason = this.byReason[decision];
    let label = reasonClass(reason);
    if (!byReason.has(label) && byReason.size >= MAX_REASONS) label = 'other';
    byReason.set(label, (byReason.get(label) ?? 0) + 1);
  }

  undeliverable(topic: string): void {
    this.totals.undeliverable++;
    this.undeliverableByTopic[topic] = (this.undeliverableByTopic[topic] ?? 0) + 1;
  }

  /** totals.undeliverable by topic since start (read-only view). */
  snapshotUndeliverable(): Readonly<Record<string, number>> {
    return this.undeliverableByTopic;
  }

  /** Pixels the calibration excluded since start, by reason (read-only view). */
  snapshotPixelsExcluded(): Readonly<Record<string, number>> {
    return this.pixelsExcluded;
  }

  excludedPixels(byReason: Record<string, number>): void {
    for (const [reason, n] of Object.entries(byReason)) this.pixelsExcluded[reason] = (this.pixelsExcluded[reason] ?? 0) + n;
  }

  latency(ms: number): void {
    const h = this.latencyHistogram;
    let b = 0;
    while (b < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[b]!) b++;
    h.buckets[b]!++;
    h.sum += ms;
    h.count++;
    // Bounded: beyond 100k samples per interval, keep a uniform subsample.
    if (this.latencies.length < 100_000) this.latencies.push(ms);
    else this.latencies[Math.floor(Math.random() * this.latencies.length)] = ms;
  }

  /** Returns the interval's figures and starts a new interval. */
  snapshot(epoch: number, queues: Record<string, number>): StatsSnapshot {
    const now = process.hrtime.bigint();
    const dt = Number(now - this.lastTime) / 1e9 || 1;
    const rate = (k: keyof Counters) => Math.round(((this.totals[k] - this.last[k]) / dt) * 100) / 100;
    const lat = this.latencies.sort((a, b) => a - b);
    const round = (x: number | null) => (x === null ? null : Math.round(x * 100) / 100);
    const snap: StatsSnapshot = {
      time: new Date().toISOString(),
      uptime_s: Math.round((Date.now() - this.started) / 100) / 10,
      epoch,
      totals: { ...this.totals },
      undeliverable_by_topic: { ...this.undeliverableByTopic },
      pixels_excluded: { ...this.pixelsExcluded },
      rates_hz: { frames_in: rate('frames_in'), processed: rate('processed'), kept: rate('kept'), published: rate('published') },
      latency_ms: { p50: round(percentile(lat, 0.5)), p99: round(percentile(lat, 0.99)), max: round(lat.length ? lat[lat.length - 1]! : null), samples: lat.length },
      queues,
    };
    this.last = { ...this.totals };
    this.lastTime = now;
    this.latencies = [];
    return snap;
  }
}
