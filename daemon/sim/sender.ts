// Client side of the TCP framing: what detector-side scripts, `beamedge
// replay`, `beamedge simulate` and the demo use to send frames.
import net from 'node:net';
import { encodeFrame, type FrameHeader } from '../ingest/tcp-framing';

export class FrameSender {
  private constructor(private readonly socket: net.Socket) {}

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
