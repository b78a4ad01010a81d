// The reload event lists the configuration keys that changed (by dotted name, not value).
import t from 'tap';
import { parseConfig } from '../../daemon/config/config';
import { changedKeys } from '../../daemon/config/changed-keys';

const base = 'instance: a\npipeline:\n  veto: { threshold: 20, min_pixels: 30 }\n  integrate: { npt: 1000 }\n';

t.test('changed keys between two parsed configurations', async (t) => {
  const a = parseConfig(base, 'a').config;
  t.same(changedKeys(a, parseConfig(base + '# a comment\n', 'b').config), [], 'a comment changes nothing');
  t.same(changedKeys(a, parseConfig(base.replace('threshold: 20', 'threshold: 25'), 'b').config), ['pipeline.veto.threshold']);
  t.same(
    changedKeys(a, parseConfig(base.replace('npt: 1000', 'npt: 500').replace('min_pixels: 30', 'min_pixels: 31'), 'b').config),
    ['pipeline.integrate.npt', 'pipeline.veto.min_pixels'],
    'several keys, sorted',
  );
  const withSeries = parseConfig(base + 'series:\n  - { match: "scan*", veto: { threshold: 99 } }\n', 'b').config;
  t.same(changedKeys(a, withSeries), ['series'], 'a list changes as a whole');
  t.same(changedKeys({ x: { y: 1 } }, { x: { y: 1, z: 2 } }), ['x.z'], 'a key that appears');
});
