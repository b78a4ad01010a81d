// Subscribes to a daemon's topics and keeps every message for assertions.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { decodeReduced, type ReducedMessage } from '../../daemon/publish/messages';

export interface Received {
  topic: string;
  payload: Buffer;
  contentType: string | undefined;
  retain: boolean;
}

export class Collector {
  readonly messages: Received[] = [];
  private waiters: { match: (m: Received) => boolean; resolve: () => void }[] = [];

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const m: Received = { topic, payload, contentType: packet.properties?.contentType, retain: packet.retain };
      this.messages.push(m);
      for (const w of [...this.waiters]) if (w.match(m)) (this.waiters.splice(this.waiters.indexOf(w), 1), w.resolve());
    });
  }

  static async connect(url: string, topic: string, protocolVersion: 4 | 5 = 4, opts: IClientOptions = {}): Promise<Collector> {
    const client = mqtt.connect(url, { protocolVersion, reconnectPeriod: 200, ...opts });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    // Listening before subscribing: a retained message can come in the same
    // read as the SUBACK, before an await after subscribing would resume.
    const collector = new Collector(client);
    await client.subscribeAsync(topic, { qos: 1 });
    return collector;
  }

  on(suffix: string): Received[] {
    return this.messages.filter((m) => m.topic.endsWith(`/${suffix}`));
  }

  reduced(): ReducedMessage[] {
    return this.on('reduced').map((m) => decodeReduced(m.payload, m.contentType ?? 'application/cbor'));
  }

  events(): { kind: string; message: string; level: string; details?: Record<string, unknown> }[] {
    return this.on('events').map((m) => JSON.parse(m.payload.toString()) as { kind: string; message: string; level: string });
  }

  async waitFor(what: string, match: (m: Received) => boolean, timeoutMs = 20_000): Promise<void> {
    if (this.messages.some(match)) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for MQTT: ${what} (have ${this.messages.length} messages)`)), timeoutMs);
      this.waiters.push({ match, resolve: () => (clearTimeout(t), resolve()) });
    });
  }

  async waitForCount(suffix: string, n: number, timeoutMs = 20_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.on(suffix).length < n) {
      if (Date.now() > end) throw new Error(`timed out: ${this.on(suffix).length}/${n} messages on ${suffix}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
