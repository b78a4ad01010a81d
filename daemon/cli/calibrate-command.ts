// beamedge calibrate SUBCOMMAND: making calibration sets.
import { UsageError } from './args';
import type { Command } from './command';
import { calibrateImportCommand } from './calibrate-import-command';
import { calibratePedestalCommand } from './calibrate-pedestal-command';

export const calibrateCommand: Command = {
  name: 'calibrate',
  summary: 'make a calibration set: from JUNGFRAU dark runs (pedestal), or from existing constants (import)',
  usage: 'beamedge calibrate pedestal|import [options]   (beamedge calibrate SUBCOMMAND --help)',
  options: {},
  subcommands: [calibratePedestalCommand, calibrateImportCommand],
  async run() {
    throw new UsageError('needs a subcommand: pedestal or import');
  },
};
