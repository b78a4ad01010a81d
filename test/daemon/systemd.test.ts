// The sd_notify protocol on a real AF_UNIX datagram socket (bound by a small
// Python receiver, since Node has no unix datagram sockets), through a start,
// a reload and a SIGTERM of `beamedge run`.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { native } from '../../daemon/native';
import { DaemonProcess, writeYaml } from '../helpers/daemon-process';

const RECEIVER = String.raw`
import socket, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps(data.decode()), flush=True)
`;

t.test('READY, RELOADING, WATCHDOG, STATUS and STOPPING reach NOTIFY_SOCKET', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-sd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'notify.sock');
  const receiver = spawn('python3', ['-c', RECEIVER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => receiver.kill());
  const datagrams: string[] = [];
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    receiver.stdout.setEncoding('utf8');
    receiver.stdout.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'bound') resolve();
        else datagrams.push(JSON.parse(line) as string);
      }
    });
    receiver.once('exit', (code) => reject(new Error(`python receiver exited with ${code}`)));
  });
  const yaml = (threshold: number) => `instance: sd
http: { port: 0 }
ingest: { tcp: { port: 0 } }
rings: { slots: 2, slot_mb: 1 }
workers: { threads: 1 }
pipeline: { veto: { threshold: ${threshold} } }
mqtt: { embedded_port: 0 }
provenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))} }
`;
  const cfg = writeYaml(path.join(dir, 'c.yaml'), yaml(20));
  const d = DaemonProcess.start(cfg, { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' });
  t.teardown(() => void d.stop('SIGKILL'));
  await d.ready();
  const waitFor = async (re: RegExp, what: string) => {
    const end = Date.now() + 15_000;
    while (!datagrams.some((g) => re.test(g))) {
      if (Date.now() > end) throw new Error(`no ${what} datagram; got ${JSON.stringify(datagrams)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return datagrams.find((g) => re.test(g))!;
  };
  const ready = await waitFor(/^READY=1$/m, 'READY');
  t.match(ready, /^STATUS=running: /m, 'READY carries a STATUS line');
  t.match(ready, new RegExp(`^MAINPID=${d.child.pid}$`, 'm'));
  await waitFor(/^WATCHDOG=1$/m, 'WATCHDOG');
  writeFileSync(cfg, yaml(25));
  d.child.kill('SIGHUP');
  const reloading = await waitFor(/^RELOADING=1$/m, 'RELOADING');
  t.match(reloading, /^MONOTONIC_USEC=\d+$/m);
  await waitFor(/^STATUS=running, configuration epoch 2$/m, 'READY after reload');
  const i = datagrams.findIndex((g) => /^RELOADING=1/m.test(g));
  t.ok(datagrams.slice(i + 1).some((g) => /^READY=1$/m.test(g)), 'READY=1 follows RELOADING=1');
  t.equal(await d.stop('SIGTERM'), 0, 'clean exit on SIGTERM');
  await waitFor(/^STOPPING=1$/m, 'STOPPING');
});

t.test('without NOTIFY_SOCKET nothing is sent and nothing fails', async (t) => {
  const saved = process.env.NOTIFY_SOCKET;
  delete process.env.NOTIFY_SOCKET;
  t.equal(native.sdNotify('READY=1'), false);
  process.env.NOTIFY_SOCKET = '/nonexistent/dir/notify.sock';
  t.throws(() => native.sdNotify('READY=1'), /sd_notify to \/nonexistent\/dir\/notify.sock/);
  if (saved === undefined) delete process.env.NOTIFY_SOCKET;
  else process.env.NOTIFY_SOCKET = saved;
});
