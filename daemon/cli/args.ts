// A small declarative option parser: every command validates its command line
// at the boundary and turns mistakes into a one-line UsageError (exit 2).

export class UsageError extends Error {
  override name = 'UsageError';
}

// list: every following argument up to the next --option (file lists).
export type OptionKind = 'flag' | 'string' | 'number' | 'pair' | 'list';

export interface OptionSpec {
  kind: OptionKind;
  /** One-letter alias, given as -X. */
  short?: string;
  /** Shown in --help. */
  help: string;
  arg?: string;
  integer?: boolean;
  min?: number;
  max?: number;
  choices?: readonly string[];
}

export type OptionValue = boolean | string | number | [number, number] | string[];

export interface Parsed {
  positional: string[];
  options: Map<string, OptionValue>;
}

function toNumber(name: string, raw: string | undefined, spec: OptionSpec): number {
  if (raw === undefined) throw new UsageError(`--${name} needs a value`);
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--${name}: '${raw}' is not a number`);
  if (spec.integer && !Number.isInteger(v)) throw new UsageError(`--${name}: '${raw}' is not an integer`);
  if (spec.min !== undefined && v < spec.min) throw new UsageError(`--${name}: ${raw} is below ${spec.min}`);
  if (spec.max !== undefined && v > spec.max) throw new UsageError(`--${name}: ${raw} is above ${spec.max}`);
  return v;
}

export function parseArgs(argv: string[], specs: Record<string, OptionSpec>): Parsed {
  const positional: string[] = [];
  const options = new Map<string, OptionValue>();
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    // A one-letter alias (-o) stands for its long option.
    if (/^-[A-Za-z]$/.test(a)) {
      const long = Object.entries(specs).find(([, sp]) => sp.short === a[1])?.[0];
      if (!long) throw new UsageError(`unknown option ${a}`);
      a = `--${long}`;
    }
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--') || a === '--') {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const inline = eq > 0 ? a.slice(eq + 1) : undefined;
    const spec = specs[name];
    if (!spec) throw new UsageError(`unknown option --${name}`);
    if (options.has(name)) throw new UsageError(`--${name} given twice`);
    const next = (): string | undefined => (inline !== undefined ? inline : argv[++i]);
    switch (spec.kind) {
      case 'flag':
        if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
        options.set(name, true);
        break;
      case 'string': {
        const v = next();
        if (v === undefined) throw new UsageError(`--${name} needs ${spec.arg ?? 'a value'}`);
        if (spec.choices && !spec.choices.includes(v))
          throw new UsageError(`--${name}: '${v}' is not one of ${spec.choices.join(', ')}`);
        options.set(name, v);
        break;
      }
      case 'number':
        options.set(name, toNumber(name, next(), spec));
        break;
      case 'list': {
        if (inline !== undefined) throw new UsageError(`--${name} takes its values as separate arguments`);
        const values: string[] = [];
        while (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) values.push(argv[++i]!);
        if (values.length === 0) throw new UsageError(`--${name} needs ${spec.arg ?? 'at least one value'}`);
        options.set(name, values);
        break;
      }
      case 'pair': {
        const lo = toNumber(name, argv[++i], spec);
        const hi = toNumber(name, argv[++i], spec);
        if (!(hi > lo)) throw new UsageError(`--${name}: ${hi} is not above ${lo}`);
        options.set(name, [lo, hi]);
        break;
      }
    }
  }
  return { positional, options };
}

export function formatOptions(specs: Record<string, OptionSpec>): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const arg = s.kind === 'flag' ? '' : s.kind === 'pair' ? ` ${s.arg ?? 'LO HI'}` : s.kind === 'list' ? ` ${s.arg ?? 'VALUE...'}` : ` ${s.arg ?? 'VALUE'}`;
    return [`  ${s.short ? `-${s.short}, ` : ''}--${name}${arg}`, s.help + (s.choices ? ` (${s.choices.join('|')})` : '')];
  });
  const width = Math.max(...rows.map((r) => r[0]!.length)) + 2;
  return rows.map(([a, b]) => a!.padEnd(width) + b).join('\n');
}

/** Typed accessors over a parsed command line. */
export class Options {
  constructor(private readonly parsed: Parsed) {}
  get positional(): string[] {
    return this.parsed.positional;
  }
  has(name: string): boolean {
    return this.parsed.options.has(name);
  }
  flag(name: string): boolean {
    return this.parsed.options.get(name) === true;
  }
  string(name: string): string | undefined {
    return this.parsed.options.get(name) as string | undefined;
  }
  number(name: string): number | undefined {
    return this.parsed.options.get(name) as number | undefined;
  }
  list(name: string): string[] | undefined {
    return this.parsed.options.get(name) as string[] | undefined;
  }
  pair(name: string): [number, number] | undefined {
    return this.parsed.options.get(name) as [number, number] | undefined;
  }
}

/** The --to HOST:PORT option shared by the commands that send frames. */
export const TO_OPTION: OptionSpec = { kind: 'string', arg: 'HOST:PORT', help: 'beamedge TCP ingest address' };

export function targetOf(opts: Options): { host: string; port: number } {
  const to = opts.string('to');
  if (!to) throw new UsageError('--to HOST:PORT is required');
  const m = /^(.*):(\d+)$/.exec(to);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`--to: '${to}' is not HOST:PORT`);
  return { host: m[1] || '127.0.0.1', port: Number(m[2]) };
}
