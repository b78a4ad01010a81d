// Structured logs: one JSON object per line. Under systemd (JOURNAL_STREAM set)
// each line is prefixed with its syslog priority so journald files the level.
// Every line passes the redaction rule, whatever a caller put in its fields.
import { redactReplacer } from './redact';

export type Level = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const PRIORITY: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };

export interface Logger {
  level: Level;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(level: Level = 'info', write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const journald = !!process.env.JOURNAL_STREAM;
  const logger: Logger = { level } as Logger;
  for (const lvl of Object.keys(RANK) as Level[]) {
    logger[lvl] = (msg, fields = {}) => {
      if (RANK[lvl] < RANK[logger.level]) return;
      const line = JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }, redactReplacer);
      write((journald ? `<${PRIORITY[lvl]}>` : '') + line + '\n');
    };
  }
  return logger;
}
