// Dispersion spot finder timing on thau_3_2_0001.cbf (PILATUS3 6M), one thread,
// median of 50, both variants; with DIALS installed (python3-dials), DIALS's
// DispersionThreshold / DispersionExtendedThreshold timed in the same run.
// Call: `import { dispersionBenchmark } from './spots'; printTable(dispersionBenchmark())`.
import { spawnSync } from 'node:child_process';
import { DispersionSpotFinder } from '../../daemon/spots/dispersion';
import { native } from '../../daemon/native';
import { dataFile, readData } from '../helpers/data';

export interface SpotBenchRow {
  [key: string]: string | number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const DIALS_SCRIPT = `
import sys, time
from dials.algorithms.image import threshold
from dxtbx.model.experiment_list import ExperimentListFactory
from dials.array_family import flex
import dxtbx
img = dxtbx.load(sys.argv[1]).get_raw_data()
img = img.as_double()
mask = img >= 0
for name, cls in (("dispersion", threshold.DispersionThreshold), ("dispersion_extended", threshold.DispersionExtendedThreshold)):
    alg = cls(img.all(), (3, 3), 6.0, 3.0, 0.0, 2)
    out = flex.bool(flex.grid(img.all()))
    ts = []
    for i in range(int(sys.argv[2])):
        t0 = time.perf_counter(); alg(img, mask, out); ts.append(time.perf_counter() - t0)
    ts.sort()
    print(name, ts[len(ts) // 2] * 1000, out.count(True))
`;

export function dispersionBenchmark(repeats = 50): SpotBenchRow[] {
  const { binary, pixels } = native.cbfDecode(readData('cbf', 'thau_3_2_0001.cbf'));
  const width = binary.fastest ?? 2463;
  const height = pixels.length / width;
  const mask = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) mask[i] = pixels[i]! < 0 ? 1 : 0;
  const rows: SpotBenchRow[] = [];
  const dials = new Map<string, [number, number]>();
  const py = spawnSync('/usr/bin/python3', ['-c', DIALS_SCRIPT, dataFile('cbf', 'thau_3_2_0001.cbf'), String(Math.min(repeats, 10))], {
    encoding: 'utf8',
  });
  if (py.status === 0)
    for (const l of py.stdout.trim().split('\n')) {
      const [n, ms, c] = l.split(' ');
      dials.set(n!, [Number(ms), Number(c)]);
    }
  for (const algorithm of ['dispersion', 'dispersion_extended'] as const) {
    const f = new DispersionSpotFinder(width, height, { algorithm });
    const ts: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const t0 = process.hrtime.bigint();
      f.threshold(pixels, mask);
      ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const d = dials.get(algorithm);
    rows.push({
      algorithm,
      'ms/frame': median(ts).toFixed(2),
      strong: f.strongPixels,
      path: f.path,
      'DIALS ms/frame': d ? d[0].toFixed(2) : 'n/a',
      'DIALS strong': d ? d[1] : 'n/a',
    });
  }
  return rows;
}
