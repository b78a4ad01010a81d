// EIGER/NXmx master + data files (made from the real stream v2 captures with
// HDF5's own bitshuffle filter) decode to the capture's pixels, with the
// master's geometry, pixel mask, saturation and frame ids.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { openNxmx, readNxmxFrame } from '../../daemon/decode/nxmx';
import { decodeImage } from '../../daemon/decode/stream2';
import { AzimuthalIntegrator } from '../../daemon/integrate/azimuthal';
import { needData } from '../helpers/data';
import { BIN } from '../helpers/daemon-process';
import { capturePixels, makeNxmx, needHdf5Plugin, SHAPE } from '../helpers/nxmx';

function tmp(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-nxmx-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('a master + data file pair decodes to the capture pixels', async (t) => {
  if (!needData(t) || !needHdf5Plugin(t)) return;
  const dir = tmp(t);
  const want = capturePixels();
  t.equal(want.length, 10, 'ten captured images');
  const mask = new Uint32Array(SHAPE[0] * SHAPE[1]);
  for (let r = 50; r < 150; r++) for (let c = 600; c < 800; c++) mask[r * SHAPE[1] + c] = 1;
  const { master, data } = makeNxmx(dir, want, { perFile: 4, mask, saturation: 3 });
  t.equal(data.length, 3, 'three data files (4 + 4 + 2 frames)');
  const s = await openNxmx(master);
  t.same(s.shape, SHAPE);
  t.equal(s.dtype, 'uint16');
  t.equal(s.filter, 'bslz4');
  t.equal(s.declared, 10);
  t.same(s.frames.map((f) => f.id), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'frame ids from image_nr_low, 0-based like the stream');
  t.same(s.dataFiles.map((d) => [path.basename(d.file), d.firstId, d.frames]), [['series_data_000001.h5', 0, 4], ['series_data_000002.h5', 4, 4], ['series_data_000003.h5', 8, 2]]);
  t.same(s.geometry, { dist: 0.1, poni1: 257 * 75e-6, poni2: 515 * 75e-6, rot1: 0, rot2: 0, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10 }, 'geometry from the NXmx detector and beam');
  t.equal(s.maxValid, 3, 'saturation_value');
  t.same(Array.from(s.mask!), Array.from(mask), 'pixel_mask');
  let differing = 0;
  s.frames.forEach((fr, i) => {
    const img = readNxmxFrame(s, fr);
    t.equal(img.encoding, 'bslz4', `frame ${fr.id}: the chunk goes on compressed`);
    const px = decodeImage(img) as Uint16Array;
    if (!px.every((v, k) => v === want[i]![k])) differing++;
  });
  t.equal(differing, 0, 'every frame decodes (natively) to the capture pixels, bit for bit');
});

t.test('beamedge decode reads a master file', async (t) => {
  if (!needData(t) || !needHdf5Plugin(t)) return;
  const dir = tmp(t);
  const want = capturePixels();
  const { master } = makeNxmx(dir, want, { perFile: 5 });
  const out = path.join(dir, 'frame7.raw');
  const r = spawnSync(process.execPath, [BIN, 'decode', master, '--frame', '7', '--out', out, '--json'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { shape: number[]; frames: number; frame: number; dtype: string; min: number; max: number };
  t.same([info.shape, info.frames, info.frame, info.dtype], [SHAPE, 10, 7, 'uint16']);
  const px = new Int32Array(readFileSync(out).buffer.slice(0));
  t.ok(px.length === want[7]!.length && px.every((v, k) => v === want[7]![k]), 'the written frame is the capture image 7 (int32)');
  t.equal(info.max, want[7]!.reduce((a, v) => Math.max(a, v), 0));
  const text = spawnSync(process.execPath, [BIN, 'decode', master], { encoding: 'utf8' });
  t.equal(text.status, 0);
  t.match(text.stdout, /NXmx.*10 frame/);
  t.match(text.stdout, /beam centre/);
});

t.test('hostile and unsupported files give clear errors', async (t) => {
  if (!needData(t) || !needHdf5Plugin(t)) return;
  const dir = tmp(t);
  const junk = path.join(dir, 'junk_master.h5');
  writeFileSync(junk, 'this is not HDF5');
  await t.rejects(openNxmx(junk), /not a readable HDF5 file/);
  const want = capturePixels().slice(0, 2);
  const latest = makeNxmx(dir, want, { perFile: 2, libver: 'latest', prefix: 'latest' });
  await t.rejects(openNxmx(latest.master), /chunk index .* is not read; rewrite the file/, 'libver latest index: says how to rewrite');
  const ok = makeNxmx(dir, want, { perFile: 2, prefix: 'trunc' });
  const buf = readFileSync(ok.data[0]!);
  writeFileSync(ok.data[0]!, buf.subarray(0, Math.floor(buf.length * 0.7)));
  await t.rejects(openNxmx(ok.master), /trunc_data_000001\.h5/, 'a truncated data file is named');
  const r = spawnSync(process.execPath, [BIN, 'decode', junk], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.match(r.stderr, /junk_master\.h5: not a readable HDF5 file/);
});

t.test('beamedge integrate takes each frame of a master, with its geometry, mask and saturation', async (t) => {
  if (!needData(t) || !needHdf5Plugin(t)) return;
  const dir = tmp(t);
  const want = capturePixels();
  const mask = new Uint32Array(SHAPE[0] * SHAPE[1]);
  for (let r = 50; r < 150; r++) for (let c = 600; c < 800; c++) mask[r * SHAPE[1] + c] = 1;
  const { master } = makeNxmx(dir, want, { perFile: 3, mask, saturation: 3 });
  const args = ['--from-header', '--npt', '1000', '--unit', 'q_nm^-1', '--split', 'no'];
  const r = spawnSync(process.execPath, [BIN, 'integrate', master, ...args, '--json'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  t.equal(r.status, 0, r.stderr);
  const profiles = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; intensity: number[]; count: number[] });
  t.equal(profiles.length, 10, 'one profile per frame');
  t.match(profiles[4]!.file, /series_master\.h5#4$/);
  // Independent of the file path: the capture's pixels integrated directly with the master's geometry and mask.
  const ai = new AzimuthalIntegrator({ geometry: { dist: 0.1, poni1: 257 * 75e-6, poni2: 515 * 75e-6, rot1: 0, rot2: 0, rot3: 0, pixel1: 75e-6, pixel2: 75e-6, wavelength: 1e-10 }, shape: SHAPE, npt: 1000, unit: 'q_nm^-1', split: 'no', mask: Uint8Array.from(mask) });
  let worst = 0;
  profiles.forEach((p, i) => {
    const ref = ai.integrate(want[i]!, { maxValid: 3 });
    t.same(p.count, Array.from(ref.count), `frame ${i}: pixel counts per bin (mask and saturation applied)`);
    for (let k = 0; k < ref.intensity.length; k++) worst = Math.max(worst, Math.abs(p.intensity[k]! - ref.intensity[k]!) / Math.max(Math.abs(ref.intensity[k]!), 1e-6));
  });
  t.ok(worst < 1e-12, `intensities equal a direct integration of the capture (worst ${worst.toExponential(2)})`);
  const out = path.join(dir, 'out');
  const o = spawnSync(process.execPath, [BIN, 'integrate', master, ...args, '-o', out], { encoding: 'utf8' });
  t.equal(o.status, 0, o.stderr);
  t.match(o.stderr, /10 \.dat file\(s\) written/);
  const dat = readFileSync(path.join(out, 'series_master_000009.dat'), 'utf8');
  t.match(dat, /^# Mask applied: NXmx pixel_mask$/m);
  t.match(dat, /^# Saturation: pixels above 3 excluded$/m);
  t.match(dat, /^# Center: x=515\.000, y=257\.000 pix$/m);
});

t.test('mutated master and data files: an error or frames, never a crash, and the reader still works after', async (t) => {
  if (!needHdf5Plugin(t)) return;
  const dir = tmp(t);
  const made = spawnSync(
    '/usr/bin/python3',
    [
      '-c',
      `import numpy, h5py, hdf5plugin, sys
d = sys.argv[1]
a = (numpy.arange(3*32*48) % 700).astype('u2').reshape(3,32,48)
with h5py.File(d + '/s_data_000001.h5','w') as f:
    ds = f.create_dataset('entry/data/data', data=a, chunks=(1,32,48), **hdf5plugin.Bitshuffle(cname='lz4'))
    ds.attrs['image_nr_low'] = numpy.int32(1)
with h5py.File(d + '/s_master.h5','w') as f:
    det = f.create_group('entry/instrument/detector')
    for k, v in [('beam_center_x', 10.0), ('beam_center_y', 10.0), ('detector_distance', 0.1), ('x_pixel_size', 75e-6), ('y_pixel_size', 75e-6)]: det[k] = v
    det['pixel_mask'] = numpy.zeros((32,48),'u4')
    f['entry/data/data_000001'] = h5py.ExternalLink('s_data_000001.h5', '/entry/data/data')`,
      dir,
    ],
    { encoding: 'utf8' },
  );
  t.equal(made.status, 0, made.stderr);
  const data = readFileSync(path.join(dir, 's_data_000001.h5'));
  const master = readFileSync(path.join(dir, 's_master.h5'));
  const m = path.join(dir, 'm');
  mkdirSync(m);
  let seed = 20261125;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  let errors = 0;
  let read = 0;
  let notErrors = 0;
  for (let it = 0; it < 150; it++) {
    const mutateData = it % 2 === 1;
    const buf = Buffer.from(mutateData ? data : master);
    for (let k = 1 + Math.floor(rnd() * 8); k > 0; k--) buf[Math.floor(rnd() * buf.length)] = Math.floor(rnd() * 256);
    writeFileSync(path.join(m, 's_data_000001.h5'), mutateData ? buf : data);
    writeFileSync(path.join(m, 's_master.h5'), mutateData ? master : buf);
    try {
      const s = await openNxmx(path.join(m, 's_master.h5'));
      for (const fr of s.frames) decodeImage(readNxmxFrame(s, fr));
      read++;
    } catch (e) {
      if (e instanceof Error && e.name !== 'RuntimeError') errors++;
      else notErrors++;
    }
  }
  t.equal(notErrors, 0, 'every failure is an ordinary Error (no WebAssembly abort)');
  t.equal(errors + read, 150, `${errors} mutated sets refused with an error, ${read} read`);
  const s = await openNxmx(path.join(dir, 's_master.h5'));
  t.same(s.frames.map((f) => f.id), [0, 1, 2], 'the intact files still read afterwards');
});
