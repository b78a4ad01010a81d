// What `beamedge integrate` and `beamedge correlate` share: the geometry from
// --poni or each file's header, the integration options, and one
// pixel-to-bin map per geometry and shape whose static mask is the mask file
// plus the detector's markers (negative pixels) of the first frame, as pyFAI
// users pass `data < 0`.
import type { CbfFrame } from '../decode/cbf';
import { geometryFromCbfHeader, type Geometry } from '../geometry/geometry';
import { parsePoni } from '../geometry/poni';
import { AzimuthalIntegrator, type IntegrationSetup } from '../integrate/azimuthal';
import { UNIT_NAMES } from '../integrate/units';
import { UsageError, type OptionSpec, type Options } from './args';
import { readNamedFile } from '../system/read-file';

/** The options both commands take, with the same names and meaning. */
export const INTEGRATION_OPTIONS: Record<string, OptionSpec> = {
  poni: { kind: 'string', arg: 'FILE', help: 'pyFAI PONI file with the geometry' },
  'from-header': { kind: 'flag', help: 'take the geometry from the CBF header (Beam_xy, Detector_distance, Pixel_size)' },
  npt: { kind: 'number', arg: 'N', integer: true, min: 1, help: 'number of radial bins' },
  unit: { kind: 'string', arg: 'U', choices: UNIT_NAMES, help: 'radial unit' },
  polarization: { kind: 'number', arg: 'F', help: 'polarization factor in [-1, 1] (no correction unless given)' },
  'no-solid-angle': { kind: 'flag', help: 'skip the solid-angle correction' },
  range: { kind: 'pair', arg: 'LO HI', help: 'radial range in the output unit' },
};

/** Per-file setup beyond the shared options (2D bins, splitting, flat...). */
export type SetupExtras = Omit<IntegrationSetup, 'geometry' | 'shape' | 'npt' | 'unit' | 'mask' | 'flat' | 'solidAngle' | 'polarization' | 'radialRange'>;

/** The shared options, checked (a UsageError names the mistake). */
export function integrationOptions(opts: Options): { npt: number; unit: string; polarization: number | undefined } {
  if (opts.has('poni') === opts.flag('from-header')) throw new UsageError('give exactly one of --poni and --from-header');
  const npt = opts.number('npt');
  if (npt === undefined) throw new UsageError('--npt is required');
  const unit = opts.string('unit');
  if (unit === undefined) throw new UsageError('--unit is required');
  const polarization = opts.number('polarization');
  if (polarization !== undefined && (polarization < -1 || polarization > 1)) throw new UsageError('--polarization must be within [-1, 1]');
  return { npt, unit, polarization };
}

/** The geometry of --poni (read now), or undefined with --from-header. */
export function poniOption(opts: Options): Geometry | undefined {
  const poniFile = opts.string('poni');
  return poniFile ? parsePoni(readNamedFile(poniFile, 'utf8'), poniFile) : undefined;
}

export class FileIntegrator {
  private readonly poni: Geometry | undefined;
  readonly npt: number;
  private readonly unit: string;
  private readonly polarization: number | undefined;
  private integrator: AzimuthalIntegrator | undefined;
  private key = '';

  /** Checks the shared options (a UsageError names the mistake). */
  constructor(
    private readonly opts: Options,
    private readonly extras: SetupExtras,
  ) {
    ({ npt: this.npt, unit: this.unit, polarization: this.polarization } = integrationOptions(opts));
    this.poni = poniOption(opts);
  }

  /** The frame's integrator (built when the geometry or shape changes), its geometry and the set-up time. */
  forFrame(frame: CbfFrame, file: string, cal: { mask?: Uint8Array; flat?: Float32Array } = {}): { integrator: AzimuthalIntegrator; geometry: Geometry; setupMs: number } {
    const geometry = this.poni ?? geometryFromCbfHeader(frame.header, file);
    const key = JSON.stringify([geometry, frame.shape]);
    if (this.integrator && key === this.key) return { integrator: this.integrator, geometry, setupMs: 0 };
    const m = cal.mask ? cal.mask.slice() : new Uint8Array(frame.pixels.length);
    for (let i = 0; i < m.length; i++) if (frame.pixels[i]! < 0) m[i] = 1;
    const s0 = process.hrtime.bigint();
    this.integrator = new AzimuthalIntegrator({
      ...this.extras,
      ...(cal.flat ? { flat: cal.flat } : {}),
      geometry,
      shape: frame.shape,
      npt: this.npt,
      unit: this.unit,
      mask: m,
      solidAngle: !this.opts.flag('no-solid-angle'),
      ...(this.polarization !== undefined ? { polarization: this.polarization } : {}),
      ...(this.opts.has('range') ? { radialRange: this.opts.pair('range')! } : {}),
    });
    this.key = key;
    return { integrator: this.integrator, geometry, setupMs: Number(process.hrtime.bigint() - s0) / 1e6 };
  }
}
