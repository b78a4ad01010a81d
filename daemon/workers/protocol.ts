// What travels between the main thread and the workers.
import type { PipelineConfig, SeriesOverride } from '../config/config';
import type { MessagePort } from 'node:worker_threads';
import type { SlotLayout } from '../rings/frame-slots';
import type { PipelineCalibration } from '../calibrate/pipeline-calibration';

/** Written by ingest into the slot's metadata area. */
export interface FrameMeta {
  /** Receive sequence within the run (the provenance row's identity). */
  seq: number;
  series: string;
  frame: number;
  /** cbf: a whole CBF file; raw: pixels; bslz4 / lz4 / lz4block: a DECTRIS stream image. */
  encoding: 'cbf' | 'raw' | 'bslz4' | 'lz4' | 'lz4block';
  dtype?: 'int32' | 'uint32' | 'uint16' | 'uint8' | 'float32';
  /** jungfrau: raw gain-switching words, converted with the calibration set (also implied by a jungfrau set for uint16 raw frames). */
  detector?: 'jungfrau';
  /** Key of the series context (geometry, mask, saturation) sent ahead by the source. */
  context?: string;
  shape?: [number, number];
  /** Configuration epoch when the frame was received: the worker processes it with that epoch's pipeline. */
  epoch?: number;
  /** Main-thread monotonic time (ms) when the frame was complete. */
  receivedAt: number;
  /** Wall-clock time (ms since the epoch) of the same moment. */
  receivedWall: number;
  source: string;
  /** Free-form metadata from the sender, passed through to MQTT. */
  extra?: Record<string, unknown>;
}

export interface PipelineUpdate {
  epoch: number;
  pipeline: PipelineConfig;
  series: SeriesOverride[];
  /** Loaded on the main thread; its arrays are SharedArrayBuffers, read by every worker in place. */
  calibration: PipelineCalibration;
}

/** What a DECTRIS `start` message tells the workers about a series. */
export interface SeriesContext {
  key: string;
  geometry?: import('../geometry/geometry').Geometry;
  /**
   * The detector's pixel mask for the processed channel (non-zero: masked) and
   * the flatfield, as the start message carried them: each worker decodes them
   * once, when a frame first needs them (workers/series-calibration.ts), so
   * their pixels never cost the main thread any time.
   */
  mask?: import('../decode/stream2').EncodedImage;
  flat?: import('../decode/stream2').EncodedImage;
  /** Pixels above this are saturated or flagged, and excluded. */
  maxValid?: number;
}

/** The main thread asks every worker for a series' correlation (pairs: those; null: all); `end` frees it in the worker. */
export interface CorrelationRequest {
  kind: 'correlation';
  id: number;
  series: string;
  pairs: Int32Array | null;
  end: boolean;
}

export type WorkerMessage =
  | { kind: 'pipeline'; update: PipelineUpdate }
  | { kind: 'series'; context: SeriesContext }
  | CorrelationRequest
  /** The map store's answer to a map request: a view on its SharedArrayBuffer, read in place. */
  | { kind: 'map'; key: string; blob: Uint8Array }
  | { kind: 'map-error'; key: string; message: string }
  /** The store let go of this map: the worker drops its views on it. */
  | { kind: 'map-evicted'; key: string };

/** Posted by a worker on its port: it needs the map of `key`, built from `spec` if the store has none. */
export interface MapRequest {
  kind: 'map-request';
  key: string;
  spec: import('../native').NativeMapSpec;
}

/** A worker's answer on its port (state null: it has none of that series). */
export interface CorrelationReply {
  kind: 'correlation';
  id: number;
  worker: number;
  state: import('../correlate/accumulator').CorrelationState | null;
  /** Series the worker's bound dropped since its last answer. */
  evicted: string[];
  error?: string;
}

export interface WorkerInit {
  index: number;
  slotInfo: SharedArrayBuffer;
  slotData: SharedArrayBuffer;
  layout: SlotLayout;
  queue: SharedArrayBuffer;
  results: SharedArrayBuffer;
  control: SharedArrayBuffer;
  port: MessagePort;
  initial: PipelineUpdate;
  /** Integrators (views on the store's maps) a worker keeps. */
  maxMaps: number;
}

/** Control words shared with each worker. */
// generation: bumped with every message posted to the worker, which drains its port when it changes.
// preview: set by the main thread when the live page wants a picture; the
// worker that next keeps a frame attaches one and clears it (no watcher: never set).
export const CONTROL = { generation: 0, stop: 1, preview: 2, words: 3 } as const;

export type Decision = 'kept' | 'rejected' | 'error';

export interface ResultHeader {
  seq: number;
  slot: number;
  worker: number;
  series: string;
  frame: number;
  epoch: number;
  decision: Decision;
  reason: string;
  /** Lit pixels (the veto score); null when the frame failed before the veto. */
  score: number | null;
  receivedAt: number;
  receivedWall: number;
  processedWall: number;
  workerMs: number;
  source: string;
  unit?: string;
  shape?: [number, number];
  extra?: Record<string, unknown>;
  error?: string;
  /** Mapped pixels excluded by their value (markers, saturated or flagged). */
  excluded?: number;
  /** Id of the calibration set the frame was converted with (null: none). */
  calibration?: string | null;
  /** Spots found (when the spots stage ran), however many are published. */
  spots?: number;
  /** The veto's count passed (a hit); false for rejects and prescaled keeps; absent without a veto. */
  hit?: boolean;
  /** The correlate stage added the frame to its series' accumulator. */
  correlated?: boolean;
  /** Pixels the calibration stage excluded, by reason (JUNGFRAU: saturated, invalid gain, error word, masked). */
  calibrationExcluded?: Record<string, number>;
  /** The live page's picture of this frame is in arrays.preview (see workers/preview.ts). */
  preview?: PreviewInfo;
}

export interface PreviewInfo {
  width: number;
  height: number;
  /** Detector pixels per preview pixel along each side. */
  binning: number;
  /** The log10 range mapped onto 1..255 (0 is a masked block). */
  log10Min: number;
  log10Max: number;
  /** Worker time the picture took (decode if needed, binning), ms: the main thread paces the next request by it. */
  ms: number;
}

export interface ResultArrays {
  /** Spots (pixel-index coordinates), capped at pipeline.spots.max_published. */
  spot_fs?: Float32Array;
  spot_ss?: Float32Array;
  spot_intensity?: Float32Array;
  spot_pixels?: Float32Array;
  spot_snr?: Float32Array;
  radial?: Float64Array;
  azimuthal?: Float64Array;
  intensity?: Float32Array;
  sigma?: Float32Array;
  count?: Float32Array;
  /** Downsampled log-scale picture for the live page: 0 masked, 1..255 log intensity. */
  preview?: Uint8Array;
}
