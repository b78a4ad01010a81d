// Runs `beamedge run` as a child process, the way systemd does, and reads its
// JSON log lines to learn the ports it bound.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './data';

export const BIN = path.join(repoRoot, 'dist', 'daemon', 'cli', 'main.js');

export interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

export class DaemonProcess {
  readonly logs: LogLine[] = [];
  private readonly waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly child: ChildProcess,
    readonly configPath: string,
  ) {
    let buf = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, nl).replace(/^<\d>/, '');
        buf = buf.slice(nl + 1);
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          line = { level: 'raw', msg: text };
        }
        this.logs.push(line);
        for (const w of [...this.waiters]) if (w.match(line)) (this.waiters.splice(this.waiters.indexOf(w), 1), w.resolve(line));
      }
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static start(configPath: string, env: Record<string, string> = {}): DaemonProcess {
    const child = spawn(process.execPath, [BIN, 'run', '--config', configPath], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    return new DaemonProcess(child, configPath);
  }

  waitFor(match: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    const seen = this.logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for a log line; last lines:\n${this.logs.slice(-8).map((l) => JSON.stringify(l)).join('\n')}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
    });
  }

  /** Waits for start-up; returns the TCP ingest port, the MQTT URL and the live page's address (when http.enabled). */
  async ready(): Promise<{ tcpPort: number; mqtt: string; run: number; http: string | undefined }> {
    const l = await Promise.race([
      this.waitFor((x) => x.msg === 'beamedge started'),
      this.exited.then((code) => {
        throw new Error(`daemon exited with ${code} before start-up:\n${this.logs.map((x) => JSON.stringify(x)).join('\n')}`);
      }),
    ]);
    const tcp = (l.sources as { kind: string; port: number }[]).find((s) => s.kind === 'tcp');
    return { tcpPort: tcp?.port ?? 0, mqtt: l.mqtt as string, run: l.run as number, http: l.http as string | undefined };
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    this.child.kill(signal);
    return this.exited;
  }
}

export function writeYaml(file: string, text: string): string {
  writeFileSync(file, text);
  return file;
}
