// Where reduced data files go: output.directory, or (null) the directory that
// holds the provenance database, so that the daemon's records and its reduced
// data sit together (StateDirectory under systemd) unless told otherwise.
import path from 'node:path';

export function outputDirectory(c: { output: { directory: string | null }; provenance: { path: string } }): string {
  return c.output.directory ?? path.dirname(c.provenance.path);
}

/** A series id as one safe file-name component (ids come from senders and may hold anything). */
export function safeName(id: string): string {
  const s = id.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_');
  return (s || '_').slice(0, 120);
}
