// DECTRIS stream v2 captures against an independent decoder (Debian's
// bitshuffle and lz4 Python packages with cbor2). The checksums in
// test/fixtures/stream2-reference.json were made once with
// test/fixtures/stream2_reference.py; when those packages are installed the
// reference is also run live.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { decodeImage, decodeStream2, type EncodedImage } from '../../daemon/decode/stream2';
import { native } from '../../daemon/native';
import { dataFile, needData, readData, repoRoot } from '../helpers/data';
import { runPython } from '../helpers/python';
import { spawnSync } from 'node:child_process';

type Reference = Record<string, [string, number, number]>;
const committed = JSON.parse(readFileSync(path.join(repoRoot, 'test', 'fixtures', 'stream2-reference.json'), 'utf8')) as Reference;
const hasReference = spawnSync('/usr/bin/python3', ['-c', 'import bitshuffle, lz4.block, cbor2, numpy'], { stdio: 'ignore' }).status === 0;

function sha(a: ArrayBufferView): string {
  return createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}

function ourDecode(): Reference {
  const out: Reference = {};
  for (const dir of ['r500k_bm_bslz4_16bit', 'r500k_bm_lz4_8bit'])
    for (const f of readdirSync(dataFile('stream2', dir)).sort()) {
      const m = decodeStream2(readData('stream2', dir, f));
      if (m.type !== 'image') continue;
      for (const [ch, img] of Object.entries(m.data!)) {
        const px = decodeImage(img);
        let min = Infinity;
        let max = -Infinity;
        for (const v of px) (min = Math.min(min, v)), (max = Math.max(max, v));
        out[`${dir}/${f}:${ch}`] = [sha(px), min, max];
      }
    }
  return out;
}

t.test('every image message decodes to the reference pixels', async (t) => {
  if (!needData(t)) return;
  const ours = ourDecode();
  t.equal(Object.keys(ours).length, 60, '20 image messages x 3 channels');
  t.same(ours, committed, 'identical to the committed reference checksums');
  if (hasReference) {
    const live = runPython<Reference>(readFileSync(path.join(repoRoot, 'test', 'fixtures', 'stream2_reference.py'), 'utf8').replace("sys.argv[1]", JSON.stringify(path.dirname(dataFile('stream2', 'x')))));
    t.same(ours, live, 'identical to the reference decoder run live');
  } else t.comment('bitshuffle/lz4/cbor2 for /usr/bin/python3 not installed: compared with the committed checksums only');
});

t.test('start, image and end messages', async (t) => {
  if (!needData(t)) return;
  const img = decodeStream2(readData('stream2', 'r500k_bm_bslz4_16bit', '000001.cbor'));
  t.equal(img.type, 'image');
  t.equal(img.image_id, 0);
  t.equal(img.series_id, 1);
  t.same(Object.keys(img.data!), ['threshold_1', 'threshold_2', 'difference']);
  t.same(img.data!.threshold_1!.shape, [514, 1030]);
  t.equal(img.data!.threshold_1!.encoding, 'bslz4');
  const end = decodeStream2(readData('stream2', 'r500k_bm_bslz4_16bit', '000011.cbor'));
  t.same(end, { type: 'end', series_id: 1, series_unique_id: '01GRXWT80JSDY2FNW8SGCCDZD9' });
  t.throws(() => decodeStream2(Buffer.from([0xa1, 0x61, 0x61, 0x01])), /self-describe tag 55799/);
});

t.test('our bitshuffle-LZ4 encoder round-trips 8/16/32-bit, with and without the header', async (t) => {
  for (const [Ctor, es] of [[Uint8Array, 1], [Uint16Array, 2], [Uint32Array, 4]] as const) {
    const n = 514 * 1030 + 5;
    const a = new Ctor(n);
    for (let i = 0; i < n; i++) a[i] = i % 101 === 0 ? 2 ** (8 * es) - 1 : (i * 2654435761) % 7;
    const c = native.bslz4Encode(a, es);
    const b = native.bslz4Decode(c, new Ctor(n), es);
    t.ok(a.every((v, i) => v === b[i]), `${8 * es}-bit with header`);
    const headerless = native.bslz4Decode(c.subarray(12), new Ctor(n), es);
    t.ok(a.every((v, i) => v === headerless[i]), `${8 * es}-bit header-less (8192-byte blocks)`);
  }
});

