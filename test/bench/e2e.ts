// End-to-end benchmark: `beamedge run` as a child process, a file replayed
// over TCP on loopback as fast as the daemon accepts it (backpressure, so any
// loss would be a bug), 1D integration and the veto on.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { native } from '../../daemon/native';
import { FrameSender, Pacer } from '../../daemon/sim/sender';
import { DcuPusher } from '../../daemon/sim/dcu-pusher';
import { endMessage, imageMessage, startMessage } from '../../daemon/sim/stream2-sender';
import { stream2Pool } from '../../daemon/sim/stream2-simulator';
import { DaemonProcess } from '../helpers/daemon-process';

export interface E2eResult {
  file: string;
  shape: string;
  seconds: number;
  sent: number;
  processed: number;
  lost: number;
  errors: number;
  fps: number;
  p50: number;
  p99: number;
  peakRssMb: number;
  workers: number;
  /** Daemon CPU time (all threads) per frame sent, from the first frame to the last outcome recorded. */
  cpuMsPerFrame?: number;
  /** With `watch`: what the live-page client received and the scrapes it made. */
  watched?: WatchCounts;
}

export interface WatchCounts {
  statusEvents: number;
  profiles: number;
  previews: number;
  bytes: number;
  scrapes: number;
}

/**
 * What an operator's page and a Prometheus server do to the daemon: read the
 * live event stream (the page's whole feed: status, profiles, previews) and
 * scrape /metrics once a second.
 */
class Watcher {
  readonly counts: WatchCounts = { statusEvents: 0, profiles: 0, previews: 0, bytes: 0, scrapes: 0 };
  private readonly abort = new AbortController();
  private readonly reading: Promise<void>;
  private readonly scraper: NodeJS.Timeout;

  constructor(private readonly base: string) {
    this.reading = this.read().catch((e: Error) => {
      if (!this.abort.signal.aborted) throw e;
    });
    this.scraper = setInterval(() => {
      void fetch(`${this.base}metrics`, { signal: this.abort.signal }).then(
        (r) => r.text().then(() => this.counts.scrapes++),
        () => {},
      );
    }, 1000);
  }

  private async read(): Promise<void> {
    const r = await fetch(`${this.base}events`, { signal: this.abort.signal });
    const decoder = new TextDecoder();
    let tail = '';
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
      this.counts.bytes += chunk.length;
      const text = tail + decoder.decode(chunk, { stream: true });
      for (const m of text.matchAll(/^event: (\w+)$/gm)) {
        if (m[1] === 'status') this.counts.statusEvents++;
        else if (m[1] === 'profile') this.counts.profiles++;
        else if (m[1] === 'preview') this.counts.previews++;
      }
      tail = text.slice(text.lastIndexOf('\n') + 1);
    }
  }

  async stop(): Promise<WatchCounts> {
    clearInterval(this.scraper);
    this.abort.abort();
    await this.reading;
    return this.counts;
  }
}

// example.cbf has no header: a PILATUS 2M geometry with the beam near the centre.
export const P2M_PONI = 'PixelSize1: 0.000172\nPixelSize2: 0.000172\nDistance: 0.2\nPoni1: 0.1444\nPoni2: 0.1268\nWavelength: 1e-10\n';

