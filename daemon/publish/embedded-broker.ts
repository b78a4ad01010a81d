// An MQTT broker inside the daemon (aedes) for when none is configured, so a
// fresh install publishes somewhere useful. aedes speaks MQTT 3.1.1.
import net from 'node:net';

export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(host: string, port: number): Promise<EmbeddedBroker> {
  const { Aedes } = await import('aedes');
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new Error(
          e.code === 'EADDRINUSE'
            ? `cannot start the embedded MQTT broker: ${host}:${port} is already in use (another broker running? set mqtt.url to use it, or mqtt.embedded_port)`
            : `cannot start the embedded MQTT broker on ${host}:${port}: ${e.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    url: `mqtt://${host}:${actual}`,
    port: actual,
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
