// The inverse of the JUNGFRAU conversion, for simulation: photons per pixel
// to raw gain-switching words with a calibration set's pedestals and gains.
// A pixel stays in the most sensitive gain whose ADC range holds its charge,
// as the detector's gain switching does; beyond G2's range it saturates
// (0xC000).
import type { CalibrationArrays } from '../calibrate/calibration-set';

const ADC_MAX = 0x3fff;
// G0 switches before its ADC range ends (the real switching point is a
// charge threshold well inside it).
const G0_SWITCH = 15000;
const GAIN_CODE = [0x0000, 0x4000, 0xc000] as const;
export const SATURATED = 0xc000;

export function encodeJungfrau(photons: ArrayLike<number>, cal: Required<Pick<CalibrationArrays, 'pedestal' | 'gain'>>, energyKeV: number, out = new Uint16Array(photons.length)): Uint16Array {
  const n = photons.length;
  if (cal.pedestal.length !== 3 * n || cal.gain.length !== 3 * n) throw new RangeError(`calibration has ${cal.pedestal.length / 3} pixels, the image ${n}`);
  for (let i = 0; i < n; i++) {
    const e = Math.max(0, photons[i]!) * energyKeV;
    let word: number = SATURATED;
    for (let g = 0; g < 3; g++) {
      const adc = Math.round(cal.pedestal[g * n + i]! + e * cal.gain[g * n + i]!);
      if (adc >= 0 && adc <= (g === 0 ? G0_SWITCH : ADC_MAX) && !(g === 2 && adc === 0)) {
        word = GAIN_CODE[g]! | adc;
        break;
      }
    }
    out[i] = word;
  }
  return out;
}
