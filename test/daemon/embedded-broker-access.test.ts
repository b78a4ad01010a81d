// The embedded broker belongs to the daemon: other clients read, and nothing
// they do (publishing on its topics, retained messages, last wills, taking
// its client id) reaches a dashboard or knocks the daemon off.
//
// "Never arrived" is established without waiting for time to pass: aedes
// announces a client's departure on $SYS/<broker>/disconnect/clients after it
// has dealt with that client's last will, and a refused publish closes the
// client's connection, so the dashboard (subscribed to both) has seen anything
// the intruder got through by the time it sees the intruder leave.
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import t, { type Test } from 'tap';
import { DaemonProcess, writeYaml } from '../helpers/daemon-process';
import { Collector, type Received } from '../helpers/mqtt-collector';

const INSTANCE = 'acl';
const PREFIX = `beamedge/${INSTANCE}/`;

function yaml(dir: string, extraMqtt = ''): string {
  return `instance: ${INSTANCE}
http: { port: 0 }
ingest: { tcp: { port: 0 } }
rings: { slots: 2, slot_mb: 1 }
workers: { threads: 1 }
mqtt: { embedded_port: 0${extraMqtt} }
provenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))} }
stats: { interval_ms: 200 }
`;
}

async function startDaemon(t: Test, extraMqtt = '', extraFiles: Record<string, string> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-acl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(extraFiles)) writeFileSync(path.join(dir, name), text);
  const d = DaemonProcess.start(writeYaml(path.join(dir, 'c.yaml'), yaml(dir, extraMqtt)));
  t.teardown(() => void d.stop('SIGKILL'));
  const { mqtt: url } = await d.ready();
  return { d, url };
}

type Outcome = { connected: MqttClient } | { refused: number };

/** Connects once (no retries): the client, or the CONNACK return code that refused it. */
async function connect(url: string, opts: IClientOptions = {}): Promise<Outcome> {
  const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...opts });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve({ connected: client }));
    client.once('error', (e: Error & { code?: number }) => {
      client.end(true);
      if (typeof e.code === 'number') resolve({ refused: e.code });
      else reject(e);
    });
  });
}

async function connected(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const o = await connect(url, opts);
  if (!('connected' in o)) throw new Error(`connection refused with code ${o.refused}`);
  return o.connected;
}

/** Publishes at QoS 1: 'accepted' on PUBACK, 'refused' when the broker closes the connection instead. */
function tryPublish(client: MqttClient, topic: string, payload: string, retain = false): Promise<'accepted' | 'refused'> {
  return new Promise((resolve) => {
    client.once('close', () => resolve('refused'));
    client.publish(topic, payload, { qos: 1, retain }, (err) => {
      if (!err) resolve('accepted');
    });
  });
}

async function dashboard(url: string, opts: IClientOptions = {}): Promise<Collector> {
  const c = await Collector.connect(url, `${PREFIX}#`, 4, opts);
  await c.client.subscribeAsync('$SYS/+/disconnect/clients', { qos: 1 });
  return c;
}

const left = (id: string) => (m: Received) => m.topic.endsWith('/disconnect/clients') && m.payload.toString() === id;
const state = (m: Received) => (m.topic === `${PREFIX}status` ? (JSON.parse(m.payload.toString()) as { state: string }).state : undefined);
const fakes = (c: Collector) => c.messages.filter((m) => m.topic.startsWith(PREFIX) && m.payload.toString().includes('FAKE'));

