// Reloads must not leak: 100 configuration reloads while PILATUS3 6M frames
// flow, every fifth changing the binning (so pixel-to-bin maps are built and
// evicted, the rest reusing the map), and the daemon's resident memory stays
// within 50 MB of where it started.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { FrameSender, Pacer } from '../../daemon/sim/sender';
import { needData, readData } from '../helpers/data';
import { DaemonProcess, writeYaml } from '../helpers/daemon-process';
import { until } from '../helpers/wait';

const RELOADS = 100;
const NPTS = [500, 600, 700, 800, 900, 1000];

function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!;
  return Number(kb) / 1024;
}

t.test(`${RELOADS} reloads with frames flowing: RSS stays within 50 MB`, async (t) => {
  if (!needData(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-reloads-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfgPath = path.join(dir, 'c.yaml');
  const config = (i: number) =>
    `instance: reloads\nhttp: { port: 0 }\nlog: { level: info }\ningest: { tcp: { port: 0 } }\nrings: { slots: 4, slot_mb: 8 }\nworkers: { threads: 1 }\nmqtt: { embedded_port: 0 }\n` +
    `provenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))}, batch_ms: 20 }\n` +
    `pipeline: { veto: { threshold: ${20 + i} }, integrate: { npt: ${NPTS[Math.floor(i / 5) % NPTS.length]} } }\n`;
  writeYaml(cfgPath, config(0));
  const d = DaemonProcess.start(cfgPath);
  t.teardown(() => void d.stop('SIGKILL'));
  const { tcpPort } = await d.ready();
  const pid = d.child.pid!;
  const db = new Database(path.join(dir, 'p.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const latest = db.prepare('SELECT max(epoch) AS e FROM frames');
  const latestEpoch = () => (latest.get() as { e: number | null }).e ?? 0;

  // Frames at 20 Hz for the whole test.
  const cbf = readData('cbf', 'thau_3_2_0001.cbf');
  const sender = await FrameSender.connect('127.0.0.1', tcpPort);
  let sending = true;
  let sent = 0;
  const loop = (async () => {
    const pace = new Pacer(20);
    while (sending) {
      await sender.send({ series: 'r', frame: sent++, encoding: 'cbf' }, cbf);
      await pace.next();
    }
  })();

  let epoch = 1;
  const reload = async (i: number) => {
    writeYaml(cfgPath, config(i));
    d.child.kill('SIGHUP');
    epoch++;
    await d.waitFor((l) => l.kind === 'reload' && l.epoch === epoch);
    // A frame processed under the new epoch, so its map was really built.
    await until(() => latestEpoch() >= epoch, `a frame of epoch ${epoch}`);
  };
  // Warm up until every binning has been built once and the caches are full.
  for (let i = 1; i <= NPTS.length * 5; i++) await reload(i);
  const start = rssMb(pid);
  for (let i = 1; i <= RELOADS; i++) await reload(NPTS.length * 5 + i);
  const end = rssMb(pid);
  sending = false;
  await loop;
  await sender.close();
  t.ok(end - start < 50, `RSS ${start.toFixed(0)} MB after warm-up, ${end.toFixed(0)} MB after ${RELOADS} reloads (${(end - start).toFixed(1)} MB growth), ${sent} frames sent`);
  const decisions = db.prepare('SELECT decision, count(*) AS n, min(reason) AS reason FROM frames GROUP BY decision').all() as { decision: string; n: number; reason: string }[];
  t.ok(decisions.every((r) => r.decision === 'kept' || r.decision === 'rejected' || r.decision === 'received'), `frames processed, not failed: ${JSON.stringify(decisions)}`);
  t.equal(await d.stop('SIGTERM'), 0);
});
