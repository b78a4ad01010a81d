// The broker-outage acceptance run: `beamedge run` as its own process, a file
// replayed over TCP at full rate, Mosquitto stopped for OUTAGE_S seconds in the
// middle. A QoS 1 subscriber with a persistent session counts the reduced
// messages; provenance says which frames were published (1) or dropped (-1).
//   node dist/test/bench/outage.js [FILE] (env: BEFORE_S=10 OUTAGE_S=60 AFTER_S=10 SPOOL_MB=1024)
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { decodeReduced } from '../../daemon/publish/messages';
import { FrameSender } from '../../daemon/sim/sender';
import { dataFile } from '../helpers/data';
import { DaemonProcess } from '../helpers/daemon-process';
import { startMosquitto, stopMosquitto } from '../helpers/mosquitto';
import { freePort, waitForPort } from '../helpers/net';

const env = (k: string, d: number) => Number(process.env[k] ?? d);

function publishedCounts(db: string): Record<string, number> {
  const d = new Database(db, { readonly: true });
  try {
    const rows = d.prepare("SELECT published, count(*) n FROM frames WHERE decision = 'kept' GROUP BY published").all() as { published: number; n: number }[];
    return Object.fromEntries(rows.map((r) => [String(r.published), r.n]));
  } finally {
    d.close();
  }
}

/** Bytes in the spool's segment files. */
function dirBytes(dir: string): number {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.seg'))
      .reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const file = process.argv[2] ?? dataFile('cbf', 'example.cbf');
  const [before, outage, after, spoolMb] = [env('BEFORE_S', 10), env('OUTAGE_S', 60), env('AFTER_S', 10), env('SPOOL_MB', 1024)];
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-outage-bench-'));
  const port = await freePort();
  let broker = startMosquitto(port, dir, { persistent: true });
  await waitForPort(port);
  const sub = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, clientId: 'bench-subscriber', clean: false, reconnectPeriod: 100 });
  const seen = new Set<number>();
  let received = 0;
  sub.on('message', (_t, payload) => {
    received++;
    seen.add(decodeReduced(payload).frame);
  });
  await sub.subscribeAsync('beamedge/outage/reduced', { qos: 1 });

  const db = path.join(dir, 'p.sqlite');
  const cfg = path.join(dir, 'c.yaml');
  // example.cbf's header has no usable geometry: the same PONI as npm run bench.
  const poni = path.basename(file) === 'example.cbf' ? 'geometry: { poni: g.poni }' : '';
  writeFileSync(path.join(dir, 'g.poni'), 'PixelSize1: 0.000172\nPixelSize2: 0.000172\nDistance: 0.2\nPoni1: 0.1444\nPoni2: 0.1268\nWavelength: 1e-10\n');
  writeFileSync(
    cfg,
    `instance: outage
http: { port: 0 }
ingest: { tcp: { port: 0, policy: backpressure } }
rings: { slots: 16, slot_mb: 8 }
pipeline:
  ${poni}
  veto: { enabled: false }     # every frame kept: every frame has a reduced message
  integrate: { npt: 1000, unit: q_nm^-1, split: "no" }
mqtt: { url: "mqtt://127.0.0.1:${port}", spool: { max_mb: ${spoolMb} } }
provenance: { path: ${JSON.stringify(db)}, batch_ms: 500 }
`,
  );
  const d = DaemonProcess.start(cfg);
  const { tcpPort } = await d.ready();
  const payload = readFileSync(file);
  const sender = await FrameSender.connect('127.0.0.1', tcpPort);
  const spoolDir = path.join(dir, 'spool-outage');
  let peakSpool = 0;
  const poll = setInterval(() => (peakSpool = Math.max(peakSpool, dirBytes(spoolDir))), 500);
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  let sent = 0;
  let phase = 0;
  let brokerBackAt = 0;
  while (elapsed() < before + outage + after) {
    if (phase === 0 && elapsed() >= before) {
      phase = 1;
      await stopMosquitto(broker);
      console.log(`${elapsed().toFixed(1)} s: broker stopped after ${sent} frames`);
    } else if (phase === 1 && elapsed() >= before + outage) {
      phase = 2;
      broker = startMosquitto(port, dir, { persistent: true });
      brokerBackAt = performance.now();
      console.log(`${elapsed().toFixed(1)} s: broker started again after ${sent} frames; spool ${(dirBytes(spoolDir) / 2 ** 20).toFixed(1)} MiB`);
    }
    await sender.send({ series: 'outage', frame: sent++, encoding: 'cbf' }, payload);
  }
  await sender.close();
  console.log(`${elapsed().toFixed(1)} s: sent ${sent} frames; waiting for the subscriber`);
  const deadline = Date.now() + 300_000;
  let kept = 0;
  for (;;) {
    const c = publishedCounts(db);
    kept = Object.values(c).reduce((a, b) => a + b, 0);
    const settled = kept > 0 && (c['0'] ?? 0) === 0 && seen.size >= (c['1'] ?? 0);
    if ((settled && dirBytes(spoolDir) === 0) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const drainS = (performance.now() - brokerBackAt) / 1000;
  clearInterval(poll);
  await d.stop('SIGTERM');
  const c = publishedCounts(db);
  console.log(
    JSON.stringify(
      {
        file: path.basename(file),
        sent,
        rate_hz: Math.round((sent / (before + outage + after)) * 10) / 10,
        outage_s: outage,
        kept,
        published: c['1'] ?? 0,
        undeliverable: c['-1'] ?? 0,
        pending: c['0'] ?? 0,
        subscriber_distinct_frames: seen.size,
        subscriber_messages: received,
        peak_spool_mib: Math.round((peakSpool / 2 ** 20) * 10) / 10,
        spool_mb: spoolMb,
        broker_back_to_all_delivered_s: Math.round(drainS * 10) / 10,
      },
      null,
      2,
    ),
  );
  await sub.endAsync(true);
  await stopMosquitto(broker);
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
