// DECTRIS SIMPLON streams over ZeroMQ (v2 CBOR, v1 JSON multipart): a PULL
// socket connected to the detector control unit's PUSH. Several beamedge instances connected to one DCU
// share its images round-robin (a property of PUSH/PULL); each records what it
// got, under its own instance name.
import { Pull } from 'zeromq';
import { decodeStream1 } from '../decode/stream1';
import { decodeImage, decodeStream2, type EncodedImage, type Stream2Message } from '../decode/stream2';
import type { Geometry } from '../geometry/geometry';
import type { SeriesContext } from '../workers/protocol';
import type { FrameSource, IngestSink } from './sink';

export interface DectrisOptions {
  endpoint: string;
  protocol: 'v1' | 'v2';
  channel: string | null;
  /** Hands a series' context to the workers before its first image. */
  publishContext: (context: SeriesContext) => void;
}

interface OpenSeries {
  id: number;
  uniqueId: string;
  images: number;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** What a start (v2) or header (v1) message says about a series. */
interface SeriesStart {
  seriesId: number;
  uniqueId: string;
  geometry?: Geometry;
  mask?: EncodedImage;
  flat?: EncodedImage;
  maxValid?: number;
  images?: unknown;
  channel?: string;
}

/** Geometry from a v1 detector configuration: beam centre in pixels, distance in m, wavelength in A. */
export function geometryFromV1Config(c: Record<string, unknown>): Geometry | undefined {
  const bx = num(c.beam_center_x);
  const by = num(c.beam_center_y);
  const px = num(c.x_pixel_size);
  const py = num(c.y_pixel_size);
  const dist = num(c.detector_distance);
  const lambda = num(c.wavelength);
  if (bx === undefined || by === undefined || !px || !py || !dist) return undefined;
  return { dist, poni1: by * py, poni2: bx * px, rot1: 0, rot2: 0, rot3: 0, pixel1: py, pixel2: px, ...(lambda ? { wavelength: lambda * 1e-10 } : {}) };
}

/** Geometry from a start message: beam centre in pixels, detector_translation[2] as the distance. */
export function geometryFromStart(m: Stream2Message): Geometry | undefined {
  const bx = num(m.beam_center_x);
  const by = num(m.beam_center_y);
  const px = num(m.pixel_size_x);
  const py = num(m.pixel_size_y);
  const t = Array.isArray(m.detector_translation) ? num(m.detector_translation[2]) : undefined;
  const lambda = num(m.incident_wavelength);
  if (bx === undefined || by === undefined || !px || !py || !t) return undefined;
  return { dist: t, poni1: by * py, poni2: bx * px, rot1: 0, rot2: 0, rot3: 0, pixel1: py, pixel2: px, ...(lambda ? { wavelength: lambda * 1e-10 } : {}) };
}

export class DectrisSource implements FrameSource {
  readonly name = 'dectris';
  private socket: Pull | undefined;
  private sink: IngestSink | undefined;
  private series: OpenSeries | undefined;
  private loop: Promise<void> | undefined;
  private received = 0;
  private readonly warnedMidSeries = new Set<number>();

  constructor(private readonly opts: DectrisOptions) {}

  async start(sink: IngestSink): Promise<void> {
    this.sink = sink;
    this.socket = new Pull();
    // Bounded socket queue: when the workers are behind, the DCU's PUSH waits (lossless).
    this.socket.receiveHighWaterMark = 4;
    this.socket.connect(this.opts.endpoint);
    this.loop = this.receive();
  }

  private async receive(): Promise<void> {
    const socket = this.socket!;
    try {
      for await (const parts of socket) {
        if (!this.sink) break;
        this.received++;
        try {
          if (this.opts.protocol === 'v1') await this.handleV1(parts);
          else await this.handle(parts[0]!);
        } catch (e) {
          this.sink.rejected({ series: this.series ? String(this.series.id) : 'unknown', frame: null, source: this.opts.endpoint }, `stream ${this.opts.protocol} message ${this.received}: ${(e as Error).message}`);
        }
      }
    } catch (e) {
      if (this.sink) this.sink.event('error', 'ingest', `DECTRIS stream ${this.opts.endpoint}: ${(e as Error).message}`);
    }
  }

  private async slot(): Promise<number> {
    for (;;) {
      const slot = this.sink!.acquire();
      if (slot !== undefined) return slot;
      // Backpressure: stop reading; ZeroMQ queues are bounded, so the detector waits.
      await new Promise<void>((resolve) => this.sink!.whenSlotFree(resolve));
    }
  }

  private async handleV1(parts: Buffer[]): Promise<void> {
    const m = decodeStream1(parts);
    if (m.kind === 'header') {
      const c = m.config ?? {};
      const geometry = geometryFromV1Config(c);
      const cutoff = num(c.countrate_correction_count_cutoff);
      return this.onStart({
        seriesId: m.series,
        uniqueId: `v1-${m.series}-${Date.now()}`,
        ...(geometry ? { geometry } : {}),
        ...(m.pixelMask ? { mask: m.pixelMask } : {}),
        ...(m.flatfield ? { flat: m.flatfield } : {}),
        ...(cutoff !== undefined ? { maxValid: cutoff } : {}),
        images: c.nimages,
      });
    }
    if (m.kind === 'image') return this.onImage(m.series, m.frame, m.image, undefined, 'image');
    if (m.kind === 'end') return this.onEnd(m.series, undefined);
    this.sink!.event('warn', 'ingest', `stream v1: ignoring a message of htype '${m.htype}'`);
  }

