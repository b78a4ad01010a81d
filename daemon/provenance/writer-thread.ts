// The one provenance writer: a worker thread that owns the SQLite database
// (WAL) and applies batches of rows in single transactions, off the data path.
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { ensurePrivateFile } from '../system/private-file';
import { DDL, MIGRATE_1_TO_2, MIGRATE_2_TO_3, MIGRATE_3_TO_4, SCHEMA_VERSION, type ProvenanceOp } from './schema';

interface Init {
  path: string;
  instance: string;
  version: string;
}

const init = workerData as Init;
ensurePrivateFile(init.path);
const db = new Database(init.path);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
const existing = db.pragma('user_version', { simple: true }) as number;
if (existing > SCHEMA_VERSION) throw new Error(`${init.path} has provenance schema ${existing}, newer than this beamedge's ${SCHEMA_VERSION}`);
db.transaction(() => {
  if (existing === 1) db.exec(MIGRATE_1_TO_2);
  if (existing === 2) db.exec(MIGRATE_2_TO_3);
  if (existing === 2 || existing === 3) db.exec(MIGRATE_3_TO_4);
  // A v1 frames table is rebuilt from the current DDL (with the v3 columns); only config_epochs lacks one.
  if (existing === 1) db.exec('ALTER TABLE config_epochs ADD COLUMN calibration TEXT');
  db.exec(DDL);
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
})();

const runId = Number(
  db.prepare('INSERT INTO runs (instance, version, host, pid, started) VALUES (?, ?, ?, ?, ?)').run(init.instance, init.version, os.hostname(), process.pid, new Date().toISOString()).lastInsertRowid,
);

// Frames a previous run received but never finished: it was killed (SIGKILL,
// OOM, power) between receiving them and recording their outcome.
const LOST_REASON = 'daemon stopped abnormally';
const recovered = db.transaction(() => {
  const perSeries = db
    .prepare(`SELECT run_id, series, count(*) AS n FROM frames WHERE decision = 'received' AND run_id <> ? GROUP BY run_id, series`)
    .all(runId) as { run_id: number; series: string; n: number }[];
  const lost = db.prepare(`UPDATE frames SET decision = 'lost', reason = ?, error = ? WHERE decision = 'received' AND run_id <> ?`).run(LOST_REASON, LOST_REASON, runId).changes;
  const count = db.prepare(
    `INSERT INTO series (run_id, series, first_seen, last_seen, frames, lost) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (run_id, series) DO UPDATE SET frames = frames + excluded.frames, lost = lost + excluded.lost`,
  );
  const now = new Date().toISOString();
  for (const r of perSeries) count.run(r.run_id, r.series, now, now, r.n, r.n);
  const runs = db.prepare('SELECT id FROM runs WHERE stopped IS NULL AND id <> ?').all(runId) as { id: number }[];
  db.prepare(`UPDATE runs SET stopped = ?, stop_reason = ? WHERE stopped IS NULL AND id <> ?`).run(now, LOST_REASON, runId);
  return { lost, runs: runs.map((r) => r.id), series: perSeries };
})();

