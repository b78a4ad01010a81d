// The integrate stage: azimuthal integration with pyFAI's semantics through a
// pixel-to-bin map built once per geometry, binning and static mask by the
// main thread's map store and shared by every worker (the worker's
// IntegratorCache keeps its views across reloads). The same native pass
// counts lit pixels for the veto, so a frame is read once for both.
import type { IntegrateConfig } from '../../config/config';
import { AzimuthalIntegrator, mapSpec, type IntegrateOptions, type IntegrationSetup } from '../../integrate/azimuthal';
import { mapKey } from '../../maps/map-key';
import { buildLocally, type IntegratorCache, type MapSource } from '../integrator-cache';
import type { Stage, WorkFrame } from './frame';
import { staticMask } from './static-mask';

export class IntegrateStage implements Stage {
  readonly name = 'integrate';

  constructor(
    private readonly integrators: IntegratorCache,
    private readonly maps: MapSource = buildLocally,
  ) {}

  private integrator(f: WorkFrame, cfg: IntegrateConfig): AzimuthalIntegrator {
    const key = JSON.stringify([f.geometry, f.shape, cfg, f.mapKey]);
    let ai = this.integrators.get(key);
    if (ai) return ai;
    const setup: IntegrationSetup = {
      geometry: f.geometry,
      shape: f.shape,
      npt: cfg.npt,
      unit: cfg.unit,
      split: cfg.split,
      mask: staticMask(f),
      solidAngle: cfg.solid_angle,
      ...(cfg.npt_azim > 0 ? { nptAzim: cfg.npt_azim } : {}),
      ...(cfg.polarization !== null ? { polarization: cfg.polarization } : {}),
      ...(cfg.range ? { radialRange: cfg.range } : {}),
      ...(f.flat ? { flat: f.flat } : {}),
    };
    const spec = mapSpec(setup);
    const mkey = mapKey(spec);
    ai = new AzimuthalIntegrator(setup, this.maps(mkey, spec));
    this.integrators.set(key, ai, mkey);
    return ai;
  }

  /** Runs the integration pass once per frame (counting lit pixels above `litThreshold` when given) and keeps it on the frame. */
  pass(f: WorkFrame, litThreshold?: number): NonNullable<WorkFrame['integration']> {
    if (f.integration) return f.integration;
    const { integration } = this.integrateWith(f, f.settings.integrate, litThreshold);
    f.integration = integration;
    f.header.excluded = integration.result.excluded;
    f.header.unit = integration.result.unit;
    return f.integration;
  }

  /**
   * The integration with other settings (the correlate stage's polar image):
   * the frame's own pass when the settings are the same, else a pass of its
   * own that leaves the frame's integration alone.
   */
  passWith(f: WorkFrame, cfg: IntegrateConfig): NonNullable<WorkFrame['integration']> {
    if (JSON.stringify(cfg) === JSON.stringify(f.settings.integrate)) return this.pass(f);
    if (f.jungfrau) f.decode(); // the converted frame is then shared with the frame's own pass
    if (!f.pixels && f.meta.detector === 'jungfrau') throw new Error('a JUNGFRAU frame converted inside an earlier pass cannot be integrated again');
    return this.integrateWith(f, cfg).integration;
  }

  private integrateWith(f: WorkFrame, cfg: IntegrateConfig, litThreshold?: number): { integration: NonNullable<WorkFrame['integration']> } {
    const ai = this.integrator(f, cfg);
    const options: IntegrateOptions = {
      ...(f.dark ? { dark: f.dark } : {}),
      ...(litThreshold !== undefined ? { litThreshold } : {}),
      ...(f.maxValid !== undefined ? { maxValid: f.maxValid } : {}),
      ...(f.negativeValid ? { negativeValid: true } : {}),
    };
    // Frames still compressed (CBF) or raw (JUNGFRAU) are decoded or converted inside the integration pass.
    let result;
    // The fused pass does not subtract a dark, and leaves no converted frame for a second pass.
    if (f.jungfrau && (f.dark || f.keepPixels)) f.decode();
    if (f.pixels) result = ai.integrate(f.pixels, options);
    else if (f.jungfrau) {
      const { raw, converter, track, converted } = f.jungfrau;
      const r = ai.integrateJungfrau(raw, converter, { ...(litThreshold !== undefined ? { litThreshold } : {}), ...(track ? { track } : {}) });
      converted(r.jungfrau);
      result = r;
    } else result = ai.integrateCbf(f.payload, options);
    return { integration: { result, radial: ai.radial, ...(ai.azimuthal ? { azimuthal: ai.azimuthal } : {}) } };
  }

  run(f: WorkFrame): void {
    const { result, radial, azimuthal } = this.pass(f);
    f.arrays = {
      radial,
      ...(azimuthal ? { azimuthal } : {}),
      intensity: Float32Array.from(result.intensity),
      sigma: Float32Array.from(result.sigma),
      count: Float32Array.from(result.count),
    };
  }
}
