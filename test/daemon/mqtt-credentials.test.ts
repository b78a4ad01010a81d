// The daemon against a Mosquitto that wants TLS and a password: the CA from
// mqtt.tls.ca, the password from mqtt.password_file (or inside mqtt.url), and
// afterwards no trace of the password in the logs or anywhere in the
// provenance database, which is created 0640 whatever the umask.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { FrameSender } from '../../daemon/sim/sender';
import { BIN, DaemonProcess, writeYaml } from '../helpers/daemon-process';
import { needMosquitto, startMosquitto, type MosquittoSecurity } from '../helpers/mosquitto';
import { Collector } from '../helpers/mqtt-collector';
import { freePort, waitForPort } from '../helpers/net';
import { makeTestPki, needOpenssl, type TestPki } from '../helpers/tls';

const DASHBOARD = { username: 'dashboard', password: 'dash-board-pw' };

async function broker(t: Test, security: (dir: string) => MosquittoSecurity) {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-cred-'));
  const port = await freePort();
  const m = startMosquitto(port, dir, security(dir));
  t.teardown(() => {
    m.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  await waitForPort(port);
  return { dir, port };
}

function config(db: string, mqtt: string): string {
  return `instance: sec
http: { port: 0 }
ingest: { tcp: { port: 0 } }
rings: { slots: 2, slot_mb: 1 }
workers: { threads: 1 }
${mqtt}
provenance: { path: ${JSON.stringify(db)}, batch_ms: 50 }
stats: { interval_ms: 200 }
`;
}

/** Starts the daemon with umask 000, so that only the daemon itself can make its files private. */
function startWithOpenUmask(cfg: string): DaemonProcess {
  const old = process.umask(0);
  try {
    return DaemonProcess.start(cfg);
  } finally {
    process.umask(old);
  }
}

const mode = (f: string) => statSync(f).mode & 0o777;

/** Every text value of every table, and the raw bytes of the database files. */
function databaseText(db: string): string {
  const d = new Database(db, { readonly: true });
  try {
    const tables = (d.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name);
    const rows = tables.flatMap((name) => d.prepare(`SELECT * FROM "${name}"`).all());
    return JSON.stringify(rows);
  } finally {
    d.close();
  }
}

function assertNoSecret(t: Test, secrets: string[], d: DaemonProcess, db: string): void {
  const logs = d.logs.map((l) => JSON.stringify(l)).join('\n');
  const text = databaseText(db);
  const bytes = [db, `${db}-wal`].filter(existsSync).map((f) => readFileSync(f));
  for (const s of secrets) {
    t.notOk(logs.includes(s), `${s.slice(0, 4)}… absent from ${d.logs.length} log lines`);
    t.notOk(text.includes(s), `${s.slice(0, 4)}… absent from every table`);
    t.notOk(bytes.some((b) => b.includes(s)), `${s.slice(0, 4)}… absent from the database files' bytes`);
  }
}

async function runAndCheck(t: Test, o: { cfg: string; db: string; mqttUrl: string; ca?: string; secrets: string[] }): Promise<DaemonProcess> {
  const d = startWithOpenUmask(o.cfg);
  t.teardown(() => void d.stop('SIGKILL'));
  const { tcpPort } = await d.ready();
  const dash = await Collector.connect(o.mqttUrl, 'beamedge/sec/#', 5, { ...DASHBOARD, ...(o.ca ? { ca: readFileSync(o.ca) } : {}) });
  t.teardown(() => dash.close());
  await dash.waitFor('status running', (m) => m.topic === 'beamedge/sec/status' && JSON.parse(m.payload.toString()).state === 'running');
  // A frame that fails makes an event: published, logged and stored.
  const sender = await FrameSender.connect('127.0.0.1', tcpPort);
  await sender.send({ series: 's', frame: 0, encoding: 'cbf' }, Buffer.from('not a CBF file'));
  await sender.close();
  await dash.waitFor('frame_error event', (m) => m.topic === 'beamedge/sec/events' && JSON.parse(m.payload.toString()).kind === 'frame_error');

  t.equal(mode(o.db), 0o640, 'database file 0640 (umask 000)');
  for (const f of [`${o.db}-wal`, `${o.db}-shm`]) if (existsSync(f)) t.equal(mode(f), 0o640, `${path.basename(f)} 0640 too`);
  t.ok(existsSync(`${o.db}-wal`), 'WAL file present while running');
  t.equal(await d.stop('SIGTERM'), 0, 'clean exit');
  t.equal(mode(o.db), 0o640, 'still 0640 after shutdown');
  const connected = d.logs.find((l) => l.msg === 'MQTT connected');
  t.ok(connected, 'the daemon logged its connection');
  t.notMatch(String(connected?.url), /@/, 'the logged URL carries no credentials');
  assertNoSecret(t, o.secrets, d, o.db);
  return d;
}

t.test('TLS with a self-signed CA from mqtt.tls.ca, user and mqtt.password_file', async (t) => {
  if (!needMosquitto(t) || !needOpenssl(t)) return;
  let pki!: TestPki;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const { port } = await broker(t, (dir) => {
    pki = makeTestPki(dir);
    return { tls: pki, users: { beamedge: password, [DASHBOARD.username]: DASHBOARD.password } };
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'secrets'));
  writeFileSync(path.join(dir, 'secrets', 'mqtt.pw'), `${password}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'ca.pem'), readFileSync(pki.ca));
  const db = path.join(dir, 'p.sqlite');
  // Relative paths: resolved against the configuration file's directory.
  const cfg = writeYaml(path.join(dir, 'c.yaml'), config(db, `mqtt: { url: "mqtts://127.0.0.1:${port}", username: beamedge, password_file: secrets/mqtt.pw, tls: { ca: ca.pem } }`));
  await runAndCheck(t, { cfg, db, mqttUrl: `mqtts://127.0.0.1:${port}`, ca: pki.ca, secrets: [password] });
  const stored = new Database(db, { readonly: true }).prepare('SELECT text, sha256 FROM config_epochs').get() as { text: string; sha256: string };
  t.equal(stored.text, readFileSync(cfg, 'utf8'), 'a file without secrets is stored as written');
  t.equal(stored.sha256, createHash('sha256').update(stored.text).digest('hex'), 'the stored hash is the stored text\'s');
});

t.test('a broker certificate from another CA is refused', async (t) => {
  if (!needMosquitto(t) || !needOpenssl(t)) return;
  let pki!: TestPki;
  const { port } = await broker(t, (dir) => {
    pki = makeTestPki(dir);
    return { tls: pki, users: { beamedge: 'x' } };
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'pw'), 'x');
  const cfg = writeYaml(path.join(dir, 'c.yaml'), config(path.join(dir, 'p.sqlite'), `mqtt: { url: "mqtts://127.0.0.1:${port}", username: beamedge, password_file: pw, tls: { ca: ${JSON.stringify(pki.otherCa)} } }`));
  const d = DaemonProcess.start(cfg);
  t.teardown(() => void d.stop('SIGKILL'));
  await d.ready();
  const err = await d.waitFor((l) => l.msg === 'MQTT error');
  t.match(String(err.error), /certificate|self.signed|unable to verify/i, `refused: ${String(err.error)}`);
  t.notOk(d.logs.some((l) => l.msg === 'MQTT connected'), 'never connected');
});

t.test('a password inside mqtt.url is used, and shown nowhere', async (t) => {
  if (!needMosquitto(t)) return;
  // Characters that must be %-encoded in a URL, so both spellings are looked for.
  const password = `S3cr@t:/${randomBytes(10).toString('hex')}`;
  const encoded = encodeURIComponent(password);
  const { port } = await broker(t, () => ({ users: { beamedge: password, [DASHBOARD.username]: DASHBOARD.password } }));
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-urlpw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = path.join(dir, 'p.sqlite');
  const mqttYaml = `mqtt: { url: "mqtt://beamedge:${encoded}@127.0.0.1:${port}" }`;
  const cfg = writeYaml(path.join(dir, 'c.yaml'), config(db, mqttYaml));

  const check = spawnSync(process.execPath, [BIN, 'check-config', '--json', cfg], { encoding: 'utf8' });
  t.equal(check.status, 0, 'check-config accepts it');
  t.notOk(check.stdout.includes(encoded) || check.stdout.includes(password), 'check-config --json prints no password');
  t.match(JSON.parse(check.stdout).mqtt.url, `mqtt://beamedge:***@127.0.0.1:${port}`);

  const d = await runAndCheck(t, { cfg, db, mqttUrl: `mqtt://127.0.0.1:${port}`, secrets: [password, encoded] });
  t.match(String(d.logs.find((l) => l.msg === 'beamedge started')?.mqtt), `mqtt://beamedge:***@127.0.0.1:${port}`, 'the start line says who connects, masked');
  const stored = new Database(db, { readonly: true }).prepare('SELECT text FROM config_epochs').get() as { text: string };
  t.equal(stored.text, readFileSync(cfg, 'utf8').replace(encoded, '***'), 'provenance keeps the file, password masked');
});

t.test('a rejected reload that quotes the URL does not leak it', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-reloadpw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const password = `pw-${randomBytes(10).toString('hex')}`;
  const db = path.join(dir, 'p.sqlite');
  const cfg = writeYaml(path.join(dir, 'c.yaml'), config(db, 'mqtt: { embedded_port: 0 }'));
  const d = DaemonProcess.start(cfg);
  t.teardown(() => void d.stop('SIGKILL'));
  await d.ready();
  // Not a string: schema validation quotes the value it refuses.
  writeYaml(cfg, config(db, `mqtt: { url: ["mqtt://beamedge:${password}@broker:1883"] }`));
  d.child.kill('SIGHUP');
  const rejected = await d.waitFor((l) => l.kind === 'reload_rejected');
  t.match(rejected.msg, /mqtt\.url: \["mqtt:\/\/beamedge:\*\*\*@broker:1883"\] must be a non-empty string/, 'the problem is still told');
  t.equal(await d.stop('SIGTERM'), 0);
  assertNoSecret(t, [password], d, db);
});
