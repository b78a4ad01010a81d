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
  /** Commands with subcommands (beamedge calibrate pedestal ...): the first argument picks one; options and run are then the subcommand's. */
  subcommands?: Command[];
  /** Resolves to the exit code. */
  run(opts: Options, io: Io): Promise<number>;
}
