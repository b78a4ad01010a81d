// A worker's correlation accumulators, one per series, kept across
// configuration epochs (a reload mid-series must not lose what was summed).
// A series keeps the settings it started with. The main thread ends series
// (and so frees them here) before MAX_SERIES are open; the bound is a
// backstop against series ids from the network.
import type { IntegrateConfig } from '../config/config';
import type { CorrelationAccumulator, CorrelationState } from '../correlate/accumulator';
import { RecentMap } from '../system/recent-map';

export const MAX_SERIES = 6;

export interface SeriesCorrelation {
  acc: CorrelationAccumulator;
  /** The polar image's settings, as the series' first frame had them. */
  polar: IntegrateConfig;
}

export class SeriesCorrelations {
  private readonly series = new RecentMap<string, SeriesCorrelation>(MAX_SERIES, (oldest) => this.evicted.push(oldest));
  /** Series dropped by the bound, for the main thread's event. */
  evicted: string[] = [];

  /** The series' accumulator and settings; `polar` and `make` start it at its first frame. */
  get(series: string, polar: IntegrateConfig, make: () => CorrelationAccumulator): SeriesCorrelation {
    let e = this.series.get(series);
    if (!e) {
      e = { acc: make(), polar };
      this.series.set(series, e);
    }
    return e;
  }

  /** The settings a started series keeps. */
  polarOf(series: string): IntegrateConfig | undefined {
    return this.series.get(series)?.polar;
  }

  /** What the series has summed (pairs: those; null: all), or null when this worker has none of it; `end` frees it. */
  state(series: string, pairs: Int32Array | null, end: boolean): CorrelationState | null {
    const e = this.series.get(series);
    if (!e) return null;
    if (end) this.series.delete(series);
    return pairs ? e.acc.state(pairs) : e.acc.state();
  }
}
