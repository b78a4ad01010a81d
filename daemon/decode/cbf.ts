// Reading CBF frames: the native addon finds and decodes the binary section,
// this module adds the text header, the MD5 check and the error context.
import { createHash } from 'node:crypto';
import { native, type CbfBinaryInfo } from '../native';
import { FrameError } from './frame-error';
import { parsePilatusHeader, type PilatusHeader } from './pilatus-header';

export type Md5Status = 'ok' | 'mismatch' | 'absent' | 'unchecked';

export interface CbfFrame {
  /** [rows, cols]: slow axis first, like numpy and pyFAI. */
  shape: [number, number];
  pixels: Int32Array;
  binary: CbfBinaryInfo;
  header: PilatusHeader;
  md5: Md5Status;
}

export interface ReadCbfOptions {
  /** Check Content-MD5 against the compressed bytes (off on the hot path). */
  verifyMd5?: boolean;
  /** Decode into this buffer instead of allocating (e.g. a ring slot). */
  out?: Int32Array;
  /** Names the frame in error messages (file name, frame id). */
  source?: string;
}

export function md5Base64(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('base64');
}

export function checkMd5(buf: Uint8Array, binary: CbfBinaryInfo): Md5Status {
  if (binary.md5 === null) return 'absent';
  const data = buf.subarray(binary.dataOffset, binary.dataOffset + binary.binarySize);
  return md5Base64(data) === binary.md5 ? 'ok' : 'mismatch';
}

function shapeOf(b: CbfBinaryInfo): [number, number] {
  if (b.third !== null && b.third > 1) throw new Error(`3D CBF arrays are not supported (third dimension ${b.third})`);
  if (b.fastest === null) return [1, b.elements];
  return [b.second ?? 1, b.fastest];
}

/** Header text before the binary section (latin1: CBF headers are ASCII). */
export function cbfHeaderText(buf: Uint8Array, binary: CbfBinaryInfo): string {
  return Buffer.from(buf.buffer, buf.byteOffset, binary.sectionOffset).toString('latin1');
}

/** Shape and header without decoding the pixels (a fused decode+integrate pass decodes them later). */
export function readCbfHeader(buf: Uint8Array, source?: string): Omit<CbfFrame, 'pixels' | 'md5'> {
  try {
    const binary = native.cbfLocate(buf);
    return { shape: shapeOf(binary), binary, header: parsePilatusHeader(cbfHeaderText(buf, binary)) };
  } catch (err) {
    if (err instanceof FrameError) throw err;
    throw new FrameError((err as Error).message, source);
  }
}

export function readCbf(buf: Uint8Array, options: ReadCbfOptions = {}): CbfFrame {
  try {
    const { binary, pixels } = native.cbfDecode(buf, options.out);
    const md5 = options.verifyMd5 ? checkMd5(buf, binary) : 'unchecked';
    if (md5 === 'mismatch') throw new Error(`Content-MD5 mismatch: header says ${binary.md5}, data hashes to ${md5Base64(buf.subarray(binary.dataOffset, binary.dataOffset + binary.binarySize))}`);
    return { shape: shapeOf(binary), pixels, binary, header: parsePilatusHeader(cbfHeaderText(buf, binary)), md5 };
  } catch (err) {
    if (err instanceof FrameError) throw err;
    throw new FrameError((err as Error).message, options.source);
  }
}