  private async handle(message: Buffer): Promise<void> {
    const m = decodeStream2(message);
    if (m.type === 'start') return this.onStartV2(m);
    if (m.type === 'end') return this.onEnd(num(m.series_id) ?? -1, m.series_unique_id);
    if (m.type !== 'image') {
      this.sink!.event('warn', 'ingest', `stream v2: ignoring a message of type '${m.type}'`);
      return;
    }
    const imageId = num(m.image_id);
    if (imageId === undefined) throw new Error('image message without image_id');
    const data = m.data ?? {};
    const channel = this.opts.channel ?? Object.keys(data)[0];
    const img: EncodedImage | undefined = channel !== undefined ? data[channel] : undefined;
    if (!img) throw new Error(`image ${imageId} has no channel ${channel ?? '(none)'} (has ${Object.keys(data).join(', ')})`);
    return this.onImage(num(m.series_id) ?? -1, imageId, img, m.series_unique_id, channel!);
  }

  private onEnd(seriesId: number, uniqueId: string | undefined): void {
    const s = this.series;
    this.sink!.event('info', 'series_end', `series ${seriesId} ended after ${s?.images ?? 0} image(s) received by this instance`, { series_id: seriesId, series_unique_id: uniqueId ?? s?.uniqueId, images: s?.images ?? 0 });
    this.series = undefined;
  }

  private async onImage(seriesId: number, imageId: number, img: EncodedImage, uniqueId: string | undefined, channel: string): Promise<void> {
    const sink = this.sink!;
    if ((!this.series || this.series.id !== seriesId) && !this.warnedMidSeries.has(seriesId)) {
      this.warnedMidSeries.add(seriesId);
      sink.event('warn', 'series_without_start', `image ${imageId} of series ${seriesId} arrived without its start message (started mid-series?): geometry must come from pipeline.geometry.poni`, { series_id: seriesId });
    }
    const slot = await this.slot();
    let target: Uint8Array;
    try {
      target = sink.payloadTarget(slot, img.bytes.length);
    } catch (e) {
      sink.release(slot);
      throw e;
    }
    target.set(img.bytes); // the one copy: ZeroMQ buffer -> slot
    const open = this.series?.id === seriesId ? this.series : undefined;
    if (open) open.images++;
    sink.submit(
      slot,
      {
        series: String(seriesId),
        frame: imageId,
        encoding: img.encoding,
        dtype: img.dtype,
        shape: img.shape,
        source: this.opts.endpoint,
        ...(open ? { context: open.uniqueId } : {}),
        extra: { series_unique_id: uniqueId ?? open?.uniqueId ?? null, channel },
      },
      img.bytes.length,
    );
  }

  private onStartV2(m: Stream2Message): void {
    const channel = this.opts.channel ?? (Array.isArray(m.channels) ? String(m.channels[0]) : undefined);
    const perChannel = (field: unknown): EncodedImage | undefined => {
      if (!field || typeof field !== 'object') return undefined;
      const f = field as Record<string, EncodedImage>;
      return channel !== undefined && f[channel] ? f[channel] : Object.values(f)[0];
    };
    const id = num(m.series_id) ?? -1;
    const geometry = geometryFromStart(m);
    const mask = perChannel(m.pixel_mask);
    const flat = perChannel(m.flatfield);
    const sat = num(m.saturation_value);
    this.onStart({
      seriesId: id,
      uniqueId: typeof m.series_unique_id === 'string' ? m.series_unique_id : `series-${id}-${Date.now()}`,
      ...(geometry ? { geometry } : {}),
      ...(mask ? { mask } : {}),
      ...(flat ? { flat } : {}),
      ...(sat !== undefined ? { maxValid: sat } : {}),
      images: m.number_of_images,
      ...(channel !== undefined ? { channel } : {}),
    });
  }

  private onStart(st: SeriesStart): void {
    const sink = this.sink!;
    if (this.series) sink.event('warn', 'series_restart', `start of series ${st.seriesId} while series ${this.series.id} is open: closing it after ${this.series.images} image(s)`, { open: this.series.id, next: st.seriesId });
    this.series = { id: st.seriesId, uniqueId: st.uniqueId, images: 0 };
    const context: SeriesContext = { key: st.uniqueId };
    if (st.geometry) context.geometry = st.geometry;
    if (st.mask) context.mask = Uint8Array.from(decodeImage(st.mask), (v) => (v !== 0 ? 1 : 0));
    if (st.flat) context.flat = Float32Array.from(decodeImage(st.flat));
    if (st.maxValid !== undefined) context.maxValid = st.maxValid;
    this.opts.publishContext(context);
    sink.event('info', 'series_start', `series ${st.seriesId} (${st.uniqueId}) started: ${st.images ?? '?'} image(s)${st.geometry ? '' : ', no geometry in the start message'}`, {
      series_id: st.seriesId,
      series_unique_id: st.uniqueId,
      channel: st.channel,
      mask: !!context.mask,
      flatfield: !!context.flat,
      saturation_value: st.maxValid,
    });
  }

  async stop(): Promise<void> {
    this.sink = undefined;
    this.socket?.close();
    await this.loop?.catch(() => {});
  }

  describe(): Record<string, unknown> {
    return { kind: `dectris-stream-${this.opts.protocol}`, endpoint: this.opts.endpoint, channel: this.opts.channel, messages: this.received };
  }
}
