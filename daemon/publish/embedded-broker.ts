// An MQTT broker inside the daemon (aedes) for when none is configured, so a
// fresh install publishes somewhere useful. aedes speaks MQTT 3.1.1. Access
// rules: broker-access.ts.
import net from 'node:net';
import { BrokerAccess, type DaemonLogin } from './broker-access';
import type { UserTable } from './broker-users';

export interface EmbeddedBroker {
  url: string;
  port: number;
  /** The daemon's own client connects with this; nobody else can publish. */
  login: DaemonLogin;
  close(): Promise<void>;
}

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  instance: string;
  /** Who may connect to read; absent: anyone who reaches host:port. */
  users?: UserTable | undefined;
}

export async function startEmbeddedBroker({ host, port, instance, users }: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { Aedes } = await import('aedes');
  const access = new BrokerAccess(instance, users);
  const aedes = await Aedes.createBroker({ authenticate: access.authenticate, authorizePublish: access.authorizePublish });
  const server = net.createServer(aedes.handle);
  try {
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
  } catch (e) {
    // aedes's heartbeat timer would keep the process alive after a failed start.
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw e;
  }
  const actual = (server.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    url: `mqtt://${host}:${actual}`,
    port: actual,
    login: access.login,
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
