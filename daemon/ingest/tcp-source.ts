// TCP ingest: reads framed frames (see tcp-framing.ts) and writes each payload
// straight into a ring slot. With policy "backpressure" the socket is paused
// while no slot is free (lossless); with "drop" the frame is skipped and counted.
//
// Nobody who can reach the port can take the daemon down or starve it:
// - a slot is claimed only once a frame's payload starts to arrive, so a
//   connection that sends a header and stops holds nothing;
//   a frame must then arrive whole within frame_timeout_ms (time spent waiting
//   for a free slot does not count), and a silent connection is closed after
//   idle_timeout_ms; both cases release the slot and record the frame;
// - metadata that would not fit a slot is refused per frame, before a slot;
// - connections beyond max_connections are refused;
// - whatever throws while handling a connection closes that connection only.
import net from 'node:net';
import { checkHeader, FramingError, MAGIC, MAX_HEADER, parseSize, type Ack, type FrameHeader } from './tcp-framing';
import type { FrameRef, FrameSource, IngestSink } from './sink';

export interface TcpOptions {
  host: string;
  port: number;
  policy: 'backpressure' | 'drop';
  max_connections: number;
  idle_timeout_ms: number;
  frame_timeout_ms: number;
  ack: 'slot' | 'durable';
}

interface Payload {
  kind: 'payload';
  header: FrameHeader;
  ref: FrameRef;
  slot: number | null;
  target: Uint8Array | null;
  received: number;
  problem: string | null;
  dropped: boolean;
  waiting: boolean;
}

type State = { kind: 'prefix' } | { kind: 'header'; length: number } | Payload | { kind: 'closed' };

// A sender that asks for acknowledgements but never reads them is cut off here.
const MAX_UNREAD_ACKS = 1 << 20;
// At most one event per this interval about refused connections (a flood must not flood the events).
const REFUSAL_EVENT_MS = 10_000;

class Connection {
  private state: State = { kind: 'prefix' };
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private deadline: NodeJS.Timeout | undefined;
  readonly name: string;

  constructor(
    private readonly socket: net.Socket,
    private readonly sink: IngestSink,
    private readonly opts: TcpOptions,
    onClose: () => void,
  ) {
    this.name = `tcp:${socket.remoteAddress}:${socket.remotePort}`;
    socket.setTimeout(opts.idle_timeout_ms);
    socket.on('timeout', () => this.abort(`no data for ${opts.idle_timeout_ms} ms (ingest.tcp.idle_timeout_ms)`, 'idle'));
    socket.on('data', (chunk) => {
      if (this.state.kind === 'closed') return;
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      this.guarded(() => this.pump());
    });
    socket.on('error', (err) => sink.event('warn', 'ingest', `${this.name}: ${err.message}`));
    socket.on('close', () => {
      this.abort('connection closed in the middle of a frame', 'closed');
      onClose();
    });
  }

