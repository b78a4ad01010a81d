// Which DECTRIS series is open, and what its start message told the workers.
// A stream carries one series at a time; start and end are matched to it by
// series id and, when the message has one, series_unique_id, so a stray end or
// image of another series never closes it or borrows its geometry.
import type { EncodedImage } from '../decode/stream2';
import type { Geometry } from '../geometry/geometry';
import type { SeriesContext } from '../workers/protocol';
import { RecentMap } from '../system/recent-map';
import type { IngestSink } from './sink';

/** What a start (v2) or header (v1) message says about a series. */
export interface SeriesStart {
  seriesId: number;
  uniqueId: string;
  geometry?: Geometry;
  mask?: EncodedImage;
  flat?: EncodedImage;
  maxValid?: number;
  /** number_of_images (v2) or nimages (v1), when the message gives a usable one. */
  images?: number;
  channel?: string;
  /** The start message was unusable: every image of the series is refused with this. */
  refused?: string;
}

export interface OpenSeries {
  readonly id: number;
  readonly uniqueId: string;
  /** Key of the context the workers were given; absent when the start was refused. */
  readonly context?: string;
  readonly refused?: string;
  readonly declared?: number;
  images: number;
}

/**
 * The image's bytes copied once into shared memory: posted to every worker
 * without a copy each, and without the rest of the message the decoder's
 * view of them would otherwise drag along.
 */
function shared(img: EncodedImage): EncodedImage {
  const bytes = new Uint8Array(new SharedArrayBuffer(img.bytes.length));
  bytes.set(img.bytes);
  return { ...img, bytes };
}

// Series ids already warned about (images without a start): ids come from the
// network, so only the most recent are remembered.
const MAX_WARNED = 64;

export class SeriesTracker {
  private open: OpenSeries | undefined;
  private starts = 0;
  private readonly warned = new RecentMap<number, true>(MAX_WARNED);

  constructor(
    private readonly event: IngestSink['event'],
    /** Hands a series' context to the workers; called before any image of it is submitted. */
    private readonly publish: (context: SeriesContext) => void,
  ) {}

  get current(): OpenSeries | undefined {
    return this.open;
  }

  private matches(id: number, uniqueId: string | undefined): OpenSeries | undefined {
    const s = this.open;
    return s && s.id === id && (uniqueId === undefined || uniqueId === s.uniqueId) ? s : undefined;
  }

  start(st: SeriesStart): void {
    const old = this.open;
    if (old) this.event('warn', 'series_restart', `start of series ${st.seriesId} while series ${old.id} is open: closing it after ${old.images} image(s)`, { open: old.id, next: st.seriesId });
    const ids = { series_id: st.seriesId, series_unique_id: st.uniqueId };
    if (st.refused) {
      this.open = { id: st.seriesId, uniqueId: st.uniqueId, refused: st.refused, images: 0 };
      this.event('error', 'series_start_refused', `start of series ${st.seriesId} refused, its images will be recorded as errors: ${st.refused}`, ids);
      return;
    }
    // A key of our own: a reused series_unique_id must not find another series' mask in a worker's cache.
    const context: SeriesContext = { key: `start-${++this.starts}` };
    if (st.geometry) context.geometry = st.geometry;
    if (st.mask) context.mask = shared(st.mask);
    if (st.flat) context.flat = shared(st.flat);
    if (st.maxValid !== undefined) context.maxValid = st.maxValid;
    this.publish(context);
    this.open = { id: st.seriesId, uniqueId: st.uniqueId, context: context.key, images: 0, ...(st.images !== undefined ? { declared: st.images } : {}) };
    this.event('info', 'series_start', `series ${st.seriesId} (${st.uniqueId}) started: ${st.images ?? '?'} image(s)${st.geometry ? '' : ', no geometry in the start message'}`, {
      ...ids,
      channel: st.channel,
      mask: !!st.mask,
      flatfield: !!st.flat,
      saturation_value: st.maxValid,
    });
  }

  /** An end closes the open series only when it names that series. */
  end(id: number, uniqueId: string | undefined): void {
    const s = this.matches(id, uniqueId);
    const ids = { series_id: id, series_unique_id: uniqueId ?? null };
    if (!s) {
      const open = this.open ? `series ${this.open.id} (${this.open.uniqueId}) stays open` : 'no series is open';
      this.event('warn', 'series_end_mismatch', `end of series ${id}${uniqueId !== undefined ? ` (${uniqueId})` : ''} ignored: ${open}`, { ...ids, open: this.open?.id ?? null });
      return;
    }
    this.event('info', 'series_end', `series ${id} ended after ${s.images} image(s) received by this instance`, { ...ids, series_unique_id: s.uniqueId, images: s.images });
    this.open = undefined;
  }

  /** The open series an image belongs to, or undefined (with one warning per series id). */
  forImage(id: number, uniqueId: string | undefined, imageId: number): OpenSeries | undefined {
    const s = this.matches(id, uniqueId);
    if (s || this.warned.has(id)) return s;
    this.warned.set(id, true);
    const why = this.open?.id === id ? `its series_unique_id differs from the open series' (${this.open.uniqueId})` : 'it arrived without its start message (started mid-series?)';
    this.event('warn', 'series_without_start', `image ${imageId} of series ${id}: ${why}: geometry must come from pipeline.geometry.poni`, { series_id: id });
    return undefined;
  }

  /**
   * Counts a submitted image. There is no cap on images per series: each holds
   * a slot only while in flight (rings.slots bounds that), and refusing images
   * beyond number_of_images would lose data when a detector's count is off.
   * The operator is told once.
   */
  counted(s: OpenSeries | undefined, imageId: number): void {
    if (!s) return;
    s.images++;
    if (s.declared !== undefined && s.images === s.declared + 1)
      this.event('warn', 'series_overrun', `series ${s.id}: image ${imageId} is beyond the ${s.declared} image(s) its start message announced; processing it anyway`, { series_id: s.id, declared: s.declared });
  }
}
