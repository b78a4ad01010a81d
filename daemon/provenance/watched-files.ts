// The directory watcher's memory across restarts: which files of a directory
// earlier runs already processed (table watched_files). Read once at start on
// the main thread with a short read-only connection; written by the writer
// thread through the recorder like every other row.
import Database from 'better-sqlite3';
import type { Recorder } from './recorder';

export interface WatchedFile {
  size: number;
  mtimeMs: number;
}

export interface WatchHistory {
  /** Files of `directory` processed by earlier runs, by name. */
  load(directory: string): Map<string, WatchedFile>;
  record(directory: string, name: string, file: WatchedFile): void;
}

export function loadWatchedFiles(dbPath: string, directory: string): Map<string, WatchedFile> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT name, size, mtime_ms FROM watched_files WHERE directory = ?').all(directory) as { name: string; size: number; mtime_ms: number }[];
    return new Map(rows.map((r) => [r.name, { size: r.size, mtimeMs: r.mtime_ms }]));
  } finally {
    db.close();
  }
}

/** The history of the database the recorder writes to. */
export function provenanceWatchHistory(dbPath: string, recorder: Recorder): WatchHistory {
  return {
    load: (directory) => loadWatchedFiles(dbPath, directory),
    record: (directory, name, f) => recorder.watchedFile(directory, name, f.size, f.mtimeMs),
  };
}
