// Provenance database layout: which frame, which configuration and
// calibration, which decision, so any published result can be traced back.
export const SCHEMA_VERSION = 1;

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
  PRIMARY KEY (run_id, series)
);
CREATE TABLE IF NOT EXISTS frames (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  series TEXT NOT NULL,
  frame INTEGER,
  source TEXT,
  received TEXT NOT NULL,
  processed TEXT,
  decision TEXT NOT NULL CHECK (decision IN ('kept', 'rejected', 'error', 'dropped')),
  reason TEXT,
  score REAL,
  epoch INTEGER,
  worker INTEGER,
  latency_ms REAL,
  published INTEGER NOT NULL DEFAULT 0,
  error TEXT
);
CREATE INDEX IF NOT EXISTS frames_by_series ON frames (run_id, series, frame);
CREATE INDEX IF NOT EXISTS frames_by_time ON frames (received);
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
`;

export interface FrameRow {
  series: string;
  frame: number | null;
  source: string;
  received: string;
  processed: string | null;
  decision: 'kept' | 'rejected' | 'error' | 'dropped';
  reason: string;
  score: number | null;
  epoch: number | null;
  worker: number | null;
  latency_ms: number | null;
  error: string | null;
}

export type ProvenanceOp =
  | { t: 'epoch'; epoch: number; time: string; source: string; sha256: string; text: string }
  | ({ t: 'frame' } & FrameRow)
  | { t: 'published'; series: string; frame: number; run?: number }
  // frames.published: 0 not (yet) acknowledged by the broker, 1 acknowledged, -1 dropped from a full MQTT spool.
  // run: the run that processed the frame, when it is not this one (replayed from the spool).
  | { t: 'undelivered'; series: string; frame: number; run?: number }
  | { t: 'event'; time: string; level: string; kind: string; message: string; details: string | null }
  | { t: 'retention'; days: number };
