// DECTRIS SIMPLON streams over ZeroMQ (v2 CBOR, v1 JSON multipart): a PULL
// socket connected to the detector control unit's PUSH. Several beamedge instances connected to one DCU
// share its images round-robin (a property of PUSH/PULL); each records what it
// got, under its own instance name.
import { Pull } from 'zeromq';
import { decodeStream1, type Stream1Message } from '../decode/stream1';
import { idField, imageField, optionalString, shown, StreamFieldError } from '../decode/stream-checks';
import { decodeStream2, type EncodedImage, type Stream2Message } from '../decode/stream2';
import type { Geometry } from '../geometry/geometry';
import type { SeriesContext } from '../workers/protocol';
import { SeriesTracker, type SeriesStart } from './dectris-series';
import type { FrameRef, FrameSource, IngestSink } from './sink';

export interface DectrisOptions {
  endpoint: string;
  protocol: 'v1' | 'v2';
  channel: string | null;
  /** A slot's payload bytes: the most an image, a pixel mask or a flatfield may take decoded. */
  maxImageBytes: number;
  /** Hands a series' context to the workers before its first image. */
  publishContext: (context: SeriesContext) => void;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
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

// libzmq retries a lost peer every 100 ms (ZMQ_RECONNECT_IVL); ten times that without an attempt means it gave up.
const RECONNECT_CHECK_MS = 1000;

/** An error's text for a row or an event: bounded, whatever threw it. */
function problem(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  return s.length <= 500 ? s : `${s.slice(0, 500)}...`;
}

/** The optional number of images a start announces. */
function declaredImages(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

export class DectrisSource implements FrameSource {
  readonly name = 'dectris';
  private socket: Pull | undefined;
  private series: SeriesTracker | undefined;
  private loop: Promise<void> | undefined;
  private received = 0;
  private stopped = false;
  /** Wakes a receive loop waiting for a slot when the daemon stops. */
  private wake: (() => void) | undefined;
  private reconnectCheck: NodeJS.Timeout | undefined;

  constructor(private readonly opts: DectrisOptions) {}

  /**
   * The largest message ZeroMQ accepts, in bytes. A DCU message holds at most
   * one image per channel, a start at most a mask and a flatfield per channel:
   * 8 slot payloads cover four channels. Anything larger is not read at all:
   * ZeroMQ closes the connection (and reconnects), so no message can claim
   * unbounded memory.
   */
  get maxMessageBytes(): number {
    return 8 * this.opts.maxImageBytes + (1 << 20);
  }

  async start(sink: IngestSink): Promise<void> {
    this.series = new SeriesTracker(sink.event, this.opts.publishContext);
    this.socket = new Pull();
    // Bounded socket queue: when the workers are behind, the DCU's PUSH waits (lossless).
    this.socket.receiveHighWaterMark = 4;
    this.socket.maxMessageSize = this.maxMessageBytes;
    this.socket.connect(this.opts.endpoint);
    this.watchConnection(this.socket, sink);
    this.loop = this.receive(this.socket, sink);
  }

  // A closed connection (a DCU restart, or a message over the size limit) is
  // worth an event, at most one per 10 s however often a peer makes it happen.
  // libzmq reconnects by itself after a lost peer, but gives up after a
  // protocol error such as an oversized message, which would leave the daemon
  // deaf to the DCU: when no reconnection attempt follows a disconnect within
  // RECONNECT_CHECK_MS, the endpoint is connected again here. (Disconnecting it
  // first would throw away messages already received and not yet read.)
  private watchConnection(socket: Pull, sink: IngestSink): void {
    void (async () => {
      let last = -Infinity;
      let unreported = 0;
      let attempted = 0;
      for await (const e of socket.events) {
        if (e.type === 'connect' || e.type === 'connect:delay' || e.type === 'connect:retry' || e.type === 'handshake') attempted = performance.now();
        if (e.type !== 'disconnect' || this.stopped) continue;
        const at = performance.now();
        clearTimeout(this.reconnectCheck); // a later disconnect means the earlier one was followed by a connection
        this.reconnectCheck = setTimeout(() => {
          if (this.stopped || attempted > at) return;
          try {
            socket.connect(this.opts.endpoint);
          } catch (err) {
            sink.event('error', 'ingest', `DECTRIS stream ${this.opts.endpoint}: cannot connect again: ${problem(err)}`);
          }
        }, RECONNECT_CHECK_MS);
        unreported++;
        if (Date.now() - last < 10_000) continue;
        last = Date.now();
        sink.event('warn', 'stream_disconnected', `DECTRIS stream ${this.opts.endpoint}: connection closed${unreported > 1 ? ` (${unreported} times since the last report)` : ''}, reconnecting; ZeroMQ also closes it on a message over ${this.maxMessageBytes} bytes (8 slot payloads + 1 MiB), which is not read, and messages the DCU had queued behind it on that connection are lost with it`, { endpoint: this.opts.endpoint, times: unreported });
        unreported = 0;
      }
    })().catch(() => {});
  }

  // One message at a time: a message's failure is recorded and the loop goes on.
  private async receive(socket: Pull, sink: IngestSink): Promise<void> {
    try {
      for await (const parts of socket) {
        if (this.stopped) break;
        const n = ++this.received;
        try {
          if (this.opts.protocol === 'v1') await this.handleV1(sink, parts, n);
          else await this.handleV2(sink, parts[0]!, n);
        } catch (e) {
          // Bad input is handled where it is found; this is the last line, so the loop never dies.
          sink.event('error', 'stream_error', `stream ${this.opts.protocol} message ${n}: ${problem(e)}`, { message: n });
        }
      }
    } catch (e) {
      if (!this.stopped) sink.event('error', 'ingest', `DECTRIS stream ${this.opts.endpoint}: ${problem(e)}`);
    }
  }

  /** A message that may have been a frame: an error row and an event. */
  private refuse(sink: IngestSink, ref: Partial<FrameRef>, n: number, e: unknown): void {
    sink.rejected({ series: ref.series ?? (this.series!.current ? String(this.series!.current.id) : 'unknown'), frame: ref.frame ?? null, source: this.opts.endpoint }, `stream ${this.opts.protocol} message ${n}: ${problem(e)}`);
  }

  /** A start, end or other message that is not a frame: an event names the problem. */
  private warn(sink: IngestSink, kind: string, n: number, text: string): void {
    sink.event('warn', kind, `stream ${this.opts.protocol} message ${n}: ${text}`, { message: n });
  }

  private async handleV2(sink: IngestSink, message: Buffer, n: number): Promise<void> {
    let m: Stream2Message;
    try {
      m = decodeStream2(message);
    } catch (e) {
      return this.refuse(sink, {}, n, `${message.length} bytes that do not decode: ${problem(e)}`);
    }
    if (m.type === 'image') return this.imageV2(sink, m, n);
    if (m.type !== 'start' && m.type !== 'end') return this.warn(sink, 'stream_ignored', n, `ignoring a message of type ${shown(m.type)}`);
    let id: number;
    try {
      id = idField(m.series_id, `${m.type} message series_id`);
      if (m.type === 'end') return this.series!.end(id, optionalString(m.series_unique_id, 'end message series_unique_id'));
    } catch (e) {
      return this.warn(sink, `stream_${m.type}_refused`, n, problem(e));
    }
    this.series!.start(this.startV2(m, id));
  }

  private async imageV2(sink: IngestSink, m: Stream2Message, n: number): Promise<void> {
    const ref: Partial<FrameRef> = {};
    let img: EncodedImage;
    let uniqueId: string | undefined;
    let channel: string;
    try {
      ref.frame = idField(m.image_id, 'image_id');
      ref.series = String(idField(m.series_id, 'image series_id'));
      uniqueId = optionalString(m.series_unique_id, 'series_unique_id');
      const data = m.data && typeof m.data === 'object' ? m.data : {};
      const names = Object.keys(data);
      const name = this.opts.channel ?? names[0];
      if (name === undefined || !Object.hasOwn(data, name)) throw new StreamFieldError(`no channel ${shown(name ?? '(none)')} in data (has ${names.length ? names.slice(0, 4).map((c) => shown(c, 32)).join(', ') : 'none'}${names.length > 4 ? `, ${names.length - 4} more` : ''})`);
      channel = optionalString(name, 'channel name')!;
      img = imageField(data[name], `channel ${shown(channel, 32)}`, this.opts.maxImageBytes);
    } catch (e) {
      return this.refuse(sink, ref, n, e);
    }
    return this.onImage(sink, n, Number(ref.series), ref.frame!, img, uniqueId, channel);
  }

  private startV2(m: Stream2Message, seriesId: number): SeriesStart {
    let uniqueId = `series-${seriesId}-${Date.now()}`;
    try {
      // Parsed first, so that a start refused for another field still names its series.
      uniqueId = optionalString(m.series_unique_id, 'series_unique_id') ?? uniqueId;
      const channels = Array.isArray(m.channels) ? (m.channels as unknown[]) : [];
      const channel = optionalString(this.opts.channel ?? channels[0], 'channel name');
      const perChannel = (field: unknown, what: string): EncodedImage | undefined => {
        if (field === undefined || field === null) return undefined;
        if (typeof field !== 'object') throw new StreamFieldError(`${what} is not a map of channels`);
        const f = field as Record<string, unknown>;
        const v = channel !== undefined && Object.hasOwn(f, channel) ? f[channel] : Object.values(f)[0];
        return v === undefined ? undefined : imageField(v, what, this.opts.maxImageBytes);
      };
      const mask = perChannel(m.pixel_mask, 'pixel_mask');
      const flat = perChannel(m.flatfield, 'flatfield');
      const rows = num(m.image_size_y);
      const cols = num(m.image_size_x);
      for (const [img, what] of [[mask, 'pixel_mask'], [flat, 'flatfield']] as const)
        if (img && rows !== undefined && cols !== undefined && (img.shape[0] !== rows || img.shape[1] !== cols))
          throw new StreamFieldError(`${what} is ${img.shape.join(' x ')}, the images ${rows} x ${cols} (image_size_y x image_size_x)`);
      const geometry = geometryFromStart(m);
      const sat = num(m.saturation_value);
      const images = declaredImages(m.number_of_images);
      return {
        seriesId,
        uniqueId,
        ...(geometry ? { geometry } : {}),
        ...(mask ? { mask } : {}),
        ...(flat ? { flat } : {}),
        ...(sat !== undefined ? { maxValid: sat } : {}),
        ...(images !== undefined ? { images } : {}),
        ...(channel !== undefined ? { channel } : {}),
      };
    } catch (e) {
      if (!(e instanceof StreamFieldError)) throw e;
      return { seriesId, uniqueId, refused: e.message };
    }
  }

  private async handleV1(sink: IngestSink, parts: Buffer[], n: number): Promise<void> {
    let m: Stream1Message;
    try {
      m = decodeStream1(parts);
    } catch (e) {
      return this.refuse(sink, {}, n, `${parts.length} part(s) that do not decode: ${problem(e)}`);
    }
    if (m.kind === 'other') return this.warn(sink, 'stream_ignored', n, `ignoring a message of htype ${shown(m.htype)}`);
    if (m.kind === 'image') {
      const ref: Partial<FrameRef> = {};
      let img: EncodedImage;
      try {
        ref.frame = idField(m.frame, 'dimage frame');
        ref.series = String(idField(m.series, 'dimage series'));
        img = imageField(m.image, `image ${ref.frame}`, this.opts.maxImageBytes);
      } catch (e) {
        return this.refuse(sink, ref, n, e);
      }
      return this.onImage(sink, n, Number(ref.series), ref.frame, img, undefined, 'image');
    }
    let id: number;
    try {
      id = idField(m.series, `${m.kind === 'end' ? 'dseries_end' : 'dheader'} series`);
    } catch (e) {
      return this.warn(sink, `stream_${m.kind === 'end' ? 'end' : 'start'}_refused`, n, problem(e));
    }
    if (m.kind === 'end') return this.series!.end(id, undefined);
    this.series!.start(this.startV1(m, id));
  }

  private startV1(m: Extract<Stream1Message, { kind: 'header' }>, seriesId: number): SeriesStart {
    const uniqueId = `v1-${seriesId}-${Date.now()}`;
    try {
      const c = m.config ?? {};
      const geometry = geometryFromV1Config(c);
      const cutoff = num(c.countrate_correction_count_cutoff);
      const images = declaredImages(c.nimages);
      const mask = m.pixelMask ? imageField(m.pixelMask, 'pixel mask', this.opts.maxImageBytes) : undefined;
      const flat = m.flatfield ? imageField(m.flatfield, 'flatfield', this.opts.maxImageBytes) : undefined;
      return {
        seriesId,
        uniqueId,
        ...(geometry ? { geometry } : {}),
        ...(mask ? { mask } : {}),
        ...(flat ? { flat } : {}),
        ...(cutoff !== undefined ? { maxValid: cutoff } : {}),
        ...(images !== undefined ? { images } : {}),
      };
    } catch (e) {
      if (!(e instanceof StreamFieldError)) throw e;
      return { seriesId, uniqueId, refused: e.message };
    }
  }

  /** A free slot, waiting for one (backpressure); undefined when the daemon stops meanwhile. */
  private async slot(sink: IngestSink): Promise<number | undefined> {
    for (;;) {
      if (this.stopped) return undefined;
      const slot = sink.acquire();
      if (slot !== undefined) return slot;
      // Not reading: ZeroMQ queues are bounded, so the detector waits.
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        sink.whenSlotFree(resolve);
      });
    }
  }

