// The per-frame stages, run on a worker thread: decode -> calibrate (mask,
// dark) -> veto (lit pixels) -> integrate. Decoding, veto counting and
// integration are one native pass over the frame (integrateCbf).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { expectShape, readPixelImage } from '../calibrate/pixel-image';
import type { IntegrateConfig, SeriesOverride, VetoConfig } from '../config/config';
import { globToRegExp } from '../config/glob';
import { cbfHeaderText, readCbf } from '../decode/cbf';
import { parsePilatusHeader } from '../decode/pilatus-header';
import { geometryFromCbfHeader, type Geometry } from '../geometry/geometry';
import { parsePoni } from '../geometry/poni';
import { AzimuthalIntegrator } from '../integrate/azimuthal';
import { native, type PixelFrame } from '../native';
import { decodeImage, elemSize, type Dtype } from '../decode/stream2';
import { IntegratorCache } from './integrator-cache';
import { seriesCalibration } from './series-calibration';
import type { FrameMeta, PipelineUpdate, ResultArrays, ResultHeader, SeriesContext } from './protocol';

// Rejected-frame counters kept for the prescaled keep; series ids come from the
// network, so only the most recent are remembered.
const MAX_SERIES_COUNTERS = 1024;

interface Stages {
  veto: VetoConfig;
  integrate: IntegrateConfig;
}

interface Calibration {
  poni?: Geometry;
  /** Content hash of the static mask, part of every integrator key. */
  maskHash?: string;
  mask?: { shape: [number, number]; data: Uint8Array };
  dark?: { shape: [number, number]; data: Float32Array };
  /** A calibration file that could not be read: every frame fails with this until the next reload. */
  error?: string;
}

function loadCalibration(update: PipelineUpdate): Calibration {
  const p = update.pipeline;
  try {
    const cal: Calibration = {};
    if (p.geometry.poni) cal.poni = parsePoni(readFileSync(p.geometry.poni, 'utf8'), p.geometry.poni);
    if (p.mask) {
      const img = readPixelImage(p.mask);
      cal.mask = { shape: img.shape, data: Uint8Array.from(img.data, (v) => (v !== 0 ? 1 : 0)) };
      cal.maskHash = createHash('sha256').update(cal.mask.data).digest('hex');
    }
    if (p.dark) {
      const img = readPixelImage(p.dark);
      cal.dark = { shape: img.shape, data: Float32Array.from(img.data) };
    }
    return cal;
  } catch (e) {
    return { error: `calibration: ${(e as Error).message}` };
  }
}

function rawView(meta: FrameMeta, payload: Uint8Array): PixelFrame {
  const [rows, cols] = meta.shape!;
  const n = rows * cols;
  const ctor = { int32: Int32Array, uint32: Uint32Array, uint16: Uint16Array, uint8: Uint8Array, float32: Float32Array }[meta.dtype!];
  if (payload.length !== n * ctor.BYTES_PER_ELEMENT)
    throw new Error(`raw frame: ${payload.length} bytes, but ${rows} x ${cols} ${meta.dtype} needs ${n * ctor.BYTES_PER_ELEMENT}`);
  if (payload.byteOffset % ctor.BYTES_PER_ELEMENT) throw new Error('raw frame payload is misaligned');
  return new ctor(payload.buffer as ArrayBuffer, payload.byteOffset, n);
}

/** The value EIGER gives flagged pixels: all ones in the pixel's bits. */
function flagValue(dtype: Dtype): number {
  return 2 ** (8 * elemSize(dtype)) - 1;
}

export class Pipeline {
  readonly epoch: number;
  private readonly cal: Calibration;
  private readonly overrides: { re: RegExp; o: SeriesOverride }[];
  private readonly rejectedSince = new Map<string, number>();
  private scratch = new Int32Array(0);

  constructor(
    private readonly update: PipelineUpdate,
    private readonly contexts: Map<string, SeriesContext> = new Map(),
    private readonly integrators: IntegratorCache = new IntegratorCache(4),
  ) {
    this.epoch = update.epoch;
    this.cal = loadCalibration(update);
    this.overrides = update.series.map((o) => ({ re: globToRegExp(o.match), o }));
  }

