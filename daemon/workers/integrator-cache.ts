// Integrators kept by a worker across configuration epochs, by the settings
// that chose their map: a reload that changes only the veto finds its
// integrator here and asks for nothing. The maps themselves belong to the
// main thread's map store (maps/map-store.ts): an integrator here is a small
// view on a SharedArrayBuffer that every worker reads.
import type { AzimuthalIntegrator } from '../integrate/azimuthal';
import { native, type NativeMapSpec } from '../native';

/** Gives the map blob of `key` (built from `spec`): the worker asks the map store; tools build it locally. */
export type MapSource = (key: string, spec: NativeMapSpec) => Uint8Array;

export const buildLocally: MapSource = (_key, spec) => native.buildMap(spec);

interface Entry {
  ai: AzimuthalIntegrator;
  mapKey: string;
}

export class IntegratorCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.ai.memoryBytes;
    return n;
  }

  get(key: string): AzimuthalIntegrator | undefined {
    const e = this.entries.get(key);
    if (e) {
      // Refresh its place in the LRU order.
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    return e?.ai;
  }

  set(key: string, ai: AzimuthalIntegrator, mapKey: string): void {
    this.entries.get(key)?.ai.dispose();
    this.entries.set(key, { ai, mapKey });
    while (this.entries.size > this.limit) {
      const [oldKey, old] = this.entries.entries().next().value!;
      this.entries.delete(oldKey);
      old.ai.dispose();
    }
  }

  /** The store evicted this map: let go of the views on it, so its memory can be freed. */
  dropMap(mapKey: string): void {
    for (const [k, e] of this.entries)
      if (e.mapKey === mapKey) {
        this.entries.delete(k);
        e.ai.dispose();
      }
  }
}
