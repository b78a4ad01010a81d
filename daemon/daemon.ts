// The daemon's lifecycle: start wires ingest -> frame slots -> workers ->
// results -> MQTT + provenance; reload swaps the pipeline at a frame boundary;
// stop drains what is in flight, flushes provenance and says offline.
import { statSync, unwatchFile, watchFile } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { PedestalTracker } from './calibrate/pedestal-tracker';
import { calibrationFingerprint, type PipelineCalibration } from './calibrate/pipeline-calibration';
import path from 'node:path';
import { CorrelationCoordinator } from './correlate/coordinator';
import { checkReloadable, ConfigError, loadConfig, type Config, type LoadedConfig } from './config/config';
import type { FrameSource, IncomingMeta, IngestSink } from './ingest/sink';
import { DectrisSource } from './ingest/dectris-source';
import { TcpSource } from './ingest/tcp-source';
import { WatchSource } from './ingest/watch-source';
import { OutcomeFunnel } from './outcomes/funnel';
import { brokerConnection } from './publish/connect-options';
import { startEmbeddedBroker, type EmbeddedBroker } from './publish/embedded-broker';
import { changedKeys } from './config/changed-keys';
import { MqttPublisher } from './publish/mqtt-publisher';
import { outputDirectory } from './output/directory';
import { ReducedOutput } from './output/reduced-output';
import { Recorder } from './provenance/recorder';
import { provenanceWatchHistory } from './provenance/watched-files';
import { FrameSlots } from './rings/frame-slots';
import { LiveHub } from './http/live';
import { createMetrics } from './http/metrics';
import { HttpServer } from './http/server';
import { Stats } from './stats/stats';
import { createLogger, type Logger } from './system/logger';
import { redactUrls, redactValue } from './system/redact';
import { SystemdNotifier } from './system/sd-notify';
import { VERSION } from './version';
import { MapStore } from './maps/map-store';
import { WorkerPool } from './workers/pool';
import type { FrameMeta } from './workers/protocol';

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
  private funnel!: OutcomeFunnel;
  private output: ReducedOutput | undefined;
  private broker: EmbeddedBroker | undefined;
  private publisher!: MqttPublisher;
  private slots!: FrameSlots;
  private pool!: WorkerPool;
  private correlations!: CorrelationCoordinator;
  /** Pixel-to-bin maps, built once and shared by the workers. */
  maps!: MapStore;
  private readonly free: number[] = [];
  private readonly slotWaiters: (() => void)[] = [];
  private readonly sources: FrameSource[] = [];
  private timers: NodeJS.Timeout[] = [];
  private lastTick = performance.now();
  /** When a slot was last given back, or first taken after all were free: the watchdog's measure of progress. */
  private lastProgress = performance.now();
  private lastRejected: string | undefined;
  /** The configuration file as last read: the watcher leaves alone a change a signal has already loaded. */
  private readStat: { mtimeMs: number; size: number } | undefined;
  private readonly startedAt = new Date();
  private stopping: Promise<void> | undefined;
  private reloading: Promise<ReloadResult> = Promise.resolve({ ok: true, epoch: 1, message: '' });
  private tracker!: PedestalTracker;
  /** What the workers convert with now (a tracking snapshot replaces the configured set). */
  private applied!: PipelineCalibration;
  private lastSnapshot = performance.now();
  private http: HttpServer | undefined;
  /** The live page's feed: idle (no per-frame work) while no page is open. */
  private readonly live = new LiveHub({ status: () => this.liveStatus(), requestPreview: () => this.pool.requestPreview(), cancelPreview: () => this.pool?.previewDelivered() });
  private started = false;

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
    return redactUrls(this.broker?.url ?? this.config.mqtt.url!);
  }

  get topicPrefix(): string {
    return this.publisher.prefix;
  }

  /** MQTT delivery state: connected, messages not yet acknowledged, and how many of them are in the spool. */
  get mqttState(): { connected: boolean; queued: number; spooled: number } {
    return { connected: this.publisher.connected, queued: this.publisher.queued, spooled: this.publisher.spooled };
  }

  /** The live page's address, when http.enabled. */
  get httpUrl(): string | undefined {
    return this.http?.url;
  }

  get runId(): number {
    return this.recorder.runId;
  }

  get running(): Config {
    return this.config;
  }

  /** Resolves once every outcome so far is committed, and so every kept frame's message handed to MQTT. */
  sync(): Promise<void> {
    return this.recorder.sync();
  }

  /** Slots not held by ingest or the workers; equals rings.slots when idle. */
  get freeSlots(): number {
    return this.free.length;
  }

  private async startParts(): Promise<void> {
    const c = this.config;
    this.recorder = await Recorder.open({ path: c.provenance.path, instance: c.instance, version: VERSION, batchMs: c.provenance.batch_ms, retentionDays: c.provenance.retention_days, log: this.log });
    this.recorder.epoch(this.epoch, this.loaded.source === this.opts.configPath ? 'start' : `start (${this.loaded.source})`, this.loaded.sha256, this.loaded.text, calibrationFingerprint(this.loaded.calibration));
    if (!c.mqtt.url) this.broker = await startEmbeddedBroker({ host: c.mqtt.embedded_host, port: c.mqtt.embedded_port, instance: c.instance, users: this.loaded.credentials.embeddedUsers });
    this.publisher = new MqttPublisher({
      ...brokerConnection(this.loaded, this.broker, this.log),
      instance: c.instance,
      // aedes (the embedded broker) speaks MQTT 3.1.1; external brokers get v5 with content types.
      protocolVersion: this.broker ? 4 : 5,
      queueLimit: c.mqtt.queue_limit,
      log: this.log,
      ...(c.mqtt.spool.enabled ? { spool: { directory: c.mqtt.spool.directory!, maxBytes: c.mqtt.spool.max_mb * 1024 * 1024 } } : {}),
      // The funnel is made just below; deliveries cannot come before it exists.
      onDelivered: (ref) => this.funnel.delivered(ref),
      onUndeliverable: (topic, reason, ref) => this.funnel.undeliverable(topic, reason, ref),
    });
    if (c.output.formats.length) this.output = await this.openOutput(c);
    this.funnel = new OutcomeFunnel({
      recorder: this.recorder,
      publisher: this.publisher,
      stats: this.stats,
      log: this.log,
      instance: c.instance,
      format: () => this.config.mqtt.format,
      epoch: () => this.epoch,
      event: (level, kind, message, details) => this.event(level, kind, message, details),
      ...(this.output ? { output: (h: import('./workers/protocol').ResultHeader, kept?: import('./publish/messages').ReducedMessage) => this.output!.judged(h.series, h.frame, h.decision, h.score, kept) } : {}),
    });
    const { recovered } = this.recorder;
    if (recovered.lost || recovered.runs.length)
      this.event('warn', 'lost', `previous run(s) ${recovered.runs.join(', ') || '?'} stopped abnormally: ${recovered.lost} frame(s) received but never finished are recorded as lost`, {
        runs: recovered.runs,
        lost: recovered.lost,
        series: recovered.series,
      });
    this.tracker = new PedestalTracker(workerThreads(c), path.join(path.dirname(c.provenance.path), `calibrations-${c.instance}`));
    this.applied = this.applyCalibration(this.loaded);
    const payloadBytes = Math.ceil((c.rings.slot_mb * 1024 * 1024) / 8) * 8;
    this.slots = FrameSlots.create({ slots: c.rings.slots, payloadBytes });
    for (let i = c.rings.slots - 1; i >= 0; i--) this.free.push(i);
    this.maps = new MapStore({
      maxCount: c.maps.max_count,
      maxBytes: c.maps.max_mb * 1024 * 1024,
      buildThreads: c.maps.build_threads > 0 ? c.maps.build_threads : os.availableParallelism(),
      directory: c.maps.disk_cache ? c.maps.directory : null,
      diskBytes: c.maps.disk_mb * 1024 * 1024,
      // Builds, loads and evictions are routine: logged and kept in provenance (and counted in
      // stats), not published as events; a rejected cache file or a failed build is.
      event: (level, kind, message, details) => (level === 'info' ? this.note(kind, message, details) : this.event(level, kind, message, details)),
      onEvict: (key) => this.pool.mapEvicted(key),
    });
    this.pool = new WorkerPool({
      threads: workerThreads(c),
      slots: this.slots,
      resultBytes: c.rings.result_mb * 1024 * 1024,
      initial: { epoch: this.epoch, pipeline: c.pipeline, series: c.series, calibration: this.applied },
      log: this.log,
      onResult: (h, a) => {
        this.releaseSlot(h.slot);
        this.funnel.result(h, a);
        this.correlations?.accumulated(h);
        if (h.preview) this.pool.previewDelivered();
        if (this.live.watching && h.decision === 'kept') this.live.kept(h, a);
      },
      onLost: (lost, reason) => this.onLost(lost, reason),
      map: (key, spec) => this.maps.get(key, spec),
      maxMaps: c.maps.max_count,
    });
    this.correlations = new CorrelationCoordinator({
      source: this.pool,
      publish: (payload, format) => this.publisher.correlation(payload, format),
      recorder: this.recorder,
      event: (level, kind, message, details) => this.event(level, kind, message, details),
      log: this.log,
      instance: c.instance,
      format: () => this.config.mqtt.format,
      config: () => this.config.pipeline.correlate,
      outputDir: c.output.directory!,
    });
    if (c.http.enabled)
      this.http = await this.startHttp(c).catch((e: Error) => {
        throw new Error(`cannot start the HTTP server on ${c.http.host}:${c.http.port}: ${e.message} (choose another http.port, or set http.enabled: false)`);
      });
    const sink = this.sink();
    if (c.ingest.tcp.enabled) this.sources.push(new TcpSource(c.ingest.tcp));
    if (c.ingest.dectris.enabled)
      this.sources.push(new DectrisSource({ endpoint: c.ingest.dectris.endpoint, protocol: c.ingest.dectris.protocol, channel: c.ingest.dectris.channel, maxImageBytes: payloadBytes, publishContext: (ctx) => this.pool.seriesContext(ctx) }));
    if (c.ingest.watch.enabled) {
      const w = c.ingest.watch;
      this.sources.push(
        new WatchSource({
          directory: w.directory!,
          pattern: w.pattern,
          pollMs: w.poll_ms,
          incompleteTimeoutMs: w.incomplete_timeout_ms,
          series: w.series,
          followSymlinks: w.follow_symlinks,
          reprocess: w.reprocess,
          slotBytes: this.slots.payloadBytes,
          history: provenanceWatchHistory(c.provenance.path, this.recorder),
          publishContext: (ctx) => this.pool.seriesContext(ctx),
        }),
      );
    }
    for (const s of this.sources) await s.start(sink);

    this.timers.push(setInterval(() => this.tick(), c.stats.interval_ms));
    this.timers.push(setInterval(() => this.maybeSnapshot(), 1000));
    this.timers.push(setInterval(() => this.publisher.status(this.statusPayload('running')), 30_000));
    if (this.opts.configPath && this.opts.watchConfig !== false) {
      const file = this.opts.configPath;
      this.readStat ??= statOf(file);
      watchFile(file, { interval: 1000 }, (cur) => {
        // An edit followed by SIGHUP is seen here too: one read of the file is enough.
        if (cur.mtimeMs !== this.readStat?.mtimeMs || cur.size !== this.readStat.size) void this.reload('file change');
      });
    }
    this.publisher.status(this.statusPayload('running'));
    const summary = `running: ${this.sources.map((s) => JSON.stringify(s.describe())).join(' ')}, ${this.pool.size} worker(s), MQTT ${this.mqttUrl}${this.http ? `, live page ${this.http.url}` : ''}`;
    this.log.info('beamedge started', { version: VERSION, instance: c.instance, epoch: this.epoch, sources: this.sources.map((s) => s.describe()), workers: this.pool.size, mqtt: this.mqttUrl, ...(this.http ? { http: this.http.url } : {}), provenance: c.provenance.path, run: this.recorder.runId });
    this.record('info', 'start', summary, { version: VERSION, epoch: this.epoch, run: this.recorder.runId, workers: this.pool.size, sources: this.sources.map((s) => s.describe()), ...(this.http ? { http: this.http.url } : {}) });
    this.started = true;
    this.notifier.ready(summary);
    let lastBeat = performance.now();
    const beat = setInterval(() => (lastBeat = performance.now()), 250);
    this.timers.push(beat);
    // Fed only while the event loop runs and frames can make progress: slots in
    // use with none given back for stall_timeout_ms means a wedged pipeline,
    // which systemd should restart rather than leave looking healthy.
    const stallMs = c.workers.stall_timeout_ms;
    this.notifier.startWatchdog(() => {
      const now = performance.now();
      const stalled = this.free.length < this.slots.slots && now - this.lastProgress > stallMs;
      if (stalled) this.log.error('no frame has finished for a while with slots in use; not feeding the watchdog', { free_slots: this.free.length, in_flight: this.pool.inFlight, stalled_ms: Math.round(now - this.lastProgress) });
      return now - lastBeat < 5000 && !stalled;
    });
  }

  private startHttp(c: Config): Promise<HttpServer> {
    const metrics = createMetrics({
      stats: this.stats,
      instance: c.instance,
      version: VERSION,
      epoch: () => this.epoch,
      slots: () => ({ total: this.slots.slots, free: this.free.length, inFlight: this.pool.inFlight }),
      mqtt: () => this.mqttState,
      workerRestarts: () => this.pool.restarts,
      mapBuilds: () => this.maps.stats().builds,
    });
    return HttpServer.start({
      host: c.http.host,
      port: c.http.port,
      view: {
        hub: this.live,
        metrics,
        status: () => this.liveStatus(),
        ready: () => {
          if (!this.started || this.stopping) return { ready: false, why: this.stopping ? 'stopping' : 'starting' };
          if (!this.publisher.connected) return { ready: false, why: `not connected to the MQTT broker ${this.mqttUrl}` };
          return { ready: true, why: 'running, connected to the MQTT broker' };
        },
        config: () => ({ source: this.loaded.source, epoch: this.epoch, sha256: this.loaded.sha256, config: redactValue(this.config), text: this.loaded.text }),
      },
    });
  }

  /** /api/status and the live page's figures: what the status topic says, with the counters, queues and calibration. */
  private liveStatus(): Record<string, unknown> {
    return this.statusPayload(this.stopping ? 'stopping' : this.started ? 'running' : 'starting', {
      calibration: this.applied?.set?.id ?? null,
      calibration_files: this.applied ? calibrationFingerprint(this.applied) : {},
      config_sha256: this.loaded.sha256,
      totals: { ...this.stats.totals },
      hit_rates: this.funnel?.hits.snapshot() ?? {},
      queues: { slots: this.slots?.slots ?? 0, free_slots: this.free.length, in_flight: this.pool?.inFlight ?? 0, mqtt_queue: this.publisher?.queued ?? 0, mqtt_spooled: this.publisher?.spooled ?? 0 },
      mqtt: { url: this.mqttUrl, ...this.mqttState },
      sources: this.sources.map((s) => s.describe()),
      workers: this.pool?.size ?? 0,
      live_clients: this.live.clientCount,
    });
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
      acquire: () => {
        // Leaving the all-free state starts the clock the watchdog's stall test reads.
        if (this.free.length === this.slots.slots) this.lastProgress = performance.now();
        const slot = this.free.pop();
        // Ingest found every slot taken (it waits, or drops under policy drop): the workers are behind.
        if (slot === undefined) this.stats.count('slots_full');
        return slot;
      },
      whenSlotFree: (cb) => this.slotWaiters.push(cb),
      payloadTarget: (slot, size) => this.slots.payloadTarget(slot, size),
      release: (slot) => this.releaseSlot(slot),
      submit: (slot, meta, size, onRecorded) => this.submit(slot, meta, size, onRecorded),
      whenDurable: (cb) => this.recorder.whenDurable(cb),
      dropped: (ref, reason) => this.funnel.dropped(ref, reason),
      rejected: (ref, message) => this.funnel.refused(ref, message),
      event: (level, kind, message, details) => this.event(level, kind, message, details),
    };
  }

  private releaseSlot(slot: number): void {
    this.lastProgress = performance.now();
    this.free.push(slot);
    // Every waiter gets a chance: one that has gone away (a closed connection)
    // must not swallow the wake-up another needs. Losers wait again.
    for (const waiter of this.slotWaiters.splice(0)) setImmediate(waiter);
  }

  private submit(slot: number, meta: IncomingMeta, size: number, onRecorded?: () => void): boolean {
    // The metadata is written with its sequence number and times: whether it fits is decided on exactly that.
    const full = this.funnel.stamp(meta);
    try {
      this.slots.setMeta(slot, full, size);
    } catch (e) {
      this.releaseSlot(slot);
      this.funnel.refused({ series: meta.series, frame: meta.frame, source: meta.source }, (e as Error).message, full);
      if (onRecorded) this.recorder.whenDurable(onRecorded);
      return false;
    }
    this.funnel.received(full, onRecorded);
    if (!this.pool.dispatch(slot)) {
      // Cannot happen while queue capacity >= slots, but never lose a frame silently.
      this.releaseSlot(slot);
      this.funnel.lost([full], 'worker queues full');
      return false;
    }
    return true;
  }

  event(level: 'info' | 'warn' | 'error', kind: string, message: string, details?: Record<string, unknown>): void {
    this.log[level](message, { kind, ...details });
    this.record(level, kind, message, details);
  }

  /** An event into provenance and onto MQTT, without its own log line. */
  private record(level: 'info' | 'warn' | 'error', kind: string, message: string, details?: Record<string, unknown>): void {
    this.recorder.event(level, kind, message, details);
    const time = new Date().toISOString();
    this.publisher.event({ time, level, kind, message, ...(details ? { details } : {}) });
    this.live.event({ time, level, kind, message });
    // A DECTRIS end message closes its series' hit-rate count.
    if (kind === 'series_end' && details?.series_id !== undefined) {
      this.funnel.seriesEnded(String(details.series_id), 'end of series');
      this.correlations?.seriesEnded(String(details.series_id), 'end of series');
      this.output?.seriesEnded(String(details.series_id));
    }
  }

  /** Where and what reduced data is written; the directory is made here so a bad one fails the start, not every frame. */
  private async openOutput(c: Config): Promise<ReducedOutput> {
    return ReducedOutput.create({
      directory: outputDirectory(c),
      formats: c.output.formats,
      instance: c.instance,
      version: VERSION,
      flushMs: c.output.flush_ms,
      context: () => {
        const cal = this.loaded.calibration;
        const p = this.config.pipeline;
        return {
          configText: this.loaded.text,
          calibration: this.applied?.set?.id ?? null,
          epoch: this.epoch,
          dat: {
            geometry: cal.poni?.geometry ?? null,
            mask: cal.mask?.file ?? null,
            dark: cal.dark?.file ?? null,
            flat: cal.flat?.file ?? null,
            polarization: p.integrate.polarization,
            solidAngle: p.integrate.solid_angle,
            split: p.integrate.split,
            radialRange: p.integrate.range as [number, number] | null,
          },
        };
      },
      event: (level, kind, message, details) => this.event(level, kind, message, details),
    });
  }

  /** Logged and recorded in provenance, not published on MQTT. */
  private note(kind: string, message: string, details?: Record<string, unknown>): void {
    this.log.info(message, { kind, ...details });
    this.recorder.event('info', kind, message, details);
  }

  private onLost(lost: number[], reason: string): void {
    const metas = lost.map((slot) => this.slots.meta<FrameMeta>(slot));
    for (const slot of lost) this.releaseSlot(slot);
    this.funnel.lost(metas, reason);
  }

  private tick(): void {
    const queues = { free_slots: this.free.length, in_flight: this.pool.inFlight, mqtt_queue: this.publisher.queued, mqtt_spooled: this.publisher.spooled, ...this.pool.queueDepths() };
    const snap = this.stats.snapshot(this.epoch, queues);
    this.live.stats(snap);
    this.publisher.stats({ instance: this.config.instance, ...snap, hit_rates: this.funnel.hits.snapshot(), maps: this.maps.stats() });
    this.funnel.tick((performance.now() - this.lastTick) / 1000);
    this.correlations?.tick();
    this.output?.tick();
    this.lastTick = performance.now();
  }

  /** The loaded calibration as the workers get it (with pedestal tracking), recorded in provenance. */
  private applyCalibration(loaded: LoadedConfig): PipelineCalibration {
    const applied = this.tracker.apply(loaded.calibration, loaded.config.pipeline.calibration);
    const set = loaded.calibration.set;
    if (set) this.recorder.calibrationSet(set.id, set.json.parent, set.dir, set.detector, 'configured');
    return applied;
  }

  /** Every snapshot_s, the tracked pedestal becomes a derived set and the workers convert with it from their next frame. */
  maybeSnapshot(force = false): string | undefined {
    if (!this.tracker.active || (!force && performance.now() - this.lastSnapshot < this.config.pipeline.calibration.snapshot_s * 1000)) return undefined;
    this.lastSnapshot = performance.now();
    let snap;
    try {
      snap = this.tracker.snapshot();
    } catch (e) {
      this.event('error', 'calibration_snapshot_failed', `pedestal tracking snapshot failed; frames keep the current set: ${(e as Error).message}`);
      return undefined;
    }
    if (!snap) return undefined;
    const { set } = snap;
    this.recorder.calibrationSet(set.id, snap.parent, set.dir, set.detector, 'tracking', { frames: snap.frames, mean_g0_shift_adu: snap.meanShift });
    this.applied = { ...this.applied, set };
    this.pool.update({ epoch: this.epoch, pipeline: this.config.pipeline, series: this.config.series, calibration: this.applied });
    this.event('info', 'calibration_snapshot', `tracked pedestal saved as calibration set ${set.id.slice(0, 12)} (from ${snap.parent.slice(0, 12)}, ${snap.frames} frames, mean G0 shift ${snap.meanShift.toFixed(3)} ADU): ${set.dir}`, {
      id: set.id,
      parent: snap.parent,
      dir: set.dir,
      frames: snap.frames,
      mean_g0_shift_adu: snap.meanShift,
    });
    return set.id;
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
    const t0 = performance.now();
    try {
      let next: LoadedConfig;
      try {
        this.readStat = statOf(this.opts.configPath);
        next = loadConfig(this.opts.configPath);
        checkReloadable(this.config, next.config);
      } catch (e) {
        const problems = e instanceof ConfigError ? e.problems : [(e as Error).message];
        // An edit followed by SIGHUP reaches us twice (the file watcher sees it
        // too): say it once per content; an explicit signal always answers.
        const said = problems.join('; ');
        if (source === 'file change' && said === this.lastRejected) return { ok: false, epoch: this.epoch, message: said };
        this.lastRejected = said;
        this.event('error', 'reload_rejected', `configuration reload (${source}) rejected, epoch ${this.epoch} keeps running: ${problems.join('; ')}`, { source, problems });
        return { ok: false, epoch: this.epoch, message: problems.join('; ') };
      }
      this.lastRejected = undefined;
      if (next.sha256 === this.loaded.sha256 && JSON.stringify(calibrationFingerprint(next.calibration)) === JSON.stringify(calibrationFingerprint(this.loaded.calibration))) {
        this.log.info('configuration unchanged', { source, epoch: this.epoch });
        return { ok: true, epoch: this.epoch, message: 'unchanged' };
      }
      const changed = changedKeys(this.config, next.config);
      if (JSON.stringify(calibrationFingerprint(next.calibration)) !== JSON.stringify(calibrationFingerprint(this.loaded.calibration)))
        changed.push('(calibration files)');
      this.epoch++;
      this.loaded = next;
      this.config = next.config;
      this.log.level = next.config.log.level;
      this.recorder.setRetentionDays(next.config.provenance.retention_days);
      this.applied = this.applyCalibration(next);
      this.pool.update({ epoch: this.epoch, pipeline: next.config.pipeline, series: next.config.series, calibration: this.applied });
      this.recorder.epoch(this.epoch, source, next.sha256, next.text, calibrationFingerprint(next.calibration));
      this.stats.count('reloads');
      this.event('info', 'reload', `configuration reloaded (${source}): epoch ${this.epoch}, changed ${changed.join(', ') || 'nothing but comments'}`, {
        source,
        epoch: this.epoch,
        ms: Math.round((performance.now() - t0) * 10) / 10,
        changed,
        sha256: next.sha256,
        calibration: calibrationFingerprint(next.calibration),
      });
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
    // Pages and scrapers go first: nothing they show can change any more.
    if (this.http) await this.http.close().catch((e: Error) => this.log.error('HTTP server close failed', { error: e.message }));
    for (const s of this.sources) await s.stop().catch((e: Error) => this.log.error('source stop failed', { source: s.name, error: e.message }));
    if (this.pool) {
      const drained = await this.pool.idle();
      if (!drained) this.log.error('frames still in flight after 30 s; stopping anyway', { in_flight: this.pool.inFlight });
      // Open series end here: their last correlation and files come from the workers, so before those stop.
      await this.correlations?.close();
      await this.pool.close();
    }
    // Cache files being written finish before the recorder closes (a failed write is an event).
    if (this.maps) await this.maps.close();
    for (const t of this.timers) clearInterval(t);
    if (this.output) await this.output.close().catch((e: Error) => this.log.error('closing reduced data files failed', { error: e.message }));
    if (this.publisher) {
      this.tick();
      this.recorder.event('info', 'stop', `stopping: ${reason}`, { totals: this.stats.totals });
      // Commit the last outcomes first: their `reduced` messages wait on it.
      await this.recorder.sync();
      await this.publisher.close(this.statusPayload('offline', { reason, totals: this.stats.totals }));
    }
    if (this.recorder) await this.recorder.close(reason);
    if (this.broker) await this.broker.close();
    this.log.info('stopped', { reason, totals: this.stats.totals });
  }
}

function statOf(file: string): { mtimeMs: number; size: number } | undefined {
  try {
    const { mtimeMs, size } = statSync(file);
    return { mtimeMs, size };
  } catch {
    return undefined;
  }
}
