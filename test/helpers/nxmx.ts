// Small EIGER/NXmx file sets made from the real DECTRIS stream v2 captures with
// Debian's h5py + hdf5plugin (HDF5's own bitshuffle filter), the way a DECTRIS
// file writer lays them out: a master with geometry, pixel mask and external
// links, data files of frames in bitshuffle-LZ4 chunks of one frame each.
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { Test } from 'tap';
import { decodeImage, decodeStream2 } from '../../daemon/decode/stream2';
import { dataFile, readData } from './data';
import { need } from './need';

const PYTHON = '/usr/bin/python3';

export const hasHdf5Plugin = spawnSync(PYTHON, ['-c', 'import h5py, hdf5plugin, numpy\nh5py.File("/dev/null" if False else __import__("tempfile").mktemp(), "w").create_dataset("x", data=numpy.zeros((2,4,4), "u2"), chunks=(1,4,4), **hdf5plugin.Bitshuffle(cname="lz4"))'], { stdio: 'ignore' }).status === 0;

export function needHdf5Plugin(t: Test): boolean {
  return need(t, hasHdf5Plugin, `h5py with the bitshuffle filter not available to ${PYTHON} (apt-get install python3-h5py python3-hdf5plugin hdf5-filter-plugin)`, '.ci/run installs it');
}

export const CAPTURE = 'r500k_bm_bslz4_16bit';
export const SHAPE: [number, number] = [514, 1030];

/** The capture's threshold_1 images, decoded: what every reader must give back. */
export function capturePixels(): Uint16Array[] {
  return readdirSync(dataFile('stream2', CAPTURE))
    .sort()
    .map((f) => decodeStream2(readData('stream2', CAPTURE, f)))
    .filter((m) => m.type === 'image')
    .map((m) => decodeImage(m.data!.threshold_1!) as Uint16Array);
}

export interface NxmxSetup {
  /** Frames per data file. */
  perFile: number;
  mask?: Uint32Array;
  saturation?: number;
  /** h5py libver: 'earliest' (default, as DECTRIS writers) or 'latest'. */
  libver?: 'earliest' | 'latest';
  prefix?: string;
}

const MAKE = `
import json, sys, numpy, h5py, hdf5plugin
p = json.load(sys.stdin)
rows, cols = p['shape']
px = numpy.fromfile(p['raw'], dtype='<u2').reshape(-1, rows, cols)
n = px.shape[0]; per = p['per_file']; files = []
for k, start in enumerate(range(0, n, per)):
    name = '%s_data_%06d.h5' % (p['prefix'], k + 1)
    with h5py.File(p['dir'] + '/' + name, 'w', libver=p['libver']) as f:
        d = f.create_dataset('entry/data/data', data=px[start:start + per], chunks=(1, rows, cols), **hdf5plugin.Bitshuffle(nelems=0, cname='lz4'))
        d.attrs['image_nr_low'] = numpy.int32(start + 1)
        d.attrs['image_nr_high'] = numpy.int32(min(n, start + per))
    files.append(name)
with h5py.File(p['dir'] + '/' + p['prefix'] + '_master.h5', 'w', libver=p['libver']) as f:
    e = f.create_group('entry'); e.attrs['NX_class'] = 'NXentry'
    det = f.create_group('entry/instrument/detector')
    for k, v, u in [('beam_center_x', 515.0, 'pixel'), ('beam_center_y', 257.0, 'pixel'), ('detector_distance', 0.1, 'm'), ('x_pixel_size', 75e-6, 'm'), ('y_pixel_size', 75e-6, 'm')]:
        det.create_dataset(k, data=v).attrs['units'] = u
    f.create_dataset('entry/instrument/beam/incident_wavelength', data=1.0).attrs['units'] = 'angstrom'
    if p['mask'] is not None:
        det.create_dataset('pixel_mask', data=numpy.fromfile(p['mask'], dtype='<u4').reshape(rows, cols), compression='gzip')
    if p['saturation'] is not None:
        det.create_dataset('saturation_value', data=numpy.int32(p['saturation']))
    spec = det.create_group('detectorSpecific')
    spec.create_dataset('nimages', data=numpy.int32(n)); spec.create_dataset('ntrigger', data=numpy.int32(1))
    for k, name in enumerate(files):
        f['entry/data/data_%06d' % (k + 1)] = h5py.ExternalLink(name, '/entry/data/data')
print(json.dumps(files))
`;

/** Writes PREFIX_master.h5 and PREFIX_data_NNNNNN.h5 into dir; returns the master's path and the data files. */
export function makeNxmx(dir: string, frames: Uint16Array[], o: NxmxSetup): { master: string; data: string[] } {
  const prefix = o.prefix ?? 'series';
  const raw = path.join(dir, `${prefix}.pixels.u16`);
  writeFileSync(raw, Buffer.concat(frames.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength))));
  let mask: string | null = null;
  if (o.mask) writeFileSync((mask = path.join(dir, `${prefix}.mask.u32`)), Buffer.from(o.mask.buffer, o.mask.byteOffset, o.mask.byteLength));
  const r = spawnSync(PYTHON, ['-c', MAKE], { input: JSON.stringify({ dir, prefix, raw, mask, shape: SHAPE, per_file: o.perFile, saturation: o.saturation ?? null, libver: o.libver ?? 'earliest' }), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`making NXmx files failed: ${r.stderr}`);
  return { master: path.join(dir, `${prefix}_master.h5`), data: (JSON.parse(r.stdout) as string[]).map((f) => path.join(dir, f)) };
}
