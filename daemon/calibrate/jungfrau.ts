// JUNGFRAU gain-switching conversion: the calibration is prepared once (on the
// main thread, into SharedArrayBuffers if it is to be shared), and each worker
// wraps the same arrays in a JungfrauConverter: views, never copies.
import { native, type JungfrauCounts, type JungfrauTrack } from '../native';
import { excludeBitsPerGain } from './mask-bits';

export type JungfrauUnit = 'photons' | 'keV';

export interface JungfrauCalibration {
  /** [3][n] pedestal per gain stage, ADU. */
  pedestal: Float32Array;
  /** [3][n] from factorsFromGain. */
  factor: Float32Array;
  /** Calibration mask (see mask-bits.ts); absent: no mask read per frame. */
  mask?: Uint32Array | null;
  /** Default: excludeBitsPerGain(). */
  excludeBits?: Uint32Array;
}

export interface ConvertOptions {
  /** Count converted pixels above this in the same pass (the veto input). */
  litThreshold?: number;
  track?: JungfrauTrack;
  kernel?: 'scalar';
}

// G0 gains are positive, G1 and G2 negative (ADU fall as charge rises), as in
// PSI's gain files; a gain of the other sign is a broken calibration.
const GAIN_SIGN = [1, -1, -1] as const;

export function usableGain(g: number, stage: number): boolean {
  return Number.isFinite(g) && g !== 0 && Math.sign(g) === GAIN_SIGN[stage];
}

export class JungfrauConverter {
  readonly npix: number;
  readonly pedestal: Float32Array;
  readonly factor: Float32Array;
  readonly mask: Uint32Array | null;
  readonly excludeBits: Uint32Array;

  constructor(cal: JungfrauCalibration) {
    if (cal.pedestal.length % 3 !== 0) throw new RangeError(`pedestal has ${cal.pedestal.length} values, not 3 per pixel`);
    this.npix = cal.pedestal.length / 3;
    if (cal.factor.length !== cal.pedestal.length) throw new RangeError(`factor has ${cal.factor.length} values, pedestal ${cal.pedestal.length}`);
    if (cal.mask && cal.mask.length !== this.npix) throw new RangeError(`mask has ${cal.mask.length} pixels, pedestal ${this.npix}`);
    this.excludeBits = cal.excludeBits ?? excludeBitsPerGain();
    if (this.excludeBits.length !== 3) throw new RangeError('excludeBits needs one value per gain stage');
    this.pedestal = cal.pedestal;
    this.factor = cal.factor;
    this.mask = cal.mask ?? null;
  }

  /** Convenience for one thread: factors computed here, not shared. */
  static fromGain(pedestal: Float32Array, gain: Float64Array, energyKeV: number, unit: JungfrauUnit = 'photons', mask?: Uint32Array | null): JungfrauConverter {
    return new JungfrauConverter({ pedestal, factor: JungfrauConverter.factorsFromGain(gain, energyKeV, unit), mask: mask ?? null });
  }

  /**
   * 1 / (gain * E) for photons, 1 / gain for keV, rounded once to float32:
   * (ADC - pedestal) * factor in float32 then stays within ~1.2e-7 relative
   * of Jungfraujoch's (ADC - pedestal) / (gain * E) (measured on its own data).
   * Unusable gains (zero, not finite, wrong sign) give NaN, which the kernel
   * counts as masked.
   */
  static factorsFromGain(gain: Float64Array, energyKeV: number, unit: JungfrauUnit = 'photons', out?: Float32Array): Float32Array {
    if (gain.length % 3 !== 0) throw new RangeError(`gain has ${gain.length} values, not 3 per pixel`);
    if (unit === 'photons' && !(energyKeV > 0 && Number.isFinite(energyKeV))) throw new RangeError(`photon energy must be positive, got ${energyKeV} keV`);
    const f = out ?? new Float32Array(gain.length);
    if (f.length !== gain.length) throw new RangeError(`out has ${f.length} values, gain ${gain.length}`);
    const n = gain.length / 3;
    const scale = unit === 'photons' ? energyKeV : 1;
    for (let s = 0; s < 3; s++)
      for (let i = s * n; i < (s + 1) * n; i++) {
        const g = gain[i]!;
        f[i] = usableGain(g, s) ? 1 / (g * scale) : NaN;
      }
    return f;
  }


  /**
   * Writes NaN into the factor of every (pixel, gain) the mask excludes, in place.
   * The converter can then run without a mask: 4 bytes less read per pixel,
   * same output and counts.
   */
  static foldMask(factor: Float32Array, mask: Uint32Array, excludeBits: Uint32Array = excludeBitsPerGain()): Float32Array {
    const n = mask.length;
    if (factor.length !== 3 * n) throw new RangeError(`factor has ${factor.length} values, expected 3 x ${n}`);
    for (let s = 0; s < 3; s++) {
      const bits = excludeBits[s]!;
      for (let i = 0; i < n; i++) if (mask[i]! & bits) factor[s * n + i] = NaN;
    }
    return factor;
  }

  /** Converts one frame into `out` (excluded pixels: NaN). No allocation beyond the counts object. */
  convert(raw: Uint16Array, out: Float32Array, opts: ConvertOptions = {}): JungfrauCounts {
    if (raw.length !== this.npix) throw new RangeError(`frame has ${raw.length} pixels, calibration ${this.npix}`);
    return native.jungfrauConvert(raw, this.pedestal, this.factor, this.mask, this.excludeBits, out, opts);
  }
}
