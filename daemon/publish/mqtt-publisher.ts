// MQTT publishing under beamedge/<instance>/: reduced and correlation (QoS 1), status
// (retained, last will "offline"), stats, events. Publishing never blocks the
// workers. While the broker is connected and keeps up, QoS 1 messages wait in
// a bounded memory queue. Otherwise they go to the on-disk spool, and are
// replayed in order once the broker is back, before anything newer. This covers
// a broker that is unreachable, one that is too slow (the memory queue is
// full), and messages in flight when the connection drops. Without a spool,
// the oldest messages beyond the memory queue are dropped and counted.
// Reconnection backs off exponentially up to 30 s.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../system/logger';
import { CONTENT_TYPE } from './messages';
import { Spool, type FrameRef, type SpoolMessage } from './spool';

export type { FrameRef } from './spool';

export interface PublisherOptions {
  /** Without credentials: it is logged. They come in `connect` (connect-options.ts). */
  url: string;
  connect?: IClientOptions;
  instance: string;
  protocolVersion: 4 | 5;
  queueLimit: number;
  log: Logger;
  /** Where unacknowledged QoS 1 messages wait while the broker is away. Without it, they wait in memory only. */
  spool?: { directory: string; maxBytes: number };
  /** The broker acknowledged the reduced message of this frame (possibly one spooled by an earlier run). */
  onDelivered: (ref: FrameRef) => void;
  /** Called once per message that will never be delivered; `ref` when it was a frame's reduced message. */
  onUndeliverable: (topic: string, reason: string, ref?: FrameRef) => void;
}

interface InFlight {
  msg: SpoolMessage;
  /** Set when the spool holds the message: the spool acknowledges it once the broker has. */
  spoolId?: number;
  status: boolean;
  /** Taken back from mqtt.js (connection lost, or dropped from a full spool): its callback is ignored. */
  removed: boolean;
}

const MIN_BACKOFF = 500;
const MAX_BACKOFF = 30_000;
// QoS 1 messages handed to mqtt.js but not yet acknowledged: 256 of them, and at
// most 32 MiB. Beyond that the broker is too slow, and messages wait in our
// queue or the spool.
const MAX_IN_FLIGHT = 256;
const MAX_IN_FLIGHT_BYTES = 32 << 20;

export class MqttPublisher {
  readonly prefix: string;
  private readonly client: MqttClient;
  private readonly spool: Spool | undefined;
  private queue: SpoolMessage[] = [];
  private readonly inFlight = new Set<InFlight>();
  private readonly bySpoolId = new Map<number, InFlight>();
  private inFlightBytes = 0;
  /** mqtt.js keeps our callback with each message it has not had acknowledged: this finds ours. */
  private readonly owner = new WeakMap<object, InFlight>();
  /** The newest status not yet handed to mqtt.js. Older ones are superseded: status is retained state. */
  private pendingStatus: SpoolMessage | undefined;
  private backoff = MIN_BACKOFF;
  private everConnected = false;
  private closing = false;

