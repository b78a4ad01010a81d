import type { OptionSpec, Options } from './args';

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Record<string, OptionSpec>;
  /** Resolves to the exit code. */
  run(opts: Options, io: Io): Promise<number>;
}
