// Seed corpus for the libFuzzer targets (native/fuzz), made from the real
// detector data: small crops of real CBF frames under their real headers, and
// runs of the real compressed blocks of the DECTRIS stream v2 captures with
// the header rewritten to match. Without the data, synthetic frames stand in.
// Usage: node dist/test/fuzz/seeds.js OUT_DIR (npm run fuzz calls it).
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { md5Base64 } from '../../daemon/decode/cbf';
import { decodeImage, decodeStream2, type EncodedImage } from '../../daemon/decode/stream2';
import { native } from '../../daemon/native';
import { SyntheticDetector } from '../../daemon/sim/synthetic';
import { CBF_FILES, dataDir, readData } from '../helpers/data';
import { prefixed } from './inputs';

type Seeds = Map<string, Map<string, Uint8Array>>;

function add(seeds: Seeds, target: string, name: string, bytes: Uint8Array): void {
  if (!seeds.has(target)) seeds.set(target, new Map());
  seeds.get(target)!.set(name, bytes);
}

interface Crop {
  name: string;
  row: number;
  col: number;
  rows: number;
  cols: number;
}

/** A rows x cols window of a CBF frame, re-encoded under the frame's own text and MIME headers. */
function cropCbf(buf: Buffer, c: Crop): { cbf: Buffer; binary: Buffer; count: number } {
  const { binary: b, pixels } = native.cbfDecode(buf);
  const width = b.fastest!;
  const height = b.second ?? 1;
  const row = Math.max(0, Math.min(c.row, height - c.rows));
  const col = Math.max(0, Math.min(c.col, width - c.cols));
  const rows = Math.min(c.rows, height);
  const cols = Math.min(c.cols, width);
  const px = new Int32Array(rows * cols);
  for (let r = 0; r < rows; r++) px.set(pixels.subarray((row + r) * width + col, (row + r) * width + col + cols), r * cols);
  const binary = native.byteOffsetEncode(px);
  const mime = buf
    .subarray(b.sectionOffset, b.dataOffset - 4)
    .toString('latin1')
    .replace(/X-Binary-Size:[ \t]*\d+/, `X-Binary-Size: ${binary.length}`)
    .replace(/X-Binary-Number-of-Elements:[ \t]*\d+/, `X-Binary-Number-of-Elements: ${px.length}`)
    .replace(/X-Binary-Size-Fastest-Dimension:[ \t]*\d+/, `X-Binary-Size-Fastest-Dimension: ${cols}`)
    .replace(/X-Binary-Size-Second-Dimension:[ \t]*\d+/, `X-Binary-Size-Second-Dimension: ${rows}`)
    .replace(/Content-MD5:[ \t]*\S+/, `Content-MD5: ${md5Base64(binary)}`);
  // The closing boundary when the frame has one, without the padding before it.
  const after = buf.subarray(b.dataOffset + b.binarySize);
  const close = after.indexOf('--CIF-BINARY-FORMAT-SECTION----');
  const cbf = Buffer.concat([
    buf.subarray(0, b.sectionOffset),
    Buffer.from(mime, 'latin1'),
    buf.subarray(b.dataOffset - 4, b.dataOffset),
    binary,
    close >= 0 ? after.subarray(close) : Buffer.alloc(0),
  ]);
  return { cbf, binary, count: px.length };
}

function crops(buf: Buffer): Crop[] {
  const { binary: b, pixels } = native.cbfDecode(buf);
  const width = b.fastest!;
  const height = b.second ?? 1;
  let max = 0;
  for (let i = 1; i < pixels.length; i++) if (pixels[i]! > pixels[max]!) max = i;
  return [
    { name: 'centre', row: (height >> 1) - 20, col: (width >> 1) - 20, rows: 40, cols: 40 },
    // Module gaps (-1) of a PILATUS: rows 195-211, columns 487-493.
    { name: 'gap', row: 180, col: 470, rows: 40, cols: 40 },
    // The brightest pixel: the int16 and int32 escapes.
    { name: 'brightest', row: Math.floor(max / width) - 12, col: (max % width) - 12, rows: 24, cols: 24 },
  ];
}

// Tile selectors of byte_offset_harness.h: 16 elements (the AVX2 step), 4097, 1 and 33.
const TILE_SELECTORS = [5, 14, 0, 8];
const INTEGRATE_SELECTORS: [number, number][] = [[0x00, 0x00], [0x13, 0x03], [0x2e, 0x1c], [0x71, 0x0f], [0x86, 0x00]];

