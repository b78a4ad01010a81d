// 10,000+ randomly corrupted and truncated versions of real frames through the
// parser, the decoder and the fused decode+integrate path: each must end in a
// result or a clean FrameError, never a crash or a hang.
import t from 'tap';
import { readCbf } from '../../daemon/decode/cbf';
import { FrameError } from '../../daemon/decode/frame-error';
import { AzimuthalIntegrator } from '../../daemon/integrate/azimuthal';
import { needData, readData } from '../helpers/data';

let seed = 0x5eed;
function rand(n: number): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return Math.floor((seed / 2 ** 32) * n);
}

type Mutation = (src: Buffer, binaryStart: number) => Buffer;

const MIME_KEYS = ['X-Binary-Size:', 'X-Binary-Number-of-Elements:', 'X-Binary-Size-Fastest-Dimension:', 'X-Binary-Size-Second-Dimension:', 'X-Binary-Element-Type:', 'conversions='];

const mutations: Record<string, Mutation> = {
  truncate: (s) => s.subarray(0, rand(s.length)),
  truncateBinary: (s, b) => s.subarray(0, b + rand(s.length - b)),
  flipBytes: (s) => {
    const c = Buffer.from(s);
    for (let k = 1 + rand(16); k > 0; k--) c[rand(c.length)] = rand(256);
    return c;
  },
  flipBinary: (s, b) => {
    const c = Buffer.from(s);
    for (let k = 1 + rand(8); k > 0; k--) c[b + rand(c.length - b)] = rand(2) ? 0x80 : rand(256);
    return c;
  },
  flipHeader: (s, b) => {
    const c = Buffer.from(s);
    for (let k = 1 + rand(4); k > 0; k--) c[rand(b)] = rand(256);
    return c;
  },
  editMimeField: (s, b) => {
    const head = s.subarray(0, b).toString('latin1');
    const key = MIME_KEYS[rand(MIME_KEYS.length)]!;
    const at = head.indexOf(key);
    if (at < 0) return s;
    const end = head.indexOf('\n', at);
    const values = ['0', '1', '-5', '99999999999999999999', '4294967296', String(rand(1e7)), '"signed 64-bit integer"', '"x-CBF_PACKED"', 'abc', ''];
    const edited = head.slice(0, at + key.length) + ' ' + values[rand(values.length)] + head.slice(end - 1);
    return Buffer.concat([Buffer.from(edited, 'latin1'), s.subarray(b)]);
  },
  dropMarker: (s, b) => {
    const c = Buffer.from(s);
    c.fill(0, b - 4, b);
    return c;
  },
  insertOrDelete: (s) => {
    const at = rand(s.length);
    return rand(2) ? Buffer.concat([s.subarray(0, at), Buffer.from([rand(256), rand(256), rand(256)]), s.subarray(at)]) : Buffer.concat([s.subarray(0, at), s.subarray(at + 1 + rand(64))]);
  },
  garbage: (s) => {
    const c = Buffer.alloc(rand(4096));
    for (let i = 0; i < c.length; i++) c[i] = rand(256);
    return rand(2) ? c : Buffer.concat([s.subarray(0, rand(2000)), c]);
  },
};

t.test('corrupted and truncated frames end in a result or a clean error', async (t) => {
  if (!needData(t)) return;
  const sources = ['in16c_010001.cbf', 'example.cbf'].map((name) => {
    const buf = readData('cbf', name);
    const frame = readCbf(buf);
    return { name, buf, start: frame.binary.dataOffset, frame };
  });
  const names = Object.keys(mutations);
  const outcomes = new Map<string, number>();
  let total = 0;
  let unclean = 0;
  for (let i = 0; i < 10_000; i++) {
    const src = i % 5 === 4 ? sources[1]! : sources[0]!;
    const kind = names[i % names.length]!;
    const bad = mutations[kind]!(src.buf, src.start);
    total++;
    try {
      const f = readCbf(bad, { verifyMd5: true, source: `${src.name}#${i}` });
      if (f.pixels.length !== f.shape[0] * f.shape[1]) throw new Error('shape and pixels disagree');
      outcomes.set('decoded', (outcomes.get('decoded') ?? 0) + 1);
    } catch (err) {
      if (!(err instanceof FrameError) || !err.message.startsWith(`${src.name}#${i}: `)) {
        unclean++;
        if (unclean <= 5) t.fail(`${kind} #${i}: ${String(err)}`);
        continue;
      }
      const key = err.message.replace(/^[^:]+: /, '').replace(/[\d'"]+/g, '#').slice(0, 60);
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
  }
  t.equal(unclean, 0, `${total} corrupted frames, every one a result or a FrameError`);
  t.ok(total >= 10_000);
  t.comment([...outcomes.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${String(v).padStart(5)}  ${k}`).join('\n'));
  t.ok(outcomes.size > 8, 'the corruptions reach many different checks');
});

t.test('corrupted frames through the fused decode+integrate path', async (t) => {
  if (!needData(t)) return;
  const buf = readData('cbf', 'in16c_010001.cbf');
  const frame = readCbf(buf);
  const start = frame.binary.dataOffset;
  const ai = new AzimuthalIntegrator({
    geometry: { dist: 0.04, poni1: 308 * 172e-6, poni2: 244 * 172e-6, rot1: 0, rot2: 0, rot3: 0, pixel1: 172e-6, pixel2: 172e-6, wavelength: 1.542e-10 },
    shape: frame.shape,
    npt: 200,
    unit: '2th_deg',
    split: 'bbox',
  });
  let errors = 0;
  let results = 0;
  for (let i = 0; i < 2000; i++) {
    const kind = ['truncateBinary', 'flipBinary', 'editMimeField', 'insertOrDelete'][i % 4]!;
    const bad = mutations[kind]!(buf, start);
    try {
      const r = ai.integrateCbf(bad);
      if (r.intensity.length !== 200) throw new Error('bad result');
      results++;
    } catch (err) {
      if (!(err instanceof Error) || !err.message) throw err;
      errors++;
    }
  }
  t.equal(errors + results, 2000, `${errors} errors, ${results} results (a flipped byte can still decode)`);
  t.ok(errors > 500);
});
