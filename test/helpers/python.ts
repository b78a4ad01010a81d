// Live references from Debian's pyFAI and fabio, when /usr/bin/python3 has them.
import type { Test } from 'tap';
import { need } from './need';
import { spawnSync } from 'node:child_process';

const PYTHON = '/usr/bin/python3';

function hasModules(mods: string): boolean {
  const r = spawnSync(PYTHON, ['-c', `import ${mods}`], { stdio: 'ignore' });
  return r.status === 0;
}

export const hasFabio = hasModules('fabio, numpy');
export const hasPyFAI = hasModules('pyFAI, fabio, numpy');

/** Runs a Python script with JSON on stdin; returns its stdout parsed as JSON. */
export function runPython<T>(script: string, input: unknown = null, timeoutMs = 300_000): T {
  const r = spawnSync(PYTHON, ['-c', script], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
    timeout: timeoutMs,
    // One thread: a reference must not depend on OpenMP scheduling on a loaded machine.
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}


/** Skips with a notice when the reference is missing (CI installs it, so CI fails instead). */
export function needReference(t: Test, available: boolean, what: string): boolean {
  return need(t, available, `${what} not available to ${PYTHON} (apt-get install python3-pyfai python3-fabio)`, '.ci/run installs it');
}

export const hasH5py = hasModules('h5py, numpy');

/** Skips with a notice when h5py is missing (CI installs python3-h5py, so CI fails instead). */
export function needH5py(t: Test): boolean {
  return need(t, hasH5py, `h5py not available to ${PYTHON} (apt-get install python3-h5py)`, '.ci/run installs it');
}
