// The ZeroMQ PUSH side of a DECTRIS detector control unit, for the stream v1
// and v2 simulators: images go round-robin to the connected consumers, start
// and end messages once to each of them.
import { Push } from 'zeromq';

export class DcuPusher {
  private peers = 0;

  private constructor(private readonly socket: Push) {
    void (async () => {
      for await (const e of socket.events) {
        // A peer joins the round-robin when its handshake is done, not at accept:
        // counting accepts let a start meant for the second consumer go to the first.
        if (e.type === 'handshake') this.peers++;
        else if (e.type === 'disconnect') this.peers = Math.max(0, this.peers - 1);
        else if (e.type === 'end') break;
      }
    })().catch(() => {});
  }

  static async bind(endpoint: string): Promise<DcuPusher> {
    const socket = new Push();
    socket.sendHighWaterMark = 8;
    await socket.bind(endpoint);
    return new DcuPusher(socket);
  }

  /** One message (v2: one part; v1: several). Waits while every consumer's queue is full. */
  async send(message: Buffer | Buffer[]): Promise<void> {
    await this.socket.send(message);
  }

  /** Waits until `n` consumers have connected and finished their handshake (or `timeoutMs` passed); false on time-out. */
  async waitForConsumers(n: number, timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (this.peers < n) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  /** Once per connected consumer, as a DCU sends start and end messages. */
  async sendToAll(message: Buffer | Buffer[]): Promise<void> {
    for (let i = 0; i < Math.max(1, this.peers); i++) await this.socket.send(message);
  }

  async close(lingerMs = 5000): Promise<void> {
    this.socket.linger = lingerMs;
    this.socket.close();
  }
}
