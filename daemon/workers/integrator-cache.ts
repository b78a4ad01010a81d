// Integrators (pixel-to-bin maps) kept by a worker across configuration
// epochs: a reload that changes only the veto must not rebuild a 6M-pixel map,
// and a map that is evicted is freed at once rather than when the GC gets to
// its small JS wrapper (that delay was the reload leak).
import type { AzimuthalIntegrator } from '../integrate/azimuthal';

export class IntegratorCache {
  private readonly entries = new Map<string, AzimuthalIntegrator>();

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    let n = 0;
    for (const ai of this.entries.values()) n += ai.memoryBytes;
    return n;
  }

  get(key: string): AzimuthalIntegrator | undefined {
    const ai = this.entries.get(key);
    if (ai) {
      // Refresh its place in the LRU order.
      this.entries.delete(key);
      this.entries.set(key, ai);
    }
    return ai;
  }

  set(key: string, ai: AzimuthalIntegrator): void {
    this.entries.get(key)?.dispose();
    this.entries.set(key, ai);
    while (this.entries.size > this.limit) {
      const [oldKey, old] = this.entries.entries().next().value!;
      this.entries.delete(oldKey);
      old.dispose();
    }
  }
}
