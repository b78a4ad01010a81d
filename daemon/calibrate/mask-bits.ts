// The bits of a calibration set's uint32 mask. Bits 0-8 follow NeXus
// pixel_mask; the others are JUNGFRAU-specific. Per-gain bits exclude a pixel
// only while it is in that gain stage.
export const MASK_BITS = [
  { bit: 0, name: 'gap', doc: 'gap between chips or modules (NeXus pixel_mask bit 0)' },
  { bit: 1, name: 'dead', doc: 'dead pixel (NeXus bit 1)' },
  { bit: 2, name: 'under_responding', doc: 'under-responding (NeXus bit 2)' },
  { bit: 3, name: 'over_responding', doc: 'over-responding (NeXus bit 3)' },
  { bit: 4, name: 'noisy', doc: 'noisy (NeXus bit 4)' },
  { bit: 8, name: 'user', doc: 'masked by the user (NeXus bit 8)' },
  { bit: 9, name: 'no_pedestal_g0', doc: 'too few frames in G0 in the dark run' },
  { bit: 10, name: 'no_pedestal_g1', doc: 'too few frames in G1 in the dark run' },
  { bit: 11, name: 'no_pedestal_g2', doc: 'too few frames in G2 in the dark run' },
  { bit: 12, name: 'high_rms_g0', doc: 'pedestal rms above the limit in G0' },
  { bit: 13, name: 'high_rms_g1', doc: 'pedestal rms above the limit in G1' },
  { bit: 14, name: 'high_rms_g2', doc: 'pedestal rms above the limit in G2' },
  { bit: 15, name: 'wrong_gain', doc: 'too many wrong-gain frames in the dark run (every gain)' },
  { bit: 16, name: 'bad_gain_g0', doc: 'G0 gain zero, not finite or of the wrong sign' },
  { bit: 17, name: 'bad_gain_g1', doc: 'G1 gain zero, not finite or of the wrong sign' },
  { bit: 18, name: 'bad_gain_g2', doc: 'G2 gain zero, not finite or of the wrong sign' },
] as const;

const PER_GAIN = [
  [9, 12, 16],
  [10, 13, 17],
  [11, 14, 18],
] as const;
const EVERY_GAIN = [0, 1, 2, 3, 4, 8, 15];

/** The mask bits that exclude a pixel while it is in G0, G1, G2. */
export function excludeBitsPerGain(): [number, number, number] {
  const common = EVERY_GAIN.reduce((m, b) => m | (1 << b), 0);
  const per = PER_GAIN.map((bits) => bits.reduce((m, b) => (m | (1 << b)) >>> 0, common) >>> 0);
  return [per[0]!, per[1]!, per[2]!];
}
