// The HTTP API against the daemon's other records: /metrics at the end of a
// replay counts what the provenance database holds, frame by frame decision;
// /health, /ready, /api/status and /api/config say what they should, without
// credentials; a port in use is a clear start-up error.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { loadConfig, parseConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { FrameSender } from '../../daemon/sim/sender';
import { framePool, SyntheticDetector } from '../../daemon/sim/synthetic';
import { createLogger } from '../../daemon/system/logger';
import { freePort } from '../helpers/net';
import { until } from '../helpers/wait';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition format (0.0.4), checking each line's syntax and that every family is declared. */
function parseMetrics(t: { fail: (m: string) => unknown }, text: string): Sample[] {
  const declared = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      declared.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line);
    if (!m) {
      t.fail(`not a Prometheus sample line: ${line}`);
      continue;
    }
    const labels: Record<string, string> = {};
    if (m[2]) for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const name = m[1]!;
    const family = declared.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    if (!declared.has(family)) t.fail(`sample ${name} has no # TYPE line before it`);
    samples.push({ name, labels, value: Number(m[3]) });
  }
  return samples;
}

const sum = (samples: Sample[], name: string, where: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

async function get(url: string): Promise<{ status: number; type: string; body: string }> {
  const r = await fetch(url);
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}

t.test('/metrics counts, at the end of a replay, what provenance recorded', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-metrics-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = path.join(dir, 'p.sqlite');
  const d = await Daemon.start({
    loaded: parseConfig(`instance: metrics\nhttp: { port: 0 }\nmqtt: { embedded_port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 4, slot_mb: 4 }\nprovenance: { path: ${JSON.stringify(db)}, batch_ms: 20 }\n`, 'test'),
    log: createLogger('error'),
  });
  t.teardown(() => d.stop('test end'));
  const metricsUrl = `${d.httpUrl}metrics`;
  const s = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  t.teardown(() => s.close());

  // Hits and blanks for the lit-pixel veto, and two frames that are not CBF (errors).
  const pool = framePool(new SyntheticDetector({ seed: 11 }), 16, 0.4);
  const frames = [...pool.map((f) => f.cbf), Buffer.from('this is not a CBF file'), Buffer.alloc(4096, 7)];
  const half = frames.length >> 1;
  for (let i = 0; i < half; i++) await s.send({ series: 'm', frame: i, encoding: 'cbf' }, frames[i]!);
  await until(() => d.stats.totals.processed === half, 'the first half processed');
  const during = parseMetrics(t, (await get(metricsUrl)).body);
  t.equal(sum(during, 'beamedge_frames_processed_total'), half, 'during the replay: the frames processed so far');
  for (let i = half; i < frames.length; i++) await s.send({ series: 'm', frame: i, encoding: 'cbf' }, frames[i]!);
  await until(() => d.stats.totals.processed === frames.length, 'all processed');
  await d.sync();
  await until(() => d.stats.totals.published === d.stats.totals.kept, 'every kept frame acknowledged by the broker');
  await d.sync();

  const res = await get(metricsUrl);
  t.equal(res.status, 200);
  t.match(res.type, /^text\/plain; version=0\.0\.4/, 'Prometheus text format');
  const m = parseMetrics(t, res.body);
  const sql = new Database(db, { readonly: true });
  t.teardown(() => sql.close());
  const rows = sql.prepare('SELECT decision, count(*) AS n FROM frames GROUP BY decision').all() as { decision: string; n: number }[];
  const byDecision = Object.fromEntries(rows.map((r) => [r.decision, r.n]));
  t.ok(byDecision.kept! > 0 && byDecision.rejected! > 0 && byDecision.error === 2, `the replay has every kind of outcome: ${JSON.stringify(byDecision)}`);
  for (const decision of ['kept', 'rejected', 'error', 'dropped'])
    t.equal(sum(m, 'beamedge_frames_total', { decision }), byDecision[decision] ?? 0, `frames ${decision}: /metrics equals provenance (${byDecision[decision] ?? 0})`);
  const total = (sql.prepare('SELECT count(*) AS n FROM frames').get() as { n: number }).n;
  t.equal(sum(m, 'beamedge_frames_received_total'), total, `frames received: /metrics equals provenance rows (${total})`);
  const published = (sql.prepare('SELECT count(*) AS n FROM frames WHERE published = 1').get() as { n: number }).n;
  t.equal(sum(m, 'beamedge_published_total'), published, `published: /metrics equals the rows marked published (${published})`);
  t.ok(sum(during, 'beamedge_frames_total') <= sum(m, 'beamedge_frames_total'), 'counters only grow');

  // Reasons count together without their numbers: every reject says "lit N < 30", every keep "lit N >= 30".
  const reasons = (decision: string) => m.filter((x) => x.name === 'beamedge_frames_total' && x.labels.decision === decision).map((x) => x.labels.reason);
  t.same(reasons('rejected'), ['lit <'], 'one reason label for the rejects');
  t.same(reasons('kept'), ['lit >='], 'one reason label for the keeps');
  const lit = sql.prepare("SELECT count(*) AS n FROM frames WHERE decision = 'rejected' AND reason LIKE 'lit % < 30'").get() as { n: number };
  t.equal(sum(m, 'beamedge_frames_total', { decision: 'rejected', reason: 'lit <' }), lit.n, 'and it counts the rows with that reason');

  // The latency histogram: one observation per processed frame, cumulative buckets.
  const buckets = m.filter((x) => x.name === 'beamedge_frame_latency_seconds_bucket');
  t.ok(buckets.every((b, i) => i === 0 || b.value >= buckets[i - 1]!.value), 'buckets are cumulative');
  t.equal(buckets[buckets.length - 1]!.labels.le, '+Inf');
  const withLatency = (sql.prepare('SELECT count(*) AS n FROM frames WHERE latency_ms IS NOT NULL').get() as { n: number }).n;
  t.equal(sum(m, 'beamedge_frame_latency_seconds_count'), withLatency, `latency observations: one per processed frame (${withLatency})`);
  t.equal(buckets[buckets.length - 1]!.value, withLatency);
  t.equal(sum(m, 'beamedge_mqtt_connected'), 1, 'broker connected');
  t.equal(sum(m, 'beamedge_map_builds_total'), 1, 'one integration map for one geometry');
  t.equal(sum(m, 'beamedge_config_epoch'), 1);
  t.equal(sum(m, 'beamedge_queue', { queue: 'free_slots' }), 4, 'all slots free at the end');
  t.equal(sum(m, 'beamedge_worker_restarts_total'), 0);
});

