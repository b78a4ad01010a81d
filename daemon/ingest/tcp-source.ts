// TCP ingest: reads framed frames (see tcp-framing.ts) and writes each payload
// straight into a ring slot. With policy "backpressure" the socket is paused
// while no slot is free (lossless); with "drop" the frame is skipped and counted.
import net from 'node:net';
import { checkHeader, FramingError, MAGIC, MAX_HEADER, parseSize, type FrameHeader } from './tcp-framing';
import type { FrameSource, IngestSink } from './sink';

type State =
  | { kind: 'prefix' }
  | { kind: 'header'; length: number }
  | { kind: 'payload'; header: FrameHeader; slot: number | null; target: Uint8Array | null; received: number; problem: string | null; dropped: boolean };

class Connection {
  private state: State = { kind: 'prefix' };
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private paused = false;
  private readonly name: string;

  constructor(
    private readonly socket: net.Socket,
    private readonly sink: IngestSink,
    private readonly policy: 'backpressure' | 'drop',
    onClose: () => void,
  ) {
    this.name = `tcp:${socket.remoteAddress}:${socket.remotePort}`;
    socket.on('data', (chunk) => {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      this.pump();
    });
    socket.on('error', (err) => sink.event('warn', 'ingest', `${this.name}: ${err.message}`));
    socket.on('close', () => {
      if (this.state.kind === 'payload' && this.state.slot !== null) sink.release(this.state.slot);
      if (this.state.kind !== 'prefix' || this.pendingBytes)
        sink.event('warn', 'ingest', `${this.name}: connection closed in the middle of a frame`, this.state.kind === 'payload' ? { series: this.state.header.series, frame: this.state.header.frame } : {});
      onClose();
    });
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

  private fail(message: string): void {
    this.sink.event('error', 'ingest', `${this.name}: ${message}; closing the connection (the stream cannot be resynchronised)`);
    this.pending = [];
    this.pendingBytes = 0;
    this.socket.destroy();
  }

  private pump(): void {
    while (!this.paused) {
      const s = this.state;
      if (s.kind === 'prefix') {
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
        this.state = { kind: 'payload', header, slot: null, target: null, received: 0, problem, dropped: false };
        if (!problem && !this.claimSlot()) return;
      } else {
        if (s.received < s.header.size && this.pendingBytes === 0) return;
        const chunk = this.pending[0];
        if (chunk && s.received < s.header.size) {
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
  private claimSlot(): boolean {
    const s = this.state as Extract<State, { kind: 'payload' }>;
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
    if (this.policy === 'drop') {
      s.dropped = true;
      return true;
    }
    this.paused = true;
    this.socket.pause();
    this.sink.whenSlotFree(() => {
      this.paused = false;
      if (this.claimSlot()) this.socket.resume();
      this.pump();
    });
    return false;
  }

  private complete(s: Extract<State, { kind: 'payload' }>): void {
    const { header } = s;
    const ref = { series: header.series, frame: header.frame, source: this.name };
    if (s.dropped) this.sink.dropped(ref, 'no free slot (workers behind, policy drop)');
    else if (s.problem || s.slot === null) this.sink.rejected({ ...ref, frame: Number.isSafeInteger(header.frame) ? header.frame : null }, s.problem ?? 'no slot');
    else
      this.sink.submit(
        s.slot,
        {
          series: header.series,
          frame: header.frame,
          encoding: header.encoding,
          source: this.name,
          ...(header.dtype ? { dtype: header.dtype } : {}),
          ...(header.shape ? { shape: header.shape } : {}),
          ...(header.meta ? { extra: header.meta } : {}),
        },
        header.size,
      );
    this.state = { kind: 'prefix' };
  }
}

export class TcpSource implements FrameSource {
  readonly name = 'tcp';
  private server: net.Server | undefined;
  private readonly connections = new Set<net.Socket>();

  constructor(private readonly opts: { host: string; port: number; policy: 'backpressure' | 'drop' }) {}

  get port(): number {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : this.opts.port;
  }

  async start(sink: IngestSink): Promise<void> {
    this.server = net.createServer((socket) => {
      socket.setNoDelay(true);
      this.connections.add(socket);
      new Connection(socket, sink, this.opts.policy, () => this.connections.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(e.code === 'EADDRINUSE' ? `ingest port ${this.opts.host}:${this.opts.port} is already in use` : e.message)),
      );
      this.server!.listen(this.opts.port, this.opts.host, () => resolve());
    });
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
    return { kind: 'tcp', host: this.opts.host, port: this.port, policy: this.opts.policy, connections: this.connections.size };
  }
}
