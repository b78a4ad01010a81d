// The map store on its own: one build per key however many ask, the count and
// memory bounds (evictions counted and reported), the on-disk cache (a new
// store loads what an earlier one built, and a damaged file is detected,
// removed and rebuilt), and maps from the store integrating exactly like maps
// built in place.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { AzimuthalIntegrator, mapSpec, type IntegrationSetup } from '../../daemon/integrate/azimuthal';
import { mapKey } from '../../daemon/maps/map-key';
import { MapStore, type MapStoreOptions } from '../../daemon/maps/map-store';
import { native } from '../../daemon/native';

const geometry = { dist: 0.1, poni1: 0.011, poni2: 0.009, rot1: 0.02, rot2: -0.01, rot3: 0, pixel1: 172e-6, pixel2: 172e-6, wavelength: 1e-10 };
const shape: [number, number] = [120, 100];
const setup = (npt: number, split: 'no' | 'bbox' = 'no'): IntegrationSetup => ({ geometry, shape, npt, unit: 'q_nm^-1', split, polarization: 0.95 });

function store(over: Partial<MapStoreOptions> = {}) {
  const events: { kind: string; details?: Record<string, unknown> }[] = [];
  const evicted: string[] = [];
  const s = new MapStore({
    maxCount: 8,
    maxBytes: 1 << 30,
    buildThreads: 2,
    directory: null,
    diskBytes: 1 << 30,
    event: (_level, kind, _message, details) => events.push({ kind, ...(details ? { details } : {}) }),
    onEvict: (k) => evicted.push(k),
    ...over,
  });
  return { s, events, evicted };
}

function frame(n: number): Int32Array {
  // Deterministic counts with a few markers, so exclusions are exercised too.
  const f = new Int32Array(n);
  for (let i = 0; i < n; i++) f[i] = i % 97 === 0 ? -1 : (i * 7919) % 1000;
  return f;
}

t.test('one build per key, however many ask at once', async (t) => {
  const { s, events } = store();
  const spec = mapSpec(setup(50));
  const key = mapKey(spec);
  const blobs = await Promise.all([s.get(key, spec), s.get(key, spec), s.get(key, spec)]);
  t.ok(blobs.every((b) => b === blobs[0]), 'every caller gets the same map');
  t.ok(blobs[0]!.buffer instanceof SharedArrayBuffer, 'in a SharedArrayBuffer');
  await s.get(key, spec);
  const st = s.stats();
  t.equal(st.builds, 1, 'built once');
  t.equal(st.joined, 2, 'two requests joined the build under way');
  t.equal(st.hits, 1, 'a later request is a hit');
  t.ok(st.build_ms_last! > 0, 'the build time is reported');
  t.equal(events.filter((e) => e.kind === 'map_build').length, 1, 'one map_build event');
  t.same(events.find((e) => e.kind === 'map_build')!.details!.bytes, blobs[0]!.byteLength, 'the event gives the map size');
});

t.test('a map from the store integrates exactly like one built in place', async (t) => {
  const { s } = store();
  for (const split of ['no', 'bbox'] as const) {
    const spec = mapSpec(setup(40, split));
    const shared = new AzimuthalIntegrator(setup(40, split), await s.get(mapKey(spec), spec));
    const local = new AzimuthalIntegrator(setup(40, split));
    const px = frame(shape[0] * shape[1]);
    const a = shared.integrate(px);
    const b = local.integrate(px);
    t.same(Array.from(a.intensity), Array.from(b.intensity), `${split}: same intensities`);
    t.same(Array.from(a.count), Array.from(b.count), `${split}: same counts`);
  }
});

t.test('the key follows what the map depends on, and nothing else', async (t) => {
  const base = mapSpec(setup(50));
  t.equal(mapKey(base), mapKey(mapSpec(setup(50))), 'same inputs, same key');
  t.equal(mapKey({ ...base, threads: 7 }), mapKey(base), 'build threads do not matter');
  t.not(mapKey(mapSpec(setup(51))), mapKey(base), 'npt');
  t.not(mapKey(mapSpec(setup(50, 'bbox'))), mapKey(base), 'splitting');
  t.not(mapKey({ ...base, polarization: 0.9 }), mapKey(base), 'polarization factor');
  t.not(mapKey({ ...base, geometry: { ...base.geometry, rot3: 1e-9 } }), mapKey(base), 'geometry');
  const mask = new Uint8Array(shape[0] * shape[1]);
  const masked = { ...base, mask };
  const other = new Uint8Array(mask);
  other[77] = 1;
  t.not(mapKey(masked), mapKey({ ...base, mask: other }), 'static mask content');
  t.equal(mapKey(masked), mapKey({ ...base, mask: new Uint8Array(mask) }), 'an equal mask in another buffer');
  const flat = new Float32Array(mask.length).fill(1);
  const flat2 = new Float32Array(flat);
  flat2[5] = 1.0001;
  t.not(mapKey({ ...base, flat }), mapKey({ ...base, flat: flat2 }), 'flat content');
});

