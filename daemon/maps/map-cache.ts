// The on-disk cache of built maps: one file per key (<key>.map, the blob as
// built, its checksum inside), written to a temporary name and renamed, so a
// crash never leaves a half-written map under a real name. A file that fails
// its check is removed and the map rebuilt.
import { existsSync, mkdirSync, renameSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { native } from '../native';

export function mapFile(directory: string, key: string): string {
  if (!/^[0-9a-f]{40}$/.test(key)) throw new RangeError(`not a map key: ${key}`);
  return path.join(directory, `${key}.map`);
}

/** Writes a blob under its key (atomically: temporary file, then rename). */
export async function saveMap(directory: string, key: string, blob: Uint8Array): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const file = mapFile(directory, key);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, blob);
  await rename(tmp, file);
}

/** Keeps the cache within maxBytes by removing the least recently used files (a load refreshes a file's mtime). */
export async function pruneMaps(directory: string, maxBytes: number, keep?: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(directory)).filter((n) => n.endsWith('.map'));
  } catch {
    return [];
  }
  const files = [];
  for (const n of names) {
    const s = await stat(path.join(directory, n)).catch(() => undefined);
    if (s) files.push({ n, size: s.size, mtime: s.mtimeMs });
  }
  files.sort((a, b) => a.mtime - b.mtime);
  let total = files.reduce((t, f) => t + f.size, 0);
  const removed: string[] = [];
  for (const f of files) {
    if (total <= maxBytes) break;
    if (keep && f.n === `${keep}.map`) continue;
    await unlink(path.join(directory, f.n)).catch(() => {});
    total -= f.size;
    removed.push(f.n);
  }
  return removed;
}

export async function touchMap(directory: string, key: string): Promise<void> {
  const now = new Date();
  await utimes(mapFile(directory, key), now, now).catch(() => {});
}

export function touchMapSync(directory: string, key: string): void {
  const now = new Date();
  try {
    utimesSync(mapFile(directory, key), now, now);
  } catch {
    // Removed meanwhile: the next run builds it again.
  }
}

export type SyncLoad = { blob: Buffer } | { problem: string } | undefined;

/** The cached blob, checked (checksum and indices); undefined when there is none. A bad file is removed. */
export function loadMapSync(directory: string, key: string): SyncLoad {
  const file = mapFile(directory, key);
  if (!existsSync(file)) return undefined;
  const blob = native.readMapFile(file);
  const problem = native.checkMap(blob, true);
  if (problem) {
    try {
      unlinkSync(file);
    } catch {
      // Already gone: nothing to clean up.
    }
    return { problem };
  }
  return { blob };
}

export function saveMapSync(directory: string, key: string, blob: Uint8Array): void {
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  const file = mapFile(directory, key);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, blob);
  renameSync(tmp, file);
}
