// Hit rates per series: frames the veto kept on their own count (not the
// prescaled audit keeps) over frames it judged, over the stats interval and
// since the series started, and a summary when a series ends (its DECTRIS
// end message, or no frame for SERIES_IDLE_MS). Series ids come from the
// network: only the most recent are tracked.
import { RecentMap } from '../system/recent-map';
const MAX_SERIES = 256;
export const SERIES_IDLE_MS = 60_000;

interface SeriesHits {
  frames: number;
  hits: number;
  intervalFrames: number;
  intervalHits: number;
  /** Spots of each hit, for the median (bounded: a uniform sample beyond 10k). */
  spots: number[];
  last: number;
}

export interface HitRate {
  frames: number;
  hits: number;
  /** Since the series started. */
  hit_rate: number;
  /** Over the last stats interval (null: no frame in it). */
  interval_hit_rate: number | null;
}

export interface SeriesSummary {
  series: string;
  frames: number;
  hits: number;
  hit_rate: number;
  median_spots_per_hit: number | null;
}

export class HitRates {
  private readonly series = new RecentMap<string, SeriesHits>(MAX_SERIES);

  /** A frame the veto judged; `spots` when the spots stage ran. */
  judged(series: string, hit: boolean, spots: number | undefined, now = Date.now()): void {
    let s = this.series.get(series);
    if (s) this.series.delete(series);
    s ??= { frames: 0, hits: 0, intervalFrames: 0, intervalHits: 0, spots: [], last: now };
    this.series.set(series, s);
    s.frames++;
    s.intervalFrames++;
    s.last = now;
    if (hit) {
      s.hits++;
      s.intervalHits++;
      if (spots !== undefined) {
        if (s.spots.length < 10_000) s.spots.push(spots);
        else s.spots[Math.floor(Math.random() * s.spots.length)] = spots;
      }
    }
  }

  /** Per-series rates; starts a new interval. */
  snapshot(): Record<string, HitRate> {
    const out: Record<string, HitRate> = {};
    for (const [id, s] of this.series) {
      out[id] = { frames: s.frames, hits: s.hits, hit_rate: s.hits / s.frames, interval_hit_rate: s.intervalFrames ? s.intervalHits / s.intervalFrames : null };
      s.intervalFrames = s.intervalHits = 0;
    }
    return out;
  }

  /** Ends a series: its summary, or undefined when no frame of it was judged. */
  end(series: string): SeriesSummary | undefined {
    const s = this.series.get(series);
    if (!s) return undefined;
    this.series.delete(series);
    const sorted = s.spots.slice().sort((a, b) => a - b);
    const median = sorted.length ? (sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2) : null;
    return { series, frames: s.frames, hits: s.hits, hit_rate: s.hits / s.frames, median_spots_per_hit: median };
  }

  /** Series with no frame for SERIES_IDLE_MS. */
  idle(now = Date.now()): string[] {
    return [...this.series].filter(([, s]) => now - s.last >= SERIES_IDLE_MS).map(([id]) => id);
  }
}
