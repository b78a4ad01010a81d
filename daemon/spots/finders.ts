// A SpotFinder for a frame shape, geometry and static mask from the
// configuration's pipeline.spots: DIALS's dispersion variants or peakfinder8,
// behind the one interface the spots stage uses.
import type { SpotsConfig } from '../config/config';
import type { Geometry } from '../geometry/geometry';
import type { PixelFrame } from '../native';
import { DispersionSpotFinder } from './dispersion';
import { Peakfinder8, radiusMap, radiusMapFromPoni, type BeamCentre } from './peakfinder8';
import type { SpotFinder, SpotList } from './spot-list';

// uint8 / uint16 / uint32 frames are widened into this (reused) buffer: the kernels take int32 or float32.
let widened = new Float32Array(0);

function frameOf(image: PixelFrame): Int32Array | Float32Array {
  if (image instanceof Int32Array || image instanceof Float32Array) return image;
  if (widened.length < image.length) widened = new Float32Array(image.length);
  const out = widened.subarray(0, image.length);
  out.set(image);
  return out;
}

class Dispersion implements SpotFinder {
  private readonly finder: DispersionSpotFinder;

  get strong(): Uint8Array {
    return this.finder.strong;
  }

  constructor(cfg: SpotsConfig, shape: [number, number]) {
    this.finder = new DispersionSpotFinder(shape[1], shape[0], {
      algorithm: cfg.algorithm as 'dispersion' | 'dispersion_extended',
      kernel_size: [cfg.kernel_size, cfg.kernel_size],
      sigma_background: cfg.sigma_background,
      sigma_strong: cfg.sigma_strong,
      global_threshold: cfg.global_threshold,
      min_local: cfg.min_local,
      gain: cfg.gain,
      min_spot_size: cfg.min_spot_size,
      max_spot_size: cfg.max_spot_size,
      max_separation: cfg.max_separation,
    });
  }

  find(image: PixelFrame, mask: Uint8Array): SpotList {
    const spots = this.finder.find(frameOf(image), mask);
    return {
      count: spots.length,
      fs: Float32Array.from(spots, (s) => s.fs),
      ss: Float32Array.from(spots, (s) => s.ss),
      intensity: Float32Array.from(spots, (s) => s.intensity),
      pixels: Float32Array.from(spots, (s) => s.pixels),
    };
  }
}

class Pf8 implements SpotFinder {
  private readonly finder: Peakfinder8;

  constructor(cfg: SpotsConfig, shape: [number, number], beam: Geometry | BeamCentre, mask: Uint8Array) {
    const [rows, cols] = shape;
    const radius = 'fs' in beam ? radiusMap(cols, rows, beam) : radiusMapFromPoni(cols, rows, beam);
    this.finder = new Peakfinder8(cols, rows, radius, mask, {
      adcThresh: cfg.adc_threshold,
      minSnr: cfg.min_snr,
      minPixCount: cfg.min_pix,
      maxPixCount: cfg.max_pix,
      localBgRadius: cfg.local_bg_radius,
      minRes: cfg.min_res,
      maxRes: cfg.max_res,
      maxNumPeaks: Math.max(1, cfg.max_published, 2048),
    });
  }

  find(image: PixelFrame): SpotList {
    const p = this.finder.find(frameOf(image));
    return { count: p.found, fs: p.fs, ss: p.ss, intensity: p.intensity, pixels: Float32Array.from(p.pixels), snr: p.snr };
  }
}

/** `beam`: the geometry (peakfinder8's radii from its beam centre), or the beam centre itself in pixel-index coordinates. */
export function createSpotFinder(cfg: SpotsConfig, shape: [number, number], beam: Geometry | BeamCentre, mask: Uint8Array): SpotFinder {
  if (cfg.algorithm === 'peakfinder8') return new Pf8(cfg, shape, beam, mask);
  return new Dispersion(cfg, shape);
}
