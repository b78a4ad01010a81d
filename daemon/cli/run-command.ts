// beamedge run --config FILE: the long-running service (systemd Type=notify).
import { loadConfig } from '../config/config';
import { Daemon } from '../daemon';
import { createLogger } from '../system/logger';
import { UsageError } from './args';
import type { Command } from './command';

export const runCommand: Command = {
  name: 'run',
  summary: 'run the daemon (SIGHUP or an edit of FILE reloads it, SIGTERM stops it cleanly)',
  usage: 'beamedge run --config FILE',
  options: {
    config: { kind: 'string', arg: 'FILE', help: 'YAML configuration (see config/default.yaml)' },
    'no-watch': { kind: 'flag', help: 'reload on SIGHUP only, not when FILE changes' },
  },
  async run(opts) {
    const file = opts.string('config');
    if (!file) throw new UsageError('--config is required');
    if (opts.positional.length) throw new UsageError(`unexpected argument '${opts.positional[0]}'`);
    const loaded = loadConfig(file);
    const log = createLogger(loaded.config.log.level);
    const daemon = await Daemon.start({ loaded, configPath: file, watchConfig: !opts.flag('no-watch'), log });
    process.on('SIGHUP', () => void daemon.reload('SIGHUP'));
    return new Promise<number>((resolve) => {
      const stop = (signal: string) => {
        daemon.stop(signal).then(
          () => resolve(0),
          (e: Error) => {
            log.error('stop failed', { error: e.stack ?? e.message });
            resolve(1);
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  },
};
