// SMV (ADSC) images, as nanoBragg and older CCDs write them: a text header of
// HEADER_BYTES bytes, `KEY=VALUE;` lines between braces, then the pixels
// (unsigned_short, or long, in BYTE_ORDER).
export interface SmvImage {
  shape: [number, number];
  pixels: Int32Array;
  header: Record<string, string>;
}

export function isSmv(buf: Uint8Array): boolean {
  return buf.length > 16 && Buffer.from(buf.subarray(0, 15)).toString('latin1').startsWith('{\nHEADER_BYTES=');
}

export function readSmv(buf: Uint8Array, source = 'SMV'): SmvImage {
  if (!isSmv(buf)) throw new Error(`${source}: not an SMV image (no {HEADER_BYTES= header)`);
  const end = buf.indexOf(0x7d); // '}'
  const text = Buffer.from(buf.subarray(0, end > 0 ? end : Math.min(buf.length, 4096))).toString('latin1');
  const header: Record<string, string> = {};
  for (const m of text.matchAll(/^([A-Za-z0-9_]+)=([^;]*);/gm)) header[m[1]!] = m[2]!.trim();
  const headerBytes = Number(header.HEADER_BYTES);
  const rows = Number(header.SIZE2);
  const cols = Number(header.SIZE1);
  if (!(Number.isInteger(headerBytes) && headerBytes > 0 && Number.isInteger(rows) && rows > 0 && Number.isInteger(cols) && cols > 0))
    throw new Error(`${source}: SMV header needs HEADER_BYTES, SIZE1 and SIZE2 (got ${header.HEADER_BYTES}, ${header.SIZE1}, ${header.SIZE2})`);
  const type = header.TYPE ?? 'unsigned_short';
  if (type !== 'unsigned_short') throw new Error(`${source}: SMV TYPE ${type} is not supported (unsigned_short only)`);
  const big = (header.BYTE_ORDER ?? 'little_endian') === 'big_endian';
  const n = rows * cols;
  if (buf.length < headerBytes + 2 * n) throw new Error(`${source}: truncated SMV data (${buf.length - headerBytes} of ${2 * n} bytes)`);
  const view = new DataView(buf.buffer, buf.byteOffset + headerBytes, 2 * n);
  const pixels = new Int32Array(n);
  for (let i = 0; i < n; i++) pixels[i] = view.getUint16(2 * i, !big);
  return { shape: [rows, cols], pixels, header };
}