function cbfSeeds(seeds: Seeds, name: string, buf: Buffer): void {
  for (const [k, c] of crops(buf).entries()) {
    const { cbf, binary, count } = cropCbf(buf, c);
    const id = `${name}_${c.name}`;
    add(seeds, 'cbf', id, cbf);
    const [mapSel, frameSel] = INTEGRATE_SELECTORS[k % INTEGRATE_SELECTORS.length]!;
    const options = Buffer.alloc(18);
    options.writeUInt8(mapSel, 0);
    options.writeUInt8(frameSel, 1);
    options.writeDoubleLE(1000, 2); // saturation limit
    options.writeDoubleLE(20, 10); // lit-pixel threshold
    add(seeds, 'cbf_integrate', id, Buffer.concat([options, cbf]));
    for (const target of ['byte_offset_avx2', 'byte_offset_scalar'])
      add(seeds, target, id, prefixed(TILE_SELECTORS[k % TILE_SELECTORS.length]!, count, binary));
  }
}

/** Values that take every escape width, the 64-bit one included (a jump from -2^31 to 2^31 - 1). */
function escapeSeeds(seeds: Seeds): void {
  const v = Int32Array.from([0, 127, -1, -128, 128, -129, 32767, -32768, 32768, 0, 2147483647, -2147483648, 2147483647, -5, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 100000, -100000]);
  for (const target of ['byte_offset_avx2', 'byte_offset_scalar']) add(seeds, target, 'escapes', prefixed(5, v.length, native.byteOffsetEncode(v)));
}

interface Frame {
  size: number;
  block: number;
  blocks: { at: number; end: number }[];
}

/** The 12-byte header and the block boundaries of a framed LZ4 or bitshuffle-LZ4 payload. */
function parseFrame(b: Buffer): Frame {
  const f: Frame = { size: Number(b.readBigUInt64BE(0)), block: b.readUInt32BE(8), blocks: [] };
  for (let pos = 12; pos + 4 <= b.length; ) {
    const end = pos + 4 + b.readUInt32BE(pos);
    if (end > b.length) break;
    f.blocks.push({ at: pos, end });
    pos = end;
  }
  return f;
}

function header(size: number, block: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeBigUInt64BE(BigInt(size));
  h.writeUInt32BE(block, 8);
  return h;
}

/** Blocks [from, to) of a real frame, under a header that says how much they decode to. */
function subFrame(b: Buffer, f: Frame, from: number, to: number, decoded: number, tail: Uint8Array = new Uint8Array(0)): Buffer {
  return Buffer.concat([header(decoded, f.block), ...f.blocks.slice(from, to).map((x) => b.subarray(x.at, x.end)), tail]);
}