  /** Nothing a client sends may escape this connection: any failure closes it alone. */
  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.abort(`internal error while reading: ${(e as Error).message}`, 'error');
    }
  }

  private take(n: number): Buffer {
    // Gathers exactly n bytes from the pending chunks (small: prefix and header only).
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.pending[0]!;
      const k = Math.min(n - off, c.length);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.pending.shift();
      else this.pending[0] = c.subarray(k);
    }
    this.pendingBytes -= n;
    return out;
  }

  private armDeadline(): void {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.abort(`frame not complete within ${this.opts.frame_timeout_ms} ms (ingest.tcp.frame_timeout_ms)`, 'slow'), this.opts.frame_timeout_ms);
  }

  /**
   * Ends the connection. A frame in progress is recorded as rejected and its
   * slot given back. `why` decides the event: a clean close between frames says nothing.
   */
  private abort(message: string, why: 'idle' | 'slow' | 'closed' | 'framing' | 'error'): void {
    const s = this.state;
    if (s.kind === 'closed') return;
    const midFrame = s.kind !== 'prefix' || this.pendingBytes > 0;
    this.state = { kind: 'closed' };
    clearTimeout(this.deadline);
    this.pending = [];
    this.pendingBytes = 0;
    if (s.kind === 'payload') {
      if (s.slot !== null) this.sink.release(s.slot);
      const detail = `${message} (${s.received} of ${s.header.size} payload bytes)`;
      if (s.dropped) this.sink.dropped(s.ref, 'no free slot (workers behind, policy drop)');
      else this.sink.rejected(s.ref, detail);
    } else if (midFrame || why === 'framing' || why === 'error') {
      this.sink.event(why === 'closed' ? 'warn' : 'error', 'ingest', `${this.name}: ${message}`);
    }
    if (why === 'idle' && !midFrame) this.sink.event('info', 'ingest', `${this.name}: closed after ${this.opts.idle_timeout_ms} ms without data`);
    if (why !== 'closed') this.socket.destroy();
  }

  private fail(message: string): void {
    this.abort(`${message}; closing the connection (the stream cannot be resynchronised)`, 'framing');
  }

  private pump(): void {
    for (;;) {
      const s = this.state;
      if (s.kind === 'closed') return;
      if (s.kind === 'prefix') {
        if (this.pendingBytes === 0) return;
        if (!this.deadline) this.armDeadline();
        if (this.pendingBytes < 8) return;
        const p = this.take(8);
        if (!p.subarray(0, 4).equals(MAGIC)) return this.fail(`bad magic ${JSON.stringify(p.subarray(0, 4).toString('latin1'))}, expected "BEF1"`);
        const length = p.readUInt32LE(4);
        if (length === 0 || length > MAX_HEADER) return this.fail(`header length ${length} out of range (1..${MAX_HEADER})`);
        this.state = { kind: 'header', length };
      } else if (s.kind === 'header') {
        if (this.pendingBytes < s.length) return;
        let raw: Record<string, unknown>;
        let size: number;
        try {
          raw = JSON.parse(this.take(s.length).toString('utf8')) as Record<string, unknown>;
          if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FramingError('header is not a JSON object');
          size = parseSize(raw);
        } catch (e) {
          return this.fail(e instanceof FramingError ? e.message : `header is not valid JSON (${(e as Error).message})`);
        }
        const header = { series: 'default', ...raw, size } as FrameHeader;
        let problem = checkHeader(raw);
        if (!problem && size === 0) problem = 'empty payload';
        const series = typeof header.series === 'string' ? header.series.slice(0, 256) : 'default';
        const ref = { series, frame: Number.isSafeInteger(header.frame) ? header.frame : null, source: this.name };
        this.state = { kind: 'payload', header, ref, slot: null, target: null, received: 0, problem, dropped: false, waiting: false };
      } else if (s.kind === 'payload') {
        if (s.waiting) return;
        if (s.received < s.header.size) {
          if (this.pendingBytes === 0) return;
          // The payload has started: now, and not at the header, the frame may claim a slot.
          if (!s.problem && !s.dropped && s.slot === null && !this.claimSlot(s)) return;
          const chunk = this.pending[0]!;
          const k = Math.min(chunk.length, s.header.size - s.received);
          if (s.target) s.target.set(k === chunk.length ? chunk : chunk.subarray(0, k), s.received);
          s.received += k;
          this.pendingBytes -= k;
          if (k === chunk.length) this.pending.shift();
          else this.pending[0] = chunk.subarray(k);
        }
        if (s.received === s.header.size) this.complete(s);
      }
    }
  }

  /** False when the connection must wait (backpressure) for a slot. */
  private claimSlot(s: Payload): boolean {
    const slot = this.sink.acquire();
    if (slot !== undefined) {
      try {
        s.target = this.sink.payloadTarget(slot, s.header.size);
        s.slot = slot;
      } catch (e) {
        this.sink.release(slot);
        s.problem = (e as Error).message;
      }
      return true;
    }
    if (this.opts.policy === 'drop') {
      s.dropped = true;
      return true;
    }
    // Waiting for the workers is not the sender's fault: the frame's clock stops.
    clearTimeout(this.deadline);
    s.waiting = true;
    this.socket.pause();
    this.sink.whenSlotFree(() => {
      if (this.state !== s) return;
      s.waiting = false;
      this.armDeadline();
      this.socket.resume();
      this.guarded(() => this.pump());
    });
    return false;
  }

  private complete(s: Payload): void {
    const { header, ref } = s;
    clearTimeout(this.deadline);
    this.deadline = undefined;
    this.state = { kind: 'prefix' };
    if (s.dropped) {
      this.sink.dropped(ref, 'no free slot (workers behind, policy drop)');
      this.ack(header, { series: ref.series, frame: ref.frame, status: 'dropped', reason: 'no free slot' });
    } else if (s.problem || s.slot === null) {
      this.sink.rejected(ref, s.problem ?? 'no slot');
      this.ack(header, { series: ref.series, frame: ref.frame, status: 'rejected', reason: s.problem ?? 'no slot' });
    } else {
      const answer = (status: Ack['status'], reason?: string) => this.ack(header, { series: ref.series, frame: ref.frame, status, ...(reason ? { reason } : {}) });
      // With ack durable the answer waits for the frame's outcome row: a crash before it means no answer, and the sender resends.
      const durable = header.ack === true && this.opts.ack === 'durable';
      const ok = this.sink.submit(
        s.slot,
        {
          series: header.series,
          frame: header.frame,
          encoding: header.encoding,
          source: this.name,
          ...(header.dtype ? { dtype: header.dtype } : {}),
          ...(header.detector ? { detector: header.detector } : {}),
          ...(header.shape ? { shape: header.shape } : {}),
          ...(header.meta ? { extra: header.meta } : {}),
        },
        header.size,
        durable ? () => answer('received') : undefined,
      );
      if (!ok) answer('rejected', 'refused at ingest (see the events)');
      else if (!durable) answer('received');
    }
  }

  /** Frames refused or dropped at ingest: with ack durable, the answer waits for their row too. */
  private ack(header: FrameHeader, ack: Ack): void {
    if (header.ack !== true) return;
    if (this.opts.ack === 'durable' && ack.status !== 'received') this.sink.whenDurable(() => this.writeAck(ack));
    else this.writeAck(ack);
  }

  private writeAck(ack: Ack): void {
    if (this.state.kind === 'closed' || !this.socket.writable) return;
    if (this.socket.writableLength > MAX_UNREAD_ACKS) return this.abort('the sender does not read its acknowledgements', 'error');
    this.socket.write(JSON.stringify(ack) + '\n');
  }
}

