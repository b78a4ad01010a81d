// The shipped unit: systemd's own rating of its sandbox, and proof that the
// sandbox still lets the daemon do its job. The second part runs the daemon
// under strace with every ingest, the embedded broker, a subscriber and
// sd_notify in use, and checks each system call and socket family it made
// against what the unit allows.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { FrameSender } from '../../daemon/sim/sender';
import { repoRoot } from '../helpers/data';
import { BIN, DaemonProcess, writeYaml } from '../helpers/daemon-process';
import { Collector } from '../helpers/mqtt-collector';
import { freePort } from '../helpers/net';
import { need } from '../helpers/need';

const UNIT = path.join(repoRoot, 'systemd', 'beamedge.service');
const MAX_EXPOSURE = 2.5;

const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const needAnalyze = (t: Parameters<typeof need>[0]) => need(t, hasAnalyze, 'systemd-analyze not installed: apt-get install systemd', '.ci/run installs it');

/** Values of every `Key=` line of the unit, in order. */
function directives(key: string): string[] {
  return readFileSync(UNIT, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1).trim());
}

t.test(`systemd-analyze security rates the unit ${MAX_EXPOSURE} or lower`, async (t) => {
  if (!needAnalyze(t)) return;
  const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', UNIT], { encoding: 'utf8' });
  const m = /Overall exposure level for beamedge\.service: (\d+(?:\.\d+)?)/.exec(r.stdout);
  t.ok(m, `an overall exposure line (exit ${r.status}): ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
  const score = Number(m?.[1]);
  t.ok(score <= MAX_EXPOSURE, `exposure ${score} <= ${MAX_EXPOSURE}`);
  // V8's JIT needs writable executable memory.
  t.notOk(directives('MemoryDenyWriteExecute').some((v) => /^(yes|true|1|on)$/i.test(v)), 'no MemoryDenyWriteExecute');
});

/** The system calls in a filter group, nested groups expanded. */
function syscallGroup(name: string, seen = new Set<string>()): Set<string> {
  const out = new Set<string>();
  if (seen.has(name)) return out;
  seen.add(name);
  const r = spawnSync('systemd-analyze', ['syscall-filter', '--no-pager', name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`systemd-analyze syscall-filter ${name}: ${r.stderr}`);
  for (const line of r.stdout.split('\n').slice(1)) {
    const w = line.trim();
    if (!w || w.startsWith('#')) continue;
    if (w.startsWith('@')) for (const s of syscallGroup(w, seen)) out.add(s);
    else out.add(w);
  }
  return out;
}

/** What the unit's SystemCallFilter= lines allow: the first line's allow list, minus each ~ list. */
function allowedSyscalls(): Set<string> {
  const expand = (words: string) => new Set(words.split(/\s+/).flatMap((w) => (w.startsWith('@') ? [...syscallGroup(w)] : [w])));
  let allowed: Set<string> | undefined;
  for (const line of directives('SystemCallFilter')) {
    if (line.startsWith('~')) for (const s of expand(line.slice(1))) allowed?.delete(s);
    else allowed = new Set([...(allowed ?? []), ...expand(line)]);
  }
  if (!allowed) throw new Error('the unit has no SystemCallFilter allow list');
  return allowed;
}

t.test("every system call and socket family the daemon uses is allowed by the unit's filters", async (t) => {
  const strace = spawnSync('strace', ['-qq', '-o', '/dev/null', 'true']).status === 0;
  if (!needAnalyze(t) || !need(t, strace, 'strace not installed or cannot trace here: apt-get install strace', '.ci/run installs it')) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'watch'));
  const cfg = writeYaml(
    path.join(dir, 'c.yaml'),
    `instance: unit
http: { port: 0 }
ingest:
  tcp: { port: 0 }
  dectris: { enabled: true, endpoint: "tcp://127.0.0.1:${await freePort()}" }
  watch: { enabled: true, directory: watch, poll_ms: 50 }
rings: { slots: 2, slot_mb: 1 }
workers: { threads: 1 }
mqtt: { embedded_port: 0 }
provenance: { path: p.sqlite, batch_ms: 50 }
stats: { interval_ms: 200 }
`,
  );
  const trace = path.join(dir, 'trace');
  // Nothing listens on the notify socket: the datagram fails, the socket is still made.
  const child = spawn('strace', ['-f', '-qq', '-o', trace, process.execPath, BIN, 'run', '--config', cfg], {
    env: { ...process.env, NOTIFY_SOCKET: path.join(dir, 'notify.sock') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const d = new DaemonProcess(child, cfg);
  t.teardown(() => void d.stop('SIGKILL'));
  const { tcpPort, mqtt } = await d.ready();
  const sub = await Collector.connect(mqtt, 'beamedge/unit/#');
  const sender = await FrameSender.connect('127.0.0.1', tcpPort);
  await sender.send({ series: 's', frame: 0, encoding: 'cbf' }, Buffer.from('not a CBF file'));
  await sender.close();
  writeFileSync(path.join(dir, 'watch', 'img_0001.cbf'), 'not a CBF file either');
  await sub.waitFor('two frame errors', () => sub.events().filter((e) => e.kind === 'frame_error').length >= 2);
  await sub.waitFor('status', (m) => m.topic.endsWith('/status'));
  const { pid } = JSON.parse(sub.on('status')[0]!.payload.toString()) as { pid: number };
  await sub.close();
  // A signal to strace would end the tracing, not the daemon: signal the daemon itself.
  process.kill(pid, 'SIGTERM');
  t.equal(await d.exited, 0, 'clean exit under strace');

  const lines = readFileSync(trace, 'utf8').split('\n');
  const used = new Set<string>();
  for (const l of lines) {
    const m = /^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)/.exec(l);
    if (m) used.add(m[1]!);
  }
  t.ok(used.size > 30, `traced ${used.size} distinct system calls`);
  t.ok(used.has('sched_setscheduler'), "ZeroMQ's I/O thread sets its scheduling: why @resources stays allowed");
  const allowed = allowedSyscalls();
  // SQLite gives its -wal/-shm to the database's owner only when running as
  // root; the unit runs as User=beamedge, where it never calls fchown.
  const rootOnly = process.getuid?.() === 0 ? ['fchown'] : [];
  const refused = [...used].filter((s) => !allowed.has(s) && !rootOnly.includes(s)).sort();
  t.same(refused, [], 'no system call outside SystemCallFilter');

  const families = new Set(lines.flatMap((l) => /\bsocket\((AF_[A-Z0-9]+)/.exec(l)?.[1] ?? []));
  const restrict = new Set(directives('RestrictAddressFamilies').flatMap((v) => v.split(/\s+/)));
  t.ok(families.has('AF_UNIX') && families.has('AF_INET'), `families used: ${[...families].join(' ')}`);
  t.same([...families].filter((f) => !restrict.has(f)), [], 'no socket family outside RestrictAddressFamilies');
});