const stmt = {
  epoch: db.prepare('INSERT OR REPLACE INTO config_epochs (run_id, epoch, time, source, sha256, text, calibration) VALUES (?, ?, ?, ?, ?, ?, ?)'),
  resultFiles: db.prepare('INSERT INTO result_files (run_id, time, kind, series, epoch, calibration, frames, files, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
  calibrationSet: db.prepare('INSERT OR IGNORE INTO calibration_sets (id, parent, dir, detector, created, run_id, origin, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
  received: db.prepare(`INSERT INTO frames (run_id, seq, series, frame, source, received, decision) VALUES (?, ?, ?, ?, ?, ?, 'received')`),
  // The outcome replaces the 'received' row; frames refused at ingest have none and are inserted.
  frame: db.prepare(
    `INSERT INTO frames (run_id, seq, series, frame, source, received, processed, decision, reason, score, epoch, worker, latency_ms, error, calibration, spots)
     VALUES (@run, @seq, @series, @frame, @source, @received, @processed, @decision, @reason, @score, @epoch, @worker, @latency_ms, @error, @calibration, @spots)
     ON CONFLICT (run_id, seq) DO UPDATE SET processed = excluded.processed, decision = excluded.decision, reason = excluded.reason,
       score = excluded.score, epoch = excluded.epoch, worker = excluded.worker, latency_ms = excluded.latency_ms, error = excluded.error,
       calibration = excluded.calibration, spots = excluded.spots`,
  ),
  series: db.prepare(
    `INSERT INTO series (run_id, series, first_seen, last_seen, frames, kept, rejected, errors, dropped, lost)
     VALUES (@run, @series, @received, @received, 1, @kept, @rejected, @errors, @dropped, @lost)
     ON CONFLICT (run_id, series) DO UPDATE SET last_seen = excluded.last_seen, frames = frames + 1,
       kept = kept + excluded.kept, rejected = rejected + excluded.rejected, errors = errors + excluded.errors,
       dropped = dropped + excluded.dropped, lost = lost + excluded.lost`,
  ),
  published: db.prepare('UPDATE frames SET published = 1 WHERE run_id = ? AND seq = ? AND published = 0'),
  undelivered: db.prepare('UPDATE frames SET published = -1 WHERE run_id = ? AND seq = ? AND published = 0'),
  event: db.prepare('INSERT INTO events (run_id, time, level, kind, message, details) VALUES (?, ?, ?, ?, ?, ?)'),
  pruneFrames: db.prepare('DELETE FROM frames WHERE received < ?'),
  pruneEvents: db.prepare('DELETE FROM events WHERE time < ?'),
  stop: db.prepare('UPDATE runs SET stopped = ?, stop_reason = ? WHERE id = ?'),
  // One row per file name: the directory watcher's memory across restarts, not a log, so retention leaves it alone.
  watched: db.prepare(
    `INSERT INTO watched_files (directory, name, size, mtime_ms, run_id, time) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (directory, name) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, run_id = excluded.run_id, time = excluded.time`,
  ),
};

const apply = db.transaction((ops: ProvenanceOp[]) => {
  for (const op of ops) {
    switch (op.t) {
      case 'epoch':
        stmt.epoch.run(runId, op.epoch, op.time, op.source, op.sha256, op.text, op.calibration);
        break;
      case 'received':
        stmt.received.run(runId, op.seq, op.series, op.frame, op.source, op.received);
        break;
      case 'frame': {
        const { t: _t, ...row } = op;
        stmt.frame.run({ run: runId, ...row });
        stmt.series.run({
          run: runId,
          series: row.series,
          received: row.received,
          kept: +(row.decision === 'kept'),
          rejected: +(row.decision === 'rejected'),
          errors: +(row.decision === 'error'),
          dropped: +(row.decision === 'dropped'),
          lost: +(row.decision === 'lost'),
        });
        break;
      }
      case 'published':
        stmt.published.run(op.run ?? runId, op.seq);
        break;
      case 'undelivered':
        stmt.undelivered.run(op.run ?? runId, op.seq);
        break;
      case 'calibration_set':
        stmt.calibrationSet.run(op.id, op.parent, op.dir, op.detector, op.created, runId, op.origin, op.details);
        break;
      case 'result_files':
        stmt.resultFiles.run(runId, op.time, op.kind, op.series, op.epoch, op.calibration, op.frames, op.files, op.details);
        break;
      case 'event':
        stmt.event.run(runId, op.time, op.level, op.kind, op.message, op.details);
        break;
      case 'retention':
        if (op.days > 0) {
          const cutoff = new Date(Date.now() - op.days * 86400e3).toISOString();
          stmt.pruneFrames.run(cutoff);
          stmt.pruneEvents.run(cutoff);
        }
        break;
      case 'watched':
        stmt.watched.run(op.directory, op.name, op.size, op.mtime_ms, runId, op.time);
        break;
    }
  }
});

parentPort!.postMessage({ ready: true, runId, recovered });
parentPort!.on('message', (msg: { ops?: ProvenanceOp[]; close?: string; id?: number }) => {
  try {
    if (msg.ops?.length) apply(msg.ops);
    if (msg.close !== undefined) {
      stmt.stop.run(new Date().toISOString(), msg.close, runId);
      db.close();
      parentPort!.postMessage({ closed: true });
      parentPort!.close();
    } else if (msg.id !== undefined) {
      parentPort!.postMessage({ flushed: msg.id });
    }
  } catch (e) {
    // The batch is rolled back; say so, and still release whoever waits on it.
    parentPort!.postMessage({ error: (e as Error).message, ...(msg.id !== undefined ? { flushed: msg.id } : {}) });
  }
});
