// numpy .npz reader for the pyFAI golden outputs: a zip of .npy members.
import { inflateRawSync } from 'node:zlib';
import { parseNpy, type NpyArray } from '../../daemon/calibrate/pixel-image';

export function readNpzMembers(buf: Buffer): Map<string, Buffer> {
  // End of central directory record, searched from the end (comment may follow).
  let eocd = -1;
  for (let i = buf.length - 22; i >= 0; i--)
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd < 0) throw new Error('npz: no zip directory');
  const entries = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const out = new Map<string, Buffer>();
  for (let e = 0; e < entries; e++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error('npz: bad central directory');
    const method = buf.readUInt16LE(p + 10);
    const csize = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.toString('latin1', p + 46, p + 46 + nameLen);
    const dataStart = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(dataStart, dataStart + csize);
    out.set(name.replace(/\.npy$/, ''), method === 0 ? raw : inflateRawSync(raw));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

export function npzArray(members: Map<string, Buffer>, name: string): NpyArray {
  const buf = members.get(name);
  if (!buf) throw new Error(`npz: no member ${name}`);
  return parseNpy(buf, name);
}
