// The calibration pixel mask (uint32 per pixel): one source of truth for what
// each bit means. Bits 0-4 and 8 keep the NeXus NXdetector pixel_mask meanings
// so the mask can be written to a NeXus file as it is; the JUNGFRAU bits above
// say why the dark run rejected a pixel, per gain where the reason is per gain.

export type MaskScope = 'all' | 0 | 1 | 2;

export interface MaskBit {
  bit: number;
  name: string;
  /** 'all': excludes the pixel in every gain; 0/1/2: only while the pixel is in that gain. */
  scope: MaskScope;
  description: string;
}

export const MASK_BITS: readonly MaskBit[] = [
  { bit: 0, name: 'gap', scope: 'all', description: 'gap between chips or modules' },
  { bit: 1, name: 'dead', scope: 'all', description: 'dead pixel' },
  { bit: 2, name: 'under_responding', scope: 'all', description: 'under-responding pixel' },
  { bit: 3, name: 'over_responding', scope: 'all', description: 'over-responding pixel' },
  { bit: 4, name: 'noisy', scope: 'all', description: 'noisy pixel' },
  { bit: 8, name: 'user', scope: 'all', description: 'masked by the user' },
  { bit: 9, name: 'no_pedestal_g0', scope: 0, description: 'too few G0 frames in the dark run' },
  { bit: 10, name: 'no_pedestal_g1', scope: 1, description: 'too few G1 frames in the dark run' },
  { bit: 11, name: 'no_pedestal_g2', scope: 2, description: 'too few G2 frames in the dark run' },
  { bit: 12, name: 'high_rms_g0', scope: 0, description: 'G0 pedestal rms above the limit' },
  { bit: 13, name: 'high_rms_g1', scope: 1, description: 'G1 pedestal rms above the limit' },
  { bit: 14, name: 'high_rms_g2', scope: 2, description: 'G2 pedestal rms above the limit' },
  { bit: 15, name: 'wrong_gain', scope: 'all', description: 'too many wrong-gain frames in the dark run' },
  { bit: 16, name: 'bad_gain_g0', scope: 0, description: 'G0 gain zero, not finite or of the wrong sign' },
  { bit: 17, name: 'bad_gain_g1', scope: 1, description: 'G1 gain zero, not finite or of the wrong sign' },
  { bit: 18, name: 'bad_gain_g2', scope: 2, description: 'G2 gain zero, not finite or of the wrong sign' },
];

export const DEAD = 1 << 1;
export const USER_MASKED = 1 << 8;
export const WRONG_GAIN = 1 << 15;
/** Indexed by gain stage 0..2. */
export const NO_PEDESTAL = [1 << 9, 1 << 10, 1 << 11] as const;
export const PEDESTAL_RMS = [1 << 12, 1 << 13, 1 << 14] as const;
export const GAIN_UNUSABLE = [1 << 16, 1 << 17, 1 << 18] as const;

/** OR of a scope's bits. */
export function bitsOfScope(scope: MaskScope): number {
  let m = 0;
  for (const b of MASK_BITS) if (b.scope === scope) m |= 1 << b.bit;
  return m >>> 0;
}

/** Bits that exclude a pixel in every gain. */
export const GENERAL_BITS = bitsOfScope('all');

/**
 * What the conversion kernel tests per gain: a pixel in gain g is excluded when
 * mask & excludeBits[g] is non-zero (general bits | that gain's own bits).
 */
export function excludeBitsPerGain(): Uint32Array {
  return Uint32Array.from([0, 1, 2] as const, (g) => GENERAL_BITS | bitsOfScope(g));
}

