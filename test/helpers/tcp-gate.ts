// A TCP relay between a client and a server that a test can disturb: hold
// back the server's replies (a slow broker that does not acknowledge), cut
// every connection (a broker that went away), or refuse new ones.
import net from 'node:net';

export class TcpGate {
  private readonly pairs = new Set<{ client: net.Socket; server: net.Socket }>();
  private held = false;
  private readonly waiting: (() => void)[] = [];
  private server: net.Server | undefined;
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  /** Accepts connections (again) on `port` (0: any free port, kept for later calls). */
  async open(port = this.port): Promise<number> {
    const server = net.createServer((client) => this.relay(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  private relay(client: net.Socket): void {
    const server = net.connect(this.targetPort, this.targetHost);
    const pair = { client, server };
    this.pairs.add(pair);
    client.pipe(server);
    server.on('data', (chunk: Buffer) => {
      if (this.held) this.waiting.push(() => client.write(chunk));
      else client.write(chunk);
    });
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      server.destroy();
    };
    client.on('close', end).on('error', end);
    server.on('close', end).on('error', end);
  }

  /** The server's bytes are held back until release(). */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    for (const send of this.waiting.splice(0)) send();
  }

  /** Drops every connection at once; what was held back is lost with them. */
  cut(): void {
    this.waiting.length = 0;
    this.held = false;
    for (const p of [...this.pairs]) (p.client.destroy(), p.server.destroy());
  }

  /** Stops accepting, and cuts the open connections. */
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.cut();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