  private stagesFor(series: string): Stages {
    const base = this.update.pipeline;
    const hit = this.overrides.find(({ re }) => re.test(series))?.o;
    return { veto: { ...base.veto, ...hit?.veto }, integrate: { ...base.integrate, ...hit?.integrate } };
  }

  private integrator(geometry: Geometry, shape: [number, number], cfg: IntegrateConfig, pixels: () => PixelFrame, context?: SeriesContext): AzimuthalIntegrator {
    const key = JSON.stringify([geometry, shape, cfg, context?.key ?? null, this.cal.maskHash ?? null]);
    let ai = this.integrators.get(key);
    if (ai) return ai;
    const { mask: maskImg } = this.cal;
    if (maskImg) expectShape(maskImg, shape, 'mask');
    // Static mask: the mask file plus this first frame's markers (negative pixels).
    const mask = maskImg ? maskImg.data.slice() : new Uint8Array(shape[0] * shape[1]);
    const series = context ? seriesCalibration(context, shape) : {};
    if (series.mask) for (let i = 0; i < mask.length; i++) if (series.mask[i]) mask[i] = 1;
    const px = pixels();
    for (let i = 0; i < mask.length; i++) if (px[i]! < 0) mask[i] = 1;
    ai = new AzimuthalIntegrator({
      geometry,
      shape,
      npt: cfg.npt,
      unit: cfg.unit,
      split: cfg.split,
      mask,
      solidAngle: cfg.solid_angle,
      ...(cfg.npt_azim > 0 ? { nptAzim: cfg.npt_azim } : {}),
      ...(cfg.polarization !== null ? { polarization: cfg.polarization } : {}),
      ...(cfg.range ? { radialRange: cfg.range } : {}),
      ...(series.flat ? { flat: series.flat } : {}),
    });
    this.integrators.set(key, ai);
    return ai;
  }

  private streamScratch: Uint8Array = new Uint8Array(0);

  /** Decompresses a stream image into a worker-owned buffer (reused frame to frame). */
  private decodeStream(meta: FrameMeta, payload: Uint8Array): PixelFrame {
    const [rows, cols] = meta.shape!;
    const bytes = rows * cols * elemSize(meta.dtype!);
    if (this.streamScratch.length < bytes) this.streamScratch = new Uint8Array(bytes);
    const img = { shape: meta.shape!, dtype: meta.dtype as Dtype, encoding: meta.encoding as 'bslz4' | 'lz4' | 'lz4block', bytes: payload };
    return decodeImage(img, this.streamScratch) as PixelFrame;
  }

