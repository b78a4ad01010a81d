// A real Mosquitto broker for tests, when the binary is installed (.ci/run installs it).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { need } from './need';

const BINARY = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => existsSync(p));
/** Debian ships it in the mosquitto package. */
export const MOSQUITTO_PASSWD = '/usr/bin/mosquitto_passwd';

/** False (after skipping, or failing under CI=true) when Mosquitto is not installed. */
export function needMosquitto(t: Test): boolean {
  return need(t, !!BINARY, 'mosquitto not installed: apt-get install mosquitto', '.ci/run installs it');
}

export interface MosquittoSecurity {
  /** PEM files for a TLS listener. */
  tls?: { ca: string; cert: string; key: string };
  /** users -> passwords; written with mosquitto_passwd, anonymous clients refused. */
  users?: Record<string, string>;
  /**
   * Keep sessions and queued messages in `dir` across a restart (clean
   * session off), with no limit on what is queued for an offline subscriber:
   * what a subscriber that must not miss messages uses in production.
   */
  persistent?: boolean;
}

/** Starts Mosquitto on 127.0.0.1:port, anonymous unless `security.users`; its files go in `dir`. */
export function startMosquitto(port: number, dir: string, security: MosquittoSecurity = {}): ChildProcess {
  const conf = path.join(dir, 'mosquitto.conf');
  // Started as root, Mosquitto would switch to user mosquitto, which cannot read
  // the test's private files: stay whoever runs the test.
  const lines = [`user ${userInfo().username}`, `listener ${port} 127.0.0.1`];
  lines.push(...(security.persistent ? ['persistence true', `persistence_location ${dir}/`, 'max_queued_messages 0'] : ['persistence false']));
  if (security.tls) lines.push(`cafile ${security.tls.ca}`, `certfile ${security.tls.cert}`, `keyfile ${security.tls.key}`);
  if (security.users) {
    const file = path.join(dir, 'mosquitto.passwd');
    writeFileSync(file, '', { mode: 0o600 });
    for (const [user, password] of Object.entries(security.users)) {
      const r = spawnSync(MOSQUITTO_PASSWD, ['-b', file, user, password], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`mosquitto_passwd failed: ${r.stderr}`);
    }
    chmodSync(file, 0o600);
    lines.push('allow_anonymous false', `password_file ${file}`);
  } else {
    lines.push('allow_anonymous true');
  }
  writeFileSync(conf, lines.join('\n') + '\n');
  return spawn(BINARY!, ['-c', conf], { stdio: 'ignore' });
}

/** SIGTERM (Mosquitto saves its state when persistent), then waits for the exit. */
export async function stopMosquitto(broker: ChildProcess): Promise<void> {
  if (broker.exitCode !== null || broker.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => broker.once('exit', () => resolve()));
  broker.kill('SIGTERM');
  await exited;
}
