// The daemon's lifecycle: start wires ingest -> frame slots -> workers ->
// results -> MQTT + provenance; reload swaps the pipeline at a frame boundary;
// stop drains what is in flight, flushes provenance and says offline.
import { unwatchFile, watchFile } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { checkReloadable, ConfigError, loadConfig, type Config, type LoadedConfig } from './config/config';
import type { FrameRef, FrameSource, IncomingMeta, IngestSink } from './ingest/sink';
import { DectrisSource } from './ingest/dectris-source';
import { TcpSource } from './ingest/tcp-source';
import { WatchSource } from './ingest/watch-source';
import { startEmbeddedBroker, type EmbeddedBroker } from './publish/embedded-broker';
import { encodeReduced, reducedMessage } from './publish/messages';
import { MqttPublisher, type FrameRef as DeliveryRef } from './publish/mqtt-publisher';
import { Recorder } from './provenance/recorder';
import { FrameSlots } from './rings/frame-slots';
import { Stats } from './stats/stats';
import { createLogger, type Logger } from './system/logger';
import { SystemdNotifier } from './system/sd-notify';
import { VERSION } from './version';
import { WorkerPool } from './workers/pool';
import type { FrameMeta, ResultArrays, ResultHeader } from './workers/protocol';

export interface DaemonOptions {
  loaded: LoadedConfig;
  /** The file to re-read on reload (SIGHUP or when it changes). */
  configPath?: string;
  watchConfig?: boolean;
  log?: Logger;
  notifier?: SystemdNotifier;
}

export interface ReloadResult {
  ok: boolean;
  epoch: number;
  message: string;
}

export function workerThreads(c: Config): number {
  return c.workers.threads > 0 ? c.workers.threads : Math.max(1, os.availableParallelism() - 1);
}

export class Daemon {
  readonly stats = new Stats();
  readonly log: Logger;
  epoch = 1;
  private config: Config;
  private loaded: LoadedConfig;
  private readonly notifier: SystemdNotifier;
  private recorder!: Recorder;
  private broker: EmbeddedBroker | undefined;
  private publisher!: MqttPublisher;
  private slots!: FrameSlots;
  private pool!: WorkerPool;
  private readonly free: number[] = [];
  private readonly slotWaiters: (() => void)[] = [];
  private readonly sources: FrameSource[] = [];
  private timers: NodeJS.Timeout[] = [];
  private dropsSinceTick = 0;
  private readonly undeliverableSinceTick = new Map<string, number>();
  private undeliverableReason = '';
  private lastTick = performance.now();
  private readonly startedAt = new Date();
  private stopping: Promise<void> | undefined;
  private reloading: Promise<ReloadResult> = Promise.resolve({ ok: true, epoch: 1, message: '' });

