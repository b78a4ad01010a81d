import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import t from 'tap';
import { checkMd5, readCbf } from '../../daemon/decode/cbf';
import { native } from '../../daemon/native';
import { CBF_FILES, dataFile, needData, readData } from '../helpers/data';
import { hasFabio, needReference, runPython } from '../helpers/python';

function sha256(a: Int32Array): string {
  return createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}

t.test('known pixels of in16c_010001.cbf (data README)', async (t) => {
  if (!needData(t)) return;
  const f = readCbf(readData('cbf', 'in16c_010001.cbf'), { verifyMd5: true });
  t.same(f.shape, [619, 487]);
  const at = (r: number, c: number) => f.pixels[r * f.shape[1] + c];
  t.equal(at(334, 262), 1680);
  t.equal(at(357, 271), 214);
  t.equal(at(125, 127), -2);
  t.equal(f.md5, 'ok');
  t.same(f.header.beamXY, [244, 308]);
  t.equal(f.header.wavelength, 1.542e-10);
  t.equal(f.header.detectorDistance, 0.04);
});

t.test('every CBF: Content-MD5 verifies, shape and header as documented', async (t) => {
  if (!needData(t)) return;
  const shapes: Record<string, [number, number]> = {
    'in16c_010001.cbf': [619, 487],
    'example.cbf': [1679, 1475],
    'thau_3_2_0001.cbf': [2527, 2463],
    'DLS_I03_smargon_0001.cbf': [2527, 2463],
  };
  for (const name of CBF_FILES) {
    const f = readCbf(readData('cbf', name), { verifyMd5: true });
    t.equal(f.md5, 'ok', `${name} MD5`);
    t.same(f.shape, shapes[name], `${name} shape`);
    t.equal(f.pixels.length, f.binary.elements, `${name} element count`);
  }
  const thau = readCbf(readData('cbf', 'thau_3_2_0001.cbf'));
  t.same(thau.header.beamXY, [1261.61, 1306.96]);
  t.equal(thau.header.wavelength, 0.96859e-10);
  t.equal(thau.header.detectorDistance, 0.351);
  t.same(thau.header.pixelSize, [172e-6, 172e-6]);
  t.equal(thau.header.polarization, 0.99);
  t.equal(thau.header.countCutoff, 115897);
});

t.test('re-encoding reproduces the detector-written byte-offset stream byte for byte', async (t) => {
  if (!needData(t)) return;
  for (const name of CBF_FILES) {
    const buf = readData('cbf', name);
    const f = readCbf(buf);
    const original = buf.subarray(f.binary.dataOffset, f.binary.dataOffset + f.binary.binarySize);
    const again = native.byteOffsetEncode(f.pixels);
    t.ok(Buffer.compare(again, original) === 0, `${name}: encode(decode(x)) == x (${original.length} bytes)`);
  }
});

t.test('the AVX2 and portable decoders agree bit for bit', async (t) => {
  if (!needData(t)) return;
  const script = `
    const { readCbf } = require(${JSON.stringify(require.resolve('../../daemon/decode/cbf'))});
    const { native } = require(${JSON.stringify(require.resolve('../../daemon/native'))});
    const crypto = require('node:crypto'); const fs = require('node:fs');
    const out = {};
    for (const f of process.argv.slice(1)) {
      const p = readCbf(fs.readFileSync(f)).pixels;
      out[f] = crypto.createHash('sha256').update(new Uint8Array(p.buffer, p.byteOffset, p.byteLength)).digest('hex');
    }
    console.log(JSON.stringify({ kernel: native.kernels.byteOffset, out }));`;
  const files = CBF_FILES.map((f) => dataFile('cbf', f));
  const run = (kernels?: string) => {
    const env = { ...process.env };
    if (kernels) env.BEAMEDGE_KERNELS = kernels;
    else delete env.BEAMEDGE_KERNELS;
    const r = spawnSync(process.execPath, ['-e', script, ...files], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as { kernel: string; out: Record<string, string> };
  };
  const scalar = run('scalar');
  const fast = run();
  t.equal(scalar.kernel, 'scalar');
  t.comment(`run-time kernel on this CPU: ${fast.kernel}`);
  t.same(fast.out, scalar.out);
});

t.test('pixels identical to fabio, an independent decoder', async (t) => {
  if (!needData(t) || !needReference(t, hasFabio, 'fabio')) return;
  const files = CBF_FILES.map((f) => dataFile('cbf', f));
  const ref = runPython<Record<string, string>>(
    `
import sys, json, hashlib, fabio, numpy
out = {}
for f in json.load(sys.stdin):
    d = numpy.ascontiguousarray(fabio.open(f).data.astype('<i4'))
    out[f] = hashlib.sha256(d.tobytes()).hexdigest()
print(json.dumps(out))`,
    files,
  );
  for (const f of files) t.equal(sha256(readCbf(readData('cbf', f.split('/').pop()!)).pixels), ref[f], f);
});

t.test('example.cbf: no text header, declared padding missing from the file', async (t) => {
  if (!needData(t)) return;
  const buf = readData('cbf', 'example.cbf');
  const f = readCbf(buf, { verifyMd5: true });
  t.equal(f.binary.padding, 4095);
  t.equal(buf.length, f.binary.dataOffset + f.binary.binarySize, 'file ends right after the binary');
  t.same(f.header.lines, []);
  t.equal(checkMd5(buf, f.binary), 'ok');
});

t.test('decodes into a caller-provided buffer (zero copy into a ring slot)', async (t) => {
  if (!needData(t)) return;
  const buf = readData('cbf', 'in16c_010001.cbf');
  const slot = new Int32Array(619 * 487 + 100);
  const f = readCbf(buf, { out: slot });
  t.equal(f.pixels, slot);
  t.throws(() => readCbf(buf, { out: new Int32Array(10), source: 'frame 7' }), /frame 7: output holds 10 elements/);
});
