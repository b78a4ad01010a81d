// The fast map build (vectorised geometry, float approximations whose bins
// and float32 corrections are certified, the exact libm path where they are
// not) must give the very blob the reference build gives: every pixel's bin,
// every normalisation value and every bin sum, byte for byte. The reference
// evaluates each pixel the way pyFAI rounds it (the golden and live pyFAI
// tests hold it to pyFAI). Geometries are chosen to stress the certification:
// rotations, the PONI on and off the detector, a pixel exactly at the PONI,
// grazing and backward angles, masks, explicit ranges, 2D, flats.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { native, type NativeMapSpec } from '../../daemon/native';

const BASE = { dist: 0.2, poni1: 0.05, poni2: 0.04, rot1: 0, rot2: 0, rot3: 0, pixel1: 172e-6, pixel2: 172e-6, wavelength: 1e-10 };

function cases(): [string, NativeMapSpec][] {
  const rows = 301, cols = 257;
  const spec = (over: Partial<NativeMapSpec>, g: Partial<typeof BASE> = {}): NativeMapSpec => ({
    geometry: { ...BASE, ...g },
    rows,
    cols,
    radial: 'q',
    split: false,
    twoD: false,
    solidAngle: true,
    bins0: 500,
    ...over,
  });
  const mask = new Uint8Array(rows * cols);
  for (let i = 0; i < mask.length; i++) mask[i] = (i * 2654435761) % 97 === 0 ? 1 : 0;
  const flat = Float32Array.from({ length: rows * cols }, (_, i) => 0.9 + ((i * 7919) % 1000) / 5000);
  return [
    ['plain, polarization 0.99', spec({ polarization: 0.99 })],
    ['rotated', spec({ polarization: 0.95 }, { rot1: 0.1, rot2: -0.2, rot3: 0.3 })],
    ['PONI off the detector', spec({ polarization: -0.5 }, { poni1: -0.02, poni2: 0.09, rot1: 0.05 })],
    // 150.5 and 128.5 pixels: a pixel centre exactly at the PONI (q = 0, chi undefined).
    ['a pixel centre at the PONI', spec({ polarization: 1 }, { poni1: 150.5 * 172e-6, poni2: 128.5 * 172e-6 })],
    ['short distance, wide angles', spec({ polarization: 0.9, bins0: 3000 }, { dist: 0.01, rot1: 0.4 })],
    ['beyond 90 degrees (detector behind)', spec({ polarization: 0.5 }, { dist: 0.01, rot1: 1.9 })],
    ['mask and flat', spec({ polarization: 0.99, mask, flat })],
    ['no solid angle, no polarization', spec({ solidAngle: false })],
    ['radial range', spec({ polarization: 0.99, range0: [5, 20] })],
    ['many bins', spec({ bins0: 20000 })],
    ['2D', spec({ polarization: 0.99, twoD: true, bins1: 360 }, { rot2: 0.1 })],
    ['2D with ranges', spec({ twoD: true, bins1: 90, range0: [2, 30], range1: [-1, 2] })],
    ['unit r', spec({ radial: 'r', polarization: 0.99 }, { rot1: 0.2 })],
    ['unit 2th (exact path)', spec({ radial: '2th' })],
  ];
}

function digests(): string[] {
  return cases().map(([, s]) => createHash('sha256').update(native.buildMap({ ...s, threads: 3 })).digest('hex'));
}

