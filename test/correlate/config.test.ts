// pipeline.correlate and output.directory at the configuration boundary:
// defaults, paths, and the clear refusals (pairs outside the bins, an
// accumulator over its memory bound, malformed pairs).
import path from 'node:path';
import t from 'tap';
import { parseConfig } from '../../daemon/config/config';
import { correlatorBytes } from '../../daemon/correlate/accumulator';
import { native } from '../../daemon/native';

t.test('defaults and output.directory', async (t) => {
  const c = parseConfig('instance: x\nprovenance: { path: /var/lib/b/p.sqlite }\n', 'test', '/etc').config;
  t.same(c.pipeline.correlate, { enabled: false, npt: 64, npt_azim: 180, unit: 'q_nm^-1', range: null, q_pairs: [], publish_every: 100, max_mb: 1024 });
  t.equal(c.output.directory, '/var/lib/b/output-x', 'beside the provenance database by default');
  t.equal(parseConfig('output: { directory: res }\n', 'test', '/etc/beamedge').config.output.directory, path.join('/etc/beamedge', 'res'), 'relative to the config file');
  t.ok(c.pipeline.stages.includes('correlate'), 'correlate is a default stage (it does nothing until enabled)');
});

t.test('refusals name the key and the rule', async (t) => {
  t.throws(() => parseConfig('pipeline: { correlate: { npt: 8, q_pairs: [[1, 8]] } }', 'test'), /pipeline\.correlate\.q_pairs: \[\[1,8\]\] name bins outside \[0, npt = 8\)/);
  t.throws(() => parseConfig('pipeline: { correlate: { q_pairs: [[1, 2, 3]] } }', 'test'), /pipeline\.correlate\.q_pairs: .* must be a list of \[i, j\] pairs/);
  t.throws(() => parseConfig('pipeline: { correlate: { q_pairs: [[-1, 2]] } }', 'test'), /must be a list of \[i, j\] pairs/);
  t.throws(() => parseConfig('pipeline: { correlate: { enabled: true, npt: 1000, npt_azim: 360, max_mb: 1024 } }', 'test'), /needs \d+ MiB per series accumulator, over max_mb 1024/);
  t.doesNotThrow(() => parseConfig('pipeline: { correlate: { enabled: true, npt: 300, npt_azim: 256 } }', 'test'));
  t.throws(() => parseConfig('pipeline: { correlate: { publish_every: 0 } }', 'test'), /publish_every: 0 must be >= 1/);
});

t.test('the memory estimate the bound uses is what the accumulator takes', async (t) => {
  for (const [nq, nphi] of [[300, 256], [64, 180], [7, 15]] as const) {
    const c = new native.Correlator(nq, nphi, 32);
    t.equal(correlatorBytes(nq, nphi), c.memoryBytes(), `${nq} x ${nphi}`);
  }
});
