// Payloads of the MQTT topics. `reduced` is CBOR by default, with the profile
// as RFC 8746 typed arrays (cbor-x emits tags 85/86 for float32/float64 LE),
// or JSON with plain number arrays.
import type { Encoder as CborEncoder } from 'cbor-x' with { 'resolution-mode': 'import' };
import type { ResultArrays, ResultHeader } from '../workers/protocol';

// cbor-x's type declarations are ESM-only; its Node entry point is CommonJS.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Encoder } = require('cbor-x') as { Encoder: typeof CborEncoder };
const cbor = new Encoder({ useRecords: false, tagUint8Array: false });

export const CONTENT_TYPE = { cbor: 'application/cbor', json: 'application/json' } as const;

export interface ReducedMessage {
  instance: string;
  series: string;
  frame: number;
  received: string;
  processed: string;
  latency_ms: number;
  epoch: number;
  decision: string;
  reason: string;
  score: number | null;
  /** Pixels left out for their value: gaps, saturated or flagged. */
  excluded: number | undefined;
  unit: string | undefined;
  shape: [number, number] | undefined;
  source: string;
  /** Id of the calibration set the frame was converted with (null: none). */
  calibration: string | null;
  /** Pixels the calibration excluded, by reason. */
  calibration_excluded?: Record<string, number>;
  /** Spots found (count: all of them; the arrays: at most pipeline.spots.max_published), pixel-index coordinates. */
  spots?: { count: number; fs: Float32Array; ss: Float32Array; intensity: Float32Array; pixels: Float32Array; snr?: Float32Array };
  meta?: Record<string, unknown>;
  radial?: Float64Array;
  azimuthal?: Float64Array;
  intensity?: Float32Array;
  sigma?: Float32Array;
  count?: Float32Array;
}

export function reducedMessage(instance: string, h: ResultHeader, arrays: ResultArrays, latencyMs: number): ReducedMessage {
  // The live page's picture is not part of the message.
  const { spot_fs, spot_ss, spot_intensity, spot_pixels, spot_snr, preview: _preview, ...a } = arrays;
  return {
    instance,
    series: h.series,
    frame: h.frame,
    received: new Date(h.receivedWall).toISOString(),
    processed: new Date(h.processedWall).toISOString(),
    latency_ms: Math.round(latencyMs * 1000) / 1000,
    epoch: h.epoch,
    decision: h.decision,
    reason: h.reason,
    score: h.score,
    excluded: h.excluded,
    unit: h.unit,
    shape: h.shape,
    source: h.source,
    calibration: h.calibration ?? null,
    ...(h.calibrationExcluded ? { calibration_excluded: h.calibrationExcluded } : {}),
    ...(h.extra ? { meta: h.extra } : {}),
    ...(h.spots !== undefined && spot_fs && spot_ss && spot_intensity && spot_pixels
      ? { spots: { count: h.spots, fs: spot_fs, ss: spot_ss, intensity: spot_intensity, pixels: spot_pixels, ...(spot_snr ? { snr: spot_snr } : {}) } }
      : {}),
    ...a,
  };
}

export function encodeReduced(msg: ReducedMessage, format: 'cbor' | 'json'): Buffer {
  return encodePayload(msg, format);
}

/** CBOR with typed arrays as RFC 8746 tags, or JSON with plain number arrays. */
export function encodePayload(msg: object, format: 'cbor' | 'json'): Buffer {
  if (format === 'cbor') return cbor.encode(msg);
  return Buffer.from(JSON.stringify(msg, (_k, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v)));
}

/** A series' accumulated angular cross-correlation (topic `correlation`). */
export interface CorrelationMessage {
  instance: string;
  series: string;
  /** Frames accumulated (kept by the veto) when the workers answered. */
  frames: number;
  /** The series ended: this is its last message, and the files are written. */
  final: boolean;
  time: string;
  /** Configuration epochs and calibration sets of the accumulated frames. */
  epochs: number[];
  calibrations: string[];
  unit: string;
  /** [npt] radial bin centres, [npt_azim] delta in degrees. */
  radial: Float64Array;
  delta_deg: Float64Array;
  /** [npt, npt_azim]: the shape of autocorrelation. */
  shape: [number, number];
  /** C2(i, i, delta), row by row. */
  autocorrelation: Float64Array;
  /** pipeline.correlate.q_pairs: C2(i, j, delta). */
  pairs: { i: number; j: number; c2: Float64Array }[];
  /** Final message: the files written, with their sha256. */
  files?: { name: string; path: string; sha256: string; bytes: number }[];
}

export function decodePayload<T>(payload: Buffer, contentType: string = CONTENT_TYPE.cbor): T {
  return contentType === CONTENT_TYPE.json ? (JSON.parse(payload.toString('utf8')) as T) : (cbor.decode(payload) as T);
}

export function decodeReduced(payload: Buffer, contentType: string = CONTENT_TYPE.cbor): ReducedMessage {
  return contentType === CONTENT_TYPE.json ? (JSON.parse(payload.toString('utf8')) as ReducedMessage) : (cbor.decode(payload) as ReducedMessage);
}