if (process.argv.includes('--digests')) {
  process.stdout.write(`DIGESTS ${JSON.stringify(digests())}\n`);
} else {
  t.test('fast build == reference build, byte for byte', async (t) => {
    for (const [name, s] of cases()) {
      const ref = native.buildMap({ ...s, reference: true });
      for (const threads of [1, 3]) {
        const fast = native.buildMap({ ...s, threads });
        t.ok(fast.equals(ref), `${name}, ${threads} thread(s): identical map (${ref.length} bytes)`);
      }
    }
  });

  // BEAMEDGE_KERNELS=avx2 keeps an AVX-512 machine on the AVX2 kernels; on a
  // machine without AVX-512 that run repeats the default one.
  for (const kernels of ['scalar', 'avx2'])
    t.test(`${kernels} and default geometry kernels build identical maps`, async (t) => {
      const child = spawnSync(process.execPath, [__filename, '--digests'], { env: { ...process.env, BEAMEDGE_KERNELS: kernels }, encoding: 'utf8', maxBuffer: 1 << 20 });
      t.equal(child.status, 0, `child exited 0 ${child.stderr.slice(0, 500)}`);
      const line = child.stdout.split('\n').find((l) => l.startsWith('DIGESTS ')) ?? 'DIGESTS []';
      t.same(JSON.parse(line.slice(8)), digests(), 'same maps');
    });

  t.test('a map built in place (into shared memory) is the map buildMap returns', async (t) => {
    for (const [name, s] of cases()) {
      const bytes = native.mapBytes(s);
      if (s.radial === '2th') {
        t.equal(bytes, 0, `${name}: not built in place`);
        continue;
      }
      const target = new Uint8Array(new SharedArrayBuffer(bytes));
      const blob = await new Promise<Buffer | null>((resolve, reject) => native.buildMapAsync({ ...s, threads: 2 }, target, (err, b) => (err ? reject(err) : resolve(b))));
      t.equal(blob, null, `${name}: no second copy`);
      t.ok(Buffer.from(target.buffer).equals(native.buildMap(s)), `${name}: identical (${bytes} bytes)`);
    }
    t.throws(() => native.buildMapAsync(cases()[0]![1], new Uint8Array(new SharedArrayBuffer(100)), () => {}), /mapBytes/, 'a target of the wrong size is refused');
    t.equal(native.mapBytes({ ...cases()[0]![1], split: true }), 0, 'bbox maps are not built in place');
  });
}

if (!process.argv.includes('--digests'))
  t.test('compact 1D bbox maps integrate exactly like the entry table', async (t) => {
    // A 2D map with one azimuthal bin keeps the entry table (one bin index and
    // weight per contribution); its single azimuthal weight is 1, so it must
    // give the 1D compact map's results bit for bit.
    const rows = 301, cols = 257;
    const base = { geometry: { ...BASE, rot1: 0.05 }, rows, cols, radial: 'q' as const, split: true, solidAngle: true, polarization: 0.99, bins0: 700 };
    const compact = native.buildMap({ ...base, twoD: false });
    const table = native.buildMap({ ...base, twoD: true, bins1: 1 });
    // Bins narrower than pixels here: too many pixels span three or more bins
    // for the narrow layout (test/maps/bbox-narrow.test.ts), so this is the
    // exact compact fallback.
    t.equal(compact.readUInt32LE(12) & 48, 16, 'the exact compact layout (MapHeader.flags: kMapCompact, not kMapNarrow)');
    t.ok(compact.length < table.length * 0.75, `compact map ${compact.length} bytes against ${table.length}`);
    const frame = new Int32Array(rows * cols);
    for (let i = 0; i < frame.length; i++) frame[i] = i % 89 === 0 ? -1 : (i * 7919) % 500;
    const a = new native.Integrator({ map: compact }).integrate(frame, { litThreshold: 100 });
    const b = new native.Integrator({ map: table }).integrate(frame, { litThreshold: 100 });
    for (const k of ['intensity', 'sigma', 'signal', 'variance', 'normalization', 'count'] as const) t.same(Array.from(a[k]), Array.from(b[k]), k);
    t.equal(a.lit, b.lit, 'lit pixels');
    t.equal(a.excluded, b.excluded, 'excluded pixels');
    // A damaged weight checkpoint is caught before any frame reads it.
    const bad = Buffer.from(compact);
    const checkpoints = Number(bad.readBigUInt64LE(192)); // MapHeader.checkpoints
    bad.writeUInt32LE(bad.readUInt32LE(checkpoints + 4) + 1, checkpoints + 4);
    t.match(native.checkMap(bad, false), /checkpoints inconsistent/, 'checkpoint damage detected');
  });
