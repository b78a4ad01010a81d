// What one directory entry is, decided without blocking on it and without
// following it out of the watched directory. Anything the detector software
// did not write as a regular file (a directory named like a frame, a FIFO, a
// socket, a device, a dangling or escaping symlink) is classified as a skip,
// never opened in a way that could block, and never read.
import { constants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';

export type Inspected =
  /** A regular file (or a permitted symlink to one) at `path`, not opened yet. */
  | { kind: 'file'; path: string; size: number; mtimeMs: number }
  /** Not a frame file; `reason` says what it is. */
  | { kind: 'skip'; reason: string }
  /** A regular file that cannot be opened or read (permissions, I/O error). */
  | { kind: 'unreadable'; reason: string }
  /** Gone, or replaced while we looked: forget it, the next listing shows what is there now. */
  | { kind: 'vanished' };

export type Opened = { kind: 'open'; fh: FileHandle; size: number; mtimeMs: number } | Exclude<Inspected, { kind: 'file' }>;

/** Out of descriptors or memory: the process's trouble, not the entry's; retry later. */
export class TransientError extends Error {}

const TRANSIENT = new Set(['EMFILE', 'ENFILE', 'ENOMEM']);

// O_NONBLOCK: an entry swapped for a FIFO between lstat and open must not
// freeze the event loop; O_NOFOLLOW: nor may one swapped for a symlink.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW;

function code(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? '';
}

export function isTransient(e: unknown): boolean {
  return TRANSIENT.has(code(e));
}

function rethrowTransient(e: unknown): void {
  if (isTransient(e)) throw new TransientError((e as Error).message);
}

export function describeKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSymbolicLink()) return 'a symlink';
  return 'not a regular file';
}

function inside(dir: string, target: string): boolean {
  return target.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

/**
 * Classifies `name` in `dir` (a realpath). A symlink is taken only when it
 * resolves to a regular file inside `dir`, or anywhere with followSymlinks.
 */
export async function inspectEntry(dir: string, name: string, followSymlinks: boolean): Promise<Inspected> {
  const file = path.join(dir, name);
  let st: Stats;
  try {
    st = await fsp.lstat(file);
  } catch (e) {
    rethrowTransient(e);
    if (code(e) === 'ENOENT') return { kind: 'vanished' };
    return { kind: 'skip', reason: `cannot be examined: ${(e as Error).message}` };
  }
  if (st.isFile()) return { kind: 'file', path: file, size: st.size, mtimeMs: st.mtimeMs };
  if (!st.isSymbolicLink()) return { kind: 'skip', reason: `${describeKind(st)}, not a regular file` };

  let target: string;
  try {
    target = await fsp.realpath(file);
  } catch (e) {
    rethrowTransient(e);
    if (code(e) === 'ENOENT') {
      const link = await fsp.readlink(file).catch(() => '?');
      return { kind: 'skip', reason: `a dangling symlink (its target ${link} does not exist)` };
    }
    if (code(e) === 'ELOOP') return { kind: 'skip', reason: 'a symlink loop' };
    return { kind: 'skip', reason: `a symlink that cannot be resolved: ${(e as Error).message}` };
  }
  if (!followSymlinks && !inside(dir, target)) return { kind: 'skip', reason: `a symlink to ${target}, outside the watched directory (ingest.watch.follow_symlinks is false)` };
  try {
    st = await fsp.lstat(target); // realpath has no symlinks left in it
  } catch (e) {
    rethrowTransient(e);
    if (code(e) === 'ENOENT') return { kind: 'vanished' };
    return { kind: 'skip', reason: `a symlink to ${target}, which cannot be examined: ${(e as Error).message}` };
  }
  if (!st.isFile()) return { kind: 'skip', reason: `a symlink to ${target}, which is ${describeKind(st)}, not a regular file` };
  return { kind: 'file', path: target, size: st.size, mtimeMs: st.mtimeMs };
}

/** Opens what inspectEntry found and checks, on the descriptor, that it still is a regular file. */
export async function openRegular(file: string): Promise<Opened> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(file, OPEN_FLAGS);
  } catch (e) {
    rethrowTransient(e);
    // ELOOP: it became a symlink since lstat. Either way, look again from scratch.
    if (code(e) === 'ENOENT' || code(e) === 'ELOOP') return { kind: 'vanished' };
    return { kind: 'unreadable', reason: `cannot open: ${(e as Error).message}` };
  }
  try {
    const st = await fh.stat();
    if (st.isFile()) return { kind: 'open', fh, size: st.size, mtimeMs: st.mtimeMs };
    await fh.close();
    return { kind: 'skip', reason: `${describeKind(st)}, not a regular file` };
  } catch (e) {
    await fh.close().catch(() => {});
    rethrowTransient(e);
    return { kind: 'unreadable', reason: `cannot stat: ${(e as Error).message}` };
  }
}
