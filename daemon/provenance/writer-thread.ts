// The one provenance writer: a worker thread that owns the SQLite database
// (WAL) and applies batches of rows in single transactions, off the data path.
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { DDL, SCHEMA_VERSION, type ProvenanceOp } from './schema';

interface Init {
  path: string;
  instance: string;
  version: string;
}

const init = workerData as Init;
const db = new Database(init.path);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
db.exec(DDL);
db.pragma(`user_version = ${SCHEMA_VERSION}`);

const runId = Number(
  db.prepare('INSERT INTO runs (instance, version, host, pid, started) VALUES (?, ?, ?, ?, ?)').run(init.instance, init.version, os.hostname(), process.pid, new Date().toISOString()).lastInsertRowid,
);

const stmt = {
  epoch: db.prepare('INSERT OR REPLACE INTO config_epochs (run_id, epoch, time, source, sha256, text) VALUES (?, ?, ?, ?, ?, ?)'),
  frame: db.prepare(
    `INSERT INTO frames (run_id, series, frame, source, received, processed, decision, reason, score, epoch, worker, latency_ms, error)
     VALUES (@run, @series, @frame, @source, @received, @processed, @decision, @reason, @score, @epoch, @worker, @latency_ms, @error)`,
  ),
  series: db.prepare(
    `INSERT INTO series (run_id, series, first_seen, last_seen, frames, kept, rejected, errors, dropped)
     VALUES (@run, @series, @received, @received, 1, @kept, @rejected, @errors, @dropped)
     ON CONFLICT (run_id, series) DO UPDATE SET last_seen = excluded.last_seen, frames = frames + 1,
       kept = kept + excluded.kept, rejected = rejected + excluded.rejected, errors = errors + excluded.errors, dropped = dropped + excluded.dropped`,
  ),
  published: db.prepare('UPDATE frames SET published = 1 WHERE run_id = ? AND series = ? AND frame = ? AND published = 0'),
  undelivered: db.prepare('UPDATE frames SET published = -1 WHERE run_id = ? AND series = ? AND frame = ? AND published = 0'),
  event: db.prepare('INSERT INTO events (run_id, time, level, kind, message, details) VALUES (?, ?, ?, ?, ?, ?)'),
  pruneFrames: db.prepare('DELETE FROM frames WHERE received < ?'),
  pruneEvents: db.prepare('DELETE FROM events WHERE time < ?'),
  stop: db.prepare('UPDATE runs SET stopped = ?, stop_reason = ? WHERE id = ?'),
};

const apply = db.transaction((ops: ProvenanceOp[]) => {
  for (const op of ops) {
    switch (op.t) {
      case 'epoch':
        stmt.epoch.run(runId, op.epoch, op.time, op.source, op.sha256, op.text);
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
        });
        break;
      }
      case 'published':
        stmt.published.run(op.run ?? runId, op.series, op.frame);
        break;
      case 'undelivered':
        stmt.undelivered.run(op.run ?? runId, op.series, op.frame);
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
    }
  }
});

parentPort!.postMessage({ ready: true, runId });
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
    parentPort!.postMessage({ error: (e as Error).message });
  }
});
