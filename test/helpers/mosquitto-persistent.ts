// Mosquitto with persistence, for subscribers whose session must survive a
// broker restart (clean session off): what a subscriber that must not miss
// messages uses in production.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const BINARY = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => existsSync(p));

/** Starts Mosquitto on 127.0.0.1:port, anonymous, saving sessions and queued messages in `dir` when it stops. */
export function startPersistentMosquitto(port: number, dir: string): ChildProcess {
  const conf = path.join(dir, 'mosquitto-persistent.conf');
  // max_queued_messages 0: no limit on what is queued for an offline persistent subscriber.
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${dir}/\nmax_queued_messages 0\n`);
  return spawn(BINARY!, ['-c', conf], { stdio: 'ignore' });
}

/** SIGTERM (Mosquitto saves its state), then waits for the exit. */
export async function stopMosquitto(broker: ChildProcess): Promise<void> {
  if (broker.exitCode !== null || broker.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => broker.once('exit', () => resolve()));
  broker.kill('SIGTERM');
  await exited;
}
