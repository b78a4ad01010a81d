// beamedge correlate FILE...: angular cross-correlations C2(q, q', delta)
// accumulated over all files (one series), written as .npy files.
import { CorrelationAccumulator } from '../correlate/accumulator';
import { writeCorrelationFiles } from '../correlate/files';
import { readCbf } from '../decode/cbf';
import { UsageError } from './args';
import type { Command, Io } from './command';
import { FileIntegrator, INTEGRATION_OPTIONS } from './file-integrator';
import { readNamedFile } from '../system/read-file';

export const correlateCommand: Command = {
  name: 'correlate',
  summary: 'angular cross-correlations C2(q, q\', delta) of polar images, accumulated over files (FXS)',
  usage:
    'beamedge correlate FILE... (--poni P | --from-header) --npt N --npt-azim M --unit U [--range LO HI] ' +
    '[--polarization F] [--no-solid-angle] --out DIR',
  options: {
    ...INTEGRATION_OPTIONS,
    'npt-azim': { kind: 'number', arg: 'M', integer: true, min: 1, max: 3600, help: 'azimuthal bins over 360 degrees' },
    out: { kind: 'string', arg: 'DIR', help: 'directory for c2.npy, pairs.npy, radial.npy and delta_deg.npy' },
  },
  async run(opts, io: Io) {
    const files = opts.positional;
    if (files.length === 0) throw new UsageError('correlate needs at least one FILE');
    const nptAzim = opts.number('npt-azim');
    if (nptAzim === undefined) throw new UsageError('--npt-azim is required');
    const out = opts.string('out');
    if (out === undefined) throw new UsageError('--out is required');
    // The polar image is the 2D integration without pixel splitting: each pixel in one bin, so a bin's count says whether it is valid.
    const integrators = new FileIntegrator(opts, { split: 'no', nptAzim });
    if (integrators.npt > 1000) throw new UsageError('--npt: at most 1000 radial bins');
    let acc: CorrelationAccumulator | undefined;
    let failures = 0;
    let accumulateNs = 0n;
    for (const file of files) {
      try {
        const frame = readCbf(readNamedFile(file), { source: file });
        const { integrator } = integrators.forFrame(frame, file);
        const r = integrator.integrate(frame.pixels);
        acc ??= new CorrelationAccumulator(integrators.npt, nptAzim, integrator.unit.name, integrator.radial);
        const t0 = process.hrtime.bigint();
        acc.add(r.intensity, r.count);
        accumulateNs += process.hrtime.bigint() - t0;
      } catch (err) {
        failures++;
        io.err(`beamedge correlate: ${(err as Error).message}\n`);
      }
    }
    if (!acc) {
      io.err('beamedge correlate: no file could be read; nothing written\n');
      return 1;
    }
    const written = writeCorrelationFiles(out, acc.state(), { pairsInt32: true });
    const perFrame = Number(accumulateNs) / 1e6 / acc.frames;
    io.out(
      `correlated ${acc.frames} frame(s)${failures ? ` (${failures} failed)` : ''}: C2 ${acc.npt} x ${acc.npt} x ${acc.nptAzim} (${acc.unit}), ` +
        `${perFrame.toFixed(3)} ms per frame to accumulate, ${(acc.memoryBytes / 2 ** 20).toFixed(1)} MiB accumulator; wrote ${written.map((w) => w.name).join(', ')} to ${out}\n`,
    );
    return failures ? 1 : 0;
  },
};
