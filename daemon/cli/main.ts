#!/usr/bin/env node
// beamedge command line: one module per command, dispatched here.
import { VERSION } from '../version';
import { formatOptions, Options, parseArgs, UsageError } from './args';
import type { Command, Io } from './command';
import { calibrateCommand } from './calibrate-command';
import { checkConfigCommand } from './check-config-command';
import { convertCommand } from './convert-command';
import { decodeCommand } from './decode-command';
import { demoCommand } from './demo-command';
import { integrateCommand } from './integrate-command';
import { correlateCommand } from './correlate-command';
import { provenanceCommand } from './provenance-command';
import { replayCommand } from './replay-command';
import { runCommand } from './run-command';
import { simulateCommand } from './simulate-command';
import { spotsCommand } from './spots-command';

const COMMANDS: Command[] = [demoCommand, runCommand, checkConfigCommand, provenanceCommand, replayCommand, simulateCommand, decodeCommand, integrateCommand, correlateCommand, calibrateCommand, convertCommand, spotsCommand];

function mainHelp(): string {
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
  let command = COMMANDS.find((c) => c.name === name);
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
