// A real Mosquitto broker for tests, when the binary is installed (.ci/run installs it).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { need } from './need';

const BINARY = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => existsSync(p));

/** False (after skipping, or failing under CI=true) when Mosquitto is not installed. */
export function needMosquitto(t: Test): boolean {
  return need(t, !!BINARY, 'mosquitto not installed: apt-get install mosquitto', '.ci/run installs it');
}

/** Starts Mosquitto on 127.0.0.1:port with anonymous access; its config file goes in `dir`. */
export function startMosquitto(port: number, dir: string): ChildProcess {
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  return spawn(BINARY!, ['-c', conf], { stdio: 'ignore' });
}
