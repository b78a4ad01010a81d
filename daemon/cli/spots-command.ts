// beamedge spots FILE...: spot finding on detector images with DIALS's
// dispersion variants or peakfinder8, printed the way OM and DIALS users read
// spot lists. The same finders as the daemon's spots stage.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { SpotsConfig } from '../config/config';
import { SCHEMA } from '../config/schema';
import { readCbf } from '../decode/cbf';
import { isSmv, readSmv } from '../decode/smv';
import type { Geometry } from '../geometry/geometry';
import { parsePoni } from '../geometry/poni';
import { createSpotFinder } from '../spots/finders';
import type { BeamCentre } from '../spots/peakfinder8';
import type { SpotList } from '../spots/spot-list';
import { UsageError, type Options, type OptionSpec } from './args';
import type { Command } from './command';
import { readNamedFile } from '../system/read-file';

interface Image {
  shape: [number, number];
  pixels: Int32Array;
  /** Beam_xy of a CBF header, taken as OM does: the beam centre in pixel-index coordinates. */
  beamXY?: [number, number];
}

function readImage(file: string): Image {
  const buf = readNamedFile(file);
  if (isSmv(buf)) {
    const smv = readSmv(buf, file);
    return { shape: smv.shape, pixels: smv.pixels };
  }
  const frame = readCbf(buf, { source: file });
  return { shape: frame.shape, pixels: frame.pixels, ...(frame.header.beamXY ? { beamXY: frame.header.beamXY } : {}) };
}

// Every pipeline.spots key is an option (kebab-case), with the schema's defaults: one list for both.
const spotsNode = (SCHEMA as { fields: Record<string, { fields: Record<string, unknown> }> }).fields.pipeline!.fields.spots as {
  fields: Record<string, { kind: string; default?: unknown; doc: string; values?: readonly string[] }>;
};
const PARAM_OPTIONS: Record<string, OptionSpec> = Object.fromEntries(
  Object.entries(spotsNode.fields)
    .filter(([k]) => k !== 'max_published')
    .map(([k, n]) => [
      k.replace(/_/g, '-'),
      n.kind === 'enum'
        ? { kind: 'string', arg: 'NAME', choices: [...n.values!], help: `${n.doc} (default ${String(n.default)})` }
        : { kind: 'number', arg: 'N', help: `${n.doc} (default ${String(n.default)})` },
    ]),
);

function spotsConfig(opts: Options): SpotsConfig {
  const cfg = Object.fromEntries(Object.entries(spotsNode.fields).map(([k, n]) => [k, n.default])) as unknown as SpotsConfig;
  for (const k of Object.keys(spotsNode.fields)) {
    const o = k.replace(/_/g, '-');
    if (!opts.has(o)) continue;
    (cfg as unknown as Record<string, unknown>)[k] = spotsNode.fields[k]!.kind === 'enum' ? opts.string(o) : opts.number(o);
  }
  if (cfg.algorithm === 'none') throw new UsageError('--algorithm: name one of dispersion, dispersion_extended, peakfinder8');
  cfg.max_published = 100_000; // print them all
  return cfg;
}

function table(file: string, s: SpotList): string {
  const head = `# ${file}: ${s.count} spots\n# fs ss intensity pixels${s.snr ? ' snr' : ''}\n`;
  const rows = Array.from(s.fs, (_, i) => [s.fs[i]!.toFixed(3), s.ss[i]!.toFixed(3), s.intensity[i]!.toFixed(2), s.pixels[i]!, ...(s.snr ? [s.snr[i]!.toFixed(3)] : [])].join(' '));
  return head + rows.map((r) => r + '\n').join('');
}

export const spotsCommand: Command = {
  name: 'spots',
  summary: "find spots (DIALS's dispersion / dispersion_extended, or peakfinder8) on CBF or SMV images",
  usage: 'beamedge spots FILE... --algorithm dispersion|dispersion_extended|peakfinder8 [parameters] [--poni P | --from-header | --center CX CY] [--strong-mask OUT.u8] [--json]',
  options: {
    ...PARAM_OPTIONS,
    poni: { kind: 'string', arg: 'FILE', help: 'peakfinder8: radius from this PONI geometry (untilted)' },
    'from-header': { kind: 'flag', help: 'peakfinder8: beam centre from the CBF header (Beam_xy)' },
    center: { kind: 'list', arg: 'CX CY', help: 'peakfinder8: beam centre in pixel-index coordinates (column, row of pixel centres)' },
    'strong-mask': { kind: 'string', arg: 'OUT.u8', help: 'dispersion: write the strong-pixel mask of the last file (uint8, row-major)' },
    json: { kind: 'flag', help: 'one JSON object per file: file, count and the arrays fs, ss, intensity, pixels (and snr)' },
  },
  async run(opts, io) {
    if (opts.positional.length === 0) throw new UsageError('name at least one FILE');
    const cfg = spotsConfig(opts);
    const centre = opts.list('center');
    const ways = [opts.has('poni'), opts.flag('from-header'), centre !== undefined].filter(Boolean).length;
    if (cfg.algorithm === 'peakfinder8' && ways !== 1) throw new UsageError('peakfinder8 needs exactly one of --poni, --from-header and --center');
    if (cfg.algorithm !== 'peakfinder8' && ways > 0) throw new UsageError('--poni, --from-header and --center are for peakfinder8');
    if (opts.has('strong-mask') && cfg.algorithm === 'peakfinder8') throw new UsageError('--strong-mask is for the dispersion algorithms');
    let fixed: Geometry | BeamCentre | undefined;
    if (opts.has('poni')) fixed = parsePoni(readNamedFile(opts.string('poni')!, 'utf8'), opts.string('poni')!);
    if (centre) {
      const [cx, cy] = centre.map(Number);
      if (centre.length !== 2 || !Number.isFinite(cx) || !Number.isFinite(cy)) throw new UsageError('--center takes two numbers: CX CY');
      fixed = { fs: cx!, ss: cy! };
    }
    let status = 0;
    let lastStrong: { mask: Uint8Array } | undefined;
    for (const file of opts.positional) {
      try {
        const img = readImage(file);
        if (opts.flag('from-header') && !img.beamXY) throw new Error('--from-header needs a CBF header with Beam_xy');
        // The dispersion algorithms need no geometry: any will do.
        const beam = fixed ?? (img.beamXY && opts.flag('from-header') ? { fs: img.beamXY[0], ss: img.beamXY[1] } : { fs: 0, ss: 0 });
        // Pixels below zero (gaps, bad pixels) are masked, as everywhere in beamedge.
        const mask = Uint8Array.from(img.pixels, (v) => (v < 0 ? 1 : 0));
        const finder = createSpotFinder(cfg, img.shape, beam, mask);
        const spots = finder.find(img.pixels, mask);
        if (finder.strong) lastStrong = { mask: finder.strong };
        if (opts.flag('json'))
          io.out(JSON.stringify({ file, count: spots.count, fs: Array.from(spots.fs), ss: Array.from(spots.ss), intensity: Array.from(spots.intensity), pixels: Array.from(spots.pixels), ...(spots.snr ? { snr: Array.from(spots.snr) } : {}) }) + '\n');
        else io.out(table(file, spots));
      } catch (e) {
        const message = (e as Error).message;
        io.err(message.startsWith(`${file}: `) ? `${message}\n` : `${file}: ${message}\n`);
        status = 1;
      }
    }
    const out = opts.string('strong-mask');
    if (out && lastStrong) writeFileSync(path.resolve(out), lastStrong.mask);
    return status;
  },
};
