// One series' angular cross-correlation accumulator: polar images in, the
// accumulated half spectra out (native/src/fxs.h has the arithmetic). What
// it exports is a CorrelationState: plain typed arrays that travel between
// threads and add up across workers (result.ts).
import { native, type NativeCorrelator } from '../native';

/** Frames whose spectra are applied together: one (q x B)(B x q) product per harmonic. */
export const BATCH = 32;

export interface CorrelationState {
  npt: number;
  nptAzim: number;
  unit: string;
  /** Radial bin centres, in unit. */
  radial: Float64Array;
  frames: number;
  /** (i, j) pairs, flat [2P]; the spectra are [P][nptAzim/2 + 1]. */
  pairs: Int32Array;
  re: Float64Array;
  im: Float64Array;
  /** Mask spectra accumulated frame by frame (only past the native MAX_MASKS distinct masks). */
  mre?: Float64Array;
  mim?: Float64Array;
  /** Distinct masks [npt][nptAzim] (1 = valid bin) and how many frames had each. */
  masks: { mask: Uint8Array; count: number }[];
}

/** Bytes one accumulator takes (the packed triangle of two spectra, the batch, the row buffers). */
export function correlatorBytes(npt: number, nptAzim: number, batch = BATCH): number {
  const qpad = Math.ceil(npt / 4) * 4;
  const blocks = qpad / 4;
  const tri = (16 * blocks * (blocks + 1)) / 2;
  const h = Math.floor(nptAzim / 2) + 1;
  return 16 * tri * h + 16 * h * batch * qpad + 8 * qpad * nptAzim + npt * nptAzim;
}

/** Every (i, j) with i <= j, row by row: the pairs of a whole C2. */
export function allPairs(npt: number): Int32Array {
  const out = new Int32Array(npt * (npt + 1));
  let p = 0;
  for (let i = 0; i < npt; i++)
    for (let j = i; j < npt; j++) {
      out[p++] = i;
      out[p++] = j;
    }
  return out;
}

export class CorrelationAccumulator {
  private readonly engine: NativeCorrelator;

  constructor(
    readonly npt: number,
    readonly nptAzim: number,
    readonly unit: string,
    readonly radial: Float64Array,
    batch = BATCH,
  ) {
    if (radial.length !== npt) throw new RangeError(`radial axis has ${radial.length} bins, npt is ${npt}`);
    this.engine = new native.Correlator(npt, nptAzim, batch);
  }

  /** One polar image: intensity and pixel count per bin, [nptAzim][npt] as the 2D integration gives them. */
  add(intensity: Float64Array, count: Float64Array): void {
    this.engine.add(intensity, count);
  }

  get frames(): number {
    return this.engine.frames();
  }

  get memoryBytes(): number {
    return this.engine.memoryBytes();
  }

  /** The accumulated state for these pairs (all of them when none are given). */
  state(pairs: Int32Array = allPairs(this.npt)): CorrelationState {
    const s = this.engine.spectra(pairs);
    return {
      npt: this.npt,
      nptAzim: this.nptAzim,
      unit: this.unit,
      radial: this.radial,
      frames: this.engine.frames(),
      pairs,
      re: s.re,
      im: s.im,
      ...(s.mre ? { mre: s.mre, mim: s.mim! } : {}),
      masks: this.engine.masks(),
    };
  }
}