  /** Everything about the image has been checked; only now is a slot taken for it. */
  private async onImage(sink: IngestSink, n: number, seriesId: number, imageId: number, img: EncodedImage, uniqueId: string | undefined, channel: string): Promise<void> {
    const ref: FrameRef = { series: String(seriesId), frame: imageId, source: this.opts.endpoint };
    const tracker = this.series!;
    const open = tracker.forImage(seriesId, uniqueId, imageId);
    if (open?.refused) return this.refuse(sink, ref, n, `the start message of series ${seriesId} was refused: ${open.refused}`);
    const slot = await this.slot(sink);
    if (slot === undefined) return sink.dropped(ref, 'the daemon stopped before a slot was free');
    let handedOver = false;
    try {
      sink.payloadTarget(slot, img.bytes.length).set(img.bytes); // the one copy: ZeroMQ buffer -> slot
      handedOver = true; // from here submit owns the slot, and gives it back itself when it refuses the frame
      const ok = sink.submit(
        slot,
        {
          series: ref.series,
          frame: imageId,
          encoding: img.encoding,
          dtype: img.dtype,
          shape: img.shape,
          source: this.opts.endpoint,
          ...(open?.context !== undefined ? { context: open.context } : {}),
          extra: { series_unique_id: uniqueId ?? open?.uniqueId ?? null, channel },
        },
        img.bytes.length,
      );
      if (ok) tracker.counted(open, imageId);
    } catch (e) {
      if (handedOver) throw e;
      this.refuse(sink, ref, n, e);
    } finally {
      if (!handedOver) sink.release(slot);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    clearTimeout(this.reconnectCheck);
    this.socket?.close();
    await this.loop?.catch(() => {});
  }

  describe(): Record<string, unknown> {
    return { kind: `dectris-stream-${this.opts.protocol}`, endpoint: this.opts.endpoint, channel: this.opts.channel, messages: this.received };
  }
}