t.test('count and memory bounds: least recently used maps are evicted, counted and reported', async (t) => {
  const { s, events, evicted } = store({ maxCount: 2 });
  const keys = [];
  for (const npt of [10, 20, 30]) {
    const spec = mapSpec(setup(npt));
    keys.push(mapKey(spec));
    await s.get(mapKey(spec), spec);
  }
  t.equal(s.stats().maps, 2, 'two kept');
  t.equal(s.stats().evictions, 1, 'one eviction counted');
  t.same(evicted, [keys[0]], 'the oldest went, and the workers are told');
  t.equal(events.filter((e) => e.kind === 'map_evict').length, 1, 'and reported');
  t.notOk(s.has(keys[0]!), 'it is gone');

  const one = mapSpec(setup(10));
  const size = (await store().s.get(mapKey(one), one)).byteLength;
  const small = store({ maxBytes: Math.floor(size * 1.5) });
  for (const npt of [10, 11, 12]) {
    const spec = mapSpec(setup(npt));
    await small.s.get(mapKey(spec), spec);
  }
  t.equal(small.s.stats().maps, 1, `max_mb holds: one ${size}-byte map fits in ${Math.floor(size * 1.5)} bytes`);
  t.ok(small.s.stats().bytes <= size * 1.5, 'bytes within the bound');
  t.equal(small.s.stats().evictions, 2, 'two evictions');
});

t.test('disk cache: a new store loads the map an earlier one built; a damaged file is detected and rebuilt', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-maps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const spec = mapSpec(setup(64, 'bbox'));
  const key = mapKey(spec);
  const first = store({ directory: dir });
  const built = await first.s.get(key, spec);
  await first.s.close();
  t.same(readdirSync(dir), [`${key}.map`], 'one file, named by the key');

  const second = store({ directory: dir });
  const loaded = await second.s.get(key, spec);
  t.equal(second.s.stats().builds, 0, 'no build after a restart');
  t.equal(second.s.stats().disk_loads, 1, 'loaded from disk');
  t.ok(Buffer.from(loaded).equals(Buffer.from(built)), 'byte for byte the map that was built');
  t.ok(loaded.buffer instanceof SharedArrayBuffer, 'loaded into shared memory');

  for (const [what, damage] of [
    ['a flipped bit', (b: Buffer) => (b[b.length - 3]! ^= 0x10, b)],
    ['a truncated file', (b: Buffer) => b.subarray(0, b.length - 100)],
    ['a foreign file', (b: Buffer) => Buffer.alloc(b.length, 7)],
  ] as const) {
    const file = path.join(dir, `${key}.map`);
    writeFileSync(file, damage(Buffer.from(readFileSync(file))));
    const third = store({ directory: dir });
    const again = await third.s.get(key, spec);
    await third.s.close();
    t.equal(third.s.stats().disk_rejected, 1, `${what}: rejected`);
    t.equal(third.s.stats().builds, 1, `${what}: built again`);
    t.ok(third.events.some((e) => e.kind === 'map_cache_rejected'), `${what}: reported`);
    t.ok(Buffer.from(again).equals(Buffer.from(built)), `${what}: the rebuilt map is the right one`);
    t.equal(native.checkMap(readFileSync(file), true), '', `${what}: a good file replaces it`);
  }
});

t.test('a damaged map never reaches the per-frame loop', async (t) => {
  const blob = native.buildMap(mapSpec(setup(30)));
  t.equal(native.checkMap(blob, true), '', 'a fresh map passes');
  const bad = Buffer.from(blob);
  // The last section is the per-pixel bin table: point one pixel past the sums.
  bad.writeUInt16LE(0xfff0, bad.length - 2);
  t.match(native.checkMap(bad, false), /bin index out of range/, 'an index past the bins is caught without the checksum');
  t.throws(() => new native.Integrator({ map: bad }), /bin index out of range/, 'and the integrator refuses it');
  t.throws(() => new native.Integrator({ map: blob.subarray(0, 100) }), /shorter than its header/);
});

t.test('a map that cannot be built fails once, is reported once, and is not rebuilt per frame', async (t) => {
  const { s, events } = store();
  const spec = { ...mapSpec(setup(20)), mask: new Uint8Array(shape[0] * shape[1]).fill(1) };
  const key = mapKey(spec);
  await t.rejects(s.get(key, spec), /every pixel is masked/);
  await t.rejects(s.get(key, spec), /every pixel is masked/, 'the same answer for the next frame');
  t.equal(s.stats().failures, 1, 'one failed build');
  t.equal(events.filter((e) => e.kind === 'map_build_failed').length, 1, 'reported once');
});
