// Writes miniCBF files (PILATUS layout, byte-offset compressed) that CBFlib,
// fabio and the PILATUS tools read back.
import { native } from '../native';
import { md5Base64 } from './cbf';

export interface CbfWriteOptions {
  /** Lines for _array_data.header_contents, without the leading "# ". */
  headerLines?: string[];
  name?: string;
}

const CRLF = '\r\n';

export function encodeCbf(pixels: Int32Array, rows: number, cols: number, options: CbfWriteOptions = {}): Buffer {
  if (rows * cols !== pixels.length) throw new RangeError(`${rows} x ${cols} does not match ${pixels.length} pixels`);
  const binary = native.byteOffsetEncode(pixels);
  const head = [
    '###CBF: VERSION 1.5, beamedge',
    '',
    `data_${options.name ?? 'frame'}`,
    '',
    '_array_data.header_convention "PILATUS_1.2"',
    '_array_data.header_contents',
    ';',
    ...(options.headerLines ?? []).map((l) => `# ${l}`),
    ';',
    '',
    '_array_data.data',
    ';',
    '--CIF-BINARY-FORMAT-SECTION--',
    'Content-Type: application/octet-stream;',
    '     conversions="x-CBF_BYTE_OFFSET"',
    'Content-Transfer-Encoding: BINARY',
    `X-Binary-Size: ${binary.length}`,
    'X-Binary-ID: 1',
    'X-Binary-Element-Type: "signed 32-bit integer"',
    'X-Binary-Element-Byte-Order: LITTLE_ENDIAN',
    `Content-MD5: ${md5Base64(binary)}`,
    `X-Binary-Number-of-Elements: ${pixels.length}`,
    `X-Binary-Size-Fastest-Dimension: ${cols}`,
    `X-Binary-Size-Second-Dimension: ${rows}`,
    'X-Binary-Size-Padding: 4095',
    '',
    '',
  ].join(CRLF);
  const tail = CRLF + '--CIF-BINARY-FORMAT-SECTION----' + CRLF + ';' + CRLF + CRLF;
  return Buffer.concat([
    Buffer.from(head, 'latin1'),
    Buffer.from([0x0c, 0x1a, 0x04, 0xd5]),
    binary,
    Buffer.alloc(4095),
    Buffer.from(tail, 'latin1'),
  ]);
}