t.test('framed LZ4: compressed and stored-raw blocks', async (t) => {
  // Two 64-byte blocks: the first LZ4-compressed, the second stored raw (its length equals the block size).
  const plain = Buffer.concat([Buffer.from('abcd'.repeat(16)), Buffer.from('raw block, stored as is because LZ4 would not shrink it: 0123456'.slice(0, 64))]);
  const block1 = native.lz4BlockEncode(plain.subarray(0, 64));
  const header = Buffer.alloc(12);
  header.writeBigUInt64BE(128n, 0);
  header.writeUInt32BE(64, 8);
  const len = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const framed = Buffer.concat([header, len(block1.length), block1, len(64), plain.subarray(64)]);
  t.ok(block1.length < 64, 'the first block really is compressed');
  t.equal(Buffer.from(native.lz4Decode(framed, new Uint8Array(128), true)).toString(), plain.toString());
  t.throws(() => native.lz4Decode(framed.subarray(0, framed.length - 1), new Uint8Array(128), true), /LZ4 block runs past the input/);
  t.throws(() => native.lz4Decode(framed, new Uint8Array(127), true), /header says 128 bytes/);
  // An LZ4 match whose offset points before the start of the output.
  t.throws(() => native.lz4Decode(Buffer.from([0x10, 0x41, 0x05, 0x00, 0x50, 0x41, 0x41, 0x41, 0x41, 0x41]), new Uint8Array(10), false), /offset points outside/);
});

t.test('10,000 corrupted messages (whole CBOR messages and compressed payloads) end in a result or a clean error', async (t) => {
  if (!needData(t)) return;
  let seed = 7;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % n);
  const messages = ['r500k_bm_bslz4_16bit', 'r500k_bm_lz4_8bit'].map((d) => readData('stream2', d, '000002.cbor'));
  const sources: EncodedImage[] = messages.map((m) => decodeStream2(m).data!.threshold_1!);
  let errors = 0;
  let results = 0;
  for (let i = 0; i < 10_000; i++) {
    try {
      if (i % 2 === 0) {
        // The whole message: framing, CBOR structure, tags and payload alike.
        let msg = Buffer.from(messages[(i >> 1) % 2]!);
        if (i % 4 === 0) msg = msg.subarray(0, rand(msg.length));
        else for (let k = 1 + rand(16); k > 0; k--) msg[rand(Math.min(msg.length, k % 2 ? 400 : msg.length))] = rand(256);
        const m = decodeStream2(msg);
        for (const img of Object.values(m.data ?? {})) decodeImage(img);
        results++;
        continue;
      }
      const img = sources[(i >> 1) % 2]!;
      let bytes = Buffer.from(img.bytes);
      switch ((i >> 1) % 5) {
        case 0: bytes = bytes.subarray(0, rand(bytes.length)); break;
        case 1: for (let k = 1 + rand(8); k > 0; k--) bytes[rand(bytes.length)] = rand(256); break;
        case 2: bytes.writeUInt32BE(rand(2 ** 32), 12); break; // first block's compressed length
        case 3: bytes.writeUInt32BE(rand(3) === 0 ? 0 : rand(1 << 20), 8); break; // block size in the header
        case 4: bytes = Buffer.concat([bytes, Buffer.alloc(1 + rand(64), rand(256))]); break;
      }
      decodeImage({ ...img, bytes });
      results++;
    } catch (e) {
      if (!(e instanceof Error) || !e.message) throw e;
      errors++;
    }
  }
  t.equal(errors + results, 10_000, `${errors} clean errors, ${results} decoded (a flipped literal still decodes)`);
  t.ok(errors > 5000);
});