/** CPU time (user + system, ms) the process has used so far. */
function cpuMs(pid: number): number {
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in USER_HZ (100 on Linux)
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** Throughput and latency from the provenance rows, leaving out the first second (map set-up). */
function summarise(db: string, r: { file: string; shape: string; sent: number; t0: number; rss: number; workers: number }): E2eResult {
  const d = new Database(db, { readonly: true });
  const rows = d.prepare('SELECT decision, latency_ms, received, processed FROM frames ORDER BY id').all() as { decision: string; latency_ms: number; received: string; processed: string }[];
  d.close();
  const firstMs = Date.parse(rows[0]!.received);
  const steady = rows.filter((x) => Date.parse(x.received) - firstMs > 1000);
  // Frames dropped or refused at ingest never reached a worker: no latency.
  const lat = steady.filter((x) => x.latency_ms !== null).map((x) => x.latency_ms).sort((a, b) => a - b);
  const span = (Date.parse(steady.at(-1)!.processed) - Date.parse(steady[0]!.received)) / 1000;
  const processed = rows.filter((x) => x.decision !== 'dropped').length;
  return {
    file: r.file,
    shape: r.shape,
    seconds: (performance.now() - r.t0) / 1000,
    sent: r.sent,
    processed,
    lost: r.sent - processed,
    errors: rows.filter((x) => x.decision === 'error').length,
    fps: steady.length / span,
    p50: lat[Math.floor(lat.length * 0.5)]!,
    p99: lat[Math.floor(lat.length * 0.99)]!,
    peakRssMb: r.rss,
    workers: r.workers,
  };
}

/** Frames with their outcome recorded so far (a frame still in flight has a 'received' row). */
function recorded(db: string): number {
  const d = new Database(db, { readonly: true });
  try {
    return (d.prepare("SELECT count(*) n FROM frames WHERE decision <> 'received'").get() as { n: number }).n;
  } finally {
    d.close();
  }
}

export async function replayBenchmark(file: string, opts: { seconds: number; poni?: string; label: string; rateHz?: number; stages?: string; watch?: boolean }): Promise<E2eResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-bench-'));
  try {
    const db = path.join(dir, 'p.sqlite');
    let poniLine = '';
    if (opts.poni) {
      writeFileSync(path.join(dir, 'g.poni'), opts.poni);
      poniLine = 'geometry: { poni: g.poni }';
    }
    const cfg = path.join(dir, 'bench.yaml');
    writeFileSync(
      cfg,
      `instance: bench
http: { port: 0 }
log: { level: info }
ingest: { tcp: { host: 127.0.0.1, port: 0, policy: backpressure } }
rings: { slots: 16, slot_mb: 8 }
pipeline:
  ${poniLine}
  ${opts.stages ?? 'veto: { enabled: true, threshold: 20, min_pixels: 30 }'}
  integrate: { npt: 1000, unit: q_nm^-1, split: "no" }
mqtt: { embedded_port: 0 }
provenance: { path: ${JSON.stringify(db)}, batch_ms: 500 }
`,
    );
    const d = DaemonProcess.start(cfg);
    const { tcpPort, http } = await d.ready();
    const watcher = opts.watch ? new Watcher(http!) : undefined;
    const payload = readFileSync(file);
    const sender = await FrameSender.connect('127.0.0.1', tcpPort);
    const cpu0 = cpuMs(d.child.pid!);
    const t0 = performance.now();
    let sent = 0;
    const pacer = new Pacer(opts.rateHz ?? 0);
    while (performance.now() - t0 < opts.seconds * 1000) {
      await sender.send({ series: opts.label, frame: sent++, encoding: 'cbf' }, payload);
      await pacer.next();
    }
    await sender.close();
    // Wait for the last result to be recorded.
    const deadline = Date.now() + 120_000;
    while (recorded(db) < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const cpuMsPerFrame = (cpuMs(d.child.pid!) - cpu0) / sent;
    const watched = await watcher?.stop();
    const rss = peakRssMb(d.child.pid!);
    const workers = Number((await d.waitFor((l) => l.msg === 'beamedge started')).workers);
    await d.stop('SIGTERM');
    const info = native.cbfLocate(payload);
    return { ...summarise(db, { file: path.basename(file), shape: `${info.second} x ${info.fastest}`, sent, t0, rss, workers }), cpuMsPerFrame, ...(watched ? { watched } : {}) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** EIGER2 4M-sized synthetic stream v2 (bitshuffle-LZ4) pushed over ZeroMQ at maximum rate. */
export async function stream2Benchmark(opts: { seconds: number; shape: [number, number]; bits: 16 | 32 }): Promise<E2eResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-bench-v2-'));
  try {
    const db = path.join(dir, 'p.sqlite');
    const port = 32000 + Math.floor(Math.random() * 20000);
    const endpoint = `tcp://127.0.0.1:${port}`;
    const cfg = path.join(dir, 'bench.yaml');
    writeFileSync(
      cfg,
      `instance: benchv2
http: { port: 0 }
ingest: { tcp: { enabled: false }, dectris: { enabled: true, endpoint: "${endpoint}" } }
rings: { slots: 16, slot_mb: 8 }
pipeline:
  veto: { enabled: true, threshold: 20, min_pixels: 30 }
  integrate: { npt: 1000, unit: q_nm^-1, split: "no" }
mqtt: { embedded_port: 0 }
provenance: { path: ${JSON.stringify(db)}, batch_ms: 500 }
`,
    );
    const d = DaemonProcess.start(cfg);
    await d.ready();
    const workers = Number((await d.waitFor((l) => l.msg === 'beamedge started')).workers);
    const { pool, mask } = stream2Pool(opts.shape, opts.bits, 0.5);
    const pusher = await DcuPusher.bind(endpoint);
    await new Promise((r) => setTimeout(r, 500));
    const uid = `bench-${Date.now()}`;
    await pusher.sendToAll(startMessage({ series_id: 1, series_unique_id: uid, shape: opts.shape, dtype: opts.bits === 16 ? 'uint16' : 'uint32', beam_center: [opts.shape[1] / 2, opts.shape[0] / 2], pixel_size: 75e-6, distance: 0.12, wavelength_A: 1, number_of_images: 0, channels: ['threshold_1'], pixel_mask: mask }));
    const t0 = performance.now();
    let sent = 0;
    while (performance.now() - t0 < opts.seconds * 1000) await pusher.send(imageMessage(1, uid, sent, { threshold_1: pool[sent++ % pool.length]! }));
    await pusher.sendToAll(endMessage(1, uid));
    const deadline = Date.now() + 120_000;
    while (recorded(db) < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const rss = peakRssMb(d.child.pid!);
    await pusher.close(0);
    await d.stop('SIGTERM');
    return summarise(db, { file: `synthetic EIGER stream v2, ${opts.bits}-bit bslz4`, shape: `${opts.shape[0]} x ${opts.shape[1]}`, sent, t0, rss, workers });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
