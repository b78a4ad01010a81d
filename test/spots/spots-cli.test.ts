// `beamedge spots` against the references: peakfinder8's peak lists equal
// OM's, the dispersion variants' strong-pixel masks equal DIALS's, on the
// simulated still (SMV) and the real PILATUS3 6M frame (CBF).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { dataFile, needData, readData } from '../helpers/data';
import { BIN } from '../helpers/daemon-process';
import { readOmPeaks } from './pf8-cases';

const PF8 = ['--algorithm', 'peakfinder8', '--min-snr', '5', '--min-pix', '2', '--max-pix', '200', '--local-bg-radius', '3', '--min-res', '0', '--max-res', '10000', '--json'];

function spots(args: string[]): { status: number | null; stderr: string; out: { count: number; fs: number[]; ss: number[]; intensity: number[]; pixels: number[] } } {
  const r = spawnSync(process.execPath, [BIN, 'spots', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, stderr: r.stderr, out: r.status === 0 ? JSON.parse(r.stdout.split('\n')[0]!) : { count: -1, fs: [], ss: [], intensity: [], pixels: [] } };
}

t.test('peakfinder8 through the command line equals OM on both references', async (t) => {
  if (!needData(t)) return;
  const cases = [
    { name: 'lyso_noise (SMV)', args: [dataFile('spots', 'lyso_noise.img'), '--center', '256.5', '256.5', '--adc-threshold', '10'], om: readOmPeaks('lyso_pf8_om.tsv') },
    { name: 'thau_3_2_0001 (CBF, centre from Beam_xy)', args: [dataFile('cbf', 'thau_3_2_0001.cbf'), '--from-header', '--adc-threshold', '50'], om: readOmPeaks('thau_3_2_0001_pf8_om.tsv') },
  ];
  for (const c of cases) {
    const r = spots([...c.args, ...PF8]);
    t.equal(r.status, 0, r.stderr);
    t.equal(r.out.count, c.om.length, `${c.name}: ${r.out.count} peaks, OM ${c.om.length}`);
    let worstC = 0;
    let worstI = 0;
    for (const p of c.om) {
      let best = -1;
      let d = Infinity;
      r.out.fs.forEach((fs, i) => {
        const e = Math.hypot(fs - p.fs, r.out.ss[i]! - p.ss);
        if (e < d) (d = e), (best = i);
      });
      worstC = Math.max(worstC, d);
      worstI = Math.max(worstI, Math.abs(r.out.intensity[best]! - p.intensity) / Math.abs(p.intensity));
    }
    t.ok(worstC < 0.01, `${c.name}: centroids within 0.01 px of OM's (worst ${worstC.toExponential(2)})`);
    t.ok(worstI < 1e-3, `${c.name}: total intensities within 1e-3 (worst ${worstI.toExponential(2)})`);
  }
});

t.test('dispersion and dispersion_extended: --strong-mask equals DIALS', async (t) => {
  if (!needData(t)) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-spots-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cases = [
    { file: dataFile('spots', 'lyso_noise.img'), ref: (alg: string) => readData('spots', `lyso_${alg}_strong_mask.u8`) },
    { file: dataFile('cbf', 'thau_3_2_0001.cbf'), ref: (alg: string) => gunzipSync(readData('spots', `thau_3_2_0001_${alg}_strong_mask.u8.gz`)) },
  ];
  for (const c of cases)
    for (const alg of ['dispersion', 'dispersion_extended']) {
      const out = path.join(dir, `${alg}.u8`);
      const r = spots([c.file, '--algorithm', alg, '--strong-mask', out, '--json']);
      t.equal(r.status, 0, r.stderr);
      const ours = readFileSync(out);
      const ref = c.ref(alg);
      let differ = 0;
      let strong = 0;
      for (let i = 0; i < ref.length; i++) (differ += +(ours[i] !== ref[i])), (strong += ref[i]!);
      t.equal(ours.length, ref.length);
      t.equal(differ, 0, `${path.basename(c.file)} ${alg}: ${strong} strong pixels, ${differ} differ from DIALS`);
      t.ok(r.out.count > 0, `${r.out.count} spots`);
    }
});

t.test('bad input: a clear message and exit 1, the other files still processed', async (t) => {
  if (!needData(t)) return;
  const r = spawnSync(process.execPath, [BIN, 'spots', '/nonexistent.cbf', dataFile('spots', 'lyso_noise.img'), '--algorithm', 'dispersion'], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.equal(r.stderr, '/nonexistent.cbf: no such file\n', 'the file named once, the reason in words');
  t.match(r.stdout, /lyso_noise\.img: \d+ spots/, 'the good file after the bad one is processed');
  const u = spawnSync(process.execPath, [BIN, 'spots', dataFile('spots', 'lyso_noise.img'), '--algorithm', 'peakfinder8'], { encoding: 'utf8' });
  t.equal(u.status, 2, 'peakfinder8 without a beam centre is a usage error');
});
