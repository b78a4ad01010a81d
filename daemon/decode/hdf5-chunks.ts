// Where a chunked HDF5 dataset's chunks lie in its file, so that compressed
// chunks (EIGER's bitshuffle-LZ4) can be read as they are stored and decoded
// by the native decoder. h5wasm reads everything else (metadata, attributes,
// links) and gives the dataset's object header address (an object reference
// is that address); only the object header's layout message and the chunk
// index are parsed here, for the index DECTRIS file writers and h5py's default
// file format use: the version 1 B-tree (layout message version 3). Layout
// version 4 (libver latest) with a single chunk is read too; its other indexes
// are refused with a message that says how to rewrite the file.
//
// Every offset and count read from the file is checked against the file's
// size and sane limits before use: a hostile file gives an error, never a
// huge allocation or an endless walk.
import { fstatSync, readSync } from 'node:fs';

export class Hdf5FormatError extends Error {
  override name = 'Hdf5FormatError';
}

export interface ChunkInfo {
  /** Dataset element offsets of the chunk's first element, one per dimension. */
  offset: number[];
  /** Absolute file position and stored (filtered) size. */
  address: number;
  size: number;
  /** Bit i set: filter i of the pipeline was skipped for this chunk. */
  filterMask: number;
}

const SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
const UNDEFINED = 0xffffffffffffffffn;
const MAX_BTREE_DEPTH = 32;
const MAX_MESSAGES = 10_000;

/** Reads bounded pieces of one open file. */
class Reader {
  readonly size: number;
  constructor(
    private readonly fd: number,
    readonly name: string,
  ) {
    this.size = fstatSync(fd).size;
  }

  read(pos: number, len: number, what: string): Buffer {
    if (!Number.isSafeInteger(pos) || pos < 0 || len < 0 || pos + len > this.size) throw new Hdf5FormatError(`${this.name}: ${what} at ${pos} (+${len}) lies outside the file (${this.size} bytes)`);
    const b = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const n = readSync(this.fd, b, got, len - got, pos + got);
      if (n === 0) throw new Hdf5FormatError(`${this.name}: ${what}: file ended early`);
      got += n;
    }
    return b;
  }
}

interface Superblock {
  base: number;
  offsetSize: number;
  lengthSize: number;
}

function readUint(b: Buffer, at: number, size: number): number {
  if (size === 8) {
    const v = b.readBigUInt64LE(at);
    if (v === UNDEFINED) return -1;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Hdf5FormatError(`value ${v} too large`);
    return Number(v);
  }
  if (size === 4) return b.readUInt32LE(at);
  if (size === 2) return b.readUInt16LE(at);
  if (size === 1) return b.readUInt8(at);
  throw new Hdf5FormatError(`unsupported field size ${size}`);
}

function superblock(r: Reader): Superblock {
  // The superblock sits at 0, or after a user block of 512 * 2^k bytes.
  for (let at = 0; at + 16 <= r.size; at = at === 0 ? 512 : at * 2) {
    const b = r.read(at, 16, 'superblock');
    if (!b.subarray(0, 8).equals(SIGNATURE)) continue;
    const version = b[8]!;
    if (version === 0 || version === 1) return { base: at, offsetSize: b[13]!, lengthSize: b[14]! };
    if (version === 2 || version === 3) return { base: at, offsetSize: b[9]!, lengthSize: b[10]! };
    throw new Hdf5FormatError(`${r.name}: superblock version ${version} is not supported`);
  }
  throw new Hdf5FormatError(`${r.name}: not an HDF5 file (no superblock signature)`);
}

interface Message {
  type: number;
  data: Buffer;
}

