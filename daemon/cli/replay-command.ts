// beamedge replay FILES... --to HOST:PORT: stream CBF files over the TCP framing.
import { readFileSync } from 'node:fs';
import { FrameSender, Pacer } from '../sim/sender';
import { targetOf, TO_OPTION, UsageError } from './args';
import type { Command } from './command';

export interface SendSummary {
  frames: number;
  seconds: number;
}

export const replayCommand: Command = {
  name: 'replay',
  summary: 'send CBF files to a beamedge TCP ingest, as a detector would',
  usage: 'beamedge replay FILES... --to HOST:PORT [--rate HZ] [--loop N] [--series ID]',
  options: {
    to: TO_OPTION,
    rate: { kind: 'number', arg: 'HZ', min: 0, help: 'frames per second (default 0: as fast as accepted)' },
    loop: { kind: 'number', arg: 'N', integer: true, min: 1, help: 'send the files N times (default 1)' },
    series: { kind: 'string', arg: 'ID', help: 'series id (default "replay")' },
  },
  async run(opts, io) {
    const files = opts.positional;
    if (!files.length) throw new UsageError('name at least one FILE');
    const target = targetOf(opts);
    const payloads = files.map((f) => readFileSync(f));
    const sender = await FrameSender.connect(target.host, target.port);
    const pacer = new Pacer(opts.number('rate') ?? 0);
    const loops = opts.number('loop') ?? 1;
    const series = opts.string('series') ?? 'replay';
    const t0 = performance.now();
    let frame = 0;
    for (let l = 0; l < loops; l++)
      for (const p of payloads) {
        await sender.send({ series, frame: frame++, encoding: 'cbf' }, p);
        await pacer.next();
      }
    await sender.close();
    const s = (performance.now() - t0) / 1000;
    io.out(`sent ${frame} frames in ${s.toFixed(2)} s (${(frame / s).toFixed(1)} frames/s) to ${target.host}:${target.port}\n`);
    return 0;
  },
};
