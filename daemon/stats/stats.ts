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

function percentile(sorted: number[], q: number): number | null {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export class Stats {
  readonly totals: Counters = { frames_in: 0, processed: 0, kept: 0, rejected: 0, dropped: 0, errored: 0, published: 0, undeliverable: 0, reloads: 0, slots_full: 0 };
  private readonly undeliverableByTopic: Record<string, number> = {};
  private readonly pixelsExcluded: Record<string, number> = {};
  private last: Counters = { ...this.totals };
  private lastTime = process.hrtime.bigint();
  private latencies: number[] = [];
  private readonly started = Date.now();

  count(key: keyof Counters, n = 1): void {
    this.totals[key] += n;
  }

  undeliverable(topic: string): void {
    this.totals.undeliverable++;
    this.undeliverableByTopic[topic] = (this.undeliverableByTopic[topic] ?? 0) + 1;
  }

  excludedPixels(byReason: Record<string, number>): void {
    for (const [reason, n] of Object.entries(byReason)) this.pixelsExcluded[reason] = (this.pixelsExcluded[reason] ?? 0) + n;
  }

  latency(ms: number): void {
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