/** The messages of an object header (version 1 or 2), continuation blocks included. */
function headerMessages(r: Reader, sb: Superblock, address: number): Message[] {
  const out: Message[] = [];
  const first = r.read(sb.base + address, 16, 'object header');
  const blocks: { pos: number; len: number; v2: boolean; cont: boolean }[] = [];
  let v2 = false;
  // Version 2: every message header has a creation-order field when the object header's flags say attribute creation order is tracked.
  let orderField = 0;
  if (first.subarray(0, 4).toString('latin1') === 'OHDR') {
    v2 = true;
    if (first[4] !== 2) throw new Hdf5FormatError(`${r.name}: object header version ${first[4]} is not supported`);
    const flags = first[5]!;
    orderField = flags & 0x04 ? 2 : 0;
    let at = 6 + (flags & 0x20 ? 16 : 0) + (flags & 0x10 ? 4 : 0);
    const sizeBytes = 1 << (flags & 3);
    const head = r.read(sb.base + address, at + sizeBytes, 'object header');
    const len = readUint(head, at, sizeBytes);
    at += sizeBytes;
    blocks.push({ pos: sb.base + address + at, len, v2, cont: false });
  } else {
    if (first[0] !== 1) throw new Hdf5FormatError(`${r.name}: object header at ${address}: unknown version ${first[0]}`);
    blocks.push({ pos: sb.base + address + 16, len: first.readUInt32LE(8), v2, cont: false });
  }
  for (let bi = 0; bi < blocks.length; bi++) {
    if (blocks.length > 1000) throw new Hdf5FormatError(`${r.name}: too many object header continuation blocks`);
    const blk = blocks[bi]!;
    let body = r.read(blk.pos, blk.len, 'object header messages');
    if (blk.v2) {
      if (blk.cont) {
        if (body.subarray(0, 4).toString('latin1') !== 'OCHK') throw new Hdf5FormatError(`${r.name}: continuation block without its OCHK signature`);
        body = body.subarray(4, body.length - 4);
      }
    }
    let at = 0;
    const hdr = blk.v2 ? 4 + orderField : 8;
    while (at + hdr <= body.length) {
      if (out.length > MAX_MESSAGES) throw new Hdf5FormatError(`${r.name}: too many object header messages`);
      let type: number, size: number;
      if (blk.v2) {
        type = body[at]!;
        size = body.readUInt16LE(at + 1);
        at += 4 + orderField;
      } else {
        type = body.readUInt16LE(at);
        size = body.readUInt16LE(at + 2);
        at += 8;
      }
      if (at + size > body.length) throw new Hdf5FormatError(`${r.name}: object header message overruns its block`);
      const data = body.subarray(at, at + size);
      at += size;
      if (type === 0x10) {
        const pos = readUint(data, 0, sb.offsetSize);
        const len = readUint(data, sb.offsetSize, sb.lengthSize);
        blocks.push({ pos: sb.base + pos, len, v2: blk.v2, cont: true });
      } else out.push({ type, data });
    }
  }
  return out;
}

export interface ChunkedLayout {
  /** Chunk dimensions in elements (the element-size dimension dropped). */
  chunk: number[];
  chunks: ChunkInfo[];
}