  constructor(private readonly opts: PublisherOptions) {
    this.prefix = `beamedge/${opts.instance}/`;
    // Opened first: a spool that cannot be used must stop the start, before any connection.
    this.spool = opts.spool ? this.openSpool(opts.spool) : undefined;
    if (this.spool?.records) opts.log.info('MQTT spool holds messages from an earlier run; they are sent first once the broker is reachable', { directory: opts.spool!.directory, messages: this.spool.records, bytes: this.spool.bytes });
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
      opts.log.info(this.everConnected ? 'MQTT reconnected' : 'MQTT connected', { url: opts.url, queued: this.queued, spooled: this.spooled });
      this.everConnected = true;
      this.pump();
    });
    this.client.on('close', () => this.connectionLost());
    this.client.on('reconnect', () => {
      this.backoff = Math.min(MAX_BACKOFF, this.backoff * 2);
      this.client.options.reconnectPeriod = this.backoff;
    });
    this.client.on('offline', () => opts.log.warn(`MQTT broker unreachable; ${this.spool ? 'spooling to disk' : 'queueing'}`, { url: opts.url, next_retry_ms: this.backoff }));
    this.client.on('error', (e) => opts.log.warn('MQTT error', { error: e.message }));
  }

  private openSpool(o: { directory: string; maxBytes: number }): Spool {
    try {
      return Spool.open({ ...o, log: this.opts.log, onDrop: (topic, reason, ref, id) => this.dropped(topic, reason, ref, id) });
    } catch (e) {
      throw new Error(`MQTT spool (mqtt.spool.directory) ${o.directory}: ${(e as Error).message}`);
    }
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Messages not yet acknowledged by the broker: in memory, in flight, or in the spool. */
  get queued(): number {
    return this.queue.length + this.inFlight.size - this.bySpoolId.size + this.spooled;
  }

  /** Messages held in the spool. */
  get spooled(): number {
    return this.spool?.records ?? 0;
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

  private publishOptions(m: SpoolMessage): mqtt.IClientPublishOptions {
    return { qos: m.qos, retain: m.retain, ...(this.opts.protocolVersion === 5 && m.contentType ? { properties: { contentType: m.contentType } } : {}) };
  }

  private enqueue(m: SpoolMessage): void {
    if (this.closing) {
      this.opts.onUndeliverable(m.topic, 'publisher closed', m.ref);
      return;
    }
    if (!this.spool) {
      this.queue.push(m);
      while (this.queue.length > this.opts.queueLimit) {
        const old = this.queue.shift()!;
        this.opts.onUndeliverable(old.topic, `queue limit ${this.opts.queueLimit} reached while the broker is unreachable`, old.ref);
      }
    } else if (this.spool.unread || !this.client.connected || this.queue.length >= this.opts.queueLimit) {
      // Once anything is spooled, newer messages go behind it: the order is kept.
      this.spill();
      this.toSpool(m);
    } else {
      this.queue.push(m);
    }
    this.pump();
  }

  private toSpool(m: SpoolMessage): void {
    const why = this.spool!.append(m);
    if (why) this.opts.onUndeliverable(m.topic, why, m.ref);
  }

  /**
   * Moves the messages held in memory to the spool, oldest first. Messages
   * already handed to mqtt.js stay there while connected, but are recorded in
   * the spool as handed out, so that their acknowledgement settles the spool
   * and a lost connection replays them from disk.
   */
  private spill(): void {
    const spool = this.spool!;
    for (const f of this.inFlight) {
      if (f.spoolId !== undefined || f.status) continue;
      // Memory messages are only sent while the spool has nothing unread, so
      // the record appended here is the one next() returns.
      if (!this.client.connected || spool.unread || spool.append(f.msg)) continue;
      const rec = spool.next();
      if (!rec) continue;
      f.spoolId = rec.id;
      this.bySpoolId.set(rec.id, f);
    }
    for (const m of this.queue) this.toSpool(m);
    this.queue = [];
  }

  private pump(): void {
    this.sendStatus();
    while (this.client.connected && !this.closing && this.inFlight.size < MAX_IN_FLIGHT && this.inFlightBytes < MAX_IN_FLIGHT_BYTES) {
      if (this.spool?.unread) {
        const rec = this.spool.next();
        if (!rec) continue; // only damaged records were left; they were reported
        this.send(rec, rec.id);
        continue;
      }
      const m = this.queue.shift();
      if (!m) break;
      this.send(m);
    }
  }

  private send(msg: SpoolMessage, spoolId?: number, status = false): void {
    const f: InFlight = { msg, status, removed: false, ...(spoolId !== undefined ? { spoolId } : {}) };
    this.inFlight.add(f);
    this.inFlightBytes += msg.payload.length;
    if (spoolId !== undefined) this.bySpoolId.set(spoolId, f);
    const cb = (err?: Error) => this.settled(f, err);
    this.owner.set(cb, f);
    this.client.publish(msg.topic, msg.payload, this.publishOptions(msg), cb);
  }

  private settled(f: InFlight, err: Error | undefined): void {
    if (f.removed) return;
    this.untrack(f);
    // Either way the message is settled: acknowledged, or refused by the broker
    // (a PUBACK reason code), which a replay would not change.
    if (f.spoolId !== undefined) this.spool!.ack(f.spoolId);
    if (err) this.opts.onUndeliverable(f.msg.topic, `not acknowledged by the broker: ${err.message}`, f.msg.ref);
    else if (f.msg.ref) this.opts.onDelivered(f.msg.ref);
    this.pump();
  }

  private untrack(f: InFlight): void {
    if (!this.inFlight.delete(f)) return;
    this.inFlightBytes -= f.msg.payload.length;
    if (f.spoolId !== undefined) this.bySpoolId.delete(f.spoolId);
  }

  /** Takes messages back from mqtt.js so that it does not resend them itself after reconnecting. */
  private takeBack(which: (f: InFlight) => boolean): void {
    for (const [id, out] of Object.entries(this.client.outgoing)) {
      const f = this.owner.get(out.cb);
      if (f && which(f)) {
        f.removed = true;
        this.client.removeOutgoingMessage(Number(id));
      }
    }
    for (const f of [...this.inFlight]) {
      if (!which(f)) continue;
      f.removed = true;
      this.untrack(f);
    }
  }

  /** A record the spool dropped (full, or damaged). If it was in flight, mqtt.js must not send it again. */
  private dropped(topic: string, reason: string, ref: FrameRef | undefined, id: number | undefined): void {
    const f = id !== undefined ? this.bySpoolId.get(id) : undefined;
    if (f) this.takeBack((x) => x === f);
    this.opts.onUndeliverable(topic, reason, ref);
  }

  /**
   * The connection dropped. Unacknowledged messages are taken back from
   * mqtt.js and the spool replays them after reconnecting, oldest first. Some
   * may have reached the broker already: delivery is at least once.
   */
  private connectionLost(): void {
    const spool = this.spool;
    // Without a spool, mqtt.js resends its unacknowledged messages itself after reconnecting.
    if (!spool || this.closing) return;
    this.parkUnacknowledged();
    this.opts.log.debug('MQTT connection lost; unacknowledged messages spooled', { spooled: spool.records });
  }

  private parkUnacknowledged(): void {
    const spool = this.spool!;
    const memory = [...this.inFlight].filter((f) => f.spoolId === undefined && !f.status).map((f) => f.msg);
    const status = [...this.inFlight].filter((f) => f.status).at(-1);
    if (status && !this.pendingStatus) this.pendingStatus = status.msg;
    this.takeBack(() => true);
    // Spooled messages in flight were sent before any memory message was, so
    // rewinding puts them first and the memory ones go after them.
    spool.rewind();
    for (const m of memory) this.toSpool(m);
    for (const m of this.queue) this.toSpool(m);
    this.queue = [];
  }

  private sendStatus(): void {
    if (!this.pendingStatus || !this.client.connected || this.closing) return;
    const m = this.pendingStatus;
    this.pendingStatus = undefined;
    this.send(m, undefined, true);
  }

  reduced(payload: Buffer, format: 'cbor' | 'json', ref: FrameRef): void {
    this.enqueue({ topic: this.prefix + 'reduced', payload, qos: 1, retain: false, contentType: CONTENT_TYPE[format], ref });
  }

  /** A series' accumulated correlation: QoS 1, spooled like reduced frames. */
  correlation(payload: Buffer, format: 'cbor' | 'json'): void {
    this.enqueue({ topic: this.prefix + 'correlation', payload, qos: 1, retain: false, contentType: CONTENT_TYPE[format] });
  }

  /** Retained state: never spooled; only the newest waits for the broker, and it goes out first after reconnecting. */
  status(status: Record<string, unknown>): void {
    this.pendingStatus = { topic: this.prefix + 'status', payload: Buffer.from(JSON.stringify(status)), qos: 1, retain: true, contentType: CONTENT_TYPE.json };
    this.sendStatus();
  }

  stats(stats: object): void {
    // Stats are periodic and superseded by the next: never queued or spooled.
    if (this.client.connected) this.client.publish(this.prefix + 'stats', Buffer.from(JSON.stringify(stats)), { qos: 0, ...(this.opts.protocolVersion === 5 ? { properties: { contentType: CONTENT_TYPE.json } } : {}) });
  }

  event(event: Record<string, unknown>): void {
    this.enqueue({ topic: this.prefix + 'events', payload: Buffer.from(JSON.stringify(event)), qos: 1, retain: false, contentType: CONTENT_TYPE.json });
  }

  /**
   * Publishes the final status and waits (bounded) for everything to be
   * acknowledged. What is still unacknowledged then goes to the spool, synced,
   * for the next start; without a spool it is counted as undeliverable.
   */
  async close(finalStatus: Record<string, unknown>, timeoutMs = 5000): Promise<void> {
    if (this.closing) return;
    this.status(finalStatus);
    const end = Date.now() + timeoutMs;
    const statusOut = () => !!this.pendingStatus || [...this.inFlight].some((f) => f.status);
    while (this.client.connected && (this.queued > 0 || statusOut()) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    if (this.spool) {
      this.parkUnacknowledged();
      if (this.spool.records) this.opts.log.info('MQTT messages kept in the spool for the next start', { directory: this.opts.spool!.directory, messages: this.spool.records, bytes: this.spool.bytes });
    } else {
      for (const m of this.queue) this.opts.onUndeliverable(m.topic, 'shutting down with the broker unreachable', m.ref);
      this.queue = [];
    }
    this.closing = true;
    if (statusOut()) {
      this.opts.onUndeliverable(this.prefix + 'status', 'shutting down with the broker unreachable');
      this.pendingStatus = undefined;
      this.takeBack((f) => f.status);
    }
    this.spool?.close();
    // Never let an unreachable broker hold up shutdown: force the close after 2 s.
    const forced = new Promise<void>((resolve) => setTimeout(() => this.client.end(true, () => resolve()), 2000).unref());
    await Promise.race([this.client.endAsync(!this.client.connected), forced]);
  }
}