  private constructor(private readonly opts: DaemonOptions) {
    this.loaded = opts.loaded;
    this.config = opts.loaded.config;
    this.log = opts.log ?? createLogger(this.config.log.level);
    this.notifier = opts.notifier ?? new SystemdNotifier((e) => this.log.warn('sd_notify failed', { error: e.message }));
  }

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts);
    try {
      await d.startParts();
    } catch (e) {
      await d.teardown(`start failed: ${(e as Error).message}`).catch(() => {});
      throw e;
    }
    return d;
  }

  get tcpPort(): number | undefined {
    return (this.sources.find((s) => s instanceof TcpSource) as TcpSource | undefined)?.port;
  }

  get mqttUrl(): string {
    return this.broker?.url ?? this.config.mqtt.url!;
  }

  get topicPrefix(): string {
    return this.publisher.prefix;
  }

  /** MQTT delivery state: connected, messages not yet acknowledged, and how many of them are in the spool. */
  get mqttState(): { connected: boolean; queued: number; spooled: number } {
    return { connected: this.publisher.connected, queued: this.publisher.queued, spooled: this.publisher.spooled };
  }

  get runId(): number {
    return this.recorder.runId;
  }

  get running(): Config {
    return this.config;
  }

  private async startParts(): Promise<void> {
    const c = this.config;
    this.recorder = await Recorder.open({ path: c.provenance.path, instance: c.instance, version: VERSION, batchMs: c.provenance.batch_ms, retentionDays: c.provenance.retention_days, log: this.log });
    this.recorder.epoch(this.epoch, this.loaded.source === this.opts.configPath ? 'start' : `start (${this.loaded.source})`, this.loaded.sha256, this.loaded.text);
    if (!c.mqtt.url) this.broker = await startEmbeddedBroker(c.mqtt.embedded_host, c.mqtt.embedded_port);
    this.publisher = new MqttPublisher({
      url: this.mqttUrl,
      instance: c.instance,
      // aedes (the embedded broker) speaks MQTT 3.1.1; external brokers get v5 with content types.
      protocolVersion: this.broker ? 4 : 5,
      queueLimit: c.mqtt.queue_limit,
      log: this.log,
      ...(c.mqtt.spool.enabled ? { spool: { directory: c.mqtt.spool.directory!, maxBytes: c.mqtt.spool.max_mb * 1024 * 1024 } } : {}),
      onDelivered: (ref) => this.onDelivered(ref),
      onUndeliverable: (topic, reason, ref) => this.onUndeliverable(topic, reason, ref),
    });
    const payloadBytes = Math.ceil((c.rings.slot_mb * 1024 * 1024) / 8) * 8;
    this.slots = FrameSlots.create({ slots: c.rings.slots, payloadBytes });
    for (let i = c.rings.slots - 1; i >= 0; i--) this.free.push(i);
    this.pool = new WorkerPool({
      threads: workerThreads(c),
      slots: this.slots,
      resultBytes: c.rings.result_mb * 1024 * 1024,
      initial: { epoch: this.epoch, pipeline: c.pipeline, series: c.series },
      log: this.log,
      onResult: (h, a) => this.onResult(h, a),
      onLost: (lost, reason) => this.onLost(lost, reason),
    });
    const sink = this.sink();
    if (c.ingest.tcp.enabled) this.sources.push(new TcpSource(c.ingest.tcp));
    if (c.ingest.dectris.enabled)
      this.sources.push(new DectrisSource({ endpoint: c.ingest.dectris.endpoint, protocol: c.ingest.dectris.protocol, channel: c.ingest.dectris.channel, publishContext: (ctx) => this.pool.seriesContext(ctx) }));
    if (c.ingest.watch.enabled)
      this.sources.push(
        new WatchSource({ directory: c.ingest.watch.directory!, pattern: c.ingest.watch.pattern, pollMs: c.ingest.watch.poll_ms, incompleteTimeoutMs: c.ingest.watch.incomplete_timeout_ms, series: c.ingest.watch.series }),
      );
    for (const s of this.sources) await s.start(sink);

    this.timers.push(setInterval(() => this.tick(), c.stats.interval_ms));
    this.timers.push(setInterval(() => this.publisher.status(this.statusPayload('running')), 30_000));
    if (this.opts.configPath && this.opts.watchConfig !== false) {
      watchFile(this.opts.configPath, { interval: 1000 }, (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) void this.reload('file change');
      });
    }
    this.publisher.status(this.statusPayload('running'));
    const summary = `running: ${this.sources.map((s) => JSON.stringify(s.describe())).join(' ')}, ${this.pool.size} worker(s), MQTT ${this.mqttUrl}`;
    this.log.info('beamedge started', { version: VERSION, instance: c.instance, epoch: this.epoch, sources: this.sources.map((s) => s.describe()), workers: this.pool.size, mqtt: this.mqttUrl, provenance: c.provenance.path, run: this.recorder.runId });
    this.recorder.event('info', 'start', summary);
    this.notifier.ready(summary);
    let lastBeat = performance.now();
    const beat = setInterval(() => (lastBeat = performance.now()), 250);
    this.timers.push(beat);
    this.notifier.startWatchdog(() => performance.now() - lastBeat < 5000);
  }

  private statusPayload(state: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      state,
      instance: this.config.instance,
      version: VERSION,
      pid: process.pid,
      host: os.hostname(),
      started: this.startedAt.toISOString(),
      uptime_s: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
      epoch: this.epoch,
      run: this.recorder?.runId,
      ...extra,
    };
  }

  private sink(): IngestSink {
    return {
      acquire: () => this.free.pop(),
      whenSlotFree: (cb) => this.slotWaiters.push(cb),
      payloadTarget: (slot, size) => this.slots.payloadTarget(slot, size),
      release: (slot) => this.releaseSlot(slot),
      submit: (slot, meta, size) => this.submit(slot, meta, size),
      dropped: (ref, reason) => this.onDropped(ref, reason),
      rejected: (ref, message) => this.onRejected(ref, message),
      event: (level, kind, message, details) => this.event(level, kind, message, details),
    };
  }

  private releaseSlot(slot: number): void {
    this.free.push(slot);
    const waiter = this.slotWaiters.shift();
    if (waiter) setImmediate(waiter);
  }

  private submit(slot: number, meta: IncomingMeta, size: number): void {
    const full: FrameMeta = { ...meta, receivedAt: performance.now(), receivedWall: Date.now() };
    this.slots.setMeta(slot, full, size);
    this.stats.count('frames_in');
    if (!this.pool.dispatch(slot)) {
      // Cannot happen while queue capacity >= slots, but never lose a frame silently.
      this.releaseSlot(slot);
      this.onDropped({ series: meta.series, frame: meta.frame, source: meta.source }, 'worker queues full', false);
    }
  }

  event(level: 'info' | 'warn' | 'error', kind: string, message: string, details?: Record<string, unknown>): void {
    this.log[level](message, { kind, ...details });
    this.recorder.event(level, kind, message, details);
    this.publisher.event({ time: new Date().toISOString(), level, kind, message, ...(details ? { details } : {}) });
  }

  private row(ref: FrameRef, decision: 'error' | 'dropped', reason: string) {
    this.recorder.frame({
      series: ref.series,
      frame: ref.frame,
      source: ref.source,
      received: new Date().toISOString(),
      processed: null,
      decision,
      reason,
      score: null,
      epoch: this.epoch,
      worker: null,
      latency_ms: null,
      error: decision === 'error' ? reason : null,
    });
  }

  private onDropped(ref: FrameRef, reason: string, countIn = true): void {
    if (countIn) this.stats.count('frames_in');
    this.stats.count('dropped');
    this.dropsSinceTick++;
    this.log.debug('frame dropped', { series: ref.series, frame: ref.frame, reason });
    this.row(ref, 'dropped', reason);
  }

  private onRejected(ref: FrameRef, message: string): void {
    this.stats.count('frames_in');
    this.stats.count('errored');
    this.row(ref, 'error', message);
    this.event('warn', 'frame_error', `frame rejected: series ${ref.series} frame ${ref.frame ?? '?'} from ${ref.source}: ${message}`, { series: ref.series, frame: ref.frame, source: ref.source });
  }

  private onLost(lost: number[], reason: string): void {
    for (const slot of lost) {
      const meta = this.slots.meta<FrameMeta>(slot);
      this.releaseSlot(slot);
      this.stats.count('errored');
      this.row({ series: meta.series, frame: meta.frame, source: meta.source }, 'error', reason);
    }
    this.event('error', 'worker_lost', reason, { frames: lost.length });
  }

  private onResult(h: ResultHeader, arrays: ResultArrays): void {
    const latency = performance.now() - h.receivedAt;
    this.releaseSlot(h.slot);
    this.stats.count('processed');
    this.stats.latency(latency);
    this.stats.count(h.decision === 'kept' ? 'kept' : h.decision === 'rejected' ? 'rejected' : 'errored');
    this.recorder.frame({
      series: h.series,
      frame: h.frame,
      source: h.source,
      received: new Date(h.receivedWall).toISOString(),
      processed: new Date(h.processedWall).toISOString(),
      decision: h.decision,
      reason: h.reason,
      score: h.score,
      epoch: h.epoch,
      worker: h.worker,
      latency_ms: Math.round(latency * 1000) / 1000,
      error: h.error ?? null,
    });
    if (h.decision === 'error') {
      this.event('warn', 'frame_error', `frame failed: series ${h.series} frame ${h.frame} from ${h.source}: ${h.reason}`, { series: h.series, frame: h.frame, source: h.source, epoch: h.epoch });
      return;
    }
    if (h.decision === 'rejected') {
      this.log.debug('frame rejected by the veto', { series: h.series, frame: h.frame, reason: h.reason });
      return;
    }
    const format = this.config.mqtt.format;
    const payload = encodeReduced(reducedMessage(this.config.instance, h, arrays, latency), format);
    this.publisher.reduced(payload, format, { run: this.recorder.runId, series: h.series, frame: h.frame });
  }

  // MQTT delivery outcomes. The frame may be from an earlier run: its message waited in the spool.
  private onDelivered(ref: DeliveryRef): void {
    this.stats.count('published');
    this.recorder.published(ref.series, ref.frame, ref.run);
  }

  private onUndeliverable(topic: string, reason: string, ref: DeliveryRef | undefined): void {
    this.stats.undeliverable(topic);
    if (ref) this.recorder.undelivered(ref.series, ref.frame, ref.run);
    this.log.debug('MQTT message undeliverable', { topic, reason, ...ref });
    // Reported once per stats interval: a full spool can drop hundreds per second.
    this.undeliverableSinceTick.set(topic, (this.undeliverableSinceTick.get(topic) ?? 0) + 1);
    this.undeliverableReason = reason;
  }

  private reportUndeliverable(secs: number): void {
    if (!this.undeliverableSinceTick.size) return;
    const byTopic = Object.fromEntries(this.undeliverableSinceTick);
    const n = [...this.undeliverableSinceTick.values()].reduce((a, b) => a + b, 0);
    this.undeliverableSinceTick.clear();
    this.event('warn', 'undeliverable', `${n} MQTT message(s) will never be delivered (last ${secs.toFixed(1)} s): ${this.undeliverableReason}`, { undeliverable: n, by_topic: byTopic, total: this.stats.totals.undeliverable });
  }

  private tick(): void {
    const queues = { free_slots: this.free.length, in_flight: this.pool.inFlight, mqtt_queue: this.publisher.queued, mqtt_spooled: this.publisher.spooled, ...this.pool.queueDepths() };
    const snap = this.stats.snapshot(this.epoch, queues);
    this.publisher.stats({ instance: this.config.instance, ...snap });
    if (this.dropsSinceTick) {
      const secs = (performance.now() - this.lastTick) / 1000;
      this.event('warn', 'drop', `${this.dropsSinceTick} frame(s) dropped in the last ${secs.toFixed(1)} s: workers behind (policy drop)`, { dropped: this.dropsSinceTick, total: this.stats.totals.dropped });
      this.dropsSinceTick = 0;
    }
    this.reportUndeliverable((performance.now() - this.lastTick) / 1000);
    this.lastTick = performance.now();
  }

  /** Re-reads the configuration file; a rejected file leaves the running configuration in place. */
  reload(source: string): Promise<ReloadResult> {
    this.reloading = this.reloading.then(() => this.doReload(source));
    return this.reloading;
  }

  private async doReload(source: string): Promise<ReloadResult> {
    if (this.stopping) return { ok: false, epoch: this.epoch, message: 'stopping' };
    if (!this.opts.configPath) return { ok: false, epoch: this.epoch, message: 'no configuration file to reload' };
    this.notifier.reloading();
    try {
      let next: LoadedConfig;
      try {
        next = loadConfig(this.opts.configPath);
        checkReloadable(this.config, next.config);
      } catch (e) {
        const problems = e instanceof ConfigError ? e.problems : [(e as Error).message];
        this.event('error', 'reload_rejected', `configuration reload (${source}) rejected, epoch ${this.epoch} keeps running: ${problems.join('; ')}`, { source, problems });
        return { ok: false, epoch: this.epoch, message: problems.join('; ') };
      }
      if (next.sha256 === this.loaded.sha256) {
        this.log.info('configuration unchanged', { source, epoch: this.epoch });
        return { ok: true, epoch: this.epoch, message: 'unchanged' };
      }
      this.epoch++;
      this.loaded = next;
      this.config = next.config;
      this.log.level = next.config.log.level;
      this.recorder.setRetentionDays(next.config.provenance.retention_days);
      this.pool.update({ epoch: this.epoch, pipeline: next.config.pipeline, series: next.config.series });
      this.recorder.epoch(this.epoch, source, next.sha256, next.text);
      this.stats.count('reloads');
      this.event('info', 'reload', `configuration reloaded (${source}): epoch ${this.epoch}`, { source, epoch: this.epoch, sha256: next.sha256 });
      this.publisher.status(this.statusPayload('running'));
      return { ok: true, epoch: this.epoch, message: `epoch ${this.epoch}` };
    } finally {
      this.notifier.ready(`running, configuration epoch ${this.epoch}`);
    }
  }

  stop(reason = 'stopped'): Promise<void> {
    this.stopping ??= this.teardown(reason);
    return this.stopping;
  }

  private async teardown(reason: string): Promise<void> {
    this.notifier.stopping();
    this.notifier.stopWatchdog();
    if (this.opts.configPath) unwatchFile(this.opts.configPath);
    this.log.info('stopping', { reason });
    for (const s of this.sources) await s.stop().catch((e: Error) => this.log.error('source stop failed', { source: s.name, error: e.message }));
    if (this.pool) {
      const drained = await this.pool.idle();
      if (!drained) this.log.error('frames still in flight after 30 s; stopping anyway', { in_flight: this.pool.inFlight });
      await this.pool.close();
    }
    for (const t of this.timers) clearInterval(t);
    if (this.publisher) {
      this.tick();
      this.recorder?.event('info', 'stop', `stopping: ${reason}`, { totals: this.stats.totals });
      await this.publisher.close(this.statusPayload('offline', { reason, totals: this.stats.totals }));
    }
    if (this.recorder) await this.recorder.close(reason);
    if (this.broker) await this.broker.close();
    this.log.info('stopped', { reason, totals: this.stats.totals });
  }
}
