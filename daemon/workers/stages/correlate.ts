// The correlate stage (FXS): the frame's polar image (2D integration without
// pixel splitting, pipeline.correlate's bins, the integration's corrections)
// into its series' accumulator. It runs after the veto, so only kept frames
// get here; prescaled audit keeps (not hits) are left out.
import type { CorrelateConfig, IntegrateConfig } from '../../config/config';
import { CorrelationAccumulator } from '../../correlate/accumulator';
import type { SeriesCorrelations } from '../correlations';
import type { Stage, WorkFrame } from './frame';
import type { IntegrateStage } from './integrate';

export class CorrelateStage implements Stage {
  readonly name = 'correlate';

  constructor(
    private readonly integration: IntegrateStage,
    private readonly correlations: SeriesCorrelations,
    private readonly cfg: CorrelateConfig,
  ) {}

  run(f: WorkFrame): void {
    const cfg = this.cfg;
    if (!cfg.enabled || f.header.hit === false) return;
    const polar: IntegrateConfig = {
      npt: cfg.npt,
      npt_azim: cfg.npt_azim,
      unit: cfg.unit,
      split: 'no',
      polarization: f.settings.integrate.polarization,
      solid_angle: f.settings.integrate.solid_angle,
      range: cfg.range,
    };
    // A series keeps the settings it started with: a reload that changes them applies from the next series.
    const settings = this.correlations.polarOf(f.meta.series) ?? polar;
    const { result, radial } = this.integration.passWith(f, settings);
    const { acc } = this.correlations.get(f.meta.series, settings, () => new CorrelationAccumulator(settings.npt, settings.npt_azim, settings.unit, radial));
    acc.add(result.intensity, result.count);
    f.header.correlated = true;
  }
}
