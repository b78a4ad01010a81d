import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { readCbf } from '../../daemon/decode/cbf';
import { encodeCbf } from '../../daemon/decode/cbf-writer';
import { needData, readData } from '../helpers/data';
import { hasFabio, needReference, runPython } from '../helpers/python';

t.test('written CBF reads back with its header, MD5 and pixels', async (t) => {
  if (!needData(t)) return;
  const src = readCbf(readData('cbf', 'in16c_010001.cbf'));
  const buf = encodeCbf(src.pixels, ...src.shape, { headerLines: src.header.lines, name: 'copy' });
  const back = readCbf(buf, { verifyMd5: true });
  t.equal(back.md5, 'ok');
  t.same(back.shape, src.shape);
  t.ok(back.pixels.every((v, i) => v === src.pixels[i]), 'pixels identical');
  t.same(back.header.beamXY, src.header.beamXY);
  t.equal(back.header.wavelength, src.header.wavelength);
  t.throws(() => encodeCbf(src.pixels, 10, 10), /does not match/);
});

t.test('fabio reads what beamedge writes', async (t) => {
  if (!needData(t) || !needReference(t, hasFabio, 'fabio')) return;
  const src = readCbf(readData('cbf', 'in16c_010001.cbf'));
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-cbf-'));
  try {
    const file = path.join(dir, 'out.cbf');
    writeFileSync(file, encodeCbf(src.pixels, ...src.shape, { headerLines: src.header.lines }));
    const ref = runPython<{ shape: number[]; sum: number; at: number[] }>(
      `import sys, json, fabio
f = fabio.open(json.load(sys.stdin))
d = f.data
print(json.dumps({"shape": list(d.shape), "sum": int(d.astype('int64').sum()), "at": [int(d[334, 262]), int(d[357, 271]), int(d[125, 127])]}))`,
      file,
    );
    t.same(ref.shape, src.shape);
    t.same(ref.at, [1680, 214, -2]);
    t.equal(ref.sum, src.pixels.reduce((a, b) => a + b, 0));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
