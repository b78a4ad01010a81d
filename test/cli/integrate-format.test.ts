// The profile's numbers: fmt writes integers itself (V8's toExponential takes
// a slow path for them); the reference is toExponential(9) itself.
import t from 'tap';
import { fmt } from '../../daemon/cli/integrate-command';

t.test('integers below 1e10 read exactly as toExponential(9) writes them', async (t) => {
  const xs = [0, -0, 1, -1, 7, 9, 10, 11, 99, 100, 12345, 1e9, 999999999, 1e10 - 1, -(1e10 - 1), 4294967296, 2 ** 31 - 1];
  // Every digit count, with random digits.
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let digits = 1; digits <= 10; digits++)
    for (let k = 0; k < 200; k++) {
      const x = Math.floor(10 ** (digits - 1) + rand() * (10 ** digits - 10 ** (digits - 1)));
      xs.push(x, -x);
    }
  let bad = 0;
  for (const x of xs) if (fmt(x) !== x.toExponential(9)) t.equal(fmt(x), x.toExponential(9), `${x}`), bad++;
  t.equal(bad, 0, `${xs.length} integers`);
});

t.test('other numbers go to toExponential(9); non-finite ones as String(x)', async (t) => {
  for (const x of [1e10, -1e10, 12345678901, 2 ** 53, 0.5, -0.25, 1 / 3, 1e-300, 5e-324, 123456.789, Number.MAX_VALUE]) t.equal(fmt(x), x.toExponential(9), `${x}`);
  t.equal(fmt(NaN), 'NaN');
  t.equal(fmt(Infinity), 'Infinity');
  t.equal(fmt(-Infinity), '-Infinity');
});