  process(meta: FrameMeta, payload: Uint8Array, slot: number, worker: number): { header: ResultHeader; arrays: ResultArrays } {
    const t0 = performance.now();
    const base: ResultHeader = {
      seq: meta.seq,
      slot,
      worker,
      series: meta.series,
      frame: meta.frame,
      epoch: this.epoch,
      decision: 'error',
      reason: '',
      score: null,
      receivedAt: meta.receivedAt,
      receivedWall: meta.receivedWall,
      processedWall: 0,
      workerMs: 0,
      source: meta.source,
      ...(meta.extra ? { extra: meta.extra } : {}),
    };
    const finish = (h: ResultHeader, arrays: ResultArrays = {}) => {
      h.workerMs = performance.now() - t0;
      h.processedWall = Date.now();
      return { header: h, arrays };
    };
    try {
      if (this.cal.error) throw new Error(this.cal.error);
      const stages = this.stagesFor(meta.series);
      const where = `series ${meta.series} frame ${meta.frame}`;
      let shape: [number, number];
      let geometry: Geometry;
      let frame: PixelFrame | undefined;
      const context = meta.context !== undefined ? this.contexts.get(meta.context) : undefined;
      if (meta.encoding === 'bslz4' || meta.encoding === 'lz4' || meta.encoding === 'lz4block') {
        if (!meta.shape || !meta.dtype) throw new Error('stream frames need shape and dtype');
        shape = meta.shape;
        const g = this.cal.poni ?? context?.geometry;
        if (!g)
          throw new Error(
            context ? 'the start message gave no usable geometry and pipeline.geometry.poni is not set' : `no start message for series ${meta.series} (started mid-series?) and pipeline.geometry.poni is not set`,
          );
        geometry = g;
        frame = this.decodeStream(meta, payload);
      } else if (meta.encoding === 'cbf') {
        const info = native.cbfLocate(payload);
        if (info.fastest === null) throw new Error('CBF gives no dimensions');
        shape = [info.second ?? 1, info.fastest];
        geometry = this.cal.poni ?? geometryFromCbfHeader(parsePilatusHeader(cbfHeaderText(payload, info)), `${where}: CBF header`);
      } else {
        if (!meta.shape || !meta.dtype) throw new Error('raw frames need shape and dtype in the header');
        if (!this.cal.poni) throw new Error('raw frames need pipeline.geometry.poni');
        shape = meta.shape;
        geometry = this.cal.poni;
        frame = rawView(meta, payload);
      }
      if (this.cal.dark) expectShape(this.cal.dark, shape, 'dark');
      const decoded = () => {
        if (frame) return frame;
        const n = shape[0] * shape[1];
        if (this.scratch.length < n) this.scratch = new Int32Array(n);
        frame = readCbf(payload, { out: this.scratch.subarray(0, n), source: where }).pixels;
        return frame;
      };
      const ai = this.integrator(geometry, shape, stages.integrate, decoded, context);
      const options = {
        ...(this.cal.dark ? { dark: this.cal.dark.data } : {}),
        ...(stages.veto.enabled ? { litThreshold: stages.veto.threshold } : {}),
        ...(context?.maxValid !== undefined ? { maxValid: context.maxValid } : meta.dtype && meta.encoding !== 'raw' && meta.encoding !== 'cbf' ? { maxValid: flagValue(meta.dtype) - 1 } : {}),
      };
      // Frames already decoded (raw, or the first of a geometry) are integrated
      // from pixels; the rest in one fused decode+integrate pass.
      const r = frame ? ai.integrate(frame, options) : ai.integrateCbf(payload, options);
      const h: ResultHeader = { ...base, unit: ai.unit.name, shape, score: stages.veto.enabled ? r.lit : null, excluded: r.excluded };
      const { veto } = stages;
      if (!veto.enabled) {
        h.decision = 'kept';
        h.reason = 'veto disabled';
      } else if (r.lit >= veto.min_pixels) {
        h.decision = 'kept';
        h.reason = `lit ${r.lit} >= ${veto.min_pixels}`;
      } else {
        const n = (this.rejectedSince.get(meta.series) ?? 0) + 1;
        this.rejectedSince.delete(meta.series);
        this.rejectedSince.set(meta.series, n);
        if (this.rejectedSince.size > MAX_SERIES_COUNTERS) this.rejectedSince.delete(this.rejectedSince.keys().next().value!);
        const prescaled = veto.keep_one_in > 0 && n % veto.keep_one_in === 0;
        h.decision = prescaled ? 'kept' : 'rejected';
        h.reason = prescaled ? `prescaled keep (1 in ${veto.keep_one_in}), lit ${r.lit} < ${veto.min_pixels}` : `lit ${r.lit} < ${veto.min_pixels}`;
      }
      if (h.decision !== 'kept') return finish(h);
      return finish(h, {
        radial: ai.radial,
        ...(ai.azimuthal ? { azimuthal: ai.azimuthal } : {}),
        intensity: Float32Array.from(r.intensity),
        sigma: Float32Array.from(r.sigma),
        count: Float32Array.from(r.count),
      });
    } catch (e) {
      const message = (e as Error).message;
      return finish({ ...base, decision: 'error', reason: message, error: message });
    }
  }
}
