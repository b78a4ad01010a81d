// The bound every per-series and per-geometry cache relies on.
import t from 'tap';
import { RecentMap } from '../../daemon/system/recent-map';

t.test('keeps the most recently set keys, tells of each eviction', async (t) => {
  const evicted: [string, number][] = [];
  const m = new RecentMap<string, number>(3, (k, v) => evicted.push([k, v]));
  for (const [i, k] of ['a', 'b', 'c', 'd'].entries()) m.set(k, i);
  t.same([...m.keys()], ['b', 'c', 'd'], 'the oldest went');
  t.same(evicted, [['a', 0]]);
  m.set('b', 10); // setting an existing key makes it the most recent
  m.set('e', 4);
  t.same([...m.entries()], [['d', 3], ['b', 10], ['e', 4]], 'c was the oldest once b was set again');
  t.same(evicted, [['a', 0], ['c', 2]]);
  t.equal(m.get('c'), undefined);
  m.delete('d');
  t.equal(m.size, 2, 'delete is a plain delete (no eviction reported)');
  t.equal(evicted.length, 2);
  // Many distinct ids (a hostile sender) never grow it.
  for (let i = 0; i < 10_000; i++) m.set(`s${i}`, i);
  t.equal(m.size, 3);
});
