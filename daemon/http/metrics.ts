// /metrics: the daemon's counters in Prometheus text format (prom-client).
// Nothing here counts: every value is read, when Prometheus scrapes, from the
// same Stats the `stats` MQTT topic publishes (one source of truth), so the
// data path does no extra work for it.
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import { LATENCY_BUCKETS_MS, type FrameDecision, type Stats } from '../stats/stats';

/** What /metrics reads besides Stats: gauges only the daemon knows. */
export interface MetricsSource {
  stats: Stats;
  instance: string;
  version: string;
  epoch(): number;
  slots(): { total: number; free: number; inFlight: number };
  mqtt(): { connected: boolean; queued: number; spooled: number };
  workerRestarts(): number;
  mapBuilds(): number;
}

const DECISIONS: FrameDecision[] = ['kept', 'rejected', 'error', 'dropped'];

/** Sets a counter to a total kept elsewhere (prom-client counters only go up, so reset then add). */
function setCounter<T extends string>(c: Counter<T>, value: number, labels?: Partial<Record<T, string>>): void {
  if (labels) c.inc(labels, value);
  else c.inc(value);
}

export function createMetrics(src: MetricsSource): Registry {
  const register = new Registry();
  const { stats } = src;
  const registers = [register];

  new Gauge({ name: 'beamedge_info', help: 'Instance and version of this daemon (always 1)', labelNames: ['instance', 'version'], registers, collect() {
    this.set({ instance: src.instance, version: src.version }, 1);
  } });
  new Counter({ name: 'beamedge_frames_received_total', help: 'Frames that arrived whole (processed, rejected at ingest, or dropped)', registers, collect() {
    this.reset();
    setCounter(this, stats.totals.frames_in);
  } });
  new Counter({ name: 'beamedge_frames_processed_total', help: 'Frames a worker finished (kept, rejected or error)', registers, collect() {
    this.reset();
    setCounter(this, stats.totals.processed);
  } });
  new Counter({
    name: 'beamedge_frames_total',
    help: 'Frames by decision (kept, rejected, error, dropped: as in provenance) and reason (the reason text without its numbers)',
    labelNames: ['decision', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const decision of DECISIONS) {
        // A decision with no frame yet is shown at 0, so a rate() over it exists from the start.
        if (!stats.byReason[decision].size) setCounter(this, 0, { decision, reason: 'none' });
        for (const [reason, n] of stats.byReason[decision]) setCounter(this, n, { decision, reason });
      }
    },
  });
  new Counter({ name: 'beamedge_published_total', help: 'Reduced-frame messages the MQTT broker acknowledged', registers, collect() {
    this.reset();
    setCounter(this, stats.totals.published);
  } });
  new Counter({ name: 'beamedge_undeliverable_total', help: 'MQTT messages that will never be delivered (spool or memory queue full), by topic', labelNames: ['topic'], registers, collect() {
    this.reset();
    const by = stats.snapshotUndeliverable();
    if (!Object.keys(by).length) setCounter(this, 0, { topic: 'reduced' });
    for (const [topic, n] of Object.entries(by)) setCounter(this, n, { topic });
  } });
  new Counter({ name: 'beamedge_pixels_excluded_total', help: 'Pixels the calibration excluded, by reason', labelNames: ['reason'], registers, collect() {
    this.reset();
    for (const [reason, n] of Object.entries(stats.snapshotPixelsExcluded())) setCounter(this, n, { reason });
  } });
  new Counter({ name: 'beamedge_worker_restarts_total', help: 'Worker threads restarted after exiting unexpectedly', registers, collect() {
    this.reset();
    setCounter(this, src.workerRestarts());
  } });
  new Counter({ name: 'beamedge_map_builds_total', help: 'Pixel-to-bin integration maps built by the map store', registers, collect() {
    this.reset();
    setCounter(this, src.mapBuilds());
  } });
  new Counter({ name: 'beamedge_reloads_total', help: 'Configuration reloads that changed something', registers, collect() {
    this.reset();
    setCounter(this, stats.totals.reloads);
  } });
  new Gauge({ name: 'beamedge_config_epoch', help: 'Configuration epoch (1 at start, +1 per reload)', registers, collect() {
    this.set(src.epoch());
  } });
  new Gauge({ name: 'beamedge_queue', help: 'Queue contents: free_slots, in_flight (frames at the workers), mqtt_queue (messages not yet acknowledged), mqtt_spooled (of those, on disk)', labelNames: ['queue'], registers, collect() {
    const s = src.slots();
    const m = src.mqtt();
    this.set({ queue: 'free_slots' }, s.free);
    this.set({ queue: 'in_flight' }, s.inFlight);
    this.set({ queue: 'mqtt_queue' }, m.queued);
    this.set({ queue: 'mqtt_spooled' }, m.spooled);
  } });
  new Gauge({ name: 'beamedge_slot_fill_ratio', help: 'Frame slots in use (ingest or workers) over rings.slots', registers, collect() {
    const s = src.slots();
    this.set(s.total ? (s.total - s.free) / s.total : 0);
  } });
  new Gauge({ name: 'beamedge_mqtt_connected', help: '1 while the MQTT broker connection is up', registers, collect() {
    this.set(src.mqtt().connected ? 1 : 0);
  } });
  register.registerMetric(latencyHistogram(stats) as unknown as Metric);
  collectDefaultMetrics({ register, prefix: 'beamedge_' });
  return register;
}

/** The latency histogram Stats keeps (cumulative since start), in seconds as Prometheus names it. */
function latencyHistogram(stats: Stats) {
  const name = 'beamedge_frame_latency_seconds';
  const help = 'Time from a frame complete in its slot to its outcome on the main thread';
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    reset() {},
    async get() {
      const h = stats.latencyHistogram;
      let cumulative = 0;
      const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = LATENCY_BUCKETS_MS.map((le, i) => {
        cumulative += h.buckets[i]!;
        return { value: cumulative, labels: { le: le / 1000 }, metricName: `${name}_bucket` };
      });
      values.push({ value: h.count, labels: { le: '+Inf' }, metricName: `${name}_bucket` });
      values.push({ value: h.sum / 1000, labels: {}, metricName: `${name}_sum` });
      values.push({ value: h.count, labels: {}, metricName: `${name}_count` });
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
}
