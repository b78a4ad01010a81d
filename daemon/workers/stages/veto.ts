// The lit-pixel veto: keep a frame when enough mapped, unmasked pixels exceed
// the threshold; keep 1 in K of the rest for auditing. The count comes from
// the integration pass (the same read of the frame, see integrate.ts).
import type { Stage, Verdict, WorkFrame } from './frame';
import type { IntegrateStage } from './integrate';

// Series ids come from the network: remember the rejected-frame counters of the most recent only.
const MAX_SERIES_COUNTERS = 1024;

export class VetoStage implements Stage {
  readonly name = 'veto';
  private readonly rejectedSince = new Map<string, number>();

  constructor(private readonly integration: IntegrateStage) {}

  run(f: WorkFrame): Verdict | void {
    const veto = f.settings.veto;
    if (!veto.enabled) {
      f.header.reason = 'veto disabled';
      return;
    }
    const lit = this.integration.pass(f, veto.threshold).result.lit;
    f.header.score = lit;
    if (lit >= veto.min_pixels) {
      f.header.reason = `lit ${lit} >= ${veto.min_pixels}`;
      return;
    }
    const n = (this.rejectedSince.get(f.meta.series) ?? 0) + 1;
    this.rejectedSince.delete(f.meta.series);
    this.rejectedSince.set(f.meta.series, n);
    if (this.rejectedSince.size > MAX_SERIES_COUNTERS) this.rejectedSince.delete(this.rejectedSince.keys().next().value!);
    if (veto.keep_one_in > 0 && n % veto.keep_one_in === 0) {
      f.header.reason = `prescaled keep (1 in ${veto.keep_one_in}), lit ${lit} < ${veto.min_pixels}`;
      return;
    }
    return { decision: 'rejected', reason: `lit ${lit} < ${veto.min_pixels}` };
  }
}
