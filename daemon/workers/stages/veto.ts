// The hit-finding veto: keep a frame when enough mapped, unmasked pixels
// exceed the threshold (lit_pixels), or when the spots stage found between
// min_spots and max_spots spots (spots); keep 1 in K of the rest for auditing.
// The lit count comes from the integration pass (the same read of the frame).
import type { Stage, Verdict, WorkFrame } from './frame';
import type { IntegrateStage } from './integrate';
import { RecentMap } from '../../system/recent-map';

// Series ids come from the network: remember the rejected-frame counters of the most recent only.
const MAX_SERIES_COUNTERS = 1024;

export class VetoStage implements Stage {
  readonly name = 'veto';
  private readonly rejectedSince = new RecentMap<string, number>(MAX_SERIES_COUNTERS);

  constructor(private readonly integration: IntegrateStage) {}

  run(f: WorkFrame): Verdict | void {
    const veto = f.settings.veto;
    if (!veto.enabled) {
      f.header.reason = 'veto disabled';
      return;
    }
    let counted: string;
    if (veto.method === 'spots') {
      const n = f.spots?.count;
      if (n === undefined) throw new Error('veto.method spots needs the spots stage and pipeline.spots.algorithm');
      f.header.score = n;
      if (veto.max_spots !== null && n > veto.max_spots) counted = `spots ${n} > ${veto.max_spots}`;
      else if (n < veto.min_spots) counted = `spots ${n} < ${veto.min_spots}`;
      else {
        f.header.reason = `spots ${n} >= ${veto.min_spots}`;
        f.header.hit = true;
        return;
      }
    } else {
      const lit = this.integration.pass(f, veto.threshold).result.lit;
      f.header.score = lit;
      if (lit >= veto.min_pixels) {
        f.header.reason = `lit ${lit} >= ${veto.min_pixels}`;
        f.header.hit = true;
        return;
      }
      counted = `lit ${lit} < ${veto.min_pixels}`;
    }
    f.header.hit = false;
    const n = (this.rejectedSince.get(f.meta.series) ?? 0) + 1;
    this.rejectedSince.set(f.meta.series, n);
    if (veto.keep_one_in > 0 && n % veto.keep_one_in === 0) {
      f.header.reason = `prescaled keep (1 in ${veto.keep_one_in}), ${counted}`;
      return;
    }
    return { decision: 'rejected', reason: counted };
  }
}
