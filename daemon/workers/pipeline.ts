// A worker's pipeline for one configuration epoch: decode, then the configured
// stages in the data path's order (calibrate -> spots -> veto -> integrate -> correlate). Each stage
// is a module behind the Stage interface (stages/frame.ts); this file only
// builds them and runs a frame through them.
import type { IntegrateConfig, SeriesOverride, SpotsConfig, VetoConfig } from '../config/config';
import { globToRegExp } from '../config/glob';
import { buildLocally, IntegratorCache, type MapSource } from './integrator-cache';
import { makePreview } from './preview';
import type { FrameMeta, PipelineUpdate, ResultArrays, ResultHeader, SeriesContext } from './protocol';
import { SeriesCorrelations } from './correlations';
import { CalibrateStage } from './stages/calibrate';
import { CorrelateStage } from './stages/correlate';
import { decodeFrame } from './stages/decode';
import type { Stage, WorkFrame } from './stages/frame';
import type { SpotList } from '../spots/spot-list';
import { IntegrateStage } from './stages/integrate';
import type { StageName } from './stages/names';
import { SpotsStage } from './stages/spots';
import { staticMask } from './stages/static-mask';
import { VetoStage } from './stages/veto';

/** The spot list as result arrays, capped (the true count travels in the header). */
function spotArrays(s: SpotList, cap: number): ResultArrays {
  const n = Math.min(cap, s.fs.length);
  return {
    spot_fs: s.fs.slice(0, n),
    spot_ss: s.ss.slice(0, n),
    spot_intensity: s.intensity.slice(0, n),
    spot_pixels: s.pixels.slice(0, n),
    ...(s.snr ? { spot_snr: s.snr.slice(0, n) } : {}),
  };
}

export class Pipeline {
  readonly epoch: number;
  /** A tracking snapshot changes the set within an epoch. */
  readonly calibrationId: string | undefined;
  private readonly stages: Stage[];
  private readonly overrides: { re: RegExp; o: SeriesOverride }[];
  /** The correlate stage runs: it integrates frames a second time. */
  private readonly correlates: boolean;

  constructor(
    private readonly update: PipelineUpdate,
    private readonly contexts: Map<string, SeriesContext> = new Map(),
    integrators: IntegratorCache = new IntegratorCache(4),
    correlations: SeriesCorrelations = new SeriesCorrelations(),
    maps: MapSource = buildLocally,
  ) {
    this.epoch = update.epoch;
    this.calibrationId = update.calibration.set?.id;
    this.overrides = update.series.map((o) => ({ re: globToRegExp(o.match), o }));
    // The veto's count comes from the integration pass, so it needs the integrate stage even when that is not named.
    const integrate = new IntegrateStage(integrators, maps);
    const all: Record<StageName, Stage> = {
      calibrate: new CalibrateStage(update.calibration),
      spots: new SpotsStage(),
      veto: new VetoStage(integrate),
      integrate,
      correlate: new CorrelateStage(integrate, correlations, update.pipeline.correlate),
    };
    this.stages = update.pipeline.stages.map((name) => all[name]);
    this.correlates = update.pipeline.correlate.enabled && update.pipeline.stages.includes('correlate');
  }

  private settingsFor(series: string): { spots: SpotsConfig; veto: VetoConfig; integrate: IntegrateConfig } {
    const base = this.update.pipeline;
    const hit = this.overrides.find(({ re }) => re.test(series))?.o;
    return { spots: { ...base.spots, ...hit?.spots }, veto: { ...base.veto, ...hit?.veto }, integrate: { ...base.integrate, ...hit?.integrate } };
  }

  /** wantPreview: the live page asked for a picture; the frame carries one if it is kept. */
  private preview(f: WorkFrame, arrays: ResultArrays): void {
    const t0 = performance.now();
    try {
      const p = makePreview({ pixels: f.decode(), shape: f.shape, mask: staticMask(f), ...(f.maxValid !== undefined ? { maxValid: f.maxValid } : {}), ...(f.negativeValid ? { negativeValid: true } : {}) });
      arrays.preview = p.image;
      f.header.preview = { ...p.info, ms: performance.now() - t0 };
    } catch {
      // A picture for the page is not worth failing a kept frame for: the next one will do.
    }
  }

  process(meta: FrameMeta, payload: Uint8Array, slot: number, worker: number, wantPreview = false): { header: ResultHeader; arrays: ResultArrays } {
    const t0 = performance.now();
    const header: ResultHeader = {
      seq: meta.seq,
      slot,
      worker,
      series: meta.series,
      frame: meta.frame,
      epoch: this.epoch,
      decision: 'kept',
      reason: this.stages.some((s) => s.name === 'veto') ? '' : 'no veto stage',
      score: null,
      receivedAt: meta.receivedAt,
      receivedWall: meta.receivedWall,
      processedWall: 0,
      workerMs: 0,
      source: meta.source,
      calibration: null,
      ...(meta.extra ? { extra: meta.extra } : {}),
    };
    let arrays: ResultArrays = {};
    try {
      const where = `series ${meta.series} frame ${meta.frame}`;
      const context = meta.context !== undefined ? this.contexts.get(meta.context) : undefined;
      const d = decodeFrame(meta, payload, context, where, this.update.calibration.poni?.geometry);
      header.shape = d.shape;
      const f: WorkFrame = {
        meta,
        payload,
        where,
        context,
        settings: this.settingsFor(meta.series),
        shape: d.shape,
        geometry: d.geometry,
        pixels: d.pixels,
        decode: () => (f.pixels ??= d.decode!()),
        ...(d.maxValid !== undefined ? { maxValid: d.maxValid } : {}),
        masks: [],
        mapKey: [],
        ...(this.correlates ? { keepPixels: true } : {}),
        header,
        arrays,
      };
      for (const stage of this.stages) {
        const verdict = stage.run(f);
        if (verdict) {
          header.decision = verdict.decision;
          header.reason = verdict.reason;
          break;
        }
      }
      // A JUNGFRAU frame no stage converted (no veto, no integrate) is converted still: its counts and tracking count.
      if (f.jungfrau) f.decode();
      if (header.decision === 'kept') {
        arrays = { ...f.arrays, ...(f.spots ? spotArrays(f.spots, f.settings.spots.max_published) : {}) };
        if (wantPreview) this.preview(f, arrays);
      }
    } catch (e) {
      const message = (e as Error).message;
      Object.assign(header, { decision: 'error', reason: message, error: message });
      arrays = {};
    }
    header.workerMs = performance.now() - t0;
    header.processedWall = Date.now();
    return { header, arrays };
  }
}
