// What an ingest source needs from the daemon: slots to fill, and somewhere to
// report frames it could not deliver. Sources are plugins behind this interface
// (TCP framing and a directory watcher here, the DECTRIS streams next).
import type { FrameMeta } from '../workers/protocol';

export type IncomingMeta = Omit<FrameMeta, 'seq' | 'receivedAt' | 'receivedWall'>;

export interface FrameRef {
  series: string;
  frame: number | null;
  source: string;
}

export interface IngestSink {
  /** A free slot, or undefined when all are in use. */
  acquire(): number | undefined;
  /** Calls `cb` once, when a slot has been released. */
  whenSlotFree(cb: () => void): void;
  /** Where to write the payload of an acquired slot (the one copy). */
  payloadTarget(slot: number, size: number): Uint8Array;
  /**
   * Hands a filled slot to the workers. Never throws: a frame that cannot be
   * taken (metadata too large for the slot...) is recorded as rejected, its
   * slot given back, and false returned. `onRecorded` runs once the frame's
   * outcome (processed, failed or lost) is committed to provenance.
   */
  submit(slot: number, meta: IncomingMeta, size: number, onRecorded?: () => void): boolean;
  /** Calls `cb` once every frame handed over so far has its provenance row committed. */
  whenDurable(cb: () => void): void;
  /** Gives back an acquired slot that was not filled. */
  release(slot: number): void;
  /** A frame that was not processed because the workers were behind. */
  dropped(ref: FrameRef, reason: string): void;
  /** A frame that could not even be handed to the workers (bad framing, too large...). */
  rejected(ref: FrameRef, message: string): void;
  event(level: 'info' | 'warn' | 'error', kind: string, message: string, details?: Record<string, unknown>): void;
}

export interface FrameSource {
  readonly name: string;
  start(sink: IngestSink): Promise<void>;
  /** Stops taking frames; resolves when nothing more will be submitted. */
  stop(): Promise<void>;
  describe(): Record<string, unknown>;
}
