#!/usr/bin/env node
// beamedge command line: one module per command, dispatched here.
import { VERSION } from '../version';
import { formatOptions, Options, parseArgs, UsageError } from './args';
import type { Command, Io } from './command';
import type * as Calibrate from './calibrate-command';
import type * as CheckConfig from './check-config-command';
import type * as Convert from './convert-command';
import type * as Decode from './decode-command';
import type * as Demo from './demo-command';
import type * as Integrate from './integrate-command';
import type * as Correlate from './correlate-command';
import type * as Provenance from './provenance-command';
import type * as Replay from './replay-command';
import type * as Run from './run-command';
import type * as Simulate from './simulate-command';
import type * as Spots from './spots-command';

// A command's module is loaded when that command runs (all of them only for
// the command list): `beamedge integrate` does not pay at start-up for the
// daemon's MQTT, SQLite and ZeroMQ modules. In the order the help lists them.
/* eslint-disable @typescript-eslint/no-require-imports */
const LOADERS: [string, () => Command][] = [
  ['demo', () => (require('./demo-command') as typeof Demo).demoCommand],
  ['run', () => (require('./run-command') as typeof Run).runCommand],
  ['check-config', () => (require('./check-config-command') as typeof CheckConfig).checkConfigCommand],
  ['provenance', () => (require('./provenance-command') as typeof Provenance).provenanceCommand],
  ['replay', () => (require('./replay-command') as typeof Replay).replayCommand],
  ['simulate', () => (require('./simulate-command') as typeof Simulate).simulateCommand],
  ['decode', () => (require('./decode-command') as typeof Decode).decodeCommand],
  ['integrate', () => (require('./integrate-command') as typeof Integrate).integrateCommand],
  ['correlate', () => (require('./correlate-command') as typeof Correlate).correlateCommand],
  ['calibrate', () => (require('./calibrate-command') as typeof Calibrate).calibrateCommand],
  ['convert', () => (require('./convert-command') as typeof Convert).convertCommand],
  ['spots', () => (require('./spots-command') as typeof Spots).spotsCommand],
];
/* eslint-enable @typescript-eslint/no-require-imports */

function allCommands(): Command[] {
  return LOADERS.map(([, load]) => load());
}

function mainHelp(): string {
  const COMMANDS = allCommands();
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'beamedge: edge processing for X-ray area detectors',
    '',
    'usage: beamedge COMMAND [options]    (beamedge COMMAND --help for details)',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
  ].join('\n');
}

function commandHelp(c: Command): string {
  if (c.subcommands) return [`usage: ${c.usage}`, '', c.summary, '', ...c.subcommands.map((s) => `  ${s.name.padEnd(10)}${s.summary}`), ''].join('\n');
  return [`usage: ${c.usage}`, '', c.summary, '', formatOptions(c.options), '  --help'.padEnd(4) + '  show this help', ''].join('\n');
}

export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(mainHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    io.out(VERSION + '\n');
    return 0;
  }
  let command = LOADERS.find(([n]) => n === name)?.[1]();
  if (!command) {
    io.err(`beamedge: unknown command '${name}' (try beamedge --help)\n`);
    return 2;
  }
  if (command.subcommands && rest[0] !== undefined && !rest[0].startsWith('-')) {
    const sub = command.subcommands.find((s) => s.name === rest[0]);
    if (!sub) {
      io.err(`beamedge ${command.name}: unknown subcommand '${rest[0]}' (one of ${command.subcommands.map((s) => s.name).join(', ')})\n`);
      return 2;
    }
    command = { ...sub, name: `${command.name} ${sub.name}` };
    rest.shift();
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(commandHelp(command));
    return 0;
  }
  try {
    return await command.run(new Options(parseArgs(rest, command.options)), io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`beamedge ${command.name}: ${err.message} (usage: ${command.usage})\n`);
      return 2;
    }
    io.err(`beamedge ${command.name}: ${(err as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  const io: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`beamedge: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
