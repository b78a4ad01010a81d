// Raw JUNGFRAU frames (uint16 words) from files: headerless little-endian .bin
// holding whole frames, or .npy uint16 [frames][rows][cols] / [rows][cols].
// Every file is checked before any frame is read, so a bad input stops a
// dark run before it starts; frames are then read one at a time into one
// reused buffer, and the file's sha256 is computed in the same pass.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { parseNpyHeader } from './npy';

export type Shape = [number, number];

export interface FrameFile {
  path: string;
  shape: Shape;
  frames: number;
  /** Byte offset of the first frame. */
  start: number;
}

function fail(path: string, what: string): never {
  throw new Error(`${path}: ${what}`);
}

function openOrFail(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    fail(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Checks a file and tells its frame count; `shape` is required for .bin, and checked against a .npy's own. */
export function inspectFrameFile(path: string, shape: Shape | undefined): FrameFile {
  const fd = openOrFail(path);
  try {
    const size = fstatSync(fd).size;
    if (/\.npy$/i.test(path)) {
      const head = Buffer.alloc(Math.min(size, 64 * 1024));
      readSync(fd, head, 0, head.length, 0);
      const h = parseNpyHeader(head, path);
      if (h.descr !== '<u2') fail(path, `dtype ${h.descr}, raw JUNGFRAU frames are uint16 (<u2)`);
      if (h.fortran && h.shape.length > 1) fail(path, 'Fortran-ordered array, expected C order');
      if (h.shape.length !== 2 && h.shape.length !== 3) fail(path, `shape (${h.shape.join(', ')}) is not [frames][rows][cols] or [rows][cols]`);
      const own = h.shape.slice(-2) as Shape;
      if (shape && own.join('x') !== shape.join('x')) fail(path, `frames are ${own.join('x')}, expected ${shape.join('x')} (--shape)`);
      const frames = h.shape.length === 3 ? h.shape[0]! : 1;
      const need = h.start + frames * own[0] * own[1] * 2;
      if (size !== need) fail(path, `${size} bytes, but its header promises ${need}`);
      return { path, shape: own, frames, start: h.start };
    }
    if (!shape) fail(path, 'a raw .bin file needs --shape ROWSxCOLS');
    const frameBytes = shape[0] * shape[1] * 2;
    if (size === 0) fail(path, 'empty file');
    if (size % frameBytes !== 0)
      fail(path, `${size} bytes is not a whole number of ${shape.join('x')} uint16 frames (${frameBytes} bytes each): wrong --shape, or a truncated file`);
    return { path, shape, frames: size / frameBytes, start: 0 };
  } finally {
    closeSync(fd);
  }
}

/**
 * Calls `each` with every frame of the file, in `buf` (reused: copy what
 * must outlive the call). Returns the file's sha256.
 */
export function readFrames(f: FrameFile, buf: Uint16Array, each: (frame: Uint16Array) => void): string {
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, f.shape[0] * f.shape[1] * 2);
  const hash = createHash('sha256');
  const fd = openOrFail(f.path);
  try {
    if (f.start > 0) {
      const head = Buffer.alloc(f.start);
      if (readSync(fd, head, 0, f.start, 0) !== f.start) fail(f.path, 'shrank while being read');
      hash.update(head);
    }
    for (let i = 0; i < f.frames; i++) {
      let got = 0;
      while (got < bytes.length) {
        const n = readSync(fd, bytes, got, bytes.length - got, f.start + i * bytes.length + got);
        if (n === 0) fail(f.path, `shrank while being read (frame ${i})`);
        got += n;
      }
      hash.update(bytes);
      each(buf);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}
