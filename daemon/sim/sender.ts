// Client side of the TCP framing: what detector-side scripts, `beamedge
// replay`, `beamedge simulate` and the demo use to send frames.
import net from 'node:net';
import { encodeFrame, type Ack, type FrameHeader } from '../ingest/tcp-framing';

export class FrameSender {
  /** Acknowledgements received so far, for frames sent with `ack: true`. */
  readonly acks: Ack[] = [];
  private ackWaiters: (() => void)[] = [];
  private partial = '';
  /** Set once the daemon closed or reset the connection. */
  closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      const lines = (this.partial + text).split('\n');
      this.partial = lines.pop()!;
      for (const line of lines) if (line) this.acks.push(JSON.parse(line) as Ack);
      for (const w of this.ackWaiters.splice(0)) w();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.ackWaiters.splice(0)) w();
    });
  }

  /** Resolves once `n` acknowledgements have arrived in all (false if the connection closed first). */
  async waitAcks(n: number, timeoutMs = 30_000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (this.acks.length < n) {
      if (this.closed) return false;
      if (Date.now() > end) throw new Error(`timed out waiting for ${n} acknowledgements (have ${this.acks.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, end - Date.now()));
        this.ackWaiters.push(() => (clearTimeout(t), resolve()));
      });
    }
    return true;
  }

  static async connect(host: string, port: number): Promise<FrameSender> {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`cannot connect to ${host}:${port}: ${e.code ?? e.message}`)));
    });
    return new FrameSender(socket);
  }

  /** Resolves once the frame is handed to the kernel, waiting while the daemon applies backpressure. */
  async send(header: Omit<FrameHeader, 'size'>, payload: Uint8Array): Promise<void> {
    let ok = true;
    for (const part of encodeFrame(header, payload)) ok = this.socket.write(part);
    if (!ok) await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.socket.once('error', onError);
      this.socket.once('drain', () => {
        this.socket.off('error', onError);
        resolve();
      });
    });
  }

  /** Sends raw bytes (tests use it for malformed streams). */
  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.end(() => resolve()));
  }
}

/** Paces a loop at `rateHz` (0: as fast as the receiver takes frames). */
export class Pacer {
  private readonly start = performance.now();
  private n = 0;
  constructor(private readonly rateHz: number) {}
  async next(): Promise<void> {
    this.n++;
    if (!(this.rateHz > 0)) return;
    const due = this.start + (this.n * 1000) / this.rateHz;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  }
}