/** The chunks of the dataset whose object header is at `address` (relative to the superblock), sorted by offset. */
export function datasetChunks(fd: number, name: string, address: number, rank: number): ChunkedLayout {
  const r = new Reader(fd, name);
  const sb = superblock(r);
  if (sb.offsetSize !== 8 || sb.lengthSize !== 8) throw new Hdf5FormatError(`${name}: ${sb.offsetSize}-byte offsets / ${sb.lengthSize}-byte lengths are not supported`);
  const layout = headerMessages(r, sb, address).find((m) => m.type === 0x08);
  if (!layout) throw new Hdf5FormatError(`${name}: the dataset has no layout message`);
  const d = layout.data;
  const version = d[0]!;
  if (d[1] !== 2) throw new Hdf5FormatError(`${name}: the dataset is not chunked (layout class ${d[1]})`);
  if (version === 3) {
    const dims = d[2]!;
    if (dims !== rank + 1) throw new Hdf5FormatError(`${name}: layout has ${dims} dimensions, dataset rank ${rank}`);
    const btree = readUint(d, 3, 8);
    const chunk: number[] = [];
    for (let i = 0; i < rank; i++) chunk.push(d.readUInt32LE(11 + 4 * i));
    const chunks: ChunkInfo[] = [];
    if (btree >= 0) walkBtree(r, sb, btree, dims, chunks, 0);
    chunks.sort((a, b) => compareOffsets(a.offset, b.offset));
    return { chunk, chunks };
  }
  if (version === 4) {
    const flags = d[2]!;
    const dims = d[3]!;
    const enc = d[4]!;
    if (dims !== rank + 1 || enc < 1 || enc > 8) throw new Hdf5FormatError(`${name}: layout message does not match the dataset`);
    const chunk: number[] = [];
    for (let i = 0; i < rank; i++) chunk.push(readUint(Buffer.concat([d.subarray(5 + enc * i, 5 + enc * (i + 1)), Buffer.alloc(8 - enc)]), 0, 8));
    let at = 5 + enc * dims;
    const index = d[at++]!;
    if (index === 1) {
      let size = -1;
      let mask = 0;
      if (flags & 0x02) {
        size = readUint(d, at, 8);
        mask = d.readUInt32LE(at + 8);
        at += 12;
      }
      const address = readUint(d, at, 8);
      if (size < 0) throw new Hdf5FormatError(`${name}: unfiltered single-chunk datasets are read by HDF5 itself`);
      return { chunk, chunks: address < 0 ? [] : [{ offset: new Array<number>(rank).fill(0), address: sb.base + address, size, filterMask: mask }] };
    }
    const names: Record<number, string> = { 2: 'implicit', 3: 'fixed array', 4: 'extensible array', 5: 'version 2 B-tree' };
    throw new Hdf5FormatError(`${name}: chunk index "${names[index] ?? index}" (HDF5 libver latest) is not read; rewrite the file with the earliest format, e.g. h5repack --low=0 --high=1, or h5py's default libver`);
  }
  throw new Hdf5FormatError(`${name}: layout message version ${version} is not supported`);
}

function compareOffsets(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** Version 1 B-tree of raw data chunks (node type 1): keys are (size, filter mask, offsets), children are chunks at level 0. */
function walkBtree(r: Reader, sb: Superblock, address: number, dims: number, out: ChunkInfo[], depth: number): void {
  if (depth > MAX_BTREE_DEPTH) throw new Hdf5FormatError(`${r.name}: chunk B-tree deeper than ${MAX_BTREE_DEPTH}`);
  const head = r.read(sb.base + address, 24, 'chunk B-tree node');
  if (head.subarray(0, 4).toString('latin1') !== 'TREE') throw new Hdf5FormatError(`${r.name}: chunk B-tree node at ${address} lacks its TREE signature`);
  if (head[4] !== 1) throw new Hdf5FormatError(`${r.name}: B-tree node type ${head[4]} where raw data chunks were expected`);
  const level = head[5]!;
  const entries = head.readUInt16LE(6);
  const keySize = 8 + 8 * dims;
  const body = r.read(sb.base + address + 24, entries * (keySize + 8) + keySize, 'chunk B-tree entries');
  for (let i = 0; i < entries; i++) {
    const k = i * (keySize + 8);
    const size = body.readUInt32LE(k);
    const filterMask = body.readUInt32LE(k + 4);
    const offset: number[] = [];
    for (let j = 0; j < dims - 1; j++) offset.push(readUint(body, k + 8 + 8 * j, 8));
    const child = readUint(body, k + keySize, 8);
    if (child < 0) throw new Hdf5FormatError(`${r.name}: chunk B-tree has an undefined child address`);
    if (level === 0) {
      if (sb.base + child + size > r.size) throw new Hdf5FormatError(`${r.name}: chunk at ${child} (+${size}) lies outside the file (${r.size} bytes): is the file still being written?`);
      out.push({ offset, address: sb.base + child, size, filterMask });
    } else walkBtree(r, sb, child, dims, out, depth + 1);
  }
}

/** A stored chunk's bytes, as the filters left them. */
export function readChunk(fd: number, name: string, c: ChunkInfo): Buffer {
  return new Reader(fd, name).read(c.address, c.size, 'chunk');
}
