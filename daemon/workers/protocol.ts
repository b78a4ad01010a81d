// What travels between the main thread and the workers.
import type { PipelineConfig, SeriesOverride } from '../config/config';
import type { MessagePort } from 'node:worker_threads';
import type { SlotLayout } from '../rings/frame-slots';

/** Written by ingest into the slot's metadata area. */
export interface FrameMeta {
  series: string;
  frame: number;
  encoding: 'cbf' | 'raw';
  dtype?: 'int32' | 'uint32' | 'uint16' | 'uint8' | 'float32';
  shape?: [number, number];
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
}

/** Control words shared with each worker. */
export const CONTROL = { epoch: 0, stop: 1, words: 2 } as const;

export type Decision = 'kept' | 'rejected' | 'error';

export interface ResultHeader {
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
}

export interface ResultArrays {
  radial?: Float64Array;
  azimuthal?: Float64Array;
  intensity?: Float32Array;
  sigma?: Float32Array;
  count?: Float32Array;
}
