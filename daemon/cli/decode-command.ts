// beamedge decode FILE: decode one frame and describe it.
import { writeFileSync } from 'node:fs';
import { checkMd5, readCbf } from '../decode/cbf';
import { UsageError } from './args';
import { decodeImage, decodeStream2 } from '../decode/stream2';
import type { Command, Io } from './command';
import { readNamedFile } from '../system/read-file';
import { isHdf5Name, openNxmx, readNxmxFrame } from '../decode/nxmx';

async function decodeNxmxFile(file: string, frameId: number | undefined, out: string | undefined, json: boolean, io: Io): Promise<number> {
  const s = await openNxmx(file);
  if (!s.frames.length) throw new Error(`${file}: no frame stored yet`);
  const fr = frameId === undefined ? s.frames[0]! : s.frames.find((f) => f.id === frameId);
  if (!fr) throw new Error(`${file}: no frame ${frameId} (frames ${s.frames[0]!.id}..${s.frames[s.frames.length - 1]!.id})`);
  const t0 = process.hrtime.bigint();
  const img = readNxmxFrame(s, fr);
  const px = decodeImage(img);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const [min, max] = range(px);
  if (out) {
    const i32 = Int32Array.from(px as ArrayLike<number>);
    writeFileSync(out, new Uint8Array(i32.buffer));
  }
  const g = s.geometry;
  const info = {
    file,
    format: 'NXmx',
    shape: s.shape,
    dtype: s.dtype,
    compression: s.filter,
    frames: s.frames.length,
    declared: s.declared ?? null,
    data_files: s.dataFiles.map((d) => ({ file: d.file, first: d.firstId, frames: d.frames })),
    frame: fr.id,
    min,
    max,
    decodeMs: ms,
    geometry: g ?? null,
    masked: s.mask ? s.mask.reduce((a, v) => a + (v ? 1 : 0), 0) : null,
    saturation: s.maxValid ?? null,
    ...(out ? { out } : {}),
  };
  if (json) io.out(JSON.stringify(info) + '\n');
  else {
    const rows: [string, string][] = [
      ['file', file],
      ['format', `NXmx (EIGER HDF5): ${s.frames.length} frame(s) in ${s.dataFiles.length} data file(s)${s.declared !== undefined ? `, ${s.declared} declared` : ''}`],
      ['shape', `${s.shape[0]} x ${s.shape[1]} (rows x columns) ${s.dtype}, ${s.filter === 'bslz4' ? 'bitshuffle-LZ4' : s.filter} chunks of ${s.chunkFrames} frame(s)`],
      ['geometry', g ? `beam centre ${(g.poni2 / g.pixel2).toFixed(2)}, ${(g.poni1 / g.pixel1).toFixed(2)} px, distance ${g.dist} m, pixel ${g.pixel2} x ${g.pixel1} m${g.wavelength ? `, wavelength ${g.wavelength} m` : ''}` : 'none in the master'],
      ['mask', s.mask ? `${info.masked} pixel(s) masked` : 'none'],
      ['frame', `${fr.id}: min ${min}  max ${max}  decode ${ms.toFixed(2)} ms`],
    ];
    if (out) rows.push(['written', `${out} (int32 little-endian)`]);
    io.out(rows.map(([k, v]) => `${k.padEnd(8)} ${v}`).join('\n') + '\n');
  }
  return 0;
}

function range(px: ArrayLike<number>): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < px.length; i++) {
    const v = px[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

function decodeStream2File(file: string, buf: Buffer, json: boolean, io: Io): number {
  const m = decodeStream2(buf);
  const channels = Object.entries(m.data ?? {}).map(([name, img]) => {
    const t0 = process.hrtime.bigint();
    const px = decodeImage(img);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const [min, max] = range(px);
    return { channel: name, shape: img.shape, dtype: img.dtype, compression: img.encoding, min, max, decodeMs: ms };
  });
  const info = { file, type: m.type, series_id: m.series_id, series_unique_id: m.series_unique_id, image_id: m.image_id, channels };
  if (json) io.out(JSON.stringify(info) + '\n');
  else {
    io.out(`file     ${file}\nmessage  stream v2 ${m.type}, series ${m.series_id ?? '?'}${m.image_id !== undefined ? `, image ${m.image_id}` : ''}\n`);
    for (const c of channels)
      io.out(`${c.channel.padEnd(12)} ${c.shape[0]} x ${c.shape[1]} ${c.dtype} (${c.compression})  min ${c.min}  max ${c.max}  decode ${c.decodeMs.toFixed(2)} ms\n`);
  }
  return 0;
}

export const decodeCommand: Command = {
  name: 'decode',
  summary: 'decode a CBF frame; print shape, dtype, range, MD5 status and timing',
  usage: 'beamedge decode FILE [--frame N] [--out RAW] [--json]   (FILE: a CBF, a DECTRIS stream v2 message .cbor, or an EIGER/NXmx master or data file .h5)',
  options: {
    frame: { kind: 'number', arg: 'N', integer: true, min: 0, help: 'HDF5: the frame (image id, from 0) to decode; default the first' },
    out: { kind: 'string', arg: 'RAW', help: 'write the decoded pixels as little-endian int32' },
    json: { kind: 'flag', help: 'print JSON instead of text' },
  },
  async run(opts, io) {
    if (opts.positional.length !== 1) throw new UsageError('decode takes exactly one FILE');
    const file = opts.positional[0]!;
    if (isHdf5Name(file)) return decodeNxmxFile(file, opts.number('frame'), opts.string('out'), opts.flag('json'), io);
    const buf = readNamedFile(file);
    if (/\.cbor$/i.test(file)) return decodeStream2File(file, buf, opts.flag('json'), io);
    const t0 = process.hrtime.bigint();
    const frame = readCbf(buf, { source: file });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    // MD5 is checked here, after timing the decode: it is not part of the hot path.
    const md5 = checkMd5(buf, frame.binary);
    const [min, max] = range(frame.pixels);
    const out = opts.string('out');
    if (out) {
      const p = frame.pixels;
      writeFileSync(out, new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
    }
    const info = {
      file,
      shape: frame.shape,
      dtype: frame.binary.dtype,
      elementType: frame.binary.elementType,
      compression: frame.binary.conversions,
      min,
      max,
      md5,
      decodeMs: ms,
      mpixelPerSecond: frame.pixels.length / ms / 1e3,
      ...(out ? { out } : {}),
      header: { ...frame.header, lines: undefined },
    };
    if (opts.flag('json')) {
      io.out(JSON.stringify(info) + '\n');
    } else {
      const rows: [string, string][] = [
        ['file', file],
        ['shape', `${frame.shape[0]} x ${frame.shape[1]} (rows x columns)`],
        ['dtype', `${info.dtype} (${info.elementType}, ${info.compression})`],
        ['min', String(min)],
        ['max', String(max)],
        ['md5', md5],
        ['decode', `${ms.toFixed(2)} ms (${info.mpixelPerSecond.toFixed(0)} Mpixel/s)`],
      ];
      if (out) rows.push(['written', `${out} (int32 little-endian, ${frame.pixels.byteLength} bytes)`]);
      io.out(rows.map(([k, v]) => `${k.padEnd(8)} ${v}`).join('\n') + '\n');
    }
    if (md5 === 'mismatch') {
      io.err(`beamedge decode: ${file}: Content-MD5 mismatch: the compressed data is corrupted\n`);
      return 1;
    }
    return 0;
  },
};
