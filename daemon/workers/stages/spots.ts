// The spots stage: finds spots on the calibrated frame with pipeline.spots'
// algorithm (DIALS dispersion variants or peakfinder8), for the veto to count
// and the reduced message to carry. Finders hold per-shape buffers and, for
// peakfinder8, the radius map: kept per configuration, shape, geometry and mask.
import { createSpotFinder } from '../../spots/finders';
import type { SpotFinder } from '../../spots/spot-list';
import type { Stage, WorkFrame } from './frame';
import { staticMask } from './static-mask';
import { RecentMap } from '../../system/recent-map';

const MAX_FINDERS = 2;

export class SpotsStage implements Stage {
  readonly name = 'spots';
  private readonly finders = new RecentMap<string, SpotFinder>(MAX_FINDERS);

  run(f: WorkFrame): void {
    const cfg = f.settings.spots;
    if (cfg.algorithm === 'none') return;
    const mask = staticMask(f);
    const key = JSON.stringify([cfg, f.shape, f.geometry, f.mapKey]);
    let finder = this.finders.get(key);
    if (!finder) {
      finder = createSpotFinder(cfg, f.shape, f.geometry, mask);
      this.finders.set(key, finder);
    }
    f.spots = finder.find(f.decode(), mask);
    f.header.spots = f.spots.count;
  }
}
