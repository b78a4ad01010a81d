// The MQTT publisher's store-and-forward against a real broker (aedes),
// reached through a relay the test can disturb: messages in flight when the
// connection drops, a broker too slow to acknowledge, and a shutdown with the
// broker away. Every message must end up acknowledged, in order.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../daemon/publish/embedded-broker';
import { MqttPublisher, type FrameRef } from '../../daemon/publish/mqtt-publisher';
import { createLogger } from '../../daemon/system/logger';
import { Collector } from '../helpers/mqtt-collector';
import { TcpGate } from '../helpers/tcp-gate';
import { until } from '../helpers/wait';

interface Rig {
  broker: EmbeddedBroker;
  gate: TcpGate;
  sub: Collector;
  dir: string;
  delivered: FrameRef[];
  undeliverable: string[];
  publisher: (queueLimit?: number) => MqttPublisher;
}

async function rig(t: Test, gateOpen = true): Promise<Rig> {
  const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, instance: 'pub' });
  const gate = new TcpGate(broker.port);
  const port = await gate.open();
  if (!gateOpen) await gate.close();
  const sub = await Collector.connect(broker.url, 'beamedge/pub/#');
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-publisher-'));
  const delivered: FrameRef[] = [];
  const undeliverable: string[] = [];
  const publishers: MqttPublisher[] = [];
  t.teardown(async () => {
    for (const p of publishers) await p.close({ state: 'offline' }, 100);
    await sub.close();
    await gate.close();
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const publisher = (queueLimit = 1000) => {
    const p = new MqttPublisher({
      url: `mqtt://127.0.0.1:${port}`,
      // Only the daemon's own login may publish on the embedded broker.
      connect: { clientId: broker.login.clientId, username: broker.login.username, password: broker.login.password },
      instance: 'pub',
      protocolVersion: 4,
      queueLimit,
      log: createLogger('error'),
      spool: { directory: path.join(dir, 'spool'), maxBytes: 64 << 20 },
      onDelivered: (ref) => delivered.push(ref),
      onUndeliverable: (topic, reason) => undeliverable.push(`${topic}: ${reason}`),
    });
    publishers.push(p);
    return p;
  };
  return { broker, gate, sub, dir, delivered, undeliverable, publisher };
}

function publish(p: MqttPublisher, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const payload = Buffer.alloc(2000, i & 0xff);
    payload.writeUInt32LE(i, 0);
    p.reduced(payload, 'cbor', { run: 1, seq: i + 1, series: 's', frame: i });
  }
}

/** Frame numbers the subscriber saw, first arrivals only (QoS 1 may deliver twice). */
function firstArrivals(sub: Collector): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  for (const m of sub.on('reduced')) {
    const f = m.payload.readUInt32LE(0);
    if (!seen.has(f)) (seen.add(f), out.push(f));
  }
  return out;
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

t.test('messages in flight when the connection drops are taken back and replayed from the spool, in order', async (t) => {
  const r = await rig(t);
  const p = r.publisher();
  await until(() => p.connected, 'connected');
  r.gate.hold(); // the broker gets the messages, its acknowledgements do not come back
  publish(p, 0, 50);
  await until(() => r.sub.on('reduced').length === 50, 'the broker received all 50');
  t.equal(r.delivered.length, 0, 'none acknowledged yet');
  r.gate.cut();
  await until(() => !p.connected, 'connection lost');
  t.equal(p.spooled, 50, 'all 50 unacknowledged messages are in the spool');
  await until(() => r.delivered.length === 50, 'acknowledged after reconnecting');
  t.same(
    r.delivered.map((d) => d.frame),
    range(0, 50),
    'acknowledged in order',
  );
  t.same(firstArrivals(r.sub), range(0, 50));
  t.equal(r.sub.on('reduced').length, 100, 'sent twice: the broker had them, but had not said so (at least once)');
  t.equal(p.queued, 0);
  t.equal(p.spooled, 0);
  t.same(r.undeliverable, []);
});

t.test('a broker too slow to acknowledge: beyond the memory queue, messages go to the spool behind those in flight', async (t) => {
  const r = await rig(t);
  const p = r.publisher(10);
  await until(() => p.connected, 'connected');
  r.gate.hold();
  publish(p, 0, 400);
  // 256 in flight, 10 in memory, then the spool takes over: it holds everything unacknowledged.
  t.equal(p.spooled, 400, 'the spool holds all 400, the ones in flight included');
  t.equal(p.queued, 400);
  r.gate.release();
  await until(() => r.delivered.length === 400, 'all acknowledged');
  t.same(
    r.delivered.map((d) => d.frame),
    range(0, 400),
    'in order',
  );
  await until(() => r.sub.on('reduced').length >= 400, 'the subscriber has them all');
  t.same(firstArrivals(r.sub), range(0, 400));
  t.equal(r.sub.on('reduced').length, 400, 'no duplicates: the connection never dropped');
  t.equal(p.spooled, 0);
  // With the spool empty, the memory queue is the fast path again.
  publish(p, 400, 410);
  t.equal(p.spooled, 0, 'nothing spooled while the broker keeps up');
  await until(() => r.delivered.length === 410, 'fast path');
  t.same(r.undeliverable, []);
});

t.test('closing with the broker away keeps everything in the spool; the next publisher sends it before anything new', async (t) => {
  const r = await rig(t, false);
  const first = r.publisher();
  publish(first, 0, 30);
  t.equal(first.spooled, 30, 'spooled while unreachable');
  await first.close({ state: 'offline' }, 100);
  t.same(r.undeliverable, ['beamedge/pub/status: shutting down with the broker unreachable'], 'only the final status is lost');
  await r.gate.open();
  const second = r.publisher();
  t.equal(second.spooled, 30, 'found on disk by the next start');
  publish(second, 30, 40);
  await until(() => r.delivered.length === 40, 'all delivered');
  t.same(
    r.delivered.map((d) => d.frame),
    range(0, 40),
    'the old run first, then the new messages',
  );
  await until(() => r.sub.on('reduced').length >= 40, 'subscriber');
  t.same(firstArrivals(r.sub), range(0, 40));
});
