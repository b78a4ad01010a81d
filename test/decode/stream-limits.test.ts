// The checks between a DECTRIS stream message and any allocation: field limits
// (decode/stream-checks.ts), the CBOR tags that cannot be forged, the native
// bitshuffle decoder's bounds on what a header declares, the CBOR walk that
// bounds decoding time, and the worker-side decode of a start message's mask
// and flatfield.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Encoder as CborEncoder, Tag as CborTag } from 'cbor-x' with { 'resolution-mode': 'import' };
import t from 'tap';
import { cborProblem, MAX_CBOR_ITEMS } from '../../daemon/decode/cbor-scan';
import { decodeStream1, MAX_JSON_PART } from '../../daemon/decode/stream1';
import { idField, imageField, MAX_STRING, optionalString, shown } from '../../daemon/decode/stream-checks';
import { decodeImage, decodeStream2, type EncodedImage } from '../../daemon/decode/stream2';
import { native } from '../../daemon/native';
import { seriesCalibration } from '../../daemon/workers/series-calibration';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Encoder, Tag } = require('cbor-x') as { Encoder: typeof CborEncoder; Tag: typeof CborTag };
const cbor = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
const message = (fields: unknown): Buffer => cbor.encode(new Tag(fields, 55799));

function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function ramp(n: number): Uint16Array {
  return Uint16Array.from({ length: n }, (_, i) => (i * 37) % 5000);
}

t.test('bitshuffle-LZ4: a header declaring 1 GiB blocks decodes with scratch no larger than the frame', async (t) => {
  // 64 x 64 uint16 is exactly one 8192-byte block: the same bytes are valid for any larger declared block.
  const px = ramp(64 * 64);
  const c = Buffer.from(native.bslz4Encode(px, 2));
  c.writeUInt32BE(1 << 30, 8);
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // the peak is then compared with an earlier, higher one
  }
  const base = peakRssMiB();
  for (let i = 0; i < 5; i++) t.same(native.bslz4Decode(c, new Uint16Array(px.length), 2), px, `decode ${i + 1}: exact pixels`);
  // Many blocks of data under a header that declares one block: a clean error, no 1 GiB scratch.
  const big = ramp(512 * 512);
  const d = Buffer.from(native.bslz4Encode(big, 2));
  d.writeUInt32BE(1 << 30, 8);
  for (let i = 0; i < 5; i++) t.throws(() => native.bslz4Decode(d, new Uint16Array(big.length), 2), /LZ4 block decodes to 8192 bytes, expected 524288/);
  const growth = peakRssMiB() - base;
  t.ok(growth < 200, `peak resident memory grew by ${growth.toFixed(0)} MiB (< 200)`);
});

t.test('bitshuffle-LZ4: a header whose total disagrees with the shape is a clean error, whatever its block size', async (t) => {
  const px = ramp(100 * 100);
  for (const [total, block] of [[2 ** 30, 8192], [2 ** 30, 4096], [px.length * 2 + 2, 1 << 30], [1, 16]] as const) {
    const c = Buffer.from(native.bslz4Encode(px, 2));
    c.writeUInt32BE(Math.floor(total / 2 ** 32), 0);
    c.writeUInt32BE(total % 2 ** 32, 4);
    c.writeUInt32BE(block, 8);
    t.throws(() => native.bslz4Decode(c, new Uint16Array(px.length), 2), { message: `bitshuffle header says ${total} bytes, the frame needs ${px.length * 2}` }, `total ${total}, block ${block}`);
  }
  // Header-less data is still told apart: its first word is a block's length, never 0...
  t.same(native.bslz4Decode(native.bslz4Encode(px, 2).subarray(12), new Uint16Array(px.length), 2), px, 'header-less data decodes');
  // ...and an image too small for a block (the raw tail only) may start with zeros.
  const tiny = new Uint32Array([0, 0, 0, 7, 0, 0, 1]);
  t.same(native.bslz4Decode(new Uint8Array(tiny.buffer), new Uint32Array(7), 4), tiny, 'a 7-pixel header-less image is its raw tail');
});

