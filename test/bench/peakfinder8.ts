// peakfinder8 rows for the benchmark table: the PILATUS3 6M frame
// thau_3_2_0001.cbf (OM's parameters of shared/data/spots/README), one
// thread, median of 50 find() calls on an Int32Array frame (as decoded).
// Reference: OM's own src/cython/peakfinder8.cpp built in a temporary
// directory from the omdevteam/om snapshot (OM_PEAKFINDER8_SRC=<dir holding
// peakfinder8.cpp and peakfinder8.hh>, default /tmp/om-pf8) with a small C++
// driver and g++ -O2, on the same float frame, mask and radius map; the row
// says "not built" when the source or a compiler is missing. Nothing of OM is
// committed. Use: import { peakfinder8Benchmark } from './peakfinder8' and
// printTable('peakfinder8', peakfinder8Benchmark()).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Peakfinder8 } from '../../daemon/spots/peakfinder8';
import { thauCase } from '../spots/pf8-cases';
import { measure, printTable, type Row } from './measure';

const DRIVER = String.raw`
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
#include "peakfinder8.hh"
int main(int argc, char** argv) {
  int w = atoi(argv[1]), h = atoi(argv[2]), reps = atoi(argv[4]);
  size_t n = size_t(w) * h;
  std::vector<float> data(n), r(n);
  std::vector<char> mask(n);
  FILE* f = fopen(argv[3], "rb");
  if (fread(data.data(), 4, n, f) != n || fread(r.data(), 4, n, f) != n || fread(mask.data(), 1, n, f) != n) return 2;
  fclose(f);
  std::vector<double> ms;
  long np = 0;
  for (int i = 0; i < reps + 3; ++i) {
    tPeakList pl;
    allocatePeakList(&pl, 2048);
    auto t0 = std::chrono::steady_clock::now();
    peakfinder8(&pl, data.data(), mask.data(), r.data(), 0, nullptr, nullptr, 0, w, h, 1, 1, 50, 5, 2, 200, 3, nullptr);
    auto t1 = std::chrono::steady_clock::now();
    np = pl.nPeaks;
    freePeakList(pl);
    if (i >= 3) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  printf("%f %ld\n", ms[ms.size() / 2], np);
  return 0;
}
`;

/** OM's peakfinder8 on the same case: median ms and peaks, or null when it cannot be built. */
function omReference(c: ReturnType<typeof thauCase>, reps: number): { ms: number; peaks: number } | null {
  const src = process.env.OM_PEAKFINDER8_SRC ?? path.join(os.tmpdir(), 'om-pf8');
  if (!existsSync(path.join(src, 'peakfinder8.cpp')) || !existsSync(path.join(src, 'peakfinder8.hh'))) return null;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pf8-bench-'));
  try {
    writeFileSync(path.join(dir, 'driver.cc'), DRIVER);
    const exe = path.join(dir, 'driver');
    const cc = spawnSync('g++', ['-O2', '-o', exe, path.join(dir, 'driver.cc'), path.join(src, 'peakfinder8.cpp'), `-I${src}`], { encoding: 'utf8' });
    if (cc.status !== 0) return null;
    const n = c.width * c.height;
    const frame = Float32Array.from(c.frame);
    const omMask = new Uint8Array(n);
    for (let i = 0; i < n; i++) omMask[i] = c.mask?.[i] ? 0 : 1; // OM: non-zero = usable
    const input = path.join(dir, 'frame.bin');
    writeFileSync(input, Buffer.concat([Buffer.from(frame.buffer), Buffer.from(c.radius.buffer), Buffer.from(omMask.buffer)]));
    const run = spawnSync(exe, [String(c.width), String(c.height), input, String(reps)], { encoding: 'utf8' });
    if (run.status !== 0) return null;
    const [ms, peaks] = run.stdout.trim().split(/\s+/).map(Number) as [number, number];
    return { ms, peaks };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function peakfinder8Benchmark(reps = 50): Row[] {
  const c = thauCase();
  const pf = new Peakfinder8(c.width, c.height, c.radius, c.mask, c.params);
  let found = 0;
  const t = measure(() => (found = pf.find(c.frame).found), reps);
  const om = omReference(c, reps);
  const mpix = (c.width * c.height) / 1e6;
  return [
    {
      metric: `peakfinder8, ${c.name} (${mpix.toFixed(1)} Mpixel), ms/frame, 1 thread`,
      ours: `${t.medianMs.toFixed(1)} (${found} peaks)`,
      reference: om ? `${om.ms.toFixed(1)} (OM, ${om.peaks} peaks)` : 'OM not built',
      ratio: om ? `${(om.ms / t.medianMs).toFixed(2)}x` : '-',
    },
  ];
}

if (require.main === module) {
  printTable('peakfinder8 (PILATUS3 6M)', peakfinder8Benchmark());
}
