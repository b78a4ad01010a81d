// beamedge check-config FILE: validate a configuration without running it.
import { loadConfig } from '../config/config';
import { describe } from '../config/schema';
import { redactValue } from '../system/redact';
import { UsageError } from './args';
import type { Command } from './command';

export const checkConfigCommand: Command = {
  name: 'check-config',
  summary: 'validate a configuration file (exit 0 when valid, 1 with the problems when not)',
  usage: 'beamedge check-config FILE [--json] | beamedge check-config --keys',
  options: {
    json: { kind: 'flag', help: 'print the effective configuration (defaults filled in, credentials redacted) as JSON' },
    keys: { kind: 'flag', help: 'list every key with its default and whether it needs a restart' },
  },
  async run(opts, io) {
    if (opts.flag('keys')) {
      io.out(describe().join('\n') + '\n');
      return 0;
    }
    if (opts.positional.length !== 1) throw new UsageError('check-config takes exactly one FILE');
    try {
      const loaded = loadConfig(opts.positional[0]!);
      io.out(opts.flag('json') ? JSON.stringify(redactValue(loaded.config), null, 2) + '\n' : `${loaded.source}: valid (sha256 ${loaded.sha256})\n`);
      return 0;
    } catch (e) {
      const problems = (e as { problems?: string[] }).problems ?? [(e as Error).message];
      for (const p of problems) io.err(`${p}\n`);
      return 1;
    }
  },
};
