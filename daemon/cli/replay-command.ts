// beamedge replay FILES... --to HOST:PORT: stream CBF files over the TCP framing.
import { DcuPusher } from '../sim/dcu-pusher';
import { FrameSender, Pacer } from '../sim/sender';
import { targetOf, TO_OPTION, UsageError } from './args';
import { decodeStream2 } from '../decode/stream2';
import { endParts, headerParts, imageParts } from '../sim/stream1-sender';
import { endMessage, startMessage } from '../sim/stream2-sender';
import type { Options } from './args';
import type { Command, Io } from './command';
import { readNamedFile } from '../system/read-file';

// Stream v2 captures re-encoded as stream v1: same series, images and pixels.
async function replayStream1(files: string[], opts: Options, io: Io): Promise<number> {
  const messages = files.map((f) => decodeStream2(readNamedFile(f))).filter((m) => m.type === 'image');
  if (!messages.length) throw new UsageError('no image message among the files');
  const channel = Object.keys(messages[0]!.data!)[0]!;
  const [rows, cols] = messages[0]!.data![channel]!.shape;
  const series = messages[0]!.series_id ?? 1;
  const pusher = await DcuPusher.bind(opts.string('zmq-v1')!);
  await new Promise((r) => setTimeout(r, opts.number('wait-ms') ?? 500));
  const pacer = new Pacer(opts.number('rate') ?? 0);
  const loops = opts.number('loop') ?? 1;
  if (!opts.flag('no-start')) await pusher.sendToAll(headerParts(series, { shape: [rows, cols], beam_center: [cols / 2, rows / 2], pixel_size: 75e-6, distance: 0.1, wavelength_A: 1, nimages: messages.length * loops }));
  let sent = 0;
  for (let l = 0; l < loops; l++)
    for (const m of messages) {
      await pusher.send(imageParts(series, m.image_id ?? sent, m.data![channel]!));
      sent++;
      await pacer.next();
    }
  await pusher.sendToAll(endParts(series));
  await pusher.close();
  io.out(`pushed ${sent} stream v1 images on ${opts.string('zmq-v1')}\n`);
  return 0;
}

// The captures hold image and end messages only: a start message is made up
// from the first image (EIGER2 geometry: 75 um pixels, beam at the centre).
async function replayStream2(files: string[], opts: Options, io: Io): Promise<number> {
  const messages = files.map((f) => readNamedFile(f));
  const decoded = messages.map((m) => decodeStream2(m));
  const types = decoded.map((m) => m.type);
  const first = decoded.find((m) => m.type === 'image');
  if (!first) throw new UsageError('no image message among the files');
  const [rows, cols] = Object.values(first.data!)[0]!.shape;
  const pusher = await DcuPusher.bind(opts.string('zmq-v2')!);
  await new Promise((r) => setTimeout(r, opts.number('wait-ms') ?? 500));
  const pacer = new Pacer(opts.number('rate') ?? 0);
  const loops = opts.number('loop') ?? 1;
  const id = first.series_id ?? 1;
  const uid = first.series_unique_id ?? `replay-${id}`;
  const t0 = performance.now();
  if (!opts.flag('no-start'))
    await pusher.sendToAll(startMessage({ series_id: id, series_unique_id: uid, shape: [rows, cols], dtype: 'uint16', beam_center: [cols / 2, rows / 2], pixel_size: 75e-6, distance: 0.1, wavelength_A: 1, number_of_images: messages.length * loops, channels: Object.keys(first.data!) }),
    );
  let sent = 0;
  for (let l = 0; l < loops; l++)
    for (const [i, m] of messages.entries()) {
      const type = types[i];
      if (l < loops - 1 && type === 'end') continue;
      if (type === 'end') await pusher.sendToAll(m);
      else await pusher.send(m);
      sent++;
      await pacer.next();
    }
  if (!types.includes('end')) await pusher.sendToAll(endMessage(id, uid));
  await pusher.close();
  io.out(`pushed ${sent} stream v2 messages in ${((performance.now() - t0) / 1000).toFixed(2)} s on ${opts.string('zmq-v2')}\n`);
  return 0;
}

export interface SendSummary {
  frames: number;
  seconds: number;
}

export const replayCommand: Command = {
  name: 'replay',
  summary: 'send CBF files to a beamedge TCP ingest, as a detector would',
  usage: 'beamedge replay FILES... (--to HOST:PORT | --zmq-v2 BIND | --zmq-v1 BIND) [--rate HZ] [--loop N] [--series ID] [--no-start]',
  options: {
    to: TO_OPTION,
    'zmq-v2': { kind: 'string', arg: 'BIND', help: 'act as a DECTRIS DCU: PUSH stream v2 messages (.cbor files) on this endpoint, e.g. tcp://*:31001' },
    'zmq-v1': { kind: 'string', arg: 'BIND', help: 'act as a DECTRIS DCU on stream v1: the .cbor captures re-encoded as JSON multipart, e.g. tcp://*:9999' },
    'no-start': { kind: 'flag', help: 'with --zmq-v2/v1: do not send a start (header) message first (a consumer joining mid-series)' },
    'wait-ms': { kind: 'number', arg: 'MS', min: 0, help: 'with --zmq-v2: wait this long for consumers to connect (default 500)' },
    rate: { kind: 'number', arg: 'HZ', min: 0, help: 'frames per second (default 0: as fast as accepted)' },
    loop: { kind: 'number', arg: 'N', integer: true, min: 1, help: 'send the files N times (default 1)' },
    series: { kind: 'string', arg: 'ID', help: 'series id (default "replay")' },
  },
  async run(opts, io) {
    const files = opts.positional;
    if (!files.length) throw new UsageError('name at least one FILE');
    if ([opts.has('to'), opts.has('zmq-v2'), opts.has('zmq-v1')].filter(Boolean).length > 1) throw new UsageError('give one of --to, --zmq-v2 and --zmq-v1');
    if (opts.has('zmq-v2')) return replayStream2(files, opts, io);
    if (opts.has('zmq-v1')) return replayStream1(files, opts, io);
    const target = targetOf(opts);
    const payloads = files.map((f) => readNamedFile(f));
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