t.test('an anonymous client reads but cannot write, retain, fire a will or take the daemon\'s client id', async (t) => {
  const { d, url } = await startDaemon(t);
  const dash = await dashboard(url);
  t.teardown(() => dash.close());
  await dash.waitFor('status running', (m) => state(m) === 'running');
  const daemonId = `beamedge-${INSTANCE}-${d.child.pid}`;

  // Publishing on the daemon's topics, retained or not, and on $SYS (where a
  // forged "new client" notice would make aedes drop the daemon's session).
  const attempts: [string, string, boolean][] = [
    ['reduced', JSON.stringify({ series: 'FAKE', frame: 0, decision: 'kept' }), false],
    ['status', JSON.stringify({ state: 'offline', FAKE: true }), true],
    ['events', JSON.stringify({ kind: 'FAKE' }), false],
    ['status', '', true],
  ];
  for (const [i, [topic, payload, retain]] of attempts.entries()) {
    const id = `intruder-${i}`;
    const c = await connected(url, { clientId: id });
    t.equal(await tryPublish(c, PREFIX + topic, payload, retain), 'refused', `publish on ${topic}${retain ? ' (retained)' : ''} refused`);
    await dash.waitFor(`${id} gone`, left(id));
  }
  const sys = await connected(url, { clientId: 'intruder-sys' });
  t.equal(await tryPublish(sys, `$SYS/forged/new/clients`, daemonId), 'refused', '$SYS publish refused');
  await dash.waitFor('intruder-sys gone', left('intruder-sys'));
  const other = await connected(url, { clientId: 'intruder-other' });
  t.equal(await tryPublish(other, 'dashboards/notes', 'FAKE'), 'refused', 'the broker is read-only for others, whatever the topic');
  await dash.waitFor('intruder-other gone', left('intruder-other'));

  // A last will aimed at the daemon's status, fired by dropping the connection.
  const willer = await connected(url, { clientId: 'intruder-will', will: { topic: `${PREFIX}status`, payload: Buffer.from('{"state":"offline","FAKE":1}'), qos: 1, retain: true } });
  willer.stream.destroy();
  await dash.waitFor('intruder-will gone', left('intruder-will'));

  // The daemon's client id, with no credentials and with its user name but a
  // guessed password, and with a will: refused at CONNECT, before aedes would
  // take over the daemon's session and fire the daemon's own will.
  const takeovers: IClientOptions[] = [
    { clientId: daemonId },
    { clientId: daemonId, username: `beamedge-${INSTANCE}`, password: randomBytes(32).toString('base64url') },
    { clientId: `beamedge-${INSTANCE}-1`, will: { topic: `${PREFIX}status`, payload: Buffer.from('FAKE'), qos: 1, retain: true } },
  ];
  for (const opts of takeovers) {
    const o = await connect(url, opts);
    t.same(o, { refused: 2 }, `client id ${opts.clientId}${opts.password ? ' with a guessed password' : ''}: identifier rejected`);
  }

  // The daemon kept its one connection and keeps publishing.
  const before = dash.on('stats').length;
  await dash.waitForCount('stats', before + 2);
  t.same(fakes(dash), [], 'the dashboard never saw a forged message');
  t.same(dash.messages.map(state).filter((s) => s !== undefined && s !== 'running'), [], 'nor a status other than running');
  t.notOk(d.logs.some((l) => l.msg === 'MQTT reconnected' || l.msg.startsWith('MQTT broker unreachable')), 'the daemon was never disconnected');

  // A newcomer gets the daemon's retained status, not a forged one.
  const late = await dashboard(url);
  t.teardown(() => late.close());
  await late.waitFor('retained status', (m) => m.topic === `${PREFIX}status`);
  const retained = late.on('status')[0]!;
  t.ok(retained.retain, 'delivered as retained');
  t.equal(state(retained), 'running', "the retained status is the daemon's");

  // The daemon's own retained "offline" at shutdown still goes through.
  t.equal(await d.stop('SIGTERM'), 0);
  await dash.waitFor('status offline from the daemon', (m) => state(m) === 'offline');
  t.same(fakes(dash), []);
});

function usersLine(user: string, password: string): string {
  const salt = randomBytes(12);
  return `${user}:$7$101$${salt.toString('base64')}$${pbkdf2Sync(password, salt, 101, 64, 'sha512').toString('base64')}\n`;
}

t.test('with mqtt.embedded_users_file only listed users connect, and still only read', async (t) => {
  const { url } = await startDaemon(t, ', embedded_users_file: users', { users: usersLine('beamline', 'b3aml1ne pass') + usersLine('viewer', 'v1ew') });
  t.same(await connect(url), { refused: 5 }, 'anonymous: not authorized');
  t.same(await connect(url, { username: 'beamline', password: 'wrong' }), { refused: 4 }, 'wrong password: bad user name or password');
  t.same(await connect(url, { username: 'nobody', password: 'v1ew' }), { refused: 4 }, 'unknown user');
  t.same(await connect(url, { username: 'viewer', password: 'b3aml1ne pass' }), { refused: 4 }, "another user's password");
  const dash = await dashboard(url, { username: 'beamline', password: 'b3aml1ne pass' });
  t.teardown(() => dash.close());
  await dash.waitFor('status running', (m) => state(m) === 'running');
  const writer = await connected(url, { clientId: 'viewer-writes', username: 'viewer', password: 'v1ew' });
  t.equal(await tryPublish(writer, `${PREFIX}reduced`, 'FAKE'), 'refused', 'a listed user cannot publish either');
  await dash.waitFor('viewer gone', left('viewer-writes'));
  t.same(fakes(dash), []);
});
