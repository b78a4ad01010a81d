// Synthesised JUNGFRAU dark frames: Gaussian noise around a pedestal map,
// quantised to integer ADC, from a seeded generator (tests must repeat).

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Standard normal deviates for a whole frame at a time: a table read from a
 * random offset per frame (a pixel's samples across frames come from
 * unrelated table entries), far cheaper than a Box-Muller pair per pixel.
 */
export class NormalTable {
  private readonly table: Float64Array;
  constructor(private readonly rand: () => number, size = 1 << 22) {
    this.table = new Float64Array(size);
    for (let i = 0; i < size; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - rand()));
      const phi = 2 * Math.PI * rand();
      this.table[i] = r * Math.cos(phi);
      this.table[i + 1] = r * Math.sin(phi);
    }
  }
  /** Fills `out` with G-stage words: round(pedestal + rms * z), clamped to 14 bits. */
  frame(pedestal: ArrayLike<number>, rms: ArrayLike<number>, out: Uint16Array, gainBits = 0): void {
    const t = this.table;
    const size = t.length;
    const off = Math.floor(this.rand() * size);
    for (let i = 0; i < out.length; i++) {
      const v = Math.round(pedestal[i]! + rms[i]! * t[(off + i) % size]!);
      out[i] = gainBits | (v < 0 ? 0 : v > 16383 ? 16383 : v);
    }
  }
}
