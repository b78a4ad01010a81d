// Byte-offset streams built by hand from the specification (../shared/NOTES.md),
// independent of our encoder.
import t from 'tap';
import { native } from '../../daemon/native';

function le(bytes: number, value: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(bytes * 8, value);
  for (let i = 0; i < bytes; i++) {
    out.push(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

const esc16 = (d: number) => [0x80, ...le(2, BigInt(d))];
const esc32 = (d: number) => [0x80, 0x00, 0x80, ...le(4, BigInt(d))];
const esc64 = (d: bigint) => [0x80, 0x00, 0x80, 0x00, 0x00, 0x00, 0x80, ...le(8, d)];

t.test('every escape width decodes', async (t) => {
  const stream = Uint8Array.from([
    5, // +5 -> 5
    0xfb, // -5 -> 0
    ...esc16(1000), // 1000
    ...esc16(-32767), // -31767
    ...esc32(2_000_000_000), // 1999968233
    ...esc32(-2_000_000_000), // -31767
    ...esc64(31767n + 7n), // 7
    ...esc64(-9n), // -2
    0x7f, // 125
    0x81, // -2
    ...esc16(127), // an escape is legal even where a byte would do: 125
  ]);
  const out = native.byteOffsetDecode(stream, 11);
  t.same(Array.from(out), [5, 0, 1000, -31767, 1999968233, -31767, 7, -2, 125, -2, 125]);
});

t.test('the encoder picks the shortest escape, as the PILATUS does', async (t) => {
  const values = Int32Array.from([0, 127, 0, -127, 128, 0, 32767, 0, -32767, 32768, 0, 2147483647, -2147483648, 0]);
  // Differences: 0, 127, -127, -127, 255, -128, 32767, -32767, -32767, 65535, -32768, 2^31-1, -(2^32-1), 2^31.
  // -128 and -32768 are the escape markers themselves, so they need the next width.
  const expected = [
    0x00, 0x7f, 0x81, 0x81,
    ...esc16(255), ...esc16(-128), ...esc16(32767), ...esc16(-32767), ...esc16(-32767),
    ...esc32(65535), ...esc32(-32768), ...esc32(2147483647),
    ...esc64(-4294967295n), ...esc64(2147483648n),
  ];
  const enc = native.byteOffsetEncode(values);
  t.same(Array.from(enc), expected);
  t.same(Array.from(native.byteOffsetDecode(enc, values.length)), Array.from(values), 'round trip');
});

t.test('random values round-trip through encoder and decoder at every alignment', async (t) => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(rnd() * 300);
    const v = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const r = rnd();
      // Mostly small steps (the SIMD path), sometimes each escape width.
      v[i] = r < 0.7 ? (v[i - 1] ?? 0) + Math.floor(rnd() * 200 - 100) : r < 0.85 ? Math.floor(rnd() * 60000 - 30000) : r < 0.97 ? Math.floor(rnd() * 4e9 - 2e9) : (rnd() < 0.5 ? -2147483648 : 2147483647);
    }
    const enc = native.byteOffsetEncode(v);
    const dec = native.byteOffsetDecode(enc, n);
    if (!dec.every((x, i) => x === v[i])) {
      t.fail(`trial ${trial} mismatch`);
      return;
    }
  }
  t.pass('200 random streams round-trip');
});

t.test('malformed streams give clean errors', async (t) => {
  t.throws(() => native.byteOffsetDecode(Uint8Array.from([1, 2]), 3), /truncated: 2 bytes hold only 2 of 3 elements/);
  t.throws(() => native.byteOffsetDecode(Uint8Array.from([1, 0x80, 0x10]), 2), /truncated/);
  t.throws(() => native.byteOffsetDecode(Uint8Array.from([...esc32(2147483647), 1]), 2), /element 1 .* does not fit a signed 32-bit integer/);
  t.throws(() => native.byteOffsetDecode(Uint8Array.from(esc64(1n << 40n)), 1), /does not fit/);
  t.throws(() => native.byteOffsetDecode(Uint8Array.from([1, 2, 3]), 2), /X-Binary-Size mismatch: 2 elements use 2 bytes, the header says 3/);
  // Every prefix of a stream with all escape widths is reported as truncated, never read past.
  const full = Uint8Array.from([1, ...esc16(300), ...esc32(70000), ...esc64(5n), 3]);
  for (let len = 0; len < full.length; len++)
    t.throws(() => native.byteOffsetDecode(full.subarray(0, len), 5), /truncated/, `prefix ${len}`);
});
