// The live page's feed: server-sent events to the open pages, at most
// UPDATE_HZ whatever the frame rate. While no page is open the hub keeps only
// what a newly opened page shows at once (a bounded history of the stats
// intervals and the recent events, both produced once per interval anyway)
// and does nothing per frame: no timer runs and no preview is asked for.
import type { ServerResponse } from 'node:http';
import type { StatsSnapshot } from '../stats/stats';
import type { PreviewInfo, ResultArrays, ResultHeader } from '../workers/protocol';

export const UPDATE_HZ = 4;
/** Pictures of the latest kept frame per second while a page is open, at most. */
export const PREVIEW_MAX_HZ = 1;
/**
 * The share of one worker's time pictures may take: each costs a worker a
 * decode and a pass over the frame (about 10-20 ms for a 2.5 Mpixel CBF on a
 * busy 2-core machine), so the next is asked for only after cost / budget.
 */
export const PREVIEW_BUDGET = 0.005;
export const MAX_CLIENTS = 16;
/** Stats intervals kept for the rate plot. */
const HISTORY = 300;
const EVENTS = 50;
/** Points of a profile sent to the page (a longer one is reduced by taking every k-th bin). */
const MAX_PROFILE_POINTS = 4000;

export interface LiveEvent {
  time: string;
  level: string;
  kind: string;
  message: string;
}

export interface LiveSource {
  /** Figures the page shows beside the plots (epoch, calibration, queues, hit rates...). */
  status(): Record<string, unknown>;
  /** Ask the workers for a picture of the next kept frame. */
  requestPreview(): void;
  /** The last page closed: a picture still asked for is no longer wanted. */
  cancelPreview(): void;
}

interface Client {
  res: ServerResponse;
  /** The socket's buffer is full: skip updates until it drains (a slow page never holds memory). */
  blocked: boolean;
}

export class LiveHub {
  private readonly clients = new Set<Client>();
  private readonly history: StatsSnapshot[] = [];
  private readonly events: LiveEvent[] = [];
  private eventSeq = 0;
  private sentEventSeq = 0;
  private latest: { header: ResultHeader; arrays: ResultArrays } | undefined;
  private profileSent = true;
  private timer: NodeJS.Timeout | undefined;
  private nextPreviewAt = 0;
  private profileSeq = 0;
  private previewSeq = 0;

  constructor(private readonly src: LiveSource) {}

  /** True while at least one page listens: the data path's one test per frame. */
  get watching(): boolean {
    return this.clients.size > 0;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** A kept frame's result; call only while watching. Keeps a reference, copies nothing. */
  kept(header: ResultHeader, arrays: ResultArrays): void {
    if (arrays.intensity) {
      this.latest = { header, arrays };
      this.profileSent = false;
    }
    if (header.preview && arrays.preview) {
      this.nextPreviewAt = Date.now() + Math.max(1000 / PREVIEW_MAX_HZ, header.preview.ms / PREVIEW_BUDGET);
      this.sendPreview(header, header.preview, arrays);
    }
  }

  /** Once per stats interval, watched or not. */
  stats(snap: StatsSnapshot): void {
    this.history.push(snap);
    if (this.history.length > HISTORY) this.history.shift();
  }

  event(e: LiveEvent): void {
    this.events.push(e);
    this.eventSeq++;
    if (this.events.length > EVENTS) this.events.shift();
  }

  /** Takes over an HTTP response as an event stream; false when too many pages are open. */
  attach(res: ServerResponse): boolean {
    if (this.clients.size >= MAX_CLIENTS) return false;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const client: Client = { res, blocked: false };
    this.clients.add(client);
    res.on('close', () => {
      this.clients.delete(client);
      if (!this.clients.size) this.stopTimer();
    });
    res.on('drain', () => (client.blocked = false));
    // What the page shows at once: the history and the recent events, then the latest profile.
    this.write(client, 'hello', { status: this.src.status(), history: this.history, events: this.events });
    if (this.latest) this.write(client, 'profile', this.profile());
    this.timer ??= setInterval(() => this.update(), 1000 / UPDATE_HZ);
    return true;
  }

  close(): void {
    this.stopTimer();
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.latest = undefined;
    this.src.cancelPreview();
  }

  private update(): void {
    const now = Date.now();
    if (now >= this.nextPreviewAt) {
      // Asked once; asked again only after the picture came (kept() moves the time on) or 10 s without one.
      this.nextPreviewAt = now + 10_000;
      this.src.requestPreview();
    }
    const fresh = this.eventSeq - this.sentEventSeq;
    const events = fresh > 0 ? this.events.slice(-Math.min(fresh, this.events.length)) : [];
    this.sentEventSeq = this.eventSeq;
    this.broadcast('status', { status: this.src.status(), stats: this.history[this.history.length - 1] ?? null, events });
    if (this.latest && !this.profileSent) {
      this.profileSent = true;
      this.broadcast('profile', this.profile());
    }
  }

  private profile(): Record<string, unknown> {
    const { header: h, arrays: a } = this.latest!;
    const radial = a.radial!;
    const nRad = radial.length;
    let intensity: ArrayLike<number> = a.intensity!;
    let sigma: ArrayLike<number> | undefined = a.sigma;
    // 2D integration (npt_azim x npt): the page shows the mean over azimuth of the bins that have pixels.
    if (intensity.length !== nRad && intensity.length % nRad === 0) {
      intensity = azimuthalMean(intensity, nRad);
      sigma = undefined;
    }
    const step = Math.max(1, Math.ceil(nRad / MAX_PROFILE_POINTS));
    const pick = (x: ArrayLike<number> | undefined) => (x ? Array.from({ length: Math.ceil(nRad / step) }, (_, i) => finite(x[i * step]!)) : undefined);
    return {
      seq: ++this.profileSeq,
      series: h.series,
      frame: h.frame,
      unit: h.unit ?? null,
      decision: h.decision,
      reason: h.reason,
      calibration: h.calibration ?? null,
      spots: h.spots ?? null,
      radial: pick(radial),
      intensity: pick(intensity),
      sigma: pick(sigma),
    };
  }

  private sendPreview(h: ResultHeader, info: PreviewInfo, a: ResultArrays): void {
    const spots = a.spot_fs && a.spot_ss ? { fs: Array.from(a.spot_fs), ss: Array.from(a.spot_ss) } : null;
    this.broadcast('preview', { seq: ++this.previewSeq, series: h.series, frame: h.frame, ...info, image: Buffer.from(a.preview!.buffer, a.preview!.byteOffset, a.preview!.byteLength).toString('base64'), spots, spot_count: h.spots ?? null });
  }

  private broadcast(kind: string, data: unknown): void {
    if (!this.clients.size) return;
    const text = `event: ${kind}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of this.clients) if (!c.blocked) c.blocked = !c.res.write(text);
  }

  private write(c: Client, kind: string, data: unknown): void {
    c.blocked = !c.res.write(`event: ${kind}\ndata: ${JSON.stringify(data)}\n\n`);
  }
}

function finite(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

function azimuthalMean(intensity: ArrayLike<number>, nRad: number): number[] {
  const nAzim = intensity.length / nRad;
  const out: number[] = [];
  for (let r = 0; r < nRad; r++) {
    let sum = 0;
    let n = 0;
    for (let a = 0; a < nAzim; a++) {
      const v = intensity[a * nRad + r]!;
      if (Number.isFinite(v) && v !== 0) {
        sum += v;
        n++;
      }
    }
    out.push(n ? sum / n : NaN);
  }
  return out;
}