function asBuffer(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function streamSeeds(seeds: Seeds, dir: string, file: string): void {
  const m = decodeStream2(readData('stream2', dir, file));
  const img = m.data!.threshold_1! as EncodedImage;
  const b = asBuffer(img.bytes);
  const f = parseFrame(b);
  const id = `${dir}_${file.replace('.cbor', '')}`;
  const bare = (i: number) => b.subarray(f.blocks[i]!.at + 4, f.blocks[i]!.end);
  const nBlocks = f.blocks.length;
  const last = f.size - (nBlocks - 1) * f.block;
  const pixels = asBuffer(decodeImage(img));
  if (img.encoding === 'lz4') {
    add(seeds, 'lz4_framed', `${id}_first4`, prefixed(0, 4 * f.block, subFrame(b, f, 0, 4, 4 * f.block)));
    add(seeds, 'lz4_framed', `${id}_last2`, prefixed(0, f.block + last, subFrame(b, f, nBlocks - 2, nBlocks, f.block + last)));
    add(seeds, 'lz4_framed', `${id}_roundtrip`, prefixed(0x81, 0, pixels.subarray(256 * 1030, 256 * 1030 + 4096)));
    add(seeds, 'lz4_block', `${id}_block0`, prefixed(0, f.block, bare(0)));
    add(seeds, 'lz4_block', `${id}_blockmid`, prefixed(0, f.block, bare(nBlocks >> 1)));
    add(seeds, 'lz4_block', `${id}_blocklast`, prefixed(0, last, bare(nBlocks - 1)));
    add(seeds, 'lz4_block', `${id}_roundtrip`, prefixed(0x80, 0, pixels.subarray(256 * 1030, 256 * 1030 + 8192)));
    // 8-bit pixels as bitshuffle-LZ4 with 1-byte elements.
    const crop = pixels.subarray(250 * 1030, 250 * 1030 + 16384);
    add(seeds, 'bslz4', `${id}_8bit`, prefixed(0, crop.length, native.bslz4Encode(crop, 1)));
    return;
  }
  // bitshuffle-LZ4, 16-bit: blocks of 4096 elements; the last one shorter, then a raw tail.
  const es = 2;
  const elems = f.size / es;
  const lastElems = elems - (nBlocks - 1) * (f.block / es);
  const lastBlock = (lastElems - (lastElems % 8)) * es;
  const tail = b.subarray(f.blocks[nBlocks - 1]!.end);
  const mid = nBlocks >> 1;
  add(seeds, 'bslz4', `${id}_first8`, prefixed(1, 8 * f.block, subFrame(b, f, 0, 8, 8 * f.block)));
  add(seeds, 'bslz4', `${id}_mid4_headerless`, prefixed(1, 4 * f.block, subFrame(b, f, mid, mid + 4, 4 * f.block).subarray(12)));
  add(seeds, 'bslz4', `${id}_last2_tail`, prefixed(1, f.block + lastBlock + tail.length, subFrame(b, f, nBlocks - 2, nBlocks, f.block + lastBlock + tail.length, tail)));
  add(seeds, 'lz4_block', `${id}_bitshuffled_block`, prefixed(0, f.block, bare(mid)));
  const px16 = pixels.subarray(257 * 2060, 257 * 2060 + 16384);
  add(seeds, 'bslz4', `${id}_roundtrip_small_blocks`, prefixed(0x85, 0, px16.subarray(0, 2048)));
  add(seeds, 'bslz4', `${id}_roundtrip`, prefixed(0x81, 0, px16));
  // The same pixels widened to 32 bits.
  const px32 = Uint32Array.from(new Uint16Array(px16.buffer, px16.byteOffset, px16.length / 2));
  add(seeds, 'bslz4', `${id}_32bit`, prefixed(2, px32.byteLength, native.bslz4Encode(px32, 4)));
  add(seeds, 'bslz4', `${id}_32bit_roundtrip`, prefixed(0x8a, 0, asBuffer(new Uint8Array(px32.buffer))));
}

function realSeeds(seeds: Seeds): void {
  for (const file of CBF_FILES) cbfSeeds(seeds, file.replace('.cbf', ''), readData('cbf', file));
  add(seeds, 'cbf', 'in16c_truncated', readData('cbf', 'in16c_010001.cbf').subarray(0, 16384));
  for (const dir of ['r500k_bm_bslz4_16bit', 'r500k_bm_lz4_8bit']) {
    const files = readdirSync(path.join(dataDir!, 'stream2', dir)).filter((f) => f.endsWith('.cbor')).sort();
    for (const file of files.slice(0, 2)) streamSeeds(seeds, dir, file);
  }
}

/** Without the real data: synthetic PILATUS-like frames and EIGER-like pixels. */
function syntheticSeeds(seeds: Seeds): void {
  const det = new SyntheticDetector({ shape: [230, 500] });
  cbfSeeds(seeds, 'synthetic', det.cbf(true));
  const px = det.pixels(true);
  const u16 = Uint16Array.from(px, (v) => (v < 0 ? 65535 : v));
  add(seeds, 'bslz4', 'synthetic_16bit', prefixed(1, u16.byteLength, native.bslz4Encode(u16, 2)));
  add(seeds, 'bslz4', 'synthetic_8bit', prefixed(0, 8192, native.bslz4Encode(Uint8Array.from(u16.subarray(0, 8192), (v) => v & 255), 1)));
  const block = native.lz4BlockEncode(u16.subarray(0, 4096));
  add(seeds, 'lz4_block', 'synthetic', prefixed(0, 8192, block));
  add(seeds, 'lz4_framed', 'synthetic', prefixed(0, 8192, Buffer.concat([header(8192, 8192), Buffer.from([0, 0, block.length >> 8, block.length & 255]), new Uint8Array(block)])));
}

/** map_check: every layout (direct, narrow bbox, 2D) with and without normalisation and mask, unedited and with one edit. */
function mapSeeds(seeds: Seeds): void {
  for (const sel of [0, 8, 24, 32, 40, 56, 57, 63, 64, 96, 104]) {
    add(seeds, 'map_check', `layout_${sel}`, Uint8Array.from([sel]));
    add(seeds, 'map_check', `layout_${sel}_edit`, Uint8Array.from([sel, 0x40, 0x01, 0, 0, 0xff]));
  }
}

function main(): void {
  const out = process.argv[2];
  if (!out) throw new Error('usage: seeds.js OUT_DIR');
  const seeds: Seeds = new Map();
  escapeSeeds(seeds);
  mapSeeds(seeds);
  if (dataDir) realSeeds(seeds);
  else {
    process.stdout.write('NOTICE: no real detector data (BEAMEDGE_DATA or ../shared/data): synthetic seeds only\n');
    syntheticSeeds(seeds);
  }
  for (const [target, files] of [...seeds].sort()) {
    mkdirSync(path.join(out, target), { recursive: true });
    let bytes = 0;
    for (const [name, data] of files) {
      writeFileSync(path.join(out, target, name), data);
      bytes += data.length;
    }
    process.stdout.write(`seeds ${target}: ${files.size} files, ${bytes} bytes${dataDir ? ` from ${dataDir}` : ''}\n`);
  }
}

main();
