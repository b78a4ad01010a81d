// Reading a file the user named: errors say which file and what is wrong with it
// in words (Node's own say "EISDIR: illegal operation on a directory, read" and
// leave the path out).
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';

const REASONS: Record<string, string> = {
  EISDIR: 'is a directory, not a file',
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  ENOTDIR: 'a component of the path is not a directory',
};

/** Why `file` could not be read: the path, then the reason. */
export function fileError(file: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  return new Error(`${file}: ${(code && REASONS[code]) ?? `cannot read (${code ?? (e as Error).message})`}`);
}

export function readNamedFile(file: string): Buffer;
export function readNamedFile(file: string, encoding: 'utf8'): string;
export function readNamedFile(file: string, encoding?: 'utf8'): Buffer | string {
  try {
    return encoding ? readFileSync(file, encoding) : readFileSync(file);
  } catch (e) {
    throw fileError(file, e);
  }
}

/**
 * Reads files one after another into one buffer, grown as needed, so a run
 * over many frames does not allocate (and fault in, page by page) a fresh
 * multi-megabyte buffer per file. What read() returns is valid until the
 * next read.
 */
export class FileBuffer {
  private buf = Buffer.alloc(0);

  read(file: string): Uint8Array {
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r');
      // One byte beyond the size: the read that returns 0 says the file ended where fstat said.
      this.reserve(fstatSync(fd).size + 1);
      let n = 0;
      for (;;) {
        if (n === this.buf.length) this.reserve(n * 2);
        const got = readSync(fd, this.buf, n, this.buf.length - n, null);
        if (got === 0) break;
        n += got;
      }
      return this.buf.subarray(0, n);
    } catch (e) {
      throw fileError(file, e);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  private reserve(bytes: number): void {
    if (bytes > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(bytes, Math.ceil(this.buf.length * 1.25)));
  }
}
