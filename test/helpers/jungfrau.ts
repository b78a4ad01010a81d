// The real JUNGFRAU module in ../shared/data/jungfrau (PSI's mod5 files), as
// typed arrays and as a calibration set imported through the command line.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dataDir, dataFile, readData } from './data';
import { BIN } from './daemon-process';

/** Photon energy of Jungfraujoch's converted mod5 frames. */
export const MOD5_ENERGY_KEV = 12.398;

export const haveJungfrau = (): boolean => !!dataDir && existsSync(dataFile('jungfrau', 'mod5_raw0.bin'));

/** A mod5 file as a typed array (copied: Buffer pool slices may start at odd offsets). */
export function jfArray<T extends Float32Array | Float64Array | Uint16Array>(file: string, Ctor: { new (b: ArrayBuffer, o: number, l: number): T; BYTES_PER_ELEMENT: number }): T {
  const buf = readData('jungfrau', file);
  const ab = new ArrayBuffer(buf.length);
  new Uint8Array(ab).set(buf);
  return new Ctor(ab, 0, buf.length / Ctor.BYTES_PER_ELEMENT);
}

/** `beamedge calibrate import` of PSI's constants for module 5 into `out`; returns the command's result. */
export function importMod5Set(out: string): { status: number | null; stderr: string } {
  const jf = (f: string) => dataFile('jungfrau', f);
  return spawnSync(
    process.execPath,
    [BIN, 'calibrate', 'import', '--pedestal', jf('mod5_pedeG0.bin'), jf('mod5_pedeG1.bin'), jf('mod5_pedeG2.bin'), '--rms', jf('mod5_pedeG0_RMS.bin'), '--gain', jf('mod5_gain_f64.bin'), '--shape', '512x1024', '--energy-kev', String(MOD5_ENERGY_KEV), '--out', out],
    { encoding: 'utf8' },
  );
}
