import type { Test } from 'tap';

/**
 * The rule for tests that need something outside the repository (data, a
 * reference program, a broker): skip with a visible notice when it is missing,
 * fail instead when CI=true, where .ci/run provides it.
 */
export function need(t: Test, available: boolean, missing: string, underCi: string): boolean {
  if (available) return true;
  if (process.env.CI === 'true') t.fail(`${missing} (${underCi})`);
  else {
    process.stderr.write(`NOTICE: ${missing}; skipping\n`);
    t.test(missing, { skip: missing }, () => {}); // a skipped subtest that names the reason
  }
  return false;
}
