// MQTT publishing under beamedge/<instance>/: reduced (QoS 1), status
// (retained, last will "offline"), stats, events. Publishing never blocks the
// workers: while the broker is away, messages wait in a bounded queue and the
// oldest beyond its limit are counted as undeliverable. Reconnection backs off
// exponentially up to 30 s.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../system/logger';
import { CONTENT_TYPE } from './messages';

export interface PublisherOptions {
  /** Without credentials: it is logged. They come in `connect` (connect-options.ts). */
  url: string;
  connect?: IClientOptions;
  instance: string;
  protocolVersion: 4 | 5;
  queueLimit: number;
  log: Logger;
  /** Called once per message that was dropped without delivery. */
  onUndeliverable: (topic: string, reason: string) => void;
}

interface Pending {
  topic: string;
  payload: Buffer;
  opts: mqtt.IClientPublishOptions;
  done?: (ok: boolean) => void;
}

const MIN_BACKOFF = 500;
const MAX_BACKOFF = 30_000;
// QoS 1 messages handed to mqtt.js but not yet acknowledged; beyond this the
// broker is too slow and messages wait in our bounded queue instead.
const MAX_IN_FLIGHT = 256;

export class MqttPublisher {
  readonly prefix: string;
  private readonly client: MqttClient;
  private queue: Pending[] = [];
  private inFlight = 0;
  private backoff = MIN_BACKOFF;
  private everConnected = false;

  constructor(private readonly opts: PublisherOptions) {
    this.prefix = `beamedge/${opts.instance}/`;
    const options: IClientOptions = {
      protocolVersion: opts.protocolVersion,
      clientId: `beamedge-${opts.instance}-${process.pid}`,
      reconnectPeriod: MIN_BACKOFF,
      connectTimeout: 10_000,
      queueQoSZero: false,
      will: {
        topic: this.prefix + 'status',
        payload: Buffer.from(JSON.stringify({ state: 'offline', instance: opts.instance, reason: 'connection lost' })),
        qos: 1,
        retain: true,
        ...(opts.protocolVersion === 5 ? { properties: { contentType: CONTENT_TYPE.json } } : {}),
      },
    };
    this.client = mqtt.connect(opts.url, { ...options, ...opts.connect });
    this.client.on('connect', () => {
      this.backoff = MIN_BACKOFF;
      this.client.options.reconnectPeriod = MIN_BACKOFF;
      opts.log.info(this.everConnected ? 'MQTT reconnected' : 'MQTT connected', { url: opts.url, queued: this.queue.length });
      this.everConnected = true;
      this.pump();
    });
    this.client.on('reconnect', () => {
      this.backoff = Math.min(MAX_BACKOFF, this.backoff * 2);
      this.client.options.reconnectPeriod = this.backoff;
    });
    this.client.on('offline', () => opts.log.warn('MQTT broker unreachable; queueing', { url: opts.url, next_retry_ms: this.backoff }));
    this.client.on('error', (e) => opts.log.warn('MQTT error', { error: e.message }));
  }

  get connected(): boolean {
    return this.client.connected;
  }

  get queued(): number {
    return this.queue.length + this.inFlight;
  }

  /** Resolves when connected (or after timeoutMs, false). */
  async waitConnected(timeoutMs: number): Promise<boolean> {
    if (this.client.connected) return true;
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.client.once('connect', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  private props(contentType: string): mqtt.IClientPublishOptions {
    return this.opts.protocolVersion === 5 ? { properties: { contentType } } : {};
  }

  private enqueue(p: Pending): void {
    this.queue.push(p);
    while (this.queue.length > this.opts.queueLimit) {
      const old = this.queue.shift()!;
      this.opts.onUndeliverable(old.topic, `queue limit ${this.opts.queueLimit} reached while the broker is unreachable`);
      old.done?.(false);
    }
    this.pump();
  }

  private pump(): void {
    while (this.client.connected && this.queue.length && this.inFlight < MAX_IN_FLIGHT) {
      const p = this.queue.shift()!;
      this.inFlight++;
      this.client.publish(p.topic, p.payload, p.opts, (err) => {
        this.inFlight--;
        if (err) {
          // Not acknowledged (connection lost mid-flight): try again after reconnecting.
          this.queue.unshift(p);
          while (this.queue.length > this.opts.queueLimit) {
            const old = this.queue.pop()!;
            this.opts.onUndeliverable(old.topic, 'queue limit reached');
            old.done?.(false);
          }
        } else {
          p.done?.(true);
        }
        this.pump();
      });
    }
  }

  reduced(payload: Buffer, format: 'cbor' | 'json', done: (ok: boolean) => void): void {
    this.enqueue({ topic: this.prefix + 'reduced', payload, opts: { qos: 1, ...this.props(CONTENT_TYPE[format]) }, done });
  }

  status(status: Record<string, unknown>): void {
    this.enqueue({ topic: this.prefix + 'status', payload: Buffer.from(JSON.stringify(status)), opts: { qos: 1, retain: true, ...this.props(CONTENT_TYPE.json) } });
  }

  stats(stats: object): void {
    // Stats are periodic and superseded by the next: never queued while offline.
    if (this.client.connected) this.client.publish(this.prefix + 'stats', Buffer.from(JSON.stringify(stats)), { qos: 0, ...this.props(CONTENT_TYPE.json) });
  }

  event(event: Record<string, unknown>): void {
    this.enqueue({ topic: this.prefix + 'events', payload: Buffer.from(JSON.stringify(event)), opts: { qos: 1, ...this.props(CONTENT_TYPE.json) } });
  }

  /** Publishes the final status, waits (bounded) for the queue to drain, disconnects. */
  async close(finalStatus: Record<string, unknown>, timeoutMs = 5000): Promise<void> {
    this.status(finalStatus);
    const end = Date.now() + timeoutMs;
    while (this.client.connected && this.queued > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    for (const p of this.queue) {
      this.opts.onUndeliverable(p.topic, 'shutting down with the broker unreachable');
      p.done?.(false);
    }
    this.queue = [];
    // Never let an unreachable broker hold up shutdown: force the close after 2 s.
    const forced = new Promise<void>((resolve) => setTimeout(() => this.client.end(true, () => resolve()), 2000).unref());
    await Promise.race([this.client.endAsync(!this.client.connected), forced]);
  }
}
