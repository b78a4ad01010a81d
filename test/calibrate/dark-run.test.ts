// A synthesised G0 dark run around the real pedestal and rms maps of one
// JUNGFRAU module: the computed pedestals against the truth, and the
// wrong-gain flag on exactly the pixels that were made to switch.
import t from 'tap';
import { DarkResult, DarkRun, DEFAULT_MAX_RMS } from '../../daemon/calibrate/dark-run';
import { WRONG_GAIN } from '../../daemon/calibrate/mask-bits';
import { needData, readData } from '../helpers/data';
import { mulberry32, NormalTable } from './synth';

const FRAMES = 1000;
const WRONG_PIXELS = 200;
// Every 20th frame: 5 % of the run, above the 2 % default limit.
const WRONG_EVERY = 20;

t.test('synthesised G0 dark run of one module', async (t) => {
  if (!needData(t)) return;
  const f32 = (name: string) => {
    const b = readData('jungfrau', name);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  };
  const pedestal = f32('mod5_pedeG0.bin');
  const rms = f32('mod5_pedeG0_RMS.bin');
  const n = pedestal.length;
  const rand = mulberry32(20240611);
  const normal = new NormalTable(rand);
  const wrong = new Set<number>();
  while (wrong.size < WRONG_PIXELS) wrong.add(Math.floor(rand() * n));
  const wrongList = [...wrong];

  const run = new DarkRun(n);
  const frame = new Uint16Array(n);
  let addNs = 0n;
  for (let f = 0; f < FRAMES; f++) {
    normal.frame(pedestal, rms, frame);
    for (const i of wrongList) if ((f + i) % WRONG_EVERY === 0) frame[i] = 0x4000 | (frame[i]! & 0x3fff);
    const t0 = process.hrtime.bigint();
    run.add(frame);
    addNs += process.hrtime.bigint() - t0;
  }
  const seconds = Number(addNs) / 1e9;
  t.comment(`accumulating ${FRAMES} frames of 512x1024: ${seconds.toFixed(2)} s, ${((FRAMES * n) / seconds / 1e6).toFixed(0)} Mpixel/s`);

  const result = new DarkResult(n);
  const summary = run.finish('synthetic', { maxRms: DEFAULT_MAX_RMS, maxWrongGain: 0.02 }, result);
  t.same(summary.exercisedGains, [0], 'only G0 is exercised');
  t.equal(summary.dominantGain, 0);

  // The standard error of a pixel's mean: its noise plus the variance 1/12
  // that rounding to integer ADC adds (it matters only for tiny rms). A
  // Gaussian mean lies within 3 standard errors with probability 99.73 %,
  // within 4 with 99.994 %: 99.9 % within 3 cannot hold, so both are checked.
  let within3 = 0;
  let within4 = 0;
  for (let i = 0; i < n; i++) {
    const count = wrong.has(i) ? FRAMES - FRAMES / WRONG_EVERY : FRAMES;
    const se = Math.sqrt(rms[i]! ** 2 + 1 / 12) / Math.sqrt(count);
    const d = Math.abs(result.pedestal[i]! - pedestal[i]!);
    if (d <= 3 * se) within3++;
    if (d <= 4 * se) within4++;
  }
  t.comment(`pedestal within 3 standard errors: ${((100 * within3) / n).toFixed(3)} % of pixels, within 4: ${((100 * within4) / n).toFixed(3)} %`);
  t.ok(within3 / n >= 0.996, `within 3 standard errors on ${within3} of ${n} pixels`);
  t.ok(within4 / n >= 0.999, `within 4 standard errors on ${within4} of ${n} pixels`);

  const wrongBit = WRONG_GAIN;
  let flaggedWrong = 0;
  let flaggedOthers = 0;
  for (let i = 0; i < n; i++)
    if (result.mask[i]! & wrongBit) {
      if (wrong.has(i)) flaggedWrong++;
      else flaggedOthers++;
    }
  t.comment(`wrong_gain: ${flaggedWrong} of ${WRONG_PIXELS} switched pixels, ${flaggedOthers} others`);
  t.equal(flaggedWrong, WRONG_PIXELS, 'every switched pixel is flagged wrong_gain');
  t.equal(flaggedOthers, 0, 'no other pixel is');
  t.equal(summary.flagged.no_pedestal, 0, 'every pixel had enough G0 frames');
});
