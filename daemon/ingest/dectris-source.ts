// DECTRIS SIMPLON stream v2 over ZeroMQ: a PULL socket connected to the
// detector control unit's PUSH. Several beamedge instances connected to one DCU
// share its images round-robin (a property of PUSH/PULL); each records what it
// got, under its own instance name.
import { Pull } from 'zeromq';
import { decodeImage, decodeStream2, type EncodedImage, type Stream2Message } from '../decode/stream2';
import type { Geometry } from '../geometry/geometry';
import type { SeriesContext } from '../workers/protocol';
import type { FrameSource, IngestSink } from './sink';

export interface DectrisOptions {
  endpoint: string;
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
          await this.handle(parts[0]!);
        } catch (e) {
          this.sink.rejected({ series: this.series ? String(this.series.id) : 'unknown', frame: null, source: this.opts.endpoint }, `stream v2 message ${this.received}: ${(e as Error).message}`);
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

  private async handle(message: Buffer): Promise<void> {
    const sink = this.sink!;
    const m = decodeStream2(message);
    if (m.type === 'start') return this.onStart(m);
    if (m.type === 'end') {
      const s = this.series;
      sink.event('info', 'series_end', `series ${m.series_id} ended after ${s?.images ?? 0} image(s) received by this instance`, { series_id: m.series_id, series_unique_id: m.series_unique_id, images: s?.images ?? 0 });
      this.series = undefined;
      return;
    }
    if (m.type !== 'image') {
      sink.event('warn', 'ingest', `stream v2: ignoring a message of type '${m.type}'`);
      return;
    }
    const seriesId = num(m.series_id) ?? -1;
    const imageId = num(m.image_id);
    if (imageId === undefined) throw new Error('image message without image_id');
    const data = m.data ?? {};
    const channel = this.opts.channel ?? Object.keys(data)[0];
    const img: EncodedImage | undefined = channel !== undefined ? data[channel] : undefined;
    if (!img) throw new Error(`image ${imageId} has no channel ${channel ?? '(none)'} (has ${Object.keys(data).join(', ')})`);
    if (!this.series || this.series.id !== seriesId) {
      if (!this.warnedMidSeries.has(seriesId)) {
        this.warnedMidSeries.add(seriesId);
        sink.event('warn', 'series_without_start', `image ${imageId} of series ${seriesId} arrived without its start message (started mid-series?): geometry must come from pipeline.geometry.poni`, { series_id: seriesId });
      }
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
    if (this.series?.id === seriesId) this.series.images++;
    sink.submit(
      slot,
      {
        series: String(seriesId),
        frame: imageId,
        encoding: img.encoding === 'raw' ? 'raw' : img.encoding,
        dtype: img.dtype === 'float32' || img.dtype === 'int32' || img.dtype === 'uint8' || img.dtype === 'uint16' || img.dtype === 'uint32' ? img.dtype : 'uint32',
        shape: img.shape,
        source: this.opts.endpoint,
        ...(this.series?.id === seriesId ? { context: this.series.uniqueId } : {}),
        extra: { series_unique_id: m.series_unique_id, channel },
      },
      img.bytes.length,
    );
  }

  private onStart(m: Stream2Message): void {
    const sink = this.sink!;
    if (this.series) sink.event('warn', 'series_restart', `start of series ${m.series_id} while series ${this.series.id} is open: closing it after ${this.series.images} image(s)`, { open: this.series.id, next: m.series_id });
    const id = num(m.series_id) ?? -1;
    const uniqueId = typeof m.series_unique_id === 'string' ? m.series_unique_id : `series-${id}-${Date.now()}`;
    this.series = { id, uniqueId, images: 0 };
    const channel = this.opts.channel ?? (Array.isArray(m.channels) ? String(m.channels[0]) : undefined);
    const context: SeriesContext = { key: uniqueId };
    const geometry = geometryFromStart(m);
    if (geometry) context.geometry = geometry;
    const perChannel = (field: unknown): EncodedImage | undefined => {
      if (!field || typeof field !== 'object') return undefined;
      const f = field as Record<string, EncodedImage>;
      return channel !== undefined && f[channel] ? f[channel] : Object.values(f)[0];
    };
    const maskImg = perChannel(m.pixel_mask);
    if (maskImg) context.mask = Uint8Array.from(decodeImage(maskImg), (v) => (v !== 0 ? 1 : 0));
    const flatImg = perChannel(m.flatfield);
    if (flatImg) context.flat = Float32Array.from(decodeImage(flatImg));
    const sat = num(m.saturation_value);
    if (sat !== undefined) context.maxValid = sat;
    this.opts.publishContext(context);
    sink.event('info', 'series_start', `series ${id} (${uniqueId}) started: ${m.number_of_images ?? '?'} image(s)${geometry ? '' : ', no geometry in the start message'}`, {
      series_id: id,
      series_unique_id: uniqueId,
      channel,
      mask: !!context.mask,
      flatfield: !!context.flat,
      saturation_value: sat,
    });
  }

  async stop(): Promise<void> {
    this.sink = undefined;
    this.socket?.close();
    await this.loop?.catch(() => {});
  }

  describe(): Record<string, unknown> {
    return { kind: 'dectris-stream-v2', endpoint: this.opts.endpoint, channel: this.opts.channel, messages: this.received };
  }
}
