// SIGKILL in the middle of a replay, then a restart on the same database:
// every frame the killed daemon received has a row (processed, or 'lost'),
// every `reduced` message that reached MQTT has its row, and a sender that
// asked for durable acknowledgements resends what was never acknowledged, so
// between the two runs every frame is processed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { FrameSender } from '../../daemon/sim/sender';
import { needData, readData } from '../helpers/data';
import { BIN, DaemonProcess, writeYaml } from '../helpers/daemon-process';
import { Collector } from '../helpers/mqtt-collector';
import { freePort } from '../helpers/net';

const FRAMES = 300;

interface Row {
  run_id: number;
  frame: number;
  decision: string;
  reason: string | null;
}

function rows(db: string): Row[] {
  const d = new Database(db, { readonly: true });
  try {
    return d.prepare("SELECT run_id, frame, decision, reason FROM frames WHERE series = 'crash' ORDER BY id").all() as Row[];
  } finally {
    d.close();
  }
}

/** Sends frames with ack: true as fast as the daemon takes them, until done or the connection dies. */
async function sendAll(s: FrameSender, frames: number[], cbf: Buffer, onSent?: (n: number) => void): Promise<void> {
  let n = 0;
  for (const frame of frames) {
    if (s.closed) return;
    try {
      await s.send({ series: 'crash', frame, encoding: 'cbf', ack: true }, cbf);
    } catch {
      return;
    }
    onSent?.(++n);
  }
}

t.test('SIGKILL mid-replay, restart: nothing received goes unrecorded, acknowledged resends complete the set', async (t) => {
  if (!needData(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = path.join(dir, 'p.sqlite');
  const mqttPort = await freePort();
  const cfg = writeYaml(
    path.join(dir, 'c.yaml'),
    `instance: crash\nhttp: { port: 0 }\ningest: { tcp: { port: 0, ack: durable } }\nrings: { slots: 8, slot_mb: 1 }\nworkers: { threads: 1 }\nmqtt: { embedded_port: ${mqttPort} }\nprovenance: { path: ${JSON.stringify(db)}, batch_ms: 100 }\n`,
  );
  const cbf = readData('cbf', 'in16c_010001.cbf');

  // Run 1: killed once a third of the frames are acknowledged.
  const first = DaemonProcess.start(cfg);
  t.teardown(() => void first.stop('SIGKILL'));
  const { tcpPort, mqtt, run } = await first.ready();
  const sub = await Collector.connect(mqtt, 'beamedge/crash/reduced', 4);
  const s1 = await FrameSender.connect('127.0.0.1', tcpPort);
  const all = Array.from({ length: FRAMES }, (_, i) => i);
  let killed = false;
  const sending = sendAll(s1, all, cbf, () => {
    if (!killed && s1.acks.length >= FRAMES / 3) {
      killed = true;
      first.child.kill('SIGKILL');
    }
  });
  await first.exited;
  await sending;
  await sub.close();
  const acked = new Set(s1.acks.filter((a) => a.status === 'received').map((a) => a.frame!));
  const published = sub.reduced().map((m) => m.frame);
  t.ok(killed && acked.size >= FRAMES / 3 && acked.size < FRAMES, `killed with ${acked.size} of ${FRAMES} frames acknowledged`);

  // Run 2 on the same database: the crash is found and recorded.
  const second = DaemonProcess.start(cfg);
  t.teardown(() => void second.stop('SIGKILL'));
  const r2 = await second.ready();
  const lostEvent = await second.waitFor((l) => l.kind === 'lost');
  const before = rows(db).filter((r) => r.run_id === run);
  t.equal(before.filter((r) => r.decision === 'received').length, 0, 'no frame of the killed run is left as received');
  const lost = before.filter((r) => r.decision === 'lost');
  t.ok(lost.every((r) => r.reason === 'daemon stopped abnormally'), `${lost.length} frame(s) recorded as lost, with the reason`);
  t.match(lostEvent.msg, new RegExp(`previous run\\(s\\) ${run} stopped abnormally: ${lost.length} frame\\(s\\)`), 'one event says how many were lost');
  t.ok(lost.every((r) => !acked.has(r.frame)), 'no acknowledged frame is among the lost');
  const processed1 = new Set(before.filter((r) => r.decision === 'kept' || r.decision === 'rejected').map((r) => r.frame));
  t.ok([...acked].every((f) => processed1.has(f)), 'every acknowledged frame has its outcome row');
  const kept1 = new Set(before.filter((r) => r.decision === 'kept').map((r) => r.frame));
  t.ok(published.length > 0 && published.every((f) => kept1.has(f)), `every one of the ${published.length} reduced messages on MQTT has its row`);
  const rowsRun1 = new Set(before.map((r) => r.frame));
  t.ok([...rowsRun1].every((f) => f >= 0 && f < FRAMES), 'rows only for frames that were sent');

  // The sender resends what was never acknowledged.
  const resend = all.filter((f) => !acked.has(f));
  const s2 = await FrameSender.connect('127.0.0.1', r2.tcpPort);
  await sendAll(s2, resend, cbf);
  t.ok(await s2.waitAcks(resend.length), `${resend.length} resent frames acknowledged`);
  await s2.close();
  const after = rows(db);
  const processed = new Set(after.filter((r) => r.decision === 'kept' || r.decision === 'rejected').map((r) => r.frame));
  t.equal(processed.size, FRAMES, 'between the two runs, every frame was processed');

  t.equal(await second.stop('SIGTERM'), 0);
  const cli = spawnSync(process.execPath, [BIN, 'provenance', 'frames', '--db', db, '--decision', 'lost', '--json'], { encoding: 'utf8' });
  t.equal(cli.status, 0, cli.stderr);
  t.equal(cli.stdout.split('\n').filter(Boolean).length, lost.length, '`beamedge provenance frames --decision lost` lists them');
});
