// Where the real detector data lives, and the rule for tests that need it:
// skip with a visible notice when it is absent, fail when CI=true.
import type { Test } from 'tap';
import { need } from './need';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const repoRoot = path.resolve(__dirname, '..', '..', '..');

export const dataDir: string | undefined = [process.env.BEAMEDGE_DATA, path.resolve(repoRoot, '..', 'shared', 'data')].find(
  (d): d is string => !!d && existsSync(path.join(d, 'cbf')),
);

export function dataFile(...parts: string[]): string {
  if (!dataDir) throw new Error('no data directory');
  return path.join(dataDir, ...parts);
}

export function readData(...parts: string[]): Buffer {
  return readFileSync(dataFile(...parts));
}


/** Returns true when the data is there; otherwise skips (or fails under CI) and returns false. */
export function needData(t: Test): boolean {
  return need(t, !!dataDir, 'real detector data not found: set BEAMEDGE_DATA or put shared/data beside the repository', 'required when CI=true');
}

export const CBF_FILES = ['in16c_010001.cbf', 'example.cbf', 'thau_3_2_0001.cbf', 'DLS_I03_smargon_0001.cbf'] as const;
export { repoRoot };
