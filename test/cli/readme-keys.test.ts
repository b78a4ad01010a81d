// The README's configuration key list is `beamedge check-config --keys`,
// verbatim: one source of truth (the schema), and a test that says when the
// documentation has drifted from it.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { repoRoot } from '../helpers/data';
import { BIN } from '../helpers/daemon-process';

t.test('README key list equals check-config --keys', async (t) => {
  const r = spawnSync(process.execPath, [BIN, 'check-config', '--keys'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const keys = r.stdout.trim().split('\n');
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const start = readme.indexOf(keys[0]!);
  t.ok(start > 0, 'the README lists the keys');
  const listed = readme.slice(start, readme.indexOf('```', start)).trim().split('\n');
  t.same(listed, keys, 'same keys, defaults, restart flags and descriptions, in the same order');
});