t.test('field checks: strings, ids and images against the slot size, with bounded messages', async (t) => {
  t.equal(optionalString('x'.repeat(MAX_STRING), 'series_unique_id'), 'x'.repeat(MAX_STRING));
  t.equal(optionalString(undefined, 'series_unique_id'), undefined);
  t.throws(() => optionalString('x'.repeat(5000), 'series_unique_id'), { message: 'series_unique_id of 5000 characters exceeds 256' });
  t.throws(() => optionalString({ a: 1 }, 'channel name'), { message: 'channel name is not a string: a map' });
  t.equal(idField(0, 'image_id'), 0);
  for (const bad of [-1, 1.5, NaN, 2 ** 53, '3', undefined]) t.throws(() => idField(bad, 'image_id'), /^image_id (is missing|is not an integer >= 0)/, `image_id ${String(bad)}`);
  t.equal(shown('y'.repeat(1000)), `"${'y'.repeat(64)}"... (1000 characters)`);
  t.equal(shown(new Array(1_000_000)), 'an array of 1000000');

  const max = 1024 * 1024;
  const img = (o: Partial<EncodedImage>): EncodedImage => ({ shape: [512, 1024], dtype: 'uint16', encoding: 'raw', bytes: new Uint8Array(512 * 1024 * 2), ...o });
  t.equal(imageField(img({ shape: [2048, 1024], encoding: 'bslz4', bytes: new Uint8Array(100) }), 'frame', max).shape[0], 2048, 'exactly four slots decoded is accepted');
  const cases: [Partial<EncodedImage> | unknown, RegExp][] = [
    [img({ shape: [2049, 1024] }), /^frame \(2049 x 1024 uint16\) needs 4\.0 MiB \(4196352 bytes\) decoded; the limit is 4\.0 MiB \(4194304 bytes\) \(4 x rings\.slot_mb\)$/],
    [img({ shape: [2 ** 40, 2 ** 40] }), /needs .* decoded; the limit is/],
    [img({ shape: [0, 10] }), /no usable shape \[rows, cols\]: \[0, 10\]/],
    [img({ shape: [1.5, 10] as [number, number] }), /no usable shape/],
    [img({ shape: [1, 2, 3] as unknown as [number, number] }), /no usable shape/],
    [img({ dtype: 'float64' as 'uint8' }), /unsupported element type "float64"/],
    [img({ encoding: 'zstd' as 'raw' }), /unsupported encoding "zstd"/],
    [img({ bytes: 'abc' as unknown as Uint8Array }), /has no byte string/],
    [img({ bytes: new Uint8Array(10) }), /has 10 bytes of raw pixels, its shape needs 1048576/],
    [img({ shape: [8, 8], encoding: 'bslz4', bytes: new Uint8Array(max + 1) }), /has 1\.0 MiB \(1048577 bytes\) of data; a slot holds/],
    [42, /^frame is not an image/],
  ];
  for (const [v, re] of cases) t.throws(() => imageField(v, 'frame', max), re, re.source);
});

t.test('CBOR tags: a compressed payload cannot be forged, and its element size must match for bitshuffle', async (t) => {
  const px = ramp(64 * 64);
  const bytes = native.bslz4Encode(px, 2);
  const msg = (typed: unknown) => message({ type: 'image', series_id: 1, image_id: 0, data: { c: new Tag([[64, 64], typed], 40) } });
  const ok = decodeStream2(msg(new Tag(new Tag(['bslz4', 2, bytes], 56500), 69)));
  t.same(decodeImage(ok.data!.c!), px, 'a well-formed image decodes');
  t.throws(() => decodeStream2(msg(new Tag(new Tag(['bslz4', 4, bytes], 56500), 69))), /compressed uint16 data declares 4-byte elements/);
  t.throws(() => decodeStream2(msg(new Tag({ algorithm: 'bslz4', elemSize: 2, bytes }, 69))), /typed-array tag 69 holds neither bytes nor a tag 56500 compressed payload/);
  t.throws(() => decodeStream2(msg(new Tag(new Tag('bslz4', 56500), 69))), /unsupported compression undefined/);
  t.throws(() => decodeStream2(msg(new Tag(new Tag(['x'.repeat(5000), 2, bytes], 56500), 69))), { message: `stream v2: unsupported compression "${'x'.repeat(32)}"` });
  t.throws(() => decodeStream2(msg(new Tag(new Tag(['bslz4', 2, 'not bytes'], 56500), 69))), /tag 56500 is not \[algorithm, element size, bytes\]/);
  t.throws(() => decodeStream2(message({ type: 'image', data: { c: new Tag(7, 40) } })), /tag 40 is not \[\[rows, cols\], typed array\]/);
  // Plain LZ4 has no element size; DCUs send 0 (as in the captures).
  const lz4 = decodeStream2(msg(new Tag(new Tag(['lz4', 0, new Uint8Array(12)], 56500), 69)));
  t.equal(lz4.data!.c!.encoding, 'lz4');
});

