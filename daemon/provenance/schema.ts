// Provenance database layout: which frame, which configuration and
// calibration, which decision, so any published result can be traced back.
// 2: frames get a per-run receive sequence and the 'received' and 'lost'
// decisions (a frame is recorded when it arrives, not only when it is done).
// 3: frames name the calibration set they were converted with, and each
// configuration epoch records the hashes of every calibration file it loaded.
// 4: frames record how many spots the spots stage found.
// 5: result_files: files written for a series (angular cross-correlations),
// with their hashes, the epochs and calibration sets of the frames in them
// (a new table only: DDL creates it in an older database).
export const SCHEMA_VERSION = 5;

export const DECISIONS = ['received', 'kept', 'rejected', 'error', 'dropped', 'lost'] as const;
export type FrameDecision = (typeof DECISIONS)[number];

export const DDL = `
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  instance TEXT NOT NULL,
  version TEXT NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started TEXT NOT NULL,
  stopped TEXT,
  stop_reason TEXT
);
CREATE TABLE IF NOT EXISTS config_epochs (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  epoch INTEGER NOT NULL,
  time TEXT NOT NULL,
  source TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  text TEXT NOT NULL,
  calibration TEXT,
  PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS series (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  series TEXT NOT NULL,
  first_seen TEXT NOT NULL,
  last_seen TEXT NOT NULL,
  frames INTEGER NOT NULL DEFAULT 0,
  kept INTEGER NOT NULL DEFAULT 0,
  rejected INTEGER NOT NULL DEFAULT 0,
  errors INTEGER NOT NULL DEFAULT 0,
  dropped INTEGER NOT NULL DEFAULT 0,
  lost INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, series)
);
CREATE TABLE IF NOT EXISTS frames (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  seq INTEGER,
  series TEXT NOT NULL,
  frame INTEGER,
  source TEXT,
  received TEXT NOT NULL,
  processed TEXT,
  decision TEXT NOT NULL CHECK (decision IN (${DECISIONS.map((d) => `'${d}'`).join(', ')})),
  reason TEXT,
  score REAL,
  epoch INTEGER,
  worker INTEGER,
  latency_ms REAL,
  published INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  calibration TEXT,
  spots INTEGER
);
CREATE INDEX IF NOT EXISTS frames_by_series ON frames (run_id, series, frame);
CREATE UNIQUE INDEX IF NOT EXISTS frames_by_seq ON frames (run_id, seq);
CREATE INDEX IF NOT EXISTS frames_unfinished ON frames (decision) WHERE decision = 'received';
CREATE INDEX IF NOT EXISTS frames_by_time ON frames (received);
CREATE INDEX IF NOT EXISTS frames_by_calibration ON frames (calibration) WHERE calibration IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  time TEXT NOT NULL,
  level TEXT NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL,
  details TEXT
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
CREATE TABLE IF NOT EXISTS calibration_sets (
  id TEXT PRIMARY KEY,
  parent TEXT,
  dir TEXT NOT NULL,
  detector TEXT NOT NULL,
  created TEXT NOT NULL,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  origin TEXT NOT NULL,
  details TEXT
);
CREATE TABLE IF NOT EXISTS result_files (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  time TEXT NOT NULL,
  kind TEXT NOT NULL,
  series TEXT NOT NULL,
  epoch INTEGER,
  calibration TEXT,
  frames INTEGER NOT NULL,
  files TEXT NOT NULL,
  details TEXT
);
CREATE INDEX IF NOT EXISTS result_files_by_series ON result_files (run_id, series);
CREATE TABLE IF NOT EXISTS watched_files (
  directory TEXT NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ms REAL NOT NULL,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  time TEXT NOT NULL,
  PRIMARY KEY (directory, name)
);
`;

export interface FrameRow {
  /** Receive sequence within the run: the row's identity from arrival to outcome. */
  seq: number;
  series: string;
  frame: number | null;
  source: string;
  received: string;
  processed: string | null;
  decision: Exclude<FrameDecision, 'received'>;
  reason: string;
  score: number | null;
  epoch: number | null;
  worker: number | null;
  latency_ms: number | null;
  error: string | null;
  /** Id of the calibration set the frame was converted with. */
  calibration: string | null;
  /** Spots found, when the spots stage ran. */
  spots: number | null;
}

export type ProvenanceOp =
  | { t: 'epoch'; epoch: number; time: string; source: string; sha256: string; text: string; calibration: string | null }
  | { t: 'received'; seq: number; series: string; frame: number; source: string; received: string }
  | ({ t: 'frame' } & FrameRow)
  // frames.published: 0 not (yet) acknowledged by the broker, 1 acknowledged, -1 dropped from a full MQTT spool.
  // run: the run that processed the frame, when it is not this one (replayed from the spool).
  | { t: 'published'; seq: number; run?: number }
  | { t: 'undelivered'; seq: number; run?: number }
  | { t: 'event'; time: string; level: string; kind: string; message: string; details: string | null }
  | { t: 'retention'; days: number }
  // origin: 'configured' (pipeline.calibration.set) or 'tracking' (a pedestal snapshot derived from parent).
  | { t: 'calibration_set'; id: string; parent: string | null; dir: string; detector: string; created: string; origin: 'configured' | 'tracking'; details: string | null }
  // files: JSON [{ name, path, sha256, bytes }]; epoch and calibration: of the last frame in them (details lists all).
  | { t: 'result_files'; time: string; kind: string; series: string; epoch: number | null; calibration: string | null; frames: number; files: string; details: string | null }
  | { t: 'watched'; directory: string; name: string; size: number; mtime_ms: number; time: string };

/** Schema 1 -> 2: the frames table is rebuilt for the new CHECK and seq column. */
export const MIGRATE_1_TO_2 = `
ALTER TABLE frames RENAME TO frames_v1;
DROP INDEX IF EXISTS frames_by_series;
DROP INDEX IF EXISTS frames_by_time;
${DDL.slice(DDL.indexOf('CREATE TABLE IF NOT EXISTS frames'), DDL.indexOf('CREATE INDEX IF NOT EXISTS frames_by_series'))}
INSERT INTO frames (id, run_id, series, frame, source, received, processed, decision, reason, score, epoch, worker, latency_ms, published, error)
  SELECT id, run_id, series, frame, source, received, processed, decision, reason, score, epoch, worker, latency_ms, published, error FROM frames_v1;
DROP TABLE frames_v1;
ALTER TABLE series ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
`;

/** Schema 2 -> 3: calibration columns (after MIGRATE_1_TO_2, whose rebuilt frames table already has them). */
export const MIGRATE_2_TO_3 = `
ALTER TABLE frames ADD COLUMN calibration TEXT;
ALTER TABLE config_epochs ADD COLUMN calibration TEXT;
`;

/** Schema 3 -> 4: the spot count (after MIGRATE_1_TO_2, whose rebuilt frames table already has it). */
export const MIGRATE_3_TO_4 = `
ALTER TABLE frames ADD COLUMN spots INTEGER;
`;
