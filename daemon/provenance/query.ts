// Read-only queries behind `beamedge provenance`.
import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { fileError } from '../system/read-file';

export type Table = 'runs' | 'series' | 'frames' | 'events' | 'epochs' | 'calibrations';
export const TABLES: Table[] = ['runs', 'series', 'frames', 'events', 'epochs', 'calibrations'];

export interface QueryFilters {
  run?: number;
  series?: string;
  decision?: string;
  since?: string;
  level?: string;
  /** Calibration set id, or a prefix of it. */
  calibration?: string;
  limit: number;
}

const COLUMNS: Record<Table, string> = {
  runs: 'id, instance, version, host, pid, started, stopped, stop_reason',
  series: 'run_id, series, first_seen, last_seen, frames, kept, rejected, errors, dropped, lost',
  frames: 'id, run_id, seq, series, frame, source, received, processed, decision, reason, score, epoch, worker, latency_ms, published, error, calibration, spots',
  events: 'id, run_id, time, level, kind, message, details',
  epochs: 'run_id, epoch, time, source, sha256, calibration',
  calibrations: 'calibration, parent, origin, dir, run_id, series, frames, kept, first_frame, last_frame, first_received, last_received',
};

const TIME: Record<Table, string> = { runs: 'started', series: 'last_seen', frames: 'received', events: 'time', epochs: 'time', calibrations: 'last_received' };

// Which frames used which calibration set: one row per set, run and series.
const SOURCES: Partial<Record<Table, string>> = {
  epochs: 'config_epochs',
  calibrations: `(SELECT f.*, s.parent, s.origin, s.dir FROM (SELECT calibration, run_id, series, count(*) AS frames, sum(decision = 'kept') AS kept, min(frame) AS first_frame,
    max(frame) AS last_frame, min(received) AS first_received, max(received) AS last_received FROM frames WHERE calibration IS NOT NULL GROUP BY calibration, run_id, series) f
    LEFT JOIN calibration_sets s ON s.id = f.calibration)`,
};

/** Opens a provenance database read-only; errors name the file and say what it is instead. */
export function openProvenance(dbPath: string): Database.Database {
  let st;
  try {
    st = statSync(dbPath);
  } catch (e) {
    throw (e as NodeJS.ErrnoException).code === 'ENOENT' ? new Error(`${dbPath}: no such file (no provenance database there)`) : fileError(dbPath, e);
  }
  if (st.isDirectory()) throw new Error(`${dbPath}: is a directory, not a provenance database`);
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const frames = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'frames'").get();
    if (!frames) throw new Error(`${dbPath}: an SQLite database, but not beamedge provenance (no frames table)`);
  } catch (e) {
    db.close();
    if (/not a database|malformed/i.test((e as Error).message)) throw new Error(`${dbPath}: not an SQLite database (${(e as Error).message})`);
    throw e;
  }
  return db;
}

export function query(dbPath: string, table: Table, f: QueryFilters): Record<string, unknown>[] {
  const db = openProvenance(dbPath);
  try {
    const where: string[] = [];
    const args: unknown[] = [];
    const runCol = table === 'runs' ? 'id' : 'run_id';
    if (f.run !== undefined) (where.push(`${runCol} = ?`), args.push(f.run));
    if (f.series !== undefined && table !== 'runs' && table !== 'events' && table !== 'epochs') (where.push('series = ?'), args.push(f.series));
    if (f.calibration !== undefined && (table === 'frames' || table === 'calibrations' || table === 'epochs'))
      (where.push(table === 'epochs' ? "instr(calibration, ?) > 0" : "substr(calibration, 1, length(?)) = ?"), args.push(...(table === 'epochs' ? [f.calibration] : [f.calibration, f.calibration])));
    if (f.decision !== undefined && table === 'frames') (where.push('decision = ?'), args.push(f.decision));
    if (f.level !== undefined && table === 'events') (where.push('level = ?'), args.push(f.level));
    if (f.since !== undefined) (where.push(`${TIME[table]} >= ?`), args.push(new Date(f.since).toISOString()));
    const order = { series: 'last_seen DESC', epochs: 'run_id DESC, epoch DESC', calibrations: 'last_received DESC' }[table as string] ?? 'id DESC';
    const sql = `SELECT ${COLUMNS[table]} FROM ${SOURCES[table] ?? table}${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY ${order} LIMIT ?`;
    return (db.prepare(sql).all(...args, f.limit) as Record<string, unknown>[]).reverse();
  } finally {
    db.close();
  }
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(rows: Record<string, unknown>[], table: Table): string {
  const cols = COLUMNS[table].split(', ');
  return [cols.join(','), ...rows.map((r) => cols.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n';
}

export function toText(rows: Record<string, unknown>[], table: Table): string {
  const cols = COLUMNS[table].split(', ');
  const cells = rows.map((r) => cols.map((c) => (r[c] === null || r[c] === undefined ? '' : String(r[c]))));
  const widths = cols.map((c, i) => Math.min(60, Math.max(c.length, ...cells.map((row) => row[i]!.length))));
  const line = (row: string[]) => row.map((v, i) => (v.length > widths[i]! ? v.slice(0, widths[i]! - 1) + '~' : v.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(cols), ...cells.map(line)].join('\n') + '\n';
}
