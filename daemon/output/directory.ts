// Where result files go (reduced data, correlations): output.directory, or
// (null) output-<instance> beside the provenance database, so that the
// daemon's records and its results sit together (StateDirectory under systemd)
// unless told otherwise.
import path from 'node:path';

export function outputDirectory(c: { output: { directory: string | null }; provenance: { path: string }; instance: string }): string {
  return c.output.directory ?? path.join(path.dirname(c.provenance.path), `output-${c.instance}`);
}

/** A series id as one safe file-name component (ids come from senders and may hold anything). */
export function safeName(id: string): string {
  const s = id.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_');
  return (s || '_').slice(0, 120);
}
