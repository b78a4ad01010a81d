// beamedge demo: the whole path on one machine with embedded defaults: an
// MQTT broker, the daemon, and a simulated detector streaming over TCP, with
// a subscriber printing what a beamline dashboard would see.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { parseConfig } from '../config/config';
import { Daemon } from '../daemon';
import { FrameSender, Pacer } from '../sim/sender';
import { framePool, SyntheticDetector } from '../sim/synthetic';
import type { StatsSnapshot } from '../stats/stats';
import { createLogger } from '../system/logger';
import type { Command } from './command';

const REAL_FRAMES = ['in16c_010001.cbf', 'thau_3_2_0001.cbf', 'DLS_I03_smargon_0001.cbf'];

function realFrames(): { name: string; cbf: Buffer }[] | undefined {
  const root = path.resolve(__dirname, '..', '..', '..');
  const dir = [process.env.BEAMEDGE_DATA, path.join(root, '..', 'shared', 'data')].find((d) => d && existsSync(path.join(d, 'cbf', REAL_FRAMES[0]!)));
  return dir ? REAL_FRAMES.map((name) => ({ name, cbf: readFileSync(path.join(dir, 'cbf', name)) })) : undefined;
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run broker + daemon + simulated detector on this machine and show the live figures',
  usage: 'beamedge demo [--rate HZ] [--duration S] [--mqtt-port N] [--http-port N] [--hit-fraction F] [--synthetic]',
  options: {
    rate: { kind: 'number', arg: 'HZ', min: 0.1, help: 'frames per second sent (default 20)' },
    duration: { kind: 'number', arg: 'S', min: 1, help: 'seconds to stream (default 10)' },
    'mqtt-port': { kind: 'number', arg: 'N', integer: true, min: 0, max: 65535, help: 'embedded broker port on 127.0.0.1 (default 1883)' },
    'http-port': { kind: 'number', arg: 'N', integer: true, min: 0, max: 65535, help: 'live page and HTTP API port on 127.0.0.1 (default 8080; 0: any free port)' },
    'hit-fraction': { kind: 'number', arg: 'F', min: 0, help: 'synthetic frames with Bragg spots (default 0.3)' },
    synthetic: { kind: 'flag', help: 'synthetic frames even when the real data set is present' },
  },
  async run(opts, io) {
    const rate = opts.number('rate') ?? 20;
    const duration = opts.number('duration') ?? 10;
    const mqttPort = opts.number('mqtt-port') ?? 1883;
    const httpPort = opts.number('http-port') ?? 8080;
    const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-demo-'));
    const db = path.join(dir, 'provenance.sqlite');
    const loaded = parseConfig(
      [
        'instance: demo',
        'log: { level: warn }',
        'ingest: { tcp: { host: 127.0.0.1, port: 0 } }',
        'rings: { slots: 16, slot_mb: 26 }',
        `mqtt: { embedded_host: 127.0.0.1, embedded_port: ${mqttPort} }`,
        `http: { host: 127.0.0.1, port: ${httpPort} }`,
        `provenance: { path: ${JSON.stringify(db)} }`,
      ].join('\n'),
      'embedded demo defaults',
    );
    const real = opts.flag('synthetic') ? undefined : realFrames();
    let frames: { cbf: Buffer; label: string }[];
    if (real) {
      frames = real.map((f) => ({ cbf: f.cbf, label: f.name }));
      io.out(`frames: real PILATUS data (${real.map((f) => f.name).join(', ')})\n`);
    } else {
      io.out('frames: synthetic PILATUS 1M (rings, Bragg spots on Poisson noise); generating...\n');
      const hitFraction = Math.min(1, opts.number('hit-fraction') ?? 0.3);
      frames = framePool(new SyntheticDetector(), 20, hitFraction).map((f, i) => ({ cbf: f.cbf, label: `${f.hit ? 'hit' : 'blank'} ${i}` }));
    }

    const daemon = await Daemon.start({ loaded, log: createLogger('warn') }).catch((e: Error) => {
      const option = e.message.startsWith('cannot start the embedded MQTT broker') ? '--mqtt-port' : e.message.startsWith('cannot start the HTTP server') ? '--http-port' : undefined;
      throw option ? new Error(`${e.message}; for the demo, pick another port with ${option} N (0: any free port)`) : e;
    });
    io.out(`daemon: TCP ingest 127.0.0.1:${daemon.tcpPort}, MQTT ${daemon.mqttUrl} (topics ${daemon.topicPrefix}#), provenance ${db}\n`);
    io.out(`live page: ${daemon.httpUrl} (metrics: ${daemon.httpUrl}metrics)\n`);
    const sub = mqtt.connect(daemon.mqttUrl);
    let reducedSeen = 0;
    let lastStats: StatsSnapshot | undefined;
    sub.on('message', (topic, payload) => {
      if (topic.endsWith('/reduced')) reducedSeen++;
      else if (topic.endsWith('/stats')) {
        lastStats = JSON.parse(payload.toString()) as StatsSnapshot;
        const s = lastStats;
        const lat = s.latency_ms.p50 === null ? 'n/a' : `p50 ${s.latency_ms.p50.toFixed(1)} ms, p99 ${s.latency_ms.p99!.toFixed(1)} ms`;
        io.out(
          `t=${s.uptime_s.toFixed(0).padStart(3)}s  in ${s.rates_hz.frames_in.toFixed(1).padStart(5)}/s  kept ${String(s.totals.kept).padStart(5)}  rejected ${String(s.totals.rejected).padStart(5)}  ` +
            `dropped ${s.totals.dropped}  errors ${s.totals.errored}  published ${String(reducedSeen).padStart(5)}  latency ${lat}\n`,
        );
      }
    });
    await new Promise<void>((resolve) => sub.once('connect', () => resolve()));
    await sub.subscribeAsync(`${daemon.topicPrefix}#`, { qos: 1 });

    const sender = await FrameSender.connect('127.0.0.1', daemon.tcpPort!);
    const pacer = new Pacer(rate);
    const end = performance.now() + duration * 1000;
    let sent = 0;
    while (performance.now() < end) {
      const f = frames[sent % frames.length]!;
      await sender.send({ series: 'demo', frame: sent, encoding: 'cbf', meta: { label: f.label } }, f.cbf);
      sent++;
      await pacer.next();
    }
    await sender.close();
    await daemon.stop('demo finished');
    await new Promise((r) => setTimeout(r, 200));
    await sub.endAsync();
    const t = daemon.stats.totals;
    io.out(
      [
        '',
        `summary: sent ${sent} frames in ${duration} s; daemon received ${t.frames_in}, processed ${t.processed}: kept ${t.kept}, rejected ${t.rejected}, errors ${t.errored}, dropped ${t.dropped}; published ${t.published}, seen by the subscriber ${reducedSeen}`,
        `provenance: npx beamedge provenance frames --db ${db} --limit 10`,
        '',
      ].join('\n'),
    );
    return t.processed + t.dropped === sent && t.errored === 0 ? 0 : 1;
  },
};
