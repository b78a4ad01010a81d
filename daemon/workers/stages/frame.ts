// The one interface between worker stages: a frame goes in, and a stage either
// lets it go on (returns nothing) or ends it with a decision.
import type { IntegrateConfig, SpotsConfig, VetoConfig } from '../../config/config';
import type { SpotList } from '../../spots/spot-list';
import type { Geometry } from '../../geometry/geometry';
import type { Integration } from '../../integrate/azimuthal';
import type { JungfrauConverter } from '../../calibrate/jungfrau';
import type { JungfrauCounts, JungfrauTrack, PixelFrame } from '../../native';
import type { FrameMeta, ResultArrays, ResultHeader, SeriesContext } from '../protocol';

export interface WorkFrame {
  readonly meta: FrameMeta;
  readonly payload: Uint8Array;
  /** "series S frame N", for messages. */
  readonly where: string;
  /** The DECTRIS start message's context, when the frame belongs to such a series. */
  readonly context: SeriesContext | undefined;
  /** Veto and integration settings after the series' overrides. */
  readonly settings: { spots: SpotsConfig; veto: VetoConfig; integrate: IntegrateConfig };
  shape: [number, number];
  geometry: Geometry;
  /**
   * Decoded pixels. A byte-offset CBF stays compressed until a stage needs its
   * pixels: the integration decodes it inside its own pass, without a
   * full-frame buffer.
   */
  pixels: PixelFrame | undefined;
  /** Decodes now (into a worker-owned buffer) when still compressed. */
  decode(): PixelFrame;
  /** Pixels above this are saturated or flagged, and excluded. */
  maxValid?: number;
  /** Calibrated float pixels: negative values are signal, only NaN is excluded (otherwise negative pixels are markers). */
  negativeValid?: boolean;
  /**
   * A JUNGFRAU frame still in raw gain words: the integration pass converts it
   * tile by tile, or decode() converts it whole when a stage needs pixels.
   */
  jungfrau?: JungfrauPending;
  /** A later stage integrates the frame again (correlate): a JUNGFRAU frame is then converted whole, not tile by tile inside one pass. */
  keepPixels?: boolean;
  /** Subtracted in the integration pass (float32 per pixel). */
  dark?: Float32Array;
  flat?: Float32Array;
  /** Static masks to OR together when a map is built (1 or non-zero: masked). */
  masks: (Uint8Array | Uint32Array)[];
  /** Content hashes of what went into the static mask and flat: part of every map's key. */
  mapKey: string[];
  /** Set by the first stage that runs the integration pass (the veto's count comes from it). */
  integration?: { result: Integration; radial: Float64Array; azimuthal?: Float64Array };
  /** Set by the spots stage. */
  spots?: SpotList;
  readonly header: ResultHeader;
  arrays: ResultArrays;
}

export interface JungfrauPending {
  raw: Uint16Array;
  converter: JungfrauConverter;
  track?: JungfrauTrack;
  /** Called with the counts once the frame is converted (by whichever pass does it). */
  converted(counts: JungfrauCounts): void;
}

export interface Verdict {
  decision: 'rejected';
  reason: string;
}

export interface Stage {
  readonly name: string;
  /** Nothing: the frame goes on to the next stage; a verdict ends it. Throws on bad input (the frame becomes an error). */
  run(frame: WorkFrame): Verdict | void;
}