t.test("a start message's mask and flatfield are decoded once on the worker, and their problems name them", async (t) => {
  const shape: [number, number] = [64, 64];
  const mask = new Uint32Array(64 * 64);
  mask[5] = 1;
  mask[4095] = 0xffffffff;
  const context = {
    key: 'k',
    mask: { shape, dtype: 'uint32', encoding: 'bslz4', bytes: native.bslz4Encode(mask, 4) } as EncodedImage,
    flat: { shape, dtype: 'float32', encoding: 'raw', bytes: new Uint8Array(new Float32Array(64 * 64).fill(0.5).buffer) } as EncodedImage,
  };
  const c = seriesCalibration(context, shape);
  t.same([c.mask![5], c.mask![4095], c.mask!.reduce((a, b) => a + b, 0)], [1, 1, 2], 'non-zero is masked');
  t.equal(c.flat![17], 0.5);
  t.equal(seriesCalibration(context, shape), c, 'decoded once per context');
  t.throws(() => seriesCalibration(context, [64, 32]), { message: "the start message's pixel mask is 64 x 64, the frames are 64 x 32" });
  const broken = { key: 'b', mask: { ...context.mask, bytes: context.mask.bytes.subarray(0, 40) } };
  for (let i = 0; i < 2; i++) t.throws(() => seriesCalibration(broken, shape), /^the start message's pixel mask \(64 x 64 uint32, bslz4\) does not decode: /, `attempt ${i + 1}`);
});

t.test('CBOR structure is walked before decoding: item count bounded, impossible counts refused', async (t) => {
  const good = message({ type: 'start', series_id: 1, channels: ['a', 'b'], f: 1.5, h: [1, -2, 2 ** 40], m: { x: null, y: true }, b: new Uint8Array(1000) });
  t.equal(cborProblem(good), undefined, 'a well-formed message passes');
  t.equal(cborProblem(Buffer.from('9f0102ff', 'hex')), undefined, 'indefinite-length arrays');
  t.equal(cborProblem(Buffer.from('5f42010241ffff', 'hex')), undefined, 'indefinite-length byte strings');
  const cases: [string, RegExp][] = [
    ['9a7fffffff01', /a CBOR array of 2147483647 entries with 1 bytes left/],
    ['ba0001000001', /a CBOR map of 65536 entries with 1 bytes left/],
    ['5b00000001000000000102', /a CBOR string of 4294967296 bytes with 2 left/],
    ['82010203', /1 bytes after the CBOR item/],
    ['9f01', /CBOR ends inside an item at byte 2/],
    ['1a0102', /CBOR ends inside an item at byte 1/],
    ['ff', /break outside an indefinite-length item/],
    ['1c', /malformed CBOR at byte 0/],
    ['1f', /malformed CBOR at byte 0/],
  ];
  for (const [hex, re] of cases) t.match(cborProblem(Buffer.from(hex, 'hex')), re, hex);
  // The walk stops at the limit: what it costs the main thread is measured in test/daemon/dectris-hostile.test.ts.
  const many = message({ type: 'image', user_data: new Array(4_000_000).fill(1) });
  t.equal(cborProblem(many), `more than ${MAX_CBOR_ITEMS} CBOR items`);
  t.throws(() => decodeStream2(many), { message: `stream v2: more than ${MAX_CBOR_ITEMS} CBOR items` }, 'decodeStream2 refuses it unread');
});

t.test('stream v1: a JSON part larger than 1 MiB is refused unparsed', async (t) => {
  const huge = Buffer.from(JSON.stringify({ htype: 'dimage-1.0', series: 1, frame: 0, pad: 'x'.repeat(MAX_JSON_PART) }));
  t.throws(() => decodeStream1([huge]), { message: `stream v1: first part of ${huge.length} bytes exceeds ${MAX_JSON_PART} (JSON parts are headers)` });
  t.equal(decodeStream1([Buffer.from(JSON.stringify({ htype: 'dseries_end-1.0', series: 4 }))]).kind, 'end');
});
