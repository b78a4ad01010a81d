// Files that hold what the daemon saw (the provenance database) are readable
// by the service's group at most, whatever the umask. SQLite gives its -wal
// and -shm files the database file's mode, so creating the database with
// this mode before SQLite opens it covers all three.
import { chmodSync, closeSync, openSync, statSync } from 'node:fs';

export const PRIVATE_MODE = 0o640;

/** Creates `file` with mode 0640, or narrows an existing one (and its -wal/-shm) that we own to at most 0640. */
export function ensurePrivateFile(file: string, mode = PRIVATE_MODE): void {
  try {
    closeSync(openSync(file, 'wx', mode));
    // The mode given to open passes through the umask; chmod makes it exact.
    chmodSync(file, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    let st;
    try {
      st = statSync(f);
    } catch {
      continue;
    }
    const wide = st.mode & 0o777 & ~mode;
    if (wide && st.uid === process.getuid?.()) chmodSync(f, st.mode & 0o777 & mode);
  }
}