export class TcpSource implements FrameSource {
  readonly name = 'tcp';
  private server: net.Server | undefined;
  private readonly connections = new Set<net.Socket>();
  private refused = 0;
  private lastRefusalEvent = 0;

  constructor(private readonly opts: TcpOptions) {}

  get port(): number {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : this.opts.port;
  }

  async start(sink: IngestSink): Promise<void> {
    this.server = net.createServer((socket) => {
      if (this.connections.size >= this.opts.max_connections) {
        this.refused++;
        if (Date.now() - this.lastRefusalEvent > REFUSAL_EVENT_MS) {
          this.lastRefusalEvent = Date.now();
          sink.event('warn', 'ingest', `refused ${this.refused} connection(s), latest from ${socket.remoteAddress}:${socket.remotePort}: ingest.tcp.max_connections (${this.opts.max_connections}) reached`, { refused: this.refused });
          this.refused = 0;
        }
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      this.connections.add(socket);
      new Connection(socket, sink, this.opts, () => this.connections.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(e.code === 'EADDRINUSE' ? `ingest port ${this.opts.host}:${this.opts.port} is already in use` : e.message)),
      );
      this.server!.listen(this.opts.port, this.opts.host, () => resolve());
    });
    this.server.on('error', (e) => sink.event('error', 'ingest', `tcp ${this.opts.host}:${this.port}: ${e.message}`));
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Frames already received stay in the slots; senders get a clean end.
      for (const s of this.connections) s.end();
      setTimeout(() => {
        for (const s of this.connections) s.destroy();
      }, 2000).unref();
    });
  }

  describe(): Record<string, unknown> {
    return { kind: 'tcp', host: this.opts.host, port: this.port, policy: this.opts.policy, connections: this.connections.size, max_connections: this.opts.max_connections };
  }
}