t.test('/health, /ready, /api/status and /api/config', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-api-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = path.join(dir, 'c.yaml');
  writeFileSync(cfg, `instance: api\nhttp: { port: 0 }\nmqtt: { embedded_port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 2, slot_mb: 1 }\nprovenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))} }\n`);
  const d = await Daemon.start({ loaded: loadConfig(cfg), configPath: cfg, watchConfig: false, log: createLogger('error') });
  t.teardown(() => d.stop('test end'));
  const base = d.httpUrl!;
  t.same(JSON.parse((await get(`${base}health`)).body), { status: 'alive' });
  await until(() => d.mqttState.connected, 'connected to the embedded broker');
  const ready = await get(`${base}ready`);
  t.equal(ready.status, 200, 'ready: running and connected');
  const status = JSON.parse((await get(`${base}api/status`)).body) as Record<string, unknown>;
  t.match(status, { state: 'running', instance: 'api', epoch: 1, calibration: null, mqtt: { connected: true }, queues: { slots: 2, free_slots: 2 } });
  const config = JSON.parse((await get(`${base}api/config`)).body) as { config: { instance: string; http: { port: number } }; epoch: number; sha256: string; text: string };
  t.equal(config.config.instance, 'api', 'the running configuration');
  t.equal(config.config.http.port, 0, 'as configured (0: the port was chosen at start)');
  t.equal(config.epoch, 1);
  t.match(config.text, /instance: api/, 'and the file as loaded');
  t.equal((await get(`${base}nothing-here`)).status, 404);
  const page = await get(base);
  t.match(page.type, /^text\/html/);
  t.match(page.body, /<script src="app.js"><\/script>/, 'the page loads its script from the daemon');
  t.notMatch(page.body, /https?:\/\//, 'and nothing from elsewhere');
  t.equal((await get(`${base}app.js`)).status, 200);
  t.equal((await get(`${base}style.css`)).status, 200);
});

t.test('/api/config redacts credentials; /ready says why not while the broker is unreachable', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-api-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const closed = await freePort();
  const secret = 'n0t-f0r-y0ur-eyes';
  const d = await Daemon.start({
    loaded: parseConfig(`instance: apisec\nhttp: { port: 0 }\nmqtt: { url: "mqtt://beam:${secret}@127.0.0.1:${closed}" }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 2, slot_mb: 1 }\nprovenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))} }\n`, 'test', dir),
    log: createLogger('error'),
  });
  t.teardown(() => d.stop('test end'));
  const base = d.httpUrl!;
  const ready = await get(`${base}ready`);
  t.equal(ready.status, 503, 'not ready without the broker');
  t.match(JSON.parse(ready.body), { status: 'not ready', why: /not connected to the MQTT broker/ });
  t.equal((await get(`${base}health`)).status, 200, 'but alive');
  for (const route of ['api/config', 'api/status', 'metrics']) {
    const body = (await get(`${base}${route}`)).body;
    t.notOk(body.includes(secret), `${route} does not show the password`);
  }
  const config = JSON.parse((await get(`${base}api/config`)).body) as { config: { mqtt: { url: string } }; text: string };
  t.match(config.config.mqtt.url, /^mqtt:\/\/beam:\*+@127\.0\.0\.1:\d+$/, 'the URL keeps its user and host, not the password');
});

t.test('http.enabled false serves nothing; a port in use stops the start with its address', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-api-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const yaml = (http: string, name: string) =>
    `instance: ${name}\nhttp: ${http}\nmqtt: { embedded_port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 2, slot_mb: 1 }\nprovenance: { path: ${JSON.stringify(path.join(dir, `${name}.sqlite`))} }\n`;
  const off = await Daemon.start({ loaded: parseConfig(yaml('{ enabled: false }', 'off'), 'test'), log: createLogger('error') });
  t.equal(off.httpUrl, undefined, 'no page');
  await off.stop('test');

  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  await t.rejects(Daemon.start({ loaded: parseConfig(yaml(`{ port: ${port} }`, 'busy'), 'test'), log: createLogger('error') }), { message: new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${port}`) }, 'the error names the address in use');
});
