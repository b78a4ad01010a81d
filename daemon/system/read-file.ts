// Reading a file the user named: errors say which file and what is wrong with it
// in words (Node's own say "EISDIR: illegal operation on a directory, read" and
// leave the path out).
import { readFileSync } from 'node:fs';

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
