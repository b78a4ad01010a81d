// beamedge provenance runs|series|frames|events: read the provenance database.
import { loadConfig } from '../config/config';
import { query, TABLES, toCsv, toText, type Table } from '../provenance/query';
import { DECISIONS } from '../provenance/schema';
import { UsageError } from './args';
import type { Command } from './command';

export const provenanceCommand: Command = {
  name: 'provenance',
  summary: 'query the provenance database: runs, series, frames, events, epochs, or calibrations (which frames used which calibration set)',
  usage: `beamedge provenance ${TABLES.join('|')} (--db FILE | --config FILE) [--run N] [--series S] [--decision D] [--level L] [--calibration ID] [--since ISO] [--limit N] [--json|--csv]`,
  options: {
    db: { kind: 'string', arg: 'FILE', help: 'SQLite database' },
    config: { kind: 'string', arg: 'FILE', help: 'take the database path from this configuration' },
    run: { kind: 'number', arg: 'N', integer: true, min: 1, help: 'only this run' },
    series: { kind: 'string', arg: 'S', help: 'only this series (series, frames)' },
    decision: { kind: 'string', arg: 'D', choices: [...DECISIONS], help: 'only frames with this decision' },
    level: { kind: 'string', arg: 'L', choices: ['info', 'warn', 'error'], help: 'only events of this level' },
    calibration: { kind: 'string', arg: 'ID', help: 'only frames, calibrations or epochs of this calibration set (its id or a prefix)' },
    since: { kind: 'string', arg: 'ISO', help: 'only rows at or after this time (ISO 8601)' },
    limit: { kind: 'number', arg: 'N', integer: true, min: 1, help: 'newest N rows (default 100)' },
    json: { kind: 'flag', help: 'JSON lines' },
    csv: { kind: 'flag', help: 'CSV with a header row' },
  },
  async run(opts, io) {
    const [table, ...rest] = opts.positional;
    if (!table || !TABLES.includes(table as Table)) throw new UsageError(`name one of ${TABLES.join(', ')}`);
    if (rest.length) throw new UsageError(`unexpected argument '${rest[0]}'`);
    if (opts.has('db') === opts.has('config')) throw new UsageError('give exactly one of --db and --config');
    if (opts.flag('json') && opts.flag('csv')) throw new UsageError('--json and --csv exclude each other');
    const since = opts.string('since');
    if (since !== undefined && Number.isNaN(Date.parse(since))) throw new UsageError(`--since: '${since}' is not an ISO 8601 time`);
    const db = opts.string('db') ?? loadConfig(opts.string('config')!).config.provenance.path;
    const rows = query(db, table as Table, {
      limit: opts.number('limit') ?? 100,
      ...(opts.has('run') ? { run: opts.number('run')! } : {}),
      ...(opts.has('series') ? { series: opts.string('series')! } : {}),
      ...(opts.has('decision') ? { decision: opts.string('decision')! } : {}),
      ...(opts.has('level') ? { level: opts.string('level')! } : {}),
      ...(opts.has('calibration') ? { calibration: opts.string('calibration')! } : {}),
      ...(since !== undefined ? { since } : {}),
    });
    if (opts.flag('json')) io.out(rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
    else if (opts.flag('csv')) io.out(toCsv(rows, table as Table));
    else io.out(toText(rows, table as Table));
    return 0;
  },
};
